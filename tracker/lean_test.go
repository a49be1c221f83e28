package tracker

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes req on a new connection and returns everything the
// server sends until it closes (or 3s pass).
func rawExchange(t *testing.T, base, req string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	go io.WriteString(c, req)
	b, err := io.ReadAll(c)
	closed := err == nil
	return string(b), closed
}

func validAnnounceQuery(n int) string {
	r := AnnounceRequest{InfoHash: ih(40), PeerID: pid(n), Port: uint16(2000 + n), Left: 1}
	return string(r.query(nil))
}

func TestLeanHostileHeads(t *testing.T) {
	_, base := startServer(t, Config{MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second})
	flood := "GET /announce?" + validAnnounceQuery(1) + " HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n"
	for _, tc := range []struct {
		name, req, wantStatus string
	}{
		{"garbage", "\x00\x01\x02garbage\r\n\r\n", "400"},
		{"garbage no spaces", strings.Repeat("z", 100) + "\r\n\r\n", "400"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
		{"missing Host on 1.1", "GET /announce?" + validAnnounceQuery(1) + " HTTP/1.1\r\n\r\n", "400"},
		{"duplicate Host", "GET /announce HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
		{"folded header", "GET /announce HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "400"},
		{"bad header name", "GET /announce HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", "400"},
		{"control byte in target", "GET /announce\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
		{"header flood", flood, "431"},
		{"oversized request line", "GET /announce?x=" + strings.Repeat("a", 8000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"},
		{"oversized headers", "GET /announce HTTP/1.1\r\nHost: x\r\nX-J: " + strings.Repeat("j", 8000) + "\r\n\r\n", "431"},
		{"POST", "POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "405"},
		{"absolute form", "GET http://x/announce HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, closed := rawExchange(t, base, tc.req)
			if !strings.HasPrefix(out, "HTTP/1.") || out[9:12] != tc.wantStatus {
				t.Fatalf("answer %.80q; want status %s", out, tc.wantStatus)
			}
			if !closed {
				t.Fatalf("connection not closed after a refused request")
			}
		})
	}
}

// A MaxHeaderBytes below the pooled buffer size still caps the head.
func TestLeanSmallHeaderCap(t *testing.T) {
	_, base := startServer(t, Config{MaxHeaderBytes: 600})
	out, _ := rawExchange(t, base, "GET /announce?"+validAnnounceQuery(1)+" HTTP/1.1\r\nHost: x\r\nX-J: "+strings.Repeat("j", 700)+"\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 431") {
		t.Fatalf("complete oversized head: %.60q", out)
	}
	out, _ = rawExchange(t, base, "GET /announce?"+strings.Repeat("a", 2000))
	if !strings.HasPrefix(out, "HTTP/1.1 414") {
		t.Fatalf("endless request line: %.60q", out)
	}
	if out, _ := rawExchange(t, base, "GET /announce?"+validAnnounceQuery(2)+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("normal announce: %.60q", out)
	}
}

func TestLeanHTTP10AndConnectionHeaders(t *testing.T) {
	_, base := startServer(t, Config{})
	// HTTP/1.0 needs no Host and closes by default.
	out, closed := rawExchange(t, base, "GET /announce?"+validAnnounceQuery(1)+" HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.0 200 OK\r\n") || !strings.Contains(out, "5:peers") || !closed {
		t.Fatalf("HTTP/1.0: %q closed=%v", out, closed)
	}
	// Connection: close on 1.1 is honoured and announced.
	out, closed = rawExchange(t, base, "GET /announce?"+validAnnounceQuery(2)+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(out, "\r\nConnection: close\r\n") || !closed {
		t.Fatalf("Connection: close: %q closed=%v", out, closed)
	}
	// HTTP/1.0 keep-alive keeps the connection for a second request.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	for i := range 2 {
		io.WriteString(c, "GET /announce?"+validAnnounceQuery(3)+" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
}

func TestLeanPipelinedRequests(t *testing.T) {
	srv, base := startServer(t, Config{})
	var req strings.Builder
	// Blank lines between requests are allowed (RFC 9112 2.2).
	for i := range 5 {
		req.WriteString("GET /announce?" + validAnnounceQuery(10+i) + " HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
	}
	req.WriteString("HEAD /scrape?info_hash=" + escapedHash(ih(40)) + " HTTP/1.1\r\nHost: x\r\n\r\n")
	req.WriteString("GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 7 {
		method := "GET"
		if i == 5 {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != 200:
			t.Fatalf("response %d: status %d", i, resp.StatusCode)
		case i < 5 && !strings.Contains(string(body), "10:incompletei"+string(rune('1'+i))+"e"):
			t.Fatalf("response %d out of order: %q", i, body)
		case i == 5 && (len(body) != 0 || resp.ContentLength <= 0):
			t.Fatalf("HEAD: body %q length %d", body, resp.ContentLength)
		case i == 6 && (!strings.Contains(string(body), `"announces":5`) || resp.Header.Get("Content-Type") != "application/json"):
			t.Fatalf("stats: %q %v", body, resp.Header)
		}
	}
	if st := srv.Stats(); st.Peers != 5 {
		t.Fatalf("stored %d peers", st.Peers)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection open after Connection: close: %v", err)
	}
}

func TestLeanSlowloris(t *testing.T) {
	_, base := startServer(t, Config{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 400 * time.Millisecond})
	addr := strings.TrimPrefix(base, "http://")
	// A head trickled a byte at a time is cut at ReadHeaderTimeout even
	// though every byte arrives well within it.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	var werr error
	for i := 0; werr == nil && time.Since(start) < 3*time.Second; i++ {
		_, werr = c.Write([]byte{"GET /announce?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[i%60]})
		time.Sleep(20 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("trickling client kept for %v", d)
	}
	// An idle keep-alive connection is closed after IdleTimeout; a
	// connection that never sends is closed after ReadHeaderTimeout.
	for name, first := range map[string]string{
		"idle keep-alive": "GET /announce?" + validAnnounceQuery(1) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"silent":          "",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		io.WriteString(c, first)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("%s connection: closed after %v, err %v", name, time.Since(start), err)
		}
	}
}

// TestLeanFastPath runs the tuned listener, where complete
// connection-per-announce requests are answered straight after accept.
func TestLeanFastPath(t *testing.T) {
	srv, err := NewServer(Config{RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	for i := range 50 {
		out, closed := rawExchange(t, base, "GET /announce?"+validAnnounceQuery(i)+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n") || !closed {
			t.Fatalf("announce %d: %q", i, out)
		}
	}
	// Keep-alive and refused requests are handed over and still work.
	if r := announceOK(t, base, AnnounceRequest{InfoHash: ih(40), PeerID: pid(99), Port: 99, Left: 1}); r.Incomplete != 51 {
		t.Fatalf("counts %+v", r)
	}
	if out, _ := rawExchange(t, base, "bogus\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 400") {
		t.Fatalf("garbage: %q", out)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if st := srv.Stats(); st.Peers != 51 || st.Announces != 51 {
		t.Fatalf("stats %+v", st)
	}
}

func escapedHash(h InfoHash) string { return string(appendEscaped(nil, h[:])) }

// TestLeanKeepAliveIdleBetweenRequests answers requests on one keep-alive
// connection that goes idle between them (where the server waits without
// a buffer), including a head that arrives in two pieces after the pause
// and one that comes with the next request's first bytes.
func TestLeanKeepAliveIdleBetweenRequests(t *testing.T) {
	srv, base := startServer(t, Config{})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	head := func(n int) string {
		return "GET /announce?" + validAnnounceQuery(20+n) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	expect := func(n int) {
		t.Helper()
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "10:incompletei"+string(rune('1'+n))+"e") {
			t.Fatalf("request %d: status %d, body %q", n, resp.StatusCode, body)
		}
	}
	pause := func() { time.Sleep(50 * time.Millisecond) }
	io.WriteString(c, head(0))
	expect(0)
	pause()
	h := head(1)
	io.WriteString(c, h[:20])
	pause()
	io.WriteString(c, h[20:])
	expect(1)
	pause()
	h = head(3)
	io.WriteString(c, head(2)+h[:10])
	expect(2)
	pause()
	io.WriteString(c, h[10:])
	expect(3)
	if st := srv.Stats(); st.Peers != 4 {
		t.Fatalf("stored %d peers; want 4", st.Peers)
	}
}
