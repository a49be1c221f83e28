//go:build !linux

package tracker

import (
	"net"
	"sync/atomic"
	"syscall"
)

// udpSockets is 1 without SO_REUSEPORT's load spreading.
func udpSockets(int) int { return 1 }

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

func (w *udpWorker) serve(c *net.UDPConn, closing *atomic.Bool) error {
	return w.serveSimple(c, closing)
}
