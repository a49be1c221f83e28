package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startUDPServer runs a Server on host with HTTP and UDP on one port, the
// way `shoal tracker` does, and returns it with its HTTP base and its
// udp:// announce URL.
func startUDPServer(t *testing.T, cfg Config, host string) (*Server, string, string) {
	t.Helper()
	return startUDPServerWith(t, cfg, host, nil)
}

// startUDPServerWith is startUDPServer with setup run on the server before
// it serves, for what must not change while it does (test hooks).
func startUDPServerWith(t *testing.T, cfg Config, host string, setup func(*Server)) (*Server, string, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	conns, err := ListenUDP(context.Background(), "udp", net.JoinHostPort(host, strconv.Itoa(port)), 2)
	if err != nil {
		ln.Close()
		t.Fatalf("ListenUDP: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ctx, ln) }()
	go func() { done <- srv.ServeUDP(ctx, conns...) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("serve did not return after cancel")
			}
		}
	})
	addr := ln.Addr().String()
	return srv, "http://" + addr, "udp://" + addr + "/announce"
}

// udpHostPort is the host:port of a udp:// URL.
func udpHostPort(u string) string {
	return strings.TrimSuffix(strings.TrimPrefix(u, "udp://"), "/announce")
}

// rawUDP is a test client speaking BEP 15 packet by packet.
type rawUDP struct {
	t *testing.T
	c *net.UDPConn
}

func dialRaw(t *testing.T, hostPort string) *rawUDP {
	t.Helper()
	c, err := net.Dial("udp", hostPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUDP{t, c.(*net.UDPConn)}
}

func (r *rawUDP) send(pkt []byte) {
	r.t.Helper()
	if _, err := r.c.Write(pkt); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// recv returns the next datagram, or nil after d.
func (r *rawUDP) recv(d time.Duration) []byte {
	buf := make([]byte, 65536)
	r.c.SetReadDeadline(time.Now().Add(d))
	n, err := r.c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func (r *rawUDP) exchange(pkt []byte) []byte {
	r.t.Helper()
	r.send(pkt)
	b := r.recv(3 * time.Second)
	if b == nil {
		r.t.Fatalf("no answer to %d-byte packet", len(pkt))
	}
	return b
}

func (r *rawUDP) connect() uint64 {
	r.t.Helper()
	b := r.exchange(appendUDPConnectReq(nil, 77))
	if len(b) != 16 || binary.BigEndian.Uint32(b) != udpConnect || binary.BigEndian.Uint32(b[4:]) != 77 {
		r.t.Fatalf("connect answer %x", b)
	}
	return binary.BigEndian.Uint64(b[8:])
}

func udpErrorText(b []byte) string {
	if len(b) < 8 || binary.BigEndian.Uint32(b) != udpError {
		return ""
	}
	return string(b[8:])
}

func udpStatsOf(srv *Server) UDPStats { return srv.Stats().UDP }

func TestUDPAnnounceScrapeAndConnIDReuse(t *testing.T) {
	srv, _, u := startUDPServer(t, Config{Interval: 10 * time.Minute}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	h := ih(1)
	r, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 6881, Left: 0, Event: EventStarted, Key: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 10*time.Minute || len(r.Peers) != 0 || r.Complete != 1 || r.Incomplete != 0 {
		t.Fatalf("first announce %+v", r)
	}
	r, err = c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 6882, Left: 5, NumWant: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr != netip.AddrPortFrom(loop4, 6881) || r.Complete != 1 || r.Incomplete != 1 {
		t.Fatalf("second announce %+v", r)
	}
	sc, err := c.Scrape(ctx, u, h, ih(2))
	if err != nil {
		t.Fatal(err)
	}
	if sc[h] != (Swarm{Complete: 1, Incomplete: 1}) || sc[ih(2)] != (Swarm{}) || len(sc) != 2 {
		t.Fatalf("scrape %+v", sc)
	}
	// A completed event shows in the scrape's downloaded count.
	if _, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 6882, Left: 0, Event: EventCompleted}); err != nil {
		t.Fatal(err)
	}
	if sc, err := c.Scrape(ctx, u, h); err != nil || sc[h] != (Swarm{Complete: 2, Downloaded: 1}) {
		t.Fatalf("scrape after completed %+v %v", sc, err)
	}
	// Stopped removes the peer.
	if _, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 6882, Event: EventStopped, NumWant: -1}); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	// One connect served every request: the ID is reused for its minute.
	want := UDPStats{Packets: 7, Connects: 1, Announces: 4, Scrapes: 2}
	if st.UDP != want || st.Announces != 4 || st.Scrapes != 2 || st.Peers != 1 {
		t.Fatalf("stats %+v\nudp %+v; want %+v", st, st.UDP, want)
	}
}

