package lsd

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// finder runs FindPeers for ih on s until the test ends and collects what
// it finds.
type finder struct {
	mu    sync.Mutex
	peers []netip.AddrPort
}

func find(t *testing.T, s *Service, ih [20]byte) *finder {
	f := &finder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.FindPeers(ctx, ih, func(addrs []netip.AddrPort) {
			f.mu.Lock()
			f.peers = append(f.peers, addrs...)
			f.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

func (f *finder) has(ap netip.AddrPort) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.peers, ap)
}

func (f *finder) list() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func newService(t *testing.T, ns string, cfg Config) *Service {
	t.Helper()
	if cfg.Interval == 0 {
		// Announces a second apart: several rounds within a test, yet
		// within the per-source rate limit.
		cfg.Interval, cfg.MinInterval = time.Second, 100*time.Millisecond
	}
	var s *Service
	var err error
	inNetns(t, ns, func() { s, err = New(cfg) })
	if err != nil {
		t.Fatalf("lsd.New %v: %v", cfg.Listen, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var ih1 = [20]byte{1, 2, 3}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// Two services on a loopback that can multicast, as two clients on one
// host: each finds the other's port, and neither itself.
func TestServicesFindEachOther(t *testing.T) {
	ns := netns(t)
	a := newService(t, ns, Config{Listen: addrs("127.0.0.1"), Port: 1111})
	b := newService(t, ns, Config{Listen: addrs("127.0.0.1"), Port: 2222})
	if got := a.Scope().String(); got != "lo (ipv4)" {
		t.Fatalf("scope %s, want lo (ipv4)", got)
	}
	fa, fb := find(t, a, ih1), find(t, b, ih1)
	wantA, wantB := netip.MustParseAddrPort("127.0.0.1:2222"), netip.MustParseAddrPort("127.0.0.1:1111")
	if !eventually(5*time.Second, func() bool { return fa.has(wantA) && fb.has(wantB) }) {
		t.Fatalf("a found %v, b found %v", fa.list(), fb.list())
	}
	if fa.has(wantB) || fb.has(wantA) {
		t.Errorf("a service found itself: a %v, b %v", fa.list(), fb.list())
	}
	// A torrent started again (a magnet's download after its metadata
	// fetch) gets the peers heard before at once: they announce again
	// only minutes later.
	again := find(t, a, ih1)
	if !eventually(200*time.Millisecond, func() bool { return again.has(wantA) }) {
		t.Errorf("a new FindPeers got %v, want %v at once", again.list(), wantA)
	}
	if a.Stats().Own == 0 {
		t.Errorf("no announce of a's own came back to be skipped by its cookie: %+v", a.Stats())
	}
}

// The scope rule, on real interfaces: namespace "host" has a loopback and
// a veth link to namespace "lan". A service listening on 127.0.0.1 never
// reaches the LAN and never hears it; one listening on 0.0.0.0 does both.
func TestLoopbackListenerStaysOnLoopback(t *testing.T) {
	host, lan := netns(t), netns(t)
	veth := "lsdv" + strings.TrimPrefix(host, "shoal-lsd-")
	if len(veth) > 15 {
		veth = veth[:15]
	}
	ip(t, "-n", host, "link", "add", "vh", "type", "veth", "peer", "name", "vl", "netns", lan)
	ip(t, "-n", host, "addr", "add", "169.254.77.1/24", "dev", "vh")
	ip(t, "-n", lan, "addr", "add", "169.254.77.2/24", "dev", "vl")
	ip(t, "-n", host, "link", "set", "vh", "up")
	ip(t, "-n", lan, "link", "set", "vl", "up")

	loop := newService(t, host, Config{Listen: addrs("127.0.0.1"), Port: 1111})
	wild := newService(t, host, Config{Listen: addrs("0.0.0.0"), Port: 2222})
	other := newService(t, lan, Config{Listen: addrs("0.0.0.0"), Port: 3333})
	if got := loop.Scope().String(); got != "lo (ipv4)" {
		t.Fatalf("127.0.0.1's scope: %s", got)
	}
	if got := wild.Scope().String(); got != "lo (ipv4), vh (ipv4)" {
		t.Fatalf("0.0.0.0's scope: %s", got)
	}
	fl, fw, fo := find(t, loop, ih1), find(t, wild, ih1), find(t, other, ih1)
	lanPeer, wildOnLAN := netip.MustParseAddrPort("169.254.77.2:3333"), netip.MustParseAddrPort("169.254.77.1:2222")
	loopPeer, wildOnLo := netip.MustParseAddrPort("127.0.0.1:1111"), netip.MustParseAddrPort("127.0.0.1:2222")
	if !eventually(5*time.Second, func() bool {
		return fo.has(wildOnLAN) && fw.has(lanPeer) && fw.has(loopPeer) && fl.has(wildOnLo)
	}) {
		t.Fatalf("lan found %v, wildcard found %v, loopback found %v", fo.list(), fw.list(), fl.list())
	}
	// More announce rounds go by (a second apart): had the
	// loopback service sent one datagram on vh, lan would have it.
	time.Sleep(2 * time.Second)
	for _, p := range fo.list() {
		if p.Port() == 1111 {
			t.Errorf("the 127.0.0.1 listener reached the LAN: lan found %v", p)
		}
	}
	for _, p := range fl.list() {
		if p.Port() == 3333 {
			t.Errorf("the 127.0.0.1 listener heard the LAN: found %v", p)
		}
	}
}

// Bad datagrams are dropped and counted, by reason, and a flood from one
// address does not keep another's announce out.
func TestBadDatagramsDropped(t *testing.T) {
	ns := netns(t)
	s := newService(t, ns, Config{Listen: addrs("127.0.0.1"), Port: 1111, Interval: time.Hour, MinInterval: time.Hour})
	f := find(t, s, ih1)
	// find registers the torrent from its own goroutine: datagrams sent
	// before that are rightly counted as for a torrent we do not have.
	if !eventually(3*time.Second, func() bool { return s.Stats().Announced >= 1 }) {
		t.Fatal("the service never announced the torrent")
	}
	other := [20]byte{9, 9, 9}
	good := func(port int, ih [20]byte) []byte { return packets(GroupV4, uint16(port), "them", [][20]byte{ih})[0] }

	// sender multicasts on lo from src, as a neighbour would.
	send := func(src string, bs ...[]byte) {
		t.Helper()
		inNetns(t, ns, func() {
			c, err := net.ListenPacket("udp4", src+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p := ipv4.NewPacketConn(c)
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.SetMulticastInterface(lo); err != nil {
				t.Fatal(err)
			}
			dst := net.UDPAddrFromAddrPort(GroupV4)
			for _, b := range bs {
				if _, err := p.WriteTo(b, nil, dst); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	send("127.0.0.2",
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		[]byte(strings.Replace(string(good(4000, ih1)), "Port: 4000", "Port: 99999", 1)),
		append(good(4000, ih1), make([]byte, 2000)...),
		good(4001, other),
	)
	var flood [][]byte
	for range 60 {
		flood = append(flood, good(5000, ih1))
	}
	send("127.0.0.3", flood...)
	send("127.0.0.4", good(6000, ih1))
	// Unicast to the LSD port, not to the group: out of scope.
	inNetns(t, ns, func() {
		c, err := net.Dial("udp4", "127.0.0.1:6771")
		if err != nil {
			t.Fatal(err)
		}
		c.Write(good(7000, ih1))
		c.Close()
	})

	want := func(st Stats) bool {
		return st.Malformed >= 2 && st.Huge >= 1 && st.Unknown >= 1 && st.RateLimited >= 60-perSourceBurst && st.OutOfScope >= 1
	}
	if !eventually(3*time.Second, func() bool {
		return want(s.Stats()) && f.has(netip.MustParseAddrPort("127.0.0.3:5000")) && f.has(netip.MustParseAddrPort("127.0.0.4:6000"))
	}) {
		t.Fatalf("stats %+v; found %v", s.Stats(), f.list())
	}
	for _, p := range f.list() {
		if p.Port() == 4000 || p.Port() == 4001 || p.Port() == 7000 {
			t.Errorf("a dropped datagram's peer was passed on: %v", p)
		}
	}
	var b strings.Builder
	s.WriteStatus(&b)
	if !strings.Contains(b.String(), "rate-limited") || !strings.Contains(b.String(), "malformed 2") {
		t.Errorf("status dump:\n%s", b.String())
	}
}

// Announce pacing, on announceDue's clock: at once when a torrent starts,
// then every Interval; a torrent that stops and starts again waits out
// MinInterval since its last announce.
func TestAnnouncePacing(t *testing.T) {
	s := &Service{
		cfg:      Config{Interval: 5 * time.Minute, MinInterval: time.Minute},
		torrents: map[[20]byte]*announced{},
		lastSent: map[[20]byte]time.Time{},
	}
	t0 := time.Unix(1e6, 0)
	s.torrents[ih1] = &announced{}
	if w := s.announceDue(t0); w != 5*time.Minute || s.stats.announced.Load() != 1 {
		t.Fatalf("start: wait %v, %d announced", w, s.stats.announced.Load())
	}
	if w := s.announceDue(t0.Add(time.Minute)); w != 4*time.Minute || s.stats.announced.Load() != 1 {
		t.Fatalf("a minute in: wait %v, %d announced", w, s.stats.announced.Load())
	}
	s.announceDue(t0.Add(5 * time.Minute))
	if n := s.stats.announced.Load(); n != 2 {
		t.Fatalf("after the interval: %d announced, want 2", n)
	}
	// Stopped and started again 10 s after its last announce: not before
	// a minute has passed.
	t1 := t0.Add(5*time.Minute + 10*time.Second)
	s.torrents[ih1] = &announced{}
	if w := s.announceDue(t1); w != 50*time.Second || s.stats.announced.Load() != 2 {
		t.Fatalf("restart: wait %v, %d announced", w, s.stats.announced.Load())
	}
	s.announceDue(t1.Add(50 * time.Second))
	if n := s.stats.announced.Load(); n != 3 {
		t.Fatalf("restart after a minute: %d announced, want 3", n)
	}
}
