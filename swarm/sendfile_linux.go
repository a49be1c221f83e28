package swarm

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// blockSender sends blocks from files to one plaintext TCP connection with
// sendfile(2), from the page cache to the socket without a copy through
// user space. Its calls into the runtime's poller are bound once, so a
// block costs no allocation.
type blockSender struct {
	rc     syscall.RawConn
	corked bool

	// The sendfile under way, for step.
	in   int
	off  int64
	left int
	err  error
	// The TCP_CORK value to set, for cork.
	val int

	stepFn func(fd uintptr) bool
	corkFn func(fd uintptr)
}

// newBlockSender returns a sender for conn, or nil if conn is not one
// that sendfile may write to (see rawTCP).
func newBlockSender(conn net.Conn) *blockSender {
	tcp := rawTCP(conn)
	if tcp == nil {
		return nil
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	s := &blockSender{rc: rc}
	s.stepFn, s.corkFn = s.step, s.cork
	return s
}

// send writes n bytes of f from off to the socket, waiting for room in it
// under the connection's write deadline.
func (s *blockSender) send(f *os.File, off int64, n int) error {
	s.in, s.off, s.left, s.err = int(f.Fd()), off, n, nil
	if err := s.rc.Write(s.stepFn); err != nil {
		return err
	}
	return s.err
}

// step is one go of sendfile; false asks the poller to wait until the
// socket can take more.
func (s *blockSender) step(fd uintptr) bool {
	for s.left > 0 {
		n, err := unix.Sendfile(int(fd), s.in, &s.off, s.left)
		if n > 0 {
			s.left -= n
		}
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
		case err != nil:
			s.err = fmt.Errorf("sendfile: %w", err)
			return true
		case n == 0:
			s.err = errShortFile
			return true
		}
	}
	return true
}

// setCork sets or clears TCP_CORK: while set, the kernel sends only full
// segments; clearing it pushes out what is held.
func (s *blockSender) setCork(on bool) error {
	s.val, s.err = 0, nil
	if on {
		s.val = 1
	}
	if err := s.rc.Control(s.corkFn); err != nil {
		return err
	}
	if s.err == nil {
		s.corked = on
	}
	return s.err
}

func (s *blockSender) cork(fd uintptr) {
	if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, s.val); err != nil {
		s.err = fmt.Errorf("TCP_CORK: %w", err)
	}
}