// An HTTP client and a UDP client of one torrent are in one swarm.
func TestUDPAndHTTPClientsMeet(t *testing.T) {
	_, base, u := startUDPServer(t, Config{}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	h := ih(3)
	if _, err := c.Announce(ctx, base+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 0}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 7002, Left: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 7001 {
		t.Fatalf("UDP client got %+v; want the HTTP seeder", r.Peers)
	}
	r, err = c.Announce(ctx, base+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 7002 {
		t.Fatalf("HTTP client got %+v; want the UDP leecher", r.Peers)
	}
}

// Over IPv6 the answer carries 18-byte peers, and each family gets the
// peers of its own.
func TestUDPIPv6Peers(t *testing.T) {
	_, _, u6 := startUDPServer(t, Config{}, "::1")
	var c Client
	ctx := context.Background()
	h := ih(4)
	if _, err := c.Announce(ctx, u6, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 0}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, u6, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 8002, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr != netip.MustParseAddrPort("[::1]:8001") {
		t.Fatalf("IPv6 peers %+v", r.Peers)
	}
	// The raw answer: 20 bytes of header and one 18-byte peer.
	raw := dialRaw(t, udpHostPort(u6))
	id := raw.connect()
	req := AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 8003, Left: 1, NumWant: 10}
	b := raw.exchange(appendUDPAnnounceReq(nil, id, 9, &req, ""))
	if len(b) != 20+2*18 {
		t.Fatalf("IPv6 announce answer of %d bytes; want 20 + 2×18: %x", len(b), b)
	}
}

func TestUDPIPv4AnswerHasNoIPv6Peers(t *testing.T) {
	srv, _, u := startUDPServer(t, Config{}, "127.0.0.1")
	h := ih(5)
	// An IPv6 peer, put in the store directly: this tracker listens on
	// IPv4 only.
	srv.store.Announce(time.Now(), &PeerAnnounce{InfoHash: h, PeerID: pid(9), Addr: netip.MustParseAddrPort("[2001:db8::1]:9000"), NumWant: 0}, nil)
	var c Client
	if _, err := c.Announce(context.Background(), u, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 9001, Left: 0}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, udpHostPort(u))
	id := raw.connect()
	req := AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 9002, Left: 1, NumWant: 10}
	b := raw.exchange(appendUDPAnnounceReq(nil, id, 9, &req, "/announce"))
	if len(b) != 20+6 || !bytes.Equal(b[20:], []byte{127, 0, 0, 1, 9001 >> 8, 9001 & 255}) {
		t.Fatalf("IPv4 answer %x; want the one IPv4 peer", b)
	}
}

func TestUDPNumWantCapped(t *testing.T) {
	_, _, u := startUDPServer(t, Config{MaxNumWant: 5, DefaultNumWant: 3}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	h := ih(6)
	for i := range 10 {
		if _, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(i), Port: uint16(1000 + i), Left: 1}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(99), Port: 2000, Left: 1, NumWant: 100000})
	if err != nil || len(r.Peers) != 5 {
		t.Fatalf("numwant 100000 with MaxNumWant 5: %d peers, %v", len(r.Peers), err)
	}
	r, err = c.Announce(ctx, u, AnnounceRequest{InfoHash: h, PeerID: pid(99), Port: 2000, Left: 1})
	if err != nil || len(r.Peers) != 3 {
		t.Fatalf("default numwant 3: %d peers, %v", len(r.Peers), err)
	}
}

