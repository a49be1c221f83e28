package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/swarm"
	"github.com/shoal-p2p/shoal/swarm/lsd"
)

// statusHelp is what get's and seed's --help say of the dump.
const statusHelp = "kill -USR1 PID prints a status dump on stderr: per torrent and per peer, what the choker, the piece picker and the address book hold, and counters of every peer, connection and message refused, by reason."

// statusDump writes the swarm's status dump (swarm.Client.WriteStatus) to
// stderr each time the process gets SIGUSR1: what an operator, or a bug
// report, needs of a swarm that is stuck or slow, without restarting it
// with debug logs. It listens from the start of the command, so the
// signal, whose default is to kill, is harmless while the data is hashed
// before any client exists.
type statusDump struct {
	cl   atomic.Pointer[swarm.Client]
	lsd  atomic.Pointer[lsd.Service]
	stop func()
}

// dumpOnSignal starts answering SIGUSR1 with a dump on w until ctx ends
// or stop is called; stop returns once the goroutine has.
func dumpOnSignal(ctx context.Context, w io.Writer) *statusDump {
	d := &statusDump{}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if cl := d.cl.Load(); cl != nil {
					cl.WriteStatus(w)
					if ls := d.lsd.Load(); ls != nil {
						ls.WriteStatus(w)
					}
				} else {
					fmt.Fprintf(w, "shoal status at %s: no swarm yet (reading or hashing the data)\n", time.Now().Format(time.RFC3339))
				}
			}
		}
	}()
	d.stop = func() {
		signal.Stop(sig)
		cancel()
		<-done
	}
	return d
}

// set names the client to dump from now on.
func (d *statusDump) set(cl *swarm.Client) { d.cl.Store(cl) }

// setLSD adds local service discovery's counters to the dump.
func (d *statusDump) setLSD(ls *lsd.Service) { d.lsd.Store(ls) }
