//go:build !linux

package tracker

import (
	"net"
	"syscall"
)

func listenControl(_, _ string, _ syscall.RawConn) error { return nil }

func writeLast(c net.Conn, b []byte) error {
	_, err := c.Write(b)
	return err
}

// acceptFast is the Linux raw accept path; elsewhere acceptLoop's portable
// loop runs.
func (ls *leanServer) acceptFast(net.Listener) (bool, error) { return false, nil }

// idleReader is Linux's buffer-free wait for a keep-alive connection's
// next request; elsewhere serveConn reads through the net.Conn.
type idleReader struct{}

func newIdleReader(net.Conn) *idleReader { return nil }

func (*idleReader) wait() (*leanBufs, int, error) { return nil, 0, nil }