// The UDP front end applies the allow-list and private mode's passkeys,
// which come in BEP 41 URL data.
func TestUDPAllowListAndPasskeys(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("sesame\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, _, u := startUDPServer(t, Config{Private: true, KeysFile: keys, AllowHashes: []InfoHash{ih(7)}}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	req := AnnounceRequest{InfoHash: ih(7), PeerID: pid(1), Port: 1234, Left: 1}
	if _, err := c.Announce(ctx, u+"/sesame", req); err != nil {
		t.Fatalf("good passkey: %v", err)
	}
	for _, tc := range []struct{ url, want string }{
		{u + "/wrong", "invalid passkey"},
		{u, "missing passkey"},
		{"udp://" + udpHostPort(u), "missing passkey"},
	} {
		if _, err := c.Announce(ctx, tc.url, req); failureOf(err) != tc.want {
			t.Errorf("%s: %v; want %q", tc.url, err, tc.want)
		}
	}
	other := req
	other.InfoHash = ih(8)
	if _, err := c.Announce(ctx, u+"/sesame", other); failureOf(err) != string(errUnregistered) {
		t.Errorf("unlisted torrent: %v", err)
	}
	// A scrape has no room for URL data, so a private tracker refuses it.
	if _, err := c.Scrape(ctx, u+"/sesame", ih(7)); failureOf(err) != string(errUDPScrapeKey) {
		t.Errorf("private scrape: %v", err)
	}
	st := udpStatsOf(srv)
	if st.Announces != 1 || st.Refused != 5 {
		t.Errorf("stats %+v; want 1 announce and 5 refusals", st)
	}
}

// A long passkey is split over several URLData options and joined again.
func TestUDPLongPasskeyAcrossOptions(t *testing.T) {
	key := strings.Repeat("k", 120) + strings.Repeat("z", 128)
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte(key[:128]+"\n"), 0o644)
	_, _, u := startUDPServer(t, Config{Private: true, KeysFile: keys}, "127.0.0.1")
	var c Client
	req := AnnounceRequest{InfoHash: ih(9), PeerID: pid(1), Port: 1234, Left: 1}
	// "/announce/" + 128 bytes + "?x=" + padding crosses 255 bytes.
	if _, err := c.Announce(context.Background(), u+"/"+key[:128]+"?pad="+strings.Repeat("p", 200), req); err != nil {
		t.Fatalf("passkey in split URL data: %v", err)
	}
}

// Connection IDs last one to two minutes and are bound to the address.
func TestUDPConnIDExpiry(t *testing.T) {
	clock := newFakeClock()
	srv, _, u := startUDPServer(t, Config{Now: clock.Now}, "127.0.0.1")
	raw := dialRaw(t, udpHostPort(u))
	id := raw.connect()
	req := AnnounceRequest{InfoHash: ih(10), PeerID: pid(1), Port: 1000, Left: 1}
	announce := func() []byte { return raw.exchange(appendUDPAnnounceReq(nil, id, 5, &req, "")) }
	if b := announce(); binary.BigEndian.Uint32(b) != udpAnnounce {
		t.Fatalf("fresh ID refused: %q", udpErrorText(b))
	}
	clock.Advance(61 * time.Second)
	if b := announce(); binary.BigEndian.Uint32(b) != udpAnnounce {
		t.Fatalf("ID refused after 61s: %q", udpErrorText(b))
	}
	clock.Advance(61 * time.Second)
	b := announce()
	if udpErrorText(b) != string(errUDPConnID) {
		t.Fatalf("ID accepted after 122s: %x", b)
	}
	if got := udpStatsOf(srv).BadConnectionID; got != 1 {
		t.Fatalf("bad_connection_id %d; want 1", got)
	}
	// The ID of one address is not valid for another.
	if srv.udp.connID(new([16]byte), connIDWindowOf(clock.Now()), loop4) == srv.udp.connID(new([16]byte), connIDWindowOf(clock.Now()), netip.MustParseAddr("127.0.0.2")) {
		t.Fatal("two addresses got one connection ID")
	}
}

