package tracker

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
)

// acceptFast runs the accept loop on the raw listening socket when ln is a
// TCP listener. A client that announces on a new connection has usually
// sent its whole request by the time accept returns (Listen sets
// TCP_DEFER_ACCEPT), so the request is read, answered and the socket closed
// right there with four system calls and no goroutine, poller
// registration or net.Conn. Anything else (a partial request, a client
// keeping the connection, an error to answer, a write that would block) is
// handed to serveConn as a net.Conn with the bytes read so far.
//
// It reports false when ln is not a TCP listener.
func (ls *leanServer) acceptFast(ln net.Listener) (bool, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return false, nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return false, nil
	}
	// A listener's RawConn cannot wait for readability, but an os.File
	// on a duplicate of its socket can, through the same poller.
	dup := -1
	var derr error
	cerr := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		dup = int(r)
	})
	if cerr != nil || derr != nil {
		return false, nil
	}
	f := os.NewFile(uintptr(dup), "tracker-listener")
	frc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return false, nil
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-ls.done:
		case <-stop:
		}
		f.Close() // wakes the loops waiting on f
	}()
	// Accepts on one socket are serialised by its read lock, but answering
	// happens outside it, so one loop per processor keeps every core busy.
	n := max(2, runtime.GOMAXPROCS(0))
	errc := make(chan error, n)
	for range n {
		go func() { errc <- ls.fastLoop(frc) }()
	}
	err = <-errc
	close(stop)
	for range n - 1 {
		<-errc
	}
	return true, err
}

func (ls *leanServer) fastLoop(rc syscall.RawConn) error {
	var backoff time.Duration
	for {
		var (
			nfd  int
			sa   syscall.Sockaddr
			aerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			nfd, sa, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			return aerr != syscall.EAGAIN
		})
		if err != nil || ls.closing.Load() {
			if aerr == nil && err == nil {
				syscall.Close(nfd)
			}
			if ls.closing.Load() {
				return nil
			}
			return err
		}
		switch {
		case aerr == nil:
			backoff = 0
			ls.serveFD(nfd, sockaddrAddr(sa))
		case errors.Is(aerr, syscall.ECONNABORTED), errors.Is(aerr, syscall.EINTR):
		case errors.Is(aerr, syscall.EMFILE), errors.Is(aerr, syscall.ENFILE),
			errors.Is(aerr, syscall.ENOBUFS), errors.Is(aerr, syscall.ENOMEM):
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			ls.s.log.Warn("tracker accept failed; retrying", "err", aerr, "delay", backoff)
			time.Sleep(backoff)
		default:
			return aerr
		}
	}
}

func sockaddrAddr(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// serveFD answers a single complete Connection: close request on a freshly
// accepted socket, or hands the socket to serveConn. It runs inline in the
// accept loop, so it recovers a panic itself: the loop keeps accepting.
func (ls *leanServer) serveFD(fd int, remote netip.AddrPort) {
	bufs := leanPool.Get().(*leanBufs)
	state := connActive
	var req leanReq
	defer func() {
		if v := recover(); v != nil {
			ls.panicked(v, remote, state)
			// bufs is dropped, not pooled: after a hand-over it is no
			// longer ours.
			switch state {
			case connActive:
				// Nothing is written yet and the answer fits a fresh
				// socket buffer: best effort, without blocking.
				w := appendEmpty(bufs.w[:0], &leanReq{http10: req.http10}, http.StatusInternalServerError, false)
				syscall.SendmsgN(fd, w, nil, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
				syscall.Close(fd)
			case connClosing:
				syscall.Close(fd)
			}
		}
	}()
	n, err := syscall.Read(fd, bufs.r)
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, bufs.r)
	}
	switch {
	case err == syscall.EAGAIN:
		state = connHijacked
		ls.handOver(fd, bufs, 0)
		return
	case err != nil || n == 0:
		state = connClosed
		syscall.Close(fd)
		leanPool.Put(bufs)
		return
	}
	b := bufs.r[:n]
	end := headEnd(b, 0)
	if b[0] == '\r' || b[0] == '\n' || end != n || ls.parseHead(b, &req) != nil ||
		!req.close || req.hasBody || ls.closing.Load() {
		state = connHijacked
		ls.handOver(fd, bufs, n)
		return
	}
	ls.answer(bufs, &req, remote, false)
	state = connClosing
	w := bufs.w
	for len(w) > 0 {
		m, err := syscall.SendmsgN(fd, w, nil, nil, syscall.MSG_MORE|syscall.MSG_NOSIGNAL)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			// A full socket buffer on a fresh connection: only a huge
			// answer gets here. Finish it under a write deadline.
			state = connHijacked
			ls.handOverWrite(fd, bufs, w)
			return
		}
		if err != nil {
			break
		}
		w = w[m:]
	}
	state = connClosed
	syscall.Close(fd)
	leanPool.Put(bufs)
}

