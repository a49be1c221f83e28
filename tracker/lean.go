package tracker

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The lean front end is the HTTP/1.1 server Serve runs. Most clients open a
// connection per announce, and net/http spends more per connection (two
// 4 KiB bufio buffers, a header map, a Request and URL, a context) than the
// tracker spends answering. This server parses only what a tracker needs
// from a request head held in one pooled buffer, answers /announce and
// /scrape through the same core as ServeHTTP, and hands anything else
// (/stats, unknown paths) to ServeHTTP through a small adapter. It keeps the
// protections of the net/http setup: a cap on head bytes, deadlines for the
// head, idle connections and writes, and the per-address rate limit, which
// lives in the shared core.

const (
	// leanBufSize is the pooled read buffer: an announce head is usually
	// under 600 bytes. Longer heads (up to MaxHeaderBytes) get a buffer of
	// their own.
	leanBufSize = 4 << 10
	// leanMaxHeaders caps header lines; real clients send under a dozen.
	leanMaxHeaders = 64
	// lingerTime bounds how long an erroneous connection is drained after
	// the answer, so that unread request bytes do not make the kernel
	// reset the connection before the client reads the error.
	lingerTime = 500 * time.Millisecond
	// maxPooledWrite keeps unusually large response buffers out of the pool.
	maxPooledWrite = 64 << 10
	// maxPanicStack caps the stack logged for a recovered panic: the top
	// frames locate the fault, and a log line should stay readable.
	maxPanicStack = 8 << 10
)

// connState is where a lean connection is in its life, after net/http's
// ConnState. It tells a recovered panic what it may still do with the
// connection: answer 500 only while nothing of the current answer is on the
// wire, and close only a socket that is still its own.
type connState uint8

const (
	// connNew: accepted, no byte of a request read yet.
	connNew connState = iota
	// connActive: a request is arriving or being answered; nothing of its
	// answer has been written.
	connActive
	// connIdle: a keep-alive answer is complete; the connection waits for
	// the next request under IdleTimeout.
	connIdle
	// connClosing: the last answer is being written; the connection
	// closes after it.
	connClosing
	// connHijacked: the fast path handed the socket to a goroutine, which
	// owns it now.
	connHijacked
	// connClosed: the socket is closed.
	connClosed
)

func (st connState) String() string {
	switch st {
	case connNew:
		return "new"
	case connActive:
		return "active"
	case connIdle:
		return "idle"
	case connClosing:
		return "closing"
	case connHijacked:
		return "hijacked"
	case connClosed:
		return "closed"
	}
	return "connState(" + strconv.Itoa(int(st)) + ")"
}

// panicked logs and counts a panic recovered while st was the state of the
// connection from remote. It must be called from the deferred function that
// recovered, so that the stack still shows where the panic happened.
func (ls *leanServer) panicked(v any, remote netip.AddrPort, st connState) {
	ls.s.panicked(v, "http", remote, "state", st.String())
}

type leanBufs struct {
	r []byte
	w []byte
}

var leanPool = sync.Pool{New: func() any { return &leanBufs{r: make([]byte, leanBufSize), w: make([]byte, 0, 1024)} }}

// putBufs returns b to leanPool, replacing buffers grown past what every
// connection should hold.
func putBufs(b *leanBufs) {
	if cap(b.w) > maxPooledWrite {
		b.w = make([]byte, 0, 1024)
	}
	if len(b.r) != leanBufSize {
		b.r = make([]byte, leanBufSize)
	}
	leanPool.Put(b)
}