// Trackers with one secret accept each other's connection IDs; with
// different secrets they do not.
func TestUDPSharedSecret(t *testing.T) {
	secret := []byte("correct horse battery staple")
	_, _, ua := startUDPServer(t, Config{UDPSecret: secret}, "127.0.0.1")
	_, _, ub := startUDPServer(t, Config{UDPSecret: secret}, "127.0.0.1")
	_, _, uc := startUDPServer(t, Config{UDPSecret: []byte("another secret, 16+ bytes")}, "127.0.0.1")
	id := dialRaw(t, udpHostPort(ua)).connect()
	req := AnnounceRequest{InfoHash: ih(11), PeerID: pid(1), Port: 1000, Left: 1}
	if b := dialRaw(t, udpHostPort(ub)).exchange(appendUDPAnnounceReq(nil, id, 1, &req, "")); binary.BigEndian.Uint32(b) != udpAnnounce {
		t.Fatalf("tracker B refused A's ID: %q", udpErrorText(b))
	}
	if b := dialRaw(t, udpHostPort(uc)).exchange(appendUDPAnnounceReq(nil, id, 1, &req, "")); udpErrorText(b) != string(errUDPConnID) {
		t.Fatalf("tracker C accepted A's ID: %x", b)
	}
	if _, err := NewServer(Config{UDPSecret: []byte("short")}); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

// Each kind of bad datagram is dropped or answered with a bounded error,
// counted under its kind, and the tracker goes on answering.
func TestUDPBadInput(t *testing.T) {
	srv, _, u := startUDPServer(t, Config{}, "127.0.0.1")
	raw := dialRaw(t, udpHostPort(u))
	id := raw.connect()
	good := AnnounceRequest{InfoHash: ih(12), PeerID: pid(1), Port: 1000, Left: 1}
	header := func(id uint64, action uint32) []byte { return appendUDPHeader(nil, id, action, 42) }
	scrapeOf := func(n int) []byte {
		hs := make([]InfoHash, n)
		for i := range hs {
			hs[i] = ih(byte(i))
		}
		return appendUDPScrapeReq(nil, id, 42, hs)
	}
	badEvent := appendUDPAnnounceReq(nil, id, 42, &good, "")
	binary.BigEndian.PutUint32(badEvent[80:], 9)
	noPort := good
	noPort.Port = 0
	for _, tc := range []struct {
		name  string
		pkt   []byte
		reply string // "" for none
		kind  func(UDPStats) uint64
	}{
		// Only the answers to packets with a wrong connection ID must be
		// no larger than the packet; the test checks it for all but the
		// empty scrape, whose reason is longer than its 16 bytes.
		{"short", []byte{1, 2, 3, 4, 5}, "", func(s UDPStats) uint64 { return s.Short }},
		{"oversized", make([]byte, 3000), "", func(s UDPStats) uint64 { return s.Oversized }},
		{"scrape of 1000 hashes", scrapeOf(1000), "", func(s UDPStats) uint64 { return s.Oversized }},
		{"unknown action", header(id, 7), "", func(s UDPStats) uint64 { return s.BadAction }},
		{"error action from a client", header(id, udpError), "", func(s UDPStats) uint64 { return s.BadAction }},
		{"wrong protocol ID", header(12345, udpConnect), "", func(s UDPStats) uint64 { return s.BadProtocolID }},
		{"wrong connection ID", appendUDPAnnounceReq(nil, id^1, 42, &good, ""), string(errUDPConnID), func(s UDPStats) uint64 { return s.BadConnectionID }},
		{"scrape with wrong connection ID", appendUDPScrapeReq(nil, id+1, 42, []InfoHash{ih(1)}), string(errUDPConnID), func(s UDPStats) uint64 { return s.BadConnectionID }},
		{"scrape of 100 hashes", scrapeOf(100), string(errTooManyHashes), func(s UDPStats) uint64 { return s.TooManyHashes }},
		{"empty scrape", header(id, udpScrape), string(errUDPScrapeNone), func(s UDPStats) uint64 { return s.Malformed }},
		{"short announce", appendUDPAnnounceReq(nil, id, 42, &good, "")[:60], string(errUDPBadAnnReq), func(s UDPStats) uint64 { return s.Malformed }},
		{"bad event", badEvent, string(errBadEvent), func(s UDPStats) uint64 { return s.Malformed }},
		{"port 0", appendUDPAnnounceReq(nil, id, 42, &noPort, ""), string(errBadPort), func(s UDPStats) uint64 { return s.Malformed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.kind(udpStatsOf(srv))
			raw.send(tc.pkt)
			b := raw.recv(300 * time.Millisecond)
			switch {
			case tc.reply == "" && b != nil:
				t.Fatalf("answered %x; want no answer", b)
			case tc.reply != "" && udpErrorText(b) != tc.reply:
				t.Fatalf("answer %x (%q); want error %q", b, udpErrorText(b), tc.reply)
			case len(b) > len(tc.pkt) && tc.name != "empty scrape":
				t.Fatalf("%d-byte answer to a %d-byte packet", len(b), len(tc.pkt))
			case b != nil && binary.BigEndian.Uint32(b[4:]) != 42:
				t.Fatalf("answer has transaction ID %d; want 42", binary.BigEndian.Uint32(b[4:]))
			}
			if got := tc.kind(udpStatsOf(srv)); got != before+1 {
				t.Fatalf("counter went from %d to %d; want +1", before, got)
			}
			// The tracker still answers a good request.
			if b := raw.exchange(appendUDPAnnounceReq(nil, id, 43, &good, "")); binary.BigEndian.Uint32(b) != udpAnnounce {
				t.Fatalf("good announce after it: %x", b)
			}
		})
	}
	st := udpStatsOf(srv)
	sum := st.Connects + st.Announces + st.Scrapes + st.Short + st.Oversized + st.BadAction + st.BadProtocolID +
		st.BadConnectionID + st.TooManyHashes + st.Malformed + st.Refused + st.RateLimited
	if sum != st.Packets {
		t.Fatalf("packets %d but the kinds add up to %d: %+v", st.Packets, sum, st)
	}
}

// The rate limit applies per address: connects past it are dropped,
// announces answered with an error.
func TestUDPRateLimit(t *testing.T) {
	srv, _, u := startUDPServer(t, Config{RateLimit: 1, RateBurst: 3}, "127.0.0.1")
	raw := dialRaw(t, udpHostPort(u))
	id := raw.connect() // 1
	req := AnnounceRequest{InfoHash: ih(13), PeerID: pid(1), Port: 1000, Left: 1}
	raw.exchange(appendUDPAnnounceReq(nil, id, 1, &req, "")) // 2
	raw.exchange(appendUDPAnnounceReq(nil, id, 1, &req, "")) // 3
	if b := raw.exchange(appendUDPAnnounceReq(nil, id, 1, &req, "")); udpErrorText(b) != string(errRateLimited) {
		t.Fatalf("4th request answered %x", b)
	}
	raw.send(appendUDPConnectReq(nil, 1))
	if b := raw.recv(300 * time.Millisecond); b != nil {
		t.Fatalf("rate-limited connect answered %x", b)
	}
	if st := srv.Stats(); st.UDP.RateLimited != 2 || st.RateLimited != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Spoofing a victim's address reflects no more bytes at the victim than
// the attacker sends, whatever the attacker sends: the tracker answers a
// packet without a valid connection ID with at most its own size. The
// spoofed packets are real: written on a raw socket with the victim's
// source address.
func TestUDPNoAmplification(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a raw socket to spoof the source address")
	}
	srv, _, u := startUDPServer(t, Config{RateLimit: -1}, "127.0.0.1")
	dst := netip.MustParseAddrPort(udpHostPort(u))
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 66)})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	vaddr := victim.LocalAddr().(*net.UDPAddr).AddrPort()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer syscall.Close(fd)

	var received atomic.Int64
	var biggest atomic.Int64
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := victim.Read(buf)
			if err != nil {
				return
			}
			received.Add(int64(n))
		}
	}()
	req := AnnounceRequest{InfoHash: ih(14), PeerID: pid(1), Port: 1000, Left: 1, NumWant: 200}
	probes := [][]byte{
		appendUDPConnectReq(nil, 1),
		appendUDPAnnounceReq(nil, 0xdeadbeef, 2, &req, ""),
		appendUDPScrapeReq(nil, 0xdeadbeef, 3, []InfoHash{ih(1)}),
		appendUDPScrapeReq(nil, 0xdeadbeef, 3, make([]InfoHash, 74)),
		appendUDPHeader(nil, 0xdeadbeef, udpAnnounce, 4),
		appendUDPHeader(nil, 0xdeadbeef, udpScrape, 5),
		appendUDPHeader(nil, udpProtocolID, 9, 6),
	}
	var sent int64
	for range 20 {
		for _, p := range probes {
			spoofUDP(t, fd, vaddr, dst, p)
			sent += int64(len(p))
			biggest.Store(max(biggest.Load(), int64(len(p))))
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for udpStatsOf(srv).Packets < uint64(20*len(probes)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	st := udpStatsOf(srv)
	if st.Packets != uint64(20*len(probes)) {
		t.Fatalf("tracker saw %d of %d spoofed packets", st.Packets, 20*len(probes))
	}
	if got := received.Load(); got == 0 || got > sent {
		t.Fatalf("victim received %d bytes for %d sent; want 0 < received ≤ sent", got, sent)
	}
	if st.Connects != 20 || st.BadConnectionID != 100 || st.BadAction != 20 {
		t.Fatalf("stats %+v", st)
	}
}

// spoofUDP sends payload from src to dst in a hand-built IPv4 packet.
func spoofUDP(t *testing.T, fd int, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	pkt := make([]byte, 28+len(payload))
	pkt[0] = 0x45 // IPv4, 20-byte header
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64 // TTL
	pkt[9] = syscall.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(pkt[20:], src.Port())
	binary.BigEndian.PutUint16(pkt[22:], dst.Port())
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // checksum 0: none (IPv4)
	copy(pkt[28:], payload)
	if err := syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: d4}); err != nil {
		t.Fatalf("spoofed send: %v", err)
	}
}