// fdConn turns an accepted socket into a net.Conn (closing fd).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return net.FileConn(f)
}

// handOver continues a connection in serveConn, with bufs.r[:n] already
// read from it.
func (ls *leanServer) handOver(fd int, bufs *leanBufs, n int) {
	c, err := fdConn(fd)
	if err != nil || !ls.track(c) {
		if c != nil {
			c.Close()
		}
		leanPool.Put(bufs)
		return
	}
	go func() {
		defer ls.wg.Done()
		ls.serveConn(c, bufs, n)
	}()
}

// handOverWrite finishes writing rest (part of bufs.w) on a goroutine
// under WriteTimeout, then closes the connection.
func (ls *leanServer) handOverWrite(fd int, bufs *leanBufs, rest []byte) {
	c, err := fdConn(fd)
	if err != nil || !ls.track(c) {
		if c != nil {
			c.Close()
		}
		leanPool.Put(bufs)
		return
	}
	go func() {
		defer ls.wg.Done()
		defer ls.untrack(c)
		c.SetWriteDeadline(time.Now().Add(ls.s.cfg.WriteTimeout))
		writeLast(c, rest)
		c.Close()
		leanPool.Put(bufs)
	}()
}

// idleReader waits for a keep-alive connection's next request without
// holding a read buffer: the raw socket is read into pooled buffers only
// once it is readable, so an idle connection costs its goroutine and not
// 5 KiB of buffers more, and a tracker with many keep-alive clients holds
// about as many buffers as it answers at once. It makes the same read
// calls as net.Conn.Read and honours c's read deadline.
type idleReader struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // read, bound once so waiting allocates nothing
	bufs *leanBufs
	n    int
	err  error
}

// newIdleReader returns nil unless c is a plain *net.TCPConn; the caller
// then reads through c. A wrapper that offers its socket (a listener that
// reads a PROXY header, say) may hold bytes of its own that a raw read
// would skip.
func newIdleReader(c net.Conn) *idleReader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	ir := &idleReader{rc: rc}
	ir.fn = ir.read
	return ir
}

func (ir *idleReader) read(fd uintptr) bool {
	b := leanPool.Get().(*leanBufs)
	for {
		m, err := syscall.Read(int(fd), b.r)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			leanPool.Put(b)
			return false // not readable yet: wait, holding nothing
		}
		ir.bufs, ir.n, ir.err = b, max(m, 0), err
		if err == nil && m == 0 {
			ir.err = io.EOF
		}
		return true
	}
}

// wait returns pooled buffers holding the n bytes of the next read, with
// its error (io.EOF when the client closed), or nil buffers when waiting
// failed (the read deadline passed or the connection was closed).
func (ir *idleReader) wait() (*leanBufs, int, error) {
	ir.bufs, ir.n, ir.err = nil, 0, nil
	if err := ir.rc.Read(ir.fn); err != nil {
		if ir.bufs != nil {
			putBufs(ir.bufs)
		}
		return nil, 0, err
	}
	return ir.bufs, ir.n, ir.err
}
