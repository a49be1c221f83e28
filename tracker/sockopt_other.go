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