// lossyProxy forwards datagrams between a client and a tracker, dropping
// the first drop datagrams from the client.
func lossyProxy(t *testing.T, target string, drop int) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); up.Close() })
	var seen atomic.Int64
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if seen.Add(1) <= int64(drop) {
				continue
			}
			up.Write(buf[:n])
			up.SetReadDeadline(time.Now().Add(2 * time.Second))
			if m, err := up.Read(buf); err == nil {
				pc.WriteToUDPAddrPort(buf[:m], from)
			}
		}
	}()
	return pc.LocalAddr().String(), &seen
}

// A lost request is sent again after the retransmission timeout.
func TestUDPClientRetransmits(t *testing.T) {
	_, _, u := startUDPServer(t, Config{}, "127.0.0.1")
	proxy, seen := lossyProxy(t, udpHostPort(u), 2)
	c := Client{UDPRetransmit: 100 * time.Millisecond, Timeout: 5 * time.Second}
	start := time.Now()
	_, err := c.Announce(context.Background(), "udp://"+proxy+"/announce", AnnounceRequest{InfoHash: ih(15), PeerID: pid(1), Port: 1, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Two connects lost: waits of 100 ms and 200 ms, then connect and
	// announce go through.
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("announce took %v; want 100+200 ms of retransmission waits", d)
	}
	if n := seen.Load(); n != 4 {
		t.Fatalf("proxy saw %d datagrams; want 4", n)
	}
}

// A tracker that never answers costs a request its timeout, no more.
func TestUDPClientDeadTracker(t *testing.T) {
	dead, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	u := "udp://" + dead.LocalAddr().String() + "/announce"
	c := Client{Timeout: 400 * time.Millisecond}
	start := time.Now()
	_, err = c.Announce(context.Background(), u, AnnounceRequest{InfoHash: ih(16), PeerID: pid(1), Port: 1})
	if err == nil || time.Since(start) > 2*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dead tracker: %v after %v", err, time.Since(start))
	}
	// The caller's context ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = (&Client{}).Scrape(ctx, u, ih(16))
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled scrape: %v after %v", err, time.Since(start))
	}
}

