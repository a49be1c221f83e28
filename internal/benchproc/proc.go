package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Grace is how long a child gets between SIGTERM and SIGKILL.
const Grace = 5 * time.Second

// ErrExited is returned by WaitReady when the child exits before getting
// ready.
var ErrExited = errors.New("child exited")

// Spec says how Start runs a child.
type Spec struct {
	Name    string   // for error messages and LogTail's header
	LogPath string   // stdout and stderr both go here, for post-mortems
	Argv    []string // program and arguments
	// Lines is the capacity of Proc.Lines. Lines beyond it that nobody
	// has read are dropped rather than stalling the child.
	Lines int
	// OnStdout and OnStderr, if set, are called with every complete line
	// of the stream, without its line end, on the goroutine copying it.
	OnStdout, OnStderr func(line string)
	// StdinPipe gives the child a pipe on stdin that nobody writes to:
	// programs that exit when stdin closes (lt_peer.py seeders) then die
	// with us even if we are SIGKILLed.
	StdinPipe bool
	// Pdeathsig has the kernel SIGKILL the child if we die first.
	Pdeathsig bool
}

// Proc is a running child in its own process group.
type Proc struct {
	Name    string
	LogPath string
	Cmd     *exec.Cmd
	// Lines carries the first stdout lines (see Spec.Lines).
	Lines <-chan string
	// Done is closed once the child is reaped.
	Done <-chan struct{}
	// Err is what Wait returned; read it only after Done.
	Err error

	cancel   context.CancelFunc
	stopOnce sync.Once
}

// Start runs spec.Argv in its own process group. Cancelling ctx (or calling
// Stop) sends SIGTERM to the group, then SIGKILL after Grace.
func Start(ctx context.Context, spec Spec) (*Proc, error) {
	logFile, err := os.Create(spec.LogPath)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	argv := spec.Argv
	cmd := exec.CommandContext(pctx, argv[0], argv[1:]...)
	// Own group: a terminal's Ctrl-C then reaches only us, and we decide the
	// order of shutdown; the group kill also catches any grandchildren.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.Pdeathsig {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = Grace
	lines, done := make(chan string, spec.Lines), make(chan struct{})
	p := &Proc{Name: spec.Name, LogPath: spec.LogPath, Cmd: cmd, Lines: lines, Done: done, cancel: cancel}

	// One lock around the log file when both streams are copied into it.
	var logMu sync.Mutex
	logW := writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logFile.Write(b)
	})
	cmd.Stdout = io.MultiWriter(logW, &LineWriter{Fn: func(line string) {
		if spec.OnStdout != nil {
			spec.OnStdout(line)
		}
		select {
		case lines <- line:
		default: // Only the first lines matter to anyone waiting; keep going.
		}
	}})
	if spec.OnStderr != nil {
		cmd.Stderr = io.MultiWriter(logW, &LineWriter{Fn: spec.OnStderr})
	} else {
		// Nobody reads it: the child may write to the file itself.
		cmd.Stderr = logFile
	}
	if spec.StdinPipe {
		if _, err := cmd.StdinPipe(); err != nil {
			cancel()
			logFile.Close()
			return nil, err
		}
	}
	fmt.Fprintf(logFile, "$ %s\n", strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	go func() {
		p.Err = cmd.Wait()
		// Sweep anything left in the group once the leader is gone.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		logFile.Close()
		close(done)
	}()
	return p, nil
}

// Stop terminates the child (SIGTERM, SIGKILL after Grace) and waits for
// it. It is safe to call more than once, so callers can both defer it and
// stop early.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		<-p.Done
	})
}

// LogTail returns the last max bytes of the child's log under a header
// naming it, for error messages, or "" if the log is empty.
func (p *Proc) LogTail(max int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return fmt.Sprintf("\n--- %s (%s) ---\n%s", p.Name, p.LogPath, strings.TrimRight(string(data), "\n"))
}

// WaitReady reads p's stdout lines until one starts with ready, and returns
// the value of the last line starting with each of keys seen up to then
// (keys include their ": "); a key not seen maps to "". It returns
// ErrExited if the child exits first, or ctx.Err(), so each caller can word
// the failure its own way.
func (p *Proc) WaitReady(ctx context.Context, ready string, keys ...string) (map[string]string, error) {
	vals := make(map[string]string, len(keys))
	for {
		select {
		case line := <-p.Lines:
			for _, k := range keys {
				if v, ok := strings.CutPrefix(line, k); ok {
					vals[k] = v
				}
			}
			if strings.HasPrefix(line, ready) {
				return vals, nil
			}
		case <-p.Done:
			return nil, ErrExited
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// LineWriter hands each complete line written to it to Fn, without its
// "\n" or "\r\n". A final line without a line end is never passed on.
type LineWriter struct {
	Fn  func(line string)
	buf []byte
}

// Write implements io.Writer; it never fails.
func (w *LineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.Fn(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
