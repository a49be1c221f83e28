package tracker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// fakeClock is an injectable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startServer runs a Server on a loopback listener for the test's lifetime
// and checks that Serve returns cleanly when the test ends.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	return startServerOn(t, cfg, "tcp4", "127.0.0.1:0")
}

func startServerOn(t *testing.T, cfg Config, network, addr string) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return srv, "http://" + ln.Addr().String()
}

func ih(b byte) InfoHash {
	var h InfoHash
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func pid(n int) PeerID {
	var p PeerID
	copy(p[:], "-SH0001-")
	for i := 8; i < 20; i++ {
		p[i] = byte(n >> (i % 4 * 8))
	}
	p[19] = byte(n)
	p[18] = byte(n >> 8)
	p[10] = '%' // exercise escaping
	p[11] = '&'
	p[12] = ' '
	return p
}

// announceURL builds an announce URL for req plus extra raw parameters.
func announceURL(base string, req AnnounceRequest, extra string) string {
	q := req.query(nil)
	if extra != "" {
		q = append(append(q, '&'), extra...)
	}
	return base + "/announce?" + string(q)
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := httpc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	return resp.StatusCode, b
}

// rawResp decodes any tracker answer for inspection.
type rawResp struct {
	Failure     string        `bencode:"failure reason"`
	RetryIn     int           `bencode:"retry in"`
	Interval    int64         `bencode:"interval"`
	MinInterval int64         `bencode:"min interval"`
	Complete    int           `bencode:"complete"`
	Incomplete  int           `bencode:"incomplete"`
	Downloaded  int           `bencode:"downloaded"`
	Peers       bencode.Bytes `bencode:"peers"`
	Peers6      bencode.Bytes `bencode:"peers6"`
}

func getRaw(t *testing.T, u string) rawResp {
	t.Helper()
	code, b := get(t, u)
	if code != 200 {
		t.Fatalf("GET %s: status %d body %q", u, code, b)
	}
	var r rawResp
	if err := bencode.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s: bad bencode %q: %v", u, b, err)
	}
	return r
}

// announceOK announces through the Client and fails the test on error.
func announceOK(t *testing.T, base string, req AnnounceRequest) *AnnounceResponse {
	t.Helper()
	var c Client
	r, err := c.Announce(context.Background(), base+"/announce", req)
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	return r
}

func failureOf(err error) string {
	var fe *FailureError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ""
}

func ports(ps []Peer) map[uint16]bool {
	m := map[uint16]bool{}
	for _, p := range ps {
		m[p.Addr.Port()] = true
	}
	return m
}

var loop4 = netip.MustParseAddr("127.0.0.1")

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