// A cached connection ID that a restarted tracker (with a new secret)
// refuses is replaced by a fresh one without failing the announce.
func TestUDPClientReconnectsAfterTrackerRestart(t *testing.T) {
	srv1, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	conns, err := ListenUDP(context.Background(), "udp4", "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	addr := conns[0].LocalAddr().String()
	ctx1, stop1 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv1.ServeUDP(ctx1, conns...) }()
	var c Client
	u := "udp://" + addr + "/announce"
	req := AnnounceRequest{InfoHash: ih(17), PeerID: pid(1), Port: 1, Left: 1}
	if _, err := c.Announce(context.Background(), u, req); err != nil {
		t.Fatal(err)
	}
	stop1()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv2, _ := NewServer(Config{})
	conns, err = ListenUDP(context.Background(), "udp4", addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer func() { stop2(); <-done }()
	go func() { done <- srv2.ServeUDP(ctx2, conns...) }()
	if _, err := c.Announce(context.Background(), u, req); err != nil {
		t.Fatalf("announce with a stale connection ID: %v", err)
	}
	if st := udpStatsOf(srv2); st.BadConnectionID != 1 || st.Connects != 1 || st.Announces != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseUDPOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		want string
	}{
		{"none", nil, ""},
		{"one", []byte("\x02\x09/announce"), "/announce"},
		{"split", []byte("\x02\x04/ann\x01\x02\x05ounce\x00\x02\x03bad"), "/announce"},
		{"three parts", []byte("\x02\x01a\x02\x01b\x02\x01c"), "abc"},
		{"unknown skipped", []byte("\x07\x03xyz\x02\x02ok"), "ok"},
		{"truncated", []byte("\x02\x09/ann"), ""},
		{"truncated length", []byte("\x02"), ""},
	} {
		var buf [udpMaxPacket]byte
		if got := string(parseUDPOptions(tc.opts, buf[:0])); got != tc.want {
			t.Errorf("%s: %q; want %q", tc.name, got, tc.want)
		}
	}
}