// leanServer serves one or more listeners for a Server until shutdown.
type leanServer struct {
	s       *Server
	closing atomic.Bool
	wg      sync.WaitGroup
	// done is closed when shutdown starts, to stop accept loops that do
	// not wait on the listener itself.
	done     chan struct{}
	doneOnce sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newLeanServer(s *Server) *leanServer {
	return &leanServer{s: s, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
}

// track registers c and counts it in wg, or reports false when the server
// is shutting down. Counting under the lock orders every Add before
// shutdown's Wait.
func (ls *leanServer) track(c net.Conn) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closing.Load() {
		return false
	}
	ls.conns[c] = struct{}{}
	ls.wg.Add(1)
	return true
}

func (ls *leanServer) untrack(c net.Conn) {
	ls.mu.Lock()
	delete(ls.conns, c)
	ls.mu.Unlock()
}

// acceptLoop accepts until ln fails; it returns nil when the failure is the
// shutdown closing ln.
func (ls *leanServer) acceptLoop(ln net.Listener) error {
	if ok, err := ls.acceptFast(ln); ok {
		return err
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ls.closing.Load() {
				return nil
			}
			// Out of file descriptors and similar: wait and retry, as
			// net/http does, instead of giving up the listener.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() ||
				errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				ls.s.log.Warn("tracker accept failed; retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !ls.track(c) {
			c.Close()
			return nil
		}
		go func() {
			defer ls.wg.Done()
			ls.serveConn(c, leanPool.Get().(*leanBufs), 0)
		}()
	}
}

// shutdown stops new requests: idle connections are woken and closed at
// once, busy ones after their current answer. After timeout every
// connection is closed.
func (ls *leanServer) shutdown(timeout time.Duration) {
	ls.doneOnce.Do(func() { close(ls.done) })
	ls.mu.Lock()
	ls.closing.Store(true)
	now := time.Now()
	for c := range ls.conns {
		c.SetReadDeadline(now)
	}
	ls.mu.Unlock()
	done := make(chan struct{})
	go func() { ls.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	ls.mu.Lock()
	for c := range ls.conns {
		c.Close()
	}
	ls.mu.Unlock()
	<-done
}

// leanReq is what the lean server reads from a request head. Slices point
// into the connection's read buffer.
type leanReq struct {
	method    []byte
	target    []byte
	http10    bool
	close     bool // the client asked for Connection: close (or 1.0 default)
	keepAlive bool // an HTTP/1.0 client asked for keep-alive
	hasHost   bool
	hasBody   bool
	realIP    []byte
}

// errStatus is a request the lean server refuses before the handler.
type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }

// serveConn answers requests on c until it closes, fails a deadline or
// the server shuts down. bufs.r[:n] holds bytes already read from c.
func (ls *leanServer) serveConn(c net.Conn, bufs *leanBufs, n int) {
	defer ls.untrack(c)
	defer c.Close()
	cfg := &ls.s.cfg

	defer func() {
		if bufs != nil {
			putBufs(bufs)
		}
	}()
	// Between requests the connection holds no buffers (see idleReader);
	// bufs is nil then.
	var idle *idleReader
	idleTried := false

	remote := connAddr(c)
	state := connNew
	if n > 0 {
		state = connActive
	}
	var req leanReq
	// Registered last, so it runs first: c is still open for the 500.
	defer func() {
		if v := recover(); v != nil {
			ls.panicked(v, remote, state)
			if state == connActive {
				ls.closeWith(c, bufs, http.StatusInternalServerError, req.http10)
			}
		}
	}()

	headLimit := cfg.MaxHeaderBytes
	headTimeout := min(cfg.ReadHeaderTimeout, cfg.ReadTimeout)
	// One deadline covers reading the first head and, usually, writing
	// the first answer: with a connection per announce that is the only
	// deadline call the connection costs.
	now := time.Now()
	writeDeadline := now.Add(headTimeout)
	c.SetDeadline(writeDeadline)

	buf := bufs.r
	scanned := 0 // bytes of buf already searched for the end of the head
	for {
		// Clients may send blank lines between requests (RFC 9112 2.2).
		skip := 0
		for skip < n && (buf[skip] == '\r' || buf[skip] == '\n') {
			skip++
		}
		if skip > 0 {
			n = copy(buf, buf[skip:n])
			scanned = 0
		}
		end := headEnd(buf[:n], scanned)
		for end < 0 {
			scanned = max(0, n-3)
			if n >= len(buf) || n >= headLimit {
				if n >= headLimit {
					code := http.StatusRequestHeaderFieldsTooLarge
					if bytes.IndexByte(buf[:n], '\n') < 0 {
						code = http.StatusRequestURITooLong
					}
					state = connClosing
					ls.refuse(c, bufs, errStatus(code), false)
					return
				}
				big := make([]byte, headLimit)
				copy(big, buf[:n])
				buf = big
				bufs.r = big // dropped, not pooled, on return
			}
			var m int
			var err error
			if n == 0 && state != connActive && !idleTried {
				idle, idleTried = newIdleReader(c), true
			}
			if n == 0 && state != connActive && idle != nil {
				putBufs(bufs)
				bufs = nil
				if bufs, m, err = idle.wait(); bufs == nil {
					return // deadline, shutdown wake-up or closed
				}
				buf = bufs.r
			} else {
				m, err = c.Read(buf[n:min(len(buf), headLimit)])
			}
			if m > 0 && state != connActive {
				if state == connIdle && (n+m < 16 || headEnd(buf[:n+m], 0) < 0) {
					// The head did not arrive in one piece: from now on
					// the client has headTimeout to finish it.
					c.SetReadDeadline(time.Now().Add(headTimeout))
				}
				state = connActive
			}
			n += m
			if err != nil {
				return // EOF, timeout or shutdown wake-up
			}
			for n > 0 && (buf[0] == '\r' || buf[0] == '\n') {
				n = copy(buf, buf[1:n])
				scanned = 0
			}
			end = headEnd(buf[:n], scanned)
		}

		if end > headLimit {
			// Possible when the head came in one read larger than a
			// small MaxHeaderBytes.
			state = connClosing
			ls.refuse(c, bufs, errStatus(http.StatusRequestHeaderFieldsTooLarge), false)
			return
		}
		req = leanReq{}
		if err := ls.parseHead(buf[:end], &req); err != nil {
			state = connClosing
			ls.refuse(c, bufs, err, req.http10)
			return
		}
		keep := !req.close && !ls.closing.Load() && !req.hasBody
		ls.answer(bufs, &req, remote, keep)
		state = connIdle
		if !keep {
			state = connClosing
		}
		now = time.Now()
		if left := writeDeadline.Sub(now); left < cfg.WriteTimeout/4 || len(bufs.w) > 16<<10 {
			writeDeadline = now.Add(cfg.WriteTimeout)
			c.SetWriteDeadline(writeDeadline)
		}
		if state == connClosing {
			writeLast(c, bufs.w)
			return
		}
		if _, err := c.Write(bufs.w); err != nil {
			return
		}
		n = copy(buf, buf[end:n])
		scanned = 0
		if n == 0 {
			c.SetReadDeadline(now.Add(cfg.IdleTimeout))
		} else {
			// A pipelined request: its head is already arriving.
			state = connActive
			c.SetReadDeadline(now.Add(headTimeout))
		}
		// shutdown sets closing before waking idle connections, so a
		// connection that set its idle deadline after the wake-up sees
		// the flag here.
		if ls.closing.Load() {
			return
		}
	}
}

// connAddr is the client address of c.
func connAddr(c net.Conn) netip.AddrPort {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

// headEnd returns the length of the request head in b (through the empty
// line that ends it), or -1 when it is incomplete. Bare LF line ends are
// accepted, as net/http does. from is where to resume a previous search.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		// An empty line: "\n\n" or "\n\r\n".
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// nextLine splits b at the first LF, dropping a CR before it.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// parseHead reads the request line and the headers the tracker cares
// about. It is strict where leniency could let a proxy and the tracker read
// a request differently (folded headers, duplicate Host, bodies).
func (ls *leanServer) parseHead(head []byte, r *leanReq) error {
	line, rest := nextLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errStatus(http.StatusBadRequest)
	}
	r.method = line[:sp1]
	line = line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 <= 0 {
		return errStatus(http.StatusBadRequest)
	}
	r.target = line[:sp2]
	switch string(line[sp2+1:]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.http10 = true
	default:
		if bytes.HasPrefix(line[sp2+1:], []byte("HTTP/")) {
			return errStatus(http.StatusHTTPVersionNotSupported)
		}
		return errStatus(http.StatusBadRequest)
	}
	for _, ch := range r.method {
		if !isTokenChar(ch) {
			return errStatus(http.StatusBadRequest)
		}
	}
	if r.target[0] != '/' {
		// Only origin-form: the tracker is no proxy, and "*" is for
		// OPTIONS, which it does not serve.
		return errStatus(http.StatusBadRequest)
	}
	for _, ch := range r.target {
		if ch < 0x21 || ch == 0x7f {
			return errStatus(http.StatusBadRequest)
		}
	}
	realIPHeader := ls.s.cfg.RealIPHeader
	headers := 0
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if headers++; headers > leanMaxHeaders {
			return errStatus(http.StatusRequestHeaderFieldsTooLarge)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errStatus(http.StatusBadRequest) // includes obs-fold continuation lines
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		for _, ch := range name {
			if !isTokenChar(ch) {
				return errStatus(http.StatusBadRequest)
			}
		}
		switch {
		case asciiEqualFold(name, "host"):
			if r.hasHost {
				return errStatus(http.StatusBadRequest)
			}
			r.hasHost = true
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case asciiEqualFold(tok, "close"):
					r.close = true
				case asciiEqualFold(tok, "keep-alive"):
					r.keepAlive = true
				}
			}
		case asciiEqualFold(name, "content-length"):
			if string(value) != "0" {
				r.hasBody = true
			}
		case asciiEqualFold(name, "transfer-encoding"):
			r.hasBody = true
		case realIPHeader != "" && r.realIP == nil && asciiEqualFold(name, realIPHeader):
			r.realIP = value
		}
	}
	if r.http10 {
		// HTTP/1.0 closes unless the client asks to keep the connection.
		r.close = r.close || !r.keepAlive
	}
	if !r.http10 && !r.hasHost {
		// RFC 9112 3.2: a 1.1 request without Host is a 400.
		return errStatus(http.StatusBadRequest)
	}
	return nil
}

