package tracker

import (
	"net"
	"syscall"
)

// deferAcceptSeconds is how long the kernel holds a connection that has
// sent nothing before handing it to accept anyway.
const deferAcceptSeconds = 5

// listenControl sets TCP_DEFER_ACCEPT: the kernel completes the handshake
// but wakes accept only once the request has arrived, so the first read
// never has to wait in the poller, and connections that never send cost no
// goroutine.
func listenControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	})
	if err != nil {
		return err
	}
	return serr
}

// writeLast writes the final answer on a connection about to be closed
// with MSG_MORE, which holds the data until close adds the FIN to the same
// segment: one packet instead of two for each connection-per-announce
// client, the tracker's commonest exchange.
func writeLast(c net.Conn, b []byte) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_, err := c.Write(b)
		return err
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := syscall.SendmsgN(int(fd), b, nil, nil, syscall.MSG_MORE|syscall.MSG_NOSIGNAL)
			if err == syscall.EAGAIN {
				return false
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return true
			}
			b = b[n:]
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}