// Answering allocates nothing, whatever the packet.
func TestUDPHandleAllocatesNothing(t *testing.T) {
	srv, err := NewServer(Config{RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	w := srv.newUDPWorker()
	from := netip.MustParseAddrPort("192.0.2.1:4000")
	out := make([]byte, 0, udpMaxReply)
	id := srv.udp.connID(new([16]byte), connIDWindowOf(time.Now()), from.Addr())
	for i := range 100 {
		req := AnnounceRequest{InfoHash: ih(1), PeerID: pid(i), Port: uint16(1000 + i), Left: 1}
		w.handle(appendUDPAnnounceReq(nil, id, 1, &req, "/announce"), from, out)
	}
	req := AnnounceRequest{InfoHash: ih(1), PeerID: pid(1000), Port: 999, Left: 1, NumWant: 50}
	for name, pkt := range map[string][]byte{
		"connect":  appendUDPConnectReq(nil, 1),
		"announce": appendUDPAnnounceReq(nil, id, 1, &req, "/announce?a=b"),
		"scrape":   appendUDPScrapeReq(nil, id, 1, []InfoHash{ih(1), ih(2)}),
		"bad id":   appendUDPAnnounceReq(nil, id+1, 1, &req, ""),
	} {
		if a := testing.AllocsPerRun(200, func() { w.handle(pkt, from, out) }); a != 0 {
			t.Errorf("%s: %.1f allocations per packet", name, a)
		}
	}
}

// A socket closed under ServeUDP stops it with an error saying so, rather
// than leaving its worker spinning or the others serving on; cancelling
// instead stops it cleanly. Either way no goroutine outlives it.
func TestServeUDPStops(t *testing.T) {
	srv, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	waitGoroutines := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > want {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines after ServeUDP returned; %d before", runtime.NumGoroutine(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	serve := func(ctx context.Context) ([]*net.UDPConn, chan error) {
		conns, err := ListenUDP(context.Background(), "udp4", "127.0.0.1:0", 2)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.ServeUDP(ctx, conns...) }()
		// Served: a connect is answered.
		r := dialRaw(t, conns[0].LocalAddr().String())
		r.connect()
		return conns, done
	}
	wait := func(done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("ServeUDP did not return")
			return nil
		}
	}

	before := runtime.NumGoroutine()
	conns, done := serve(context.Background())
	conns[1].Close()
	if err := wait(done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ServeUDP with a socket closed under it: %v; want an error wrapping net.ErrClosed", err)
	}
	if _, err := conns[0].WriteToUDPAddrPort([]byte{0}, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the other socket after ServeUDP failed: %v; want it closed", err)
	}
	waitGoroutines(before)

	ctx, cancel := context.WithCancel(context.Background())
	_, done = serve(ctx)
	cancel()
	if err := wait(done); err != nil {
		t.Fatalf("ServeUDP after cancel: %v", err)
	}
	waitGoroutines(before)

	if err := srv.ServeUDP(context.Background()); err == nil {
		t.Fatal("ServeUDP without sockets: no error")
	}
}

