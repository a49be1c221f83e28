package main

import (
	"context"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// barThreshold is the input size from which hashing shows a progress bar:
// below it the work is over before a bar would be read.
const barThreshold = 64 << 20

// isTerminal reports whether w is a terminal, where a redrawn bar makes
// sense; logs and pipes get plain lines or nothing.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// showBytes draws a byte progress bar on w fed from counter until the
// returned stop function is called. It draws nothing for small totals or
// when w is not a terminal.
func showBytes(w io.Writer, desc string, total int64, counter *atomic.Int64) (stop func()) {
	if total < barThreshold || !isTerminal(w) {
		return func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				bar.Set64(counter.Load())
				bar.Finish()
				return
			case <-t.C:
				bar.Set64(counter.Load())
			}
		}
	}()
	return func() { cancel(); <-done }
}
