package tracker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// errorRecords returns the ERROR records logged so far.
func (l *lockedBuffer) errorRecords(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var recs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["level"] == "ERROR" {
			recs = append(recs, r)
		}
	}
	return recs
}

// panicPort is the announce port that makes the test hook panic.
const panicPort = 666

// TestLeanHandlerPanic makes an announce handler panic on both of Serve's
// paths, the goroutine per connection and the Linux fast path that answers
// inline in the accept loop, and checks that the tracker answers 500,
// closes that connection, logs and counts the panic, and answers the next
// request normally.
func TestLeanHandlerPanic(t *testing.T) {
	var logs lockedBuffer
	srv, err := NewServer(Config{RateLimit: -1, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.testHookAnnounce = func(q *announceQuery) {
		if q.Port == panicPort {
			panic("test: announce handler panic")
		}
	}
	// Listen, unlike net.Listen, defers accept until the request has
	// arrived, so a Connection: close request takes the fast path.
	ln, err := Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel:\n%s", goroutineDump())
		}
	})
	base := "http://" + ln.Addr().String()
	announce := func(port int, conn string) string {
		r := AnnounceRequest{InfoHash: ih(70), PeerID: pid(port), Port: uint16(port), Left: 1}
		return "GET /announce?" + string(r.query(nil)) + " HTTP/1.1\r\nHost: x\r\n" + conn + "\r\n"
	}
	// checkPanic expects the n-th panic to be logged once, with a stack
	// through frame, and counted in /stats (asked on a new connection).
	checkPanic := func(t *testing.T, n int, frame string) {
		t.Helper()
		recs := logs.errorRecords(t)
		if len(recs) != n {
			t.Fatalf("%d ERROR records after %d panics: %v", len(recs), n, recs)
		}
		rec := recs[n-1]
		stack, _ := rec["stack"].(string)
		if rec["panic"] != "test: announce handler panic" || rec["state"] != "active" ||
			!strings.Contains(stack, frame) || !strings.Contains(stack, "lean_panic_test.go") {
			t.Fatalf("panic record %v", rec)
		}
		code, body := get(t, base+"/stats")
		var st Stats
		if err := json.Unmarshal(body, &st); code != 200 || err != nil {
			t.Fatalf("/stats: %d %q %v", code, body, err)
		}
		if st.Panics != uint64(n) || !bytes.Contains(body, []byte(`"panics":`)) {
			t.Fatalf("/stats after %d panics: %s", n, body)
		}
	}

	t.Run("keep-alive connection", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		// A first answer on the connection proves it is kept alive, so
		// the panic happens in serveConn's goroutine.
		io.WriteString(c, announce(1, ""))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %v %+v", err, resp)
		}
		io.Copy(io.Discard, resp.Body)
		io.WriteString(c, announce(panicPort, ""))
		resp, err = http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 500 || !resp.Close {
			t.Fatalf("panicking request: %v %+v", err, resp)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("connection open after the panic: %v", err)
		}
		checkPanic(t, 1, "(*leanServer).serveConn")
		if r := announceOK(t, base, AnnounceRequest{InfoHash: ih(70), PeerID: pid(2), Port: 2, Left: 1}); r.Incomplete != 2 {
			t.Fatalf("next announce: %+v", r)
		}
	})

	t.Run("fast path", func(t *testing.T) {
		out, closed := rawExchange(t, base, announce(panicPort, "Connection: close\r\n"))
		if !strings.HasPrefix(out, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n") || !closed {
			t.Fatalf("panicking request: %q closed=%v", out, closed)
		}
		checkPanic(t, 2, "(*leanServer).serveFD")
		// The accept loop the panic ran in still answers.
		out, closed = rawExchange(t, base, announce(3, "Connection: close\r\n"))
		if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "10:incompletei3e") || !closed {
			t.Fatalf("next request: %q closed=%v", out, closed)
		}
	})
	if st := srv.Stats(); st.Peers != 3 || st.Announces != 3 || st.Panics != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDPHandlerPanic makes the UDP announce handler panic: that datagram
// goes unanswered, the panic is logged and counted, and the socket's
// worker answers the next announce.
func TestUDPHandlerPanic(t *testing.T) {
	var logs lockedBuffer
	srv, _, u := startUDPServerWith(t, Config{RateLimit: -1, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, "127.0.0.1", func(srv *Server) {
		srv.testHookAnnounce = func(q *announceQuery) {
			if q.Port == panicPort {
				panic("test: announce handler panic")
			}
		}
	})
	c := Client{Timeout: 500 * time.Millisecond}
	ctx := context.Background()
	if _, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: ih(71), PeerID: pid(1), Port: panicPort, Left: 1}); err == nil {
		t.Fatal("a panicking announce was answered")
	}
	recs := logs.errorRecords(t)
	if len(recs) == 0 || recs[0]["front"] != "udp" || !strings.Contains(recs[0]["stack"].(string), "(*udpWorker).handle") {
		t.Fatalf("panic records %v", recs)
	}
	r, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: ih(71), PeerID: pid(2), Port: 2, Left: 1})
	if err != nil || r.Incomplete != 1 {
		t.Fatalf("next announce: %+v %v", r, err)
	}
	if st := srv.Stats(); st.Panics == 0 {
		t.Fatalf("stats %+v", st)
	}
}