// The whole receive-answer-send loop allocates nothing per datagram, not
// just handle: measured over a real socket, batched I/O (recvmmsg and
// sendmmsg on Linux) and the poller included, for announces, scrapes and
// refused packets.
func TestUDPServeLoopAllocatesNothing(t *testing.T) {
	srv, _, u := startUDPServer(t, Config{RateLimit: -1}, "127.0.0.1")
	r := dialRaw(t, udpHostPort(u))
	id := r.connect()
	var pkts [][]byte
	for i := range 8 {
		req := AnnounceRequest{InfoHash: ih(3), PeerID: pid(i), Port: uint16(2000 + i), Left: 1, NumWant: 50}
		pkts = append(pkts, appendUDPAnnounceReq(nil, id, 0, &req, ""))
	}
	pkts = append(pkts, appendUDPScrapeReq(nil, id, 0, []InfoHash{ih(3), ih(4)}), appendUDPAnnounceReq(nil, id+1, 0, &AnnounceRequest{InfoHash: ih(3), PeerID: pid(1), Port: 1}, ""))
	buf := make([]byte, 2048)
	r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var tx uint32
	var bad []string
	exchange := func() {
		tx++
		pkt := pkts[int(tx)%len(pkts)]
		binary.BigEndian.PutUint32(pkt[12:], tx)
		if _, err := r.c.Write(pkt); err != nil {
			bad = append(bad, err.Error())
			return
		}
		n, err := r.c.Read(buf)
		if err != nil {
			bad = append(bad, err.Error())
			return
		}
		if n < 8 || binary.BigEndian.Uint32(buf[4:]) != tx {
			bad = append(bad, fmt.Sprintf("answer %x to tx %d", buf[:n], tx))
		}
	}
	for range len(pkts) {
		exchange() // every peer stored, every path run once
	}
	const runs = 1000
	if a := testing.AllocsPerRun(runs, exchange); a != 0 {
		t.Errorf("%.1f allocations per exchange", a)
	}
	if len(bad) > 0 {
		t.Fatalf("%d exchanges failed, first: %s", len(bad), bad[0])
	}
	// The packets were answered by the server, each path many times.
	st := udpStatsOf(srv)
	if st.Announces < runs*8/10 || st.Scrapes < runs/10 || st.BadConnectionID < runs/10 {
		t.Fatalf("stats %+v after %d exchanges", st, runs)
	}
}

func BenchmarkUDPAnnounce(b *testing.B) {
	srv, err := NewServer(Config{RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	w := srv.newUDPWorker()
	from := netip.MustParseAddrPort("192.0.2.1:4000")
	id := srv.udp.connID(new([16]byte), connIDWindowOf(time.Now()), from.Addr())
	pkts := make([][]byte, 1024)
	for i := range pkts {
		req := AnnounceRequest{InfoHash: ih(byte(i % 64)), PeerID: pid(i), Port: uint16(1000 + i), Left: uint64(i % 2), NumWant: 50}
		pkts[i] = appendUDPAnnounceReq(nil, id, uint32(i), &req, "")
	}
	out := make([]byte, 0, udpMaxReply)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.handle(pkts[i%len(pkts)], from, out)
	}
}