func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && !bytes.ContainsRune([]byte(`"(),/:;<=>?@[\]{}`), rune(c))
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// answer builds the response to r in bufs.w.
func (ls *leanServer) answer(bufs *leanBufs, r *leanReq, remote netip.AddrPort, keep bool) {
	s := ls.s
	head := string(r.method) == http.MethodHead
	if string(r.method) != http.MethodGet && !head {
		bufs.w = appendStatus(bufs.w[:0], r, http.StatusMethodNotAllowed, keep)
		bufs.w = append(bufs.w, "Allow: GET, HEAD\r\nContent-Length: 0\r\n\r\n"...)
		return
	}
	target := r.target
	path, query := target, []byte(nil)
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	if bytes.IndexByte(path, '%') >= 0 || !isTrackerPath(path) {
		ls.fallback(bufs, r, remote, keep)
		return
	}
	ip := remote.Addr().Unmap().WithZone("")
	if r.realIP != nil {
		ip = realIP(ip, string(r.realIP))
	}
	st := s.getState()
	defer s.putState(st)
	// The strings alias the read buffer without copying; serveTracker and
	// everything it calls decode values into fixed arrays and keep no
	// string, and the buffer is not touched until it returns.
	code := s.serveTracker(st, ip, bytesView(path), bytesView(query))
	if code != http.StatusOK {
		bufs.w = appendEmpty(bufs.w[:0], r, code, keep)
		return
	}
	w := appendStatus(bufs.w[:0], r, http.StatusOK, keep)
	w = append(w, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	w = strconv.AppendInt(w, int64(st.out.Len()), 10)
	w = append(w, "\r\n\r\n"...)
	if !head {
		w = append(w, st.out.Bytes()...)
	}
	bufs.w = w
}

func isTrackerPath(p []byte) bool {
	return bytes.HasPrefix(p, []byte("/announce")) && (len(p) == 9 || p[9] == '/') ||
		bytes.HasPrefix(p, []byte("/scrape")) && (len(p) == 7 || p[7] == '/')
}

func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func appendStatus(w []byte, r *leanReq, code int, keep bool) []byte {
	if r.http10 {
		w = append(w, "HTTP/1.0 "...)
	} else {
		w = append(w, "HTTP/1.1 "...)
	}
	w = strconv.AppendInt(w, int64(code), 10)
	w = append(w, ' ')
	w = append(w, http.StatusText(code)...)
	w = append(w, "\r\n"...)
	switch {
	case !keep && !r.http10:
		w = append(w, "Connection: close\r\n"...)
	case keep && r.http10:
		w = append(w, "Connection: keep-alive\r\n"...)
	}
	return w
}

func appendEmpty(w []byte, r *leanReq, code int, keep bool) []byte {
	w = appendStatus(w, r, code, keep)
	return append(w, "Content-Length: 0\r\n\r\n"...)
}

// fallback answers paths other than the tracker's through ServeHTTP, so
// /stats and 404s behave exactly as under net/http.
func (ls *leanServer) fallback(bufs *leanBufs, r *leanReq, remote netip.AddrPort, keep bool) {
	u, err := url.ParseRequestURI(string(r.target))
	if err != nil {
		bufs.w = appendEmpty(bufs.w[:0], r, http.StatusBadRequest, keep)
		return
	}
	hr := &http.Request{
		Method:     string(r.method),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		RemoteAddr: remote.String(),
		RequestURI: string(r.target),
	}
	if r.http10 {
		hr.Proto, hr.ProtoMinor = "HTTP/1.0", 0
	}
	if r.realIP != nil {
		hr.Header.Set(ls.s.cfg.RealIPHeader, string(r.realIP))
	}
	rw := fallbackWriter{h: http.Header{}}
	ls.s.ServeHTTP(&rw, hr)
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	w := appendStatus(bufs.w[:0], r, rw.code, keep)
	for _, k := range []string{"Content-Type", "Allow"} {
		if v := rw.h.Get(k); v != "" {
			w = append(append(append(append(w, k...), ": "...), v...), "\r\n"...)
		}
	}
	w = append(w, "Content-Length: "...)
	w = strconv.AppendInt(w, int64(len(rw.body)), 10)
	w = append(w, "\r\n\r\n"...)
	if string(r.method) != http.MethodHead {
		w = append(w, rw.body...)
	}
	bufs.w = w
}

// fallbackWriter collects a ServeHTTP answer for the lean server to send.
type fallbackWriter struct {
	h    http.Header
	code int
	body []byte
}

func (f *fallbackWriter) Header() http.Header { return f.h }

func (f *fallbackWriter) WriteHeader(code int) {
	if f.code == 0 {
		f.code = code
	}
}

func (f *fallbackWriter) Write(b []byte) (int, error) {
	f.WriteHeader(http.StatusOK)
	f.body = append(f.body, b...)
	return len(b), nil
}

// refuse answers a request that could not be parsed and closes the
// connection after draining what the client already sent, so the client
// reads the status instead of a reset.
func (ls *leanServer) refuse(c net.Conn, bufs *leanBufs, err error, http10 bool) {
	code := http.StatusBadRequest
	var es errStatus
	if errors.As(err, &es) {
		code = int(es)
	}
	ls.s.refused.Add(1)
	ls.closeWith(c, bufs, code, http10)
}

// closeWith answers code with an empty body and Connection: close, then
// drains what the client already sent, so that it reads the status instead
// of a reset. The caller closes c.
func (ls *leanServer) closeWith(c net.Conn, bufs *leanBufs, code int, http10 bool) {
	r := leanReq{http10: http10}
	bufs.w = appendEmpty(bufs.w[:0], &r, code, false)
	c.SetWriteDeadline(time.Now().Add(lingerTime))
	if _, err := c.Write(bufs.w); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(lingerTime))
		var drained int
		for drained < 256<<10 {
			m, err := c.Read(bufs.r)
			drained += m
			if err != nil {
				break
			}
		}
	}
}
