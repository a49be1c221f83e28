package dht

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
)

// Every node in these tests listens on 127.0.0.1 and bootstraps only from
// other test nodes: no packet leaves the host.

// logRecorder keeps the records a node logs, for tests that check warnings.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) find(level slog.Level, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, substr) {
			return true
		}
	}
	return false
}

// testConfig returns a loopback config with intervals short enough for
// tests; bootstrap is never nil, so the public routers are never used.
func testConfig(bootstrap ...string) Config {
	if bootstrap == nil {
		bootstrap = []string{}
	}
	return Config{
		ListenAddr:       "127.0.0.1:0",
		Bootstrap:        bootstrap,
		AnnounceInterval: time.Second,
		RefreshInterval:  500 * time.Millisecond,
		LookupTimeout:    5 * time.Second,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Bootstrap == nil {
		t.Fatal("test nodes must not use the public bootstrap routers")
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startNetwork starts a bootstrap node and count nodes that join through it.
func startNetwork(t *testing.T, count int) (*Node, []*Node) {
	t.Helper()
	boot := startNode(t, testConfig())
	var nodes []*Node
	for range count {
		nodes = append(nodes, startNode(t, testConfig(boot.Addr().String())))
	}
	return boot, nodes
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testHash(b byte) [20]byte {
	var h [20]byte
	for i := range h {
		h[i] = b ^ byte(i*31)
	}
	return h
}

func TestDHTManyNodesBootstrapFromOne(t *testing.T) {
	boot, nodes := startNetwork(t, 24)
	// The library's buckets hold 8 nodes and never split, so with 24
	// random IDs the bootstrap node keeps about half of them in the two
	// nearest-to-half buckets plus the rest; 12 means it filled up.
	eventually(t, 20*time.Second, "bootstrap node fills its table", func() bool {
		return boot.Stats().GoodNodes >= 12
	})
	// Each joiner must learn of others besides the bootstrap node, which
	// only happens if the bootstrap node hands out nodes that joined later.
	eventually(t, 20*time.Second, "every node knows several others", func() bool {
		for _, n := range nodes {
			if n.Stats().GoodNodes < 5 {
				return false
			}
		}
		return true
	})
	for i, n := range append(nodes, boot) {
		t.Logf("node %d: %+v", i, n.Stats())
	}
}

func TestDHTAnnounceFoundByAnotherNode(t *testing.T) {
	_, nodes := startNetwork(t, 20)
	seeder, leecher := nodes[3], nodes[17]
	h := testHash(1)
	want := netip.MustParseAddrPort("127.0.0.1:4242")
	seeder.Announce(h, 4242, nil)

	got := make(chan []netip.AddrPort, 16)
	leecher.Announce(h, 4343, func(ps []netip.AddrPort) { got <- ps })

	start := time.Now()
	eventually(t, 30*time.Second, "Lookup finds the announced peer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ps, err := leecher.Lookup(ctx, h)
		if err != nil {
			t.Logf("lookup: %v", err)
		}
		return slices.Contains(ps, want)
	})
	t.Logf("found after %v", time.Since(start))
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ps := <-got:
			if slices.Contains(ps, want) {
				return
			}
		case <-deadline:
			t.Fatal("announce callback never got the seeder's peer")
		}
	}
}

func TestDHTLookupIsBounded(t *testing.T) {
	_, nodes := startNetwork(t, 5)
	cfg := testConfig(nodes[0].Addr().String())
	cfg.LookupTimeout = 300 * time.Millisecond
	n := startNode(t, cfg)
	start := time.Now()
	ps, err := n.Lookup(context.Background(), testHash(9))
	if err != nil || len(ps) != 0 {
		t.Fatalf("lookup of an unannounced hash: %v %v", ps, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("lookup took %v with a 300ms LookupTimeout", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Lookup(ctx, testHash(9)); err == nil {
		t.Fatal("lookup with a cancelled context: no error")
	}
}

func TestDHTStateMakesRestartWarm(t *testing.T) {
	boot, nodes := startNetwork(t, 10)
	h := testHash(2)
	nodes[0].Announce(h, 5151, nil)
	state := filepath.Join(t.TempDir(), "dht.state")

	cfg := testConfig(boot.Addr().String())
	cfg.StateFile = state
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "node fills its table", func() bool { return n.Stats().GoodNodes >= 5 })
	id := n.ID()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Size() == 0 {
		t.Fatalf("state file: %v", err)
	}

	// No bootstrap node at all: only the saved table can make this work.
	cfg = testConfig()
	cfg.StateFile = state
	r := startNode(t, cfg)
	if s := r.Stats(); s.Nodes < 5 {
		t.Fatalf("restarted node has %d nodes; want the saved table", s.Nodes)
	}
	if r.ID() != id {
		t.Fatal("restart changed the node ID")
	}
	want := netip.MustParseAddrPort("127.0.0.1:5151")
	eventually(t, 30*time.Second, "warm node finds the announced peer", func() bool {
		ps, _ := r.Lookup(context.Background(), h)
		return slices.Contains(ps, want)
	})
}

func TestDHTCorruptStateIsIgnored(t *testing.T) {
	state := filepath.Join(t.TempDir(), "dht.state")
	os.WriteFile(state, []byte("not bencode"), 0o600)
	rec := &logRecorder{}
	cfg := testConfig()
	cfg.StateFile = state
	cfg.Logger = slog.New(rec)
	n := startNode(t, cfg)
	if !rec.find(slog.LevelWarn, "ignoring saved routing table") {
		t.Fatal("no warning about the damaged state file")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := loadState(state); !ok || err != nil {
		t.Fatalf("state not rewritten on close: %v", err)
	}
}

// deadAddr returns a loopback UDP address nobody listens on.
func deadAddr(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().String()
	c.Close()
	return a
}

func TestDHTUnreachableBootstrapWarnsAndRuns(t *testing.T) {
	rec := &logRecorder{}
	cfg := testConfig(deadAddr(t))
	cfg.Logger = slog.New(rec)
	cfg.LookupTimeout = 3 * time.Second
	start := time.Now()
	n := startNode(t, cfg)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("New blocked for %v on an unreachable bootstrap node", d)
	}
	eventually(t, 10*time.Second, "warning about unreachable bootstrap", func() bool {
		return rec.find(slog.LevelWarn, "cannot reach any DHT node")
	})
	n.Announce(testHash(3), 1000, nil)
	ps, err := n.Lookup(context.Background(), testHash(3))
	if len(ps) != 0 {
		t.Fatalf("lookup found %v", ps)
	}
	t.Logf("lookup without a network: %v", err)

	// A node that comes up later is still joined through the retries.
	boot := startNode(t, testConfig())
	n.AddNode(boot.Addr().(*net.UDPAddr).AddrPort())
	eventually(t, 10*time.Second, "node added with AddNode enters the table", func() bool {
		return n.Stats().GoodNodes >= 1
	})
	start = time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestDHTRemoveStopsAnnouncing(t *testing.T) {
	n := startNode(t, testConfig())
	n.Announce(testHash(4), 1, nil)
	n.Announce(testHash(5), 2, nil)
	n.Announce(testHash(5), 3, nil)
	if s := n.Stats(); s.Announcing != 2 {
		t.Fatalf("announcing %d; want 2", s.Announcing)
	}
	n.Remove(testHash(4))
	if s := n.Stats(); s.Announcing != 1 {
		t.Fatalf("announcing %d after Remove; want 1", s.Announcing)
	}
}

func TestDHTCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		boot, err := New(context.Background(), testConfig())
		if err != nil {
			t.Fatal(err)
		}
		var nodes []*Node
		for range 6 {
			n, err := New(context.Background(), testConfig(boot.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
		}
		nodes[0].Announce(testHash(6), 7000, nil)
		nodes[1].Announce(testHash(6), 7001, func([]netip.AddrPort) {})
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		nodes[2].Lookup(ctx, testHash(6))
		cancel()
		for _, n := range nodes {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		}
		boot.Close()
		if _, err := boot.Lookup(context.Background(), testHash(6)); err == nil {
			t.Error("lookup on a closed node: no error")
		}
		boot.Announce(testHash(7), 1, nil) // must not start anything
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDHTConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{ListenAddr: "127.0.0.1:0", Bootstrap: []string{"no-port"}},
		{ListenAddr: "127.0.0.1:0", Bootstrap: []string{}, LookupTimeout: -1},
		{ListenAddr: "127.0.0.1:99999", Bootstrap: []string{}},
	} {
		if n, err := New(context.Background(), cfg); err == nil {
			n.Close()
			t.Errorf("%+v: no error", cfg)
		} else if !strings.HasPrefix(err.Error(), "dht: ") {
			t.Errorf("error %q does not say where", err)
		}
	}
}

func TestDHTInjectedConn(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Conn = c
	n := startNode(t, cfg)
	if n.Addr().String() != c.LocalAddr().String() {
		t.Fatalf("Addr %v; want the injected %v", n.Addr(), c.LocalAddr())
	}
}

func TestNodeIDAllowedRelaxesOnlyLocalAddresses(t *testing.T) {
	var insecure [20]byte // all zeros satisfies BEP 42 for no address below
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.3.4", "::1", "fd00::1", "fe80::1", "::ffff:192.168.1.1"} {
		if !nodeIDAllowed(insecure, netip.MustParseAddr(s)) {
			t.Errorf("%s: local address refused", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.2.3.4", "172.32.0.1", "192.169.0.1", "11.0.0.1", "2001:4860::8888", "::ffff:8.8.8.8"} {
		ip := netip.MustParseAddr(s)
		if nodeIDAllowed(insecure, ip) {
			t.Errorf("%s: insecure ID accepted from a public address", s)
		}
		// The BEP 42 ID for that address is still accepted.
		id := secureID(ip)
		if !nodeIDAllowed(id, ip) {
			t.Errorf("%s: BEP 42 ID refused", s)
		}
	}
	for _, s := range []string{"0.0.0.0", "::"} {
		if nodeIDAllowed(secureID(netip.MustParseAddr("8.8.8.8")), netip.MustParseAddr(s)) {
			t.Errorf("%s accepted", s)
		}
	}
	if nodeIDAllowed([20]byte{}, netip.Addr{}) {
		t.Error("invalid address accepted")
	}
}

func TestPublicIP(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:1":     "",
		"0.0.0.0:1":       "",
		"[::]:1":          "",
		"192.168.0.1:1":   "",
		"8.8.8.8:1":       "8.8.8.8",
		"[2001:db8::1]:1": "2001:db8::1",
	} {
		ip, ok := publicIP(net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if got := fmt.Sprint(ip); ok != (want != "") || (ok && got != want) {
			t.Errorf("publicIP(%s) = %v %v; want %q", addr, ip, ok, want)
		}
	}
}

func secureID(ip netip.Addr) [20]byte {
	id := krpc.RandomNodeID()
	adht.SecureNodeId(&id, net.IP(ip.Unmap().AsSlice()))
	return id
}

func TestPeerStoreExpiresAndCaps(t *testing.T) {
	ps := newPeerStore()
	now := time.Unix(1000, 0)
	ps.now = func() time.Time { return now }
	var ih [20]byte
	for i := range maxPeersPerHash + 10 {
		ps.AddPeer(ih, krpc.NodeAddr{IP: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 6881})
	}
	ps.AddPeer(ih, krpc.NodeAddr{IP: net.IPv4(10, 9, 9, 9), Port: 0}) // no port: dropped
	if n := len(ps.hashes[ih]); n != maxPeersPerHash {
		t.Fatalf("stored %d peers; want the cap %d", n, maxPeersPerHash)
	}
	if got := ps.GetPeers(ih); len(got) != maxValues {
		t.Fatalf("returned %d peers; want %d", len(got), maxValues)
	}
	// Two peers on one IP are two peers (the library's store keeps one).
	var ih2 [20]byte
	ih2[0] = 1
	ps.AddPeer(ih2, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	ps.AddPeer(ih2, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2})
	if got := ps.GetPeers(ih2); len(got) != 2 {
		t.Fatalf("got %v; want both loopback peers", got)
	}
	now = now.Add(peerTTL + time.Second)
	if got := ps.GetPeers(ih); len(got) != 0 {
		t.Fatalf("expired peers returned: %d", len(got))
	}
	if _, ok := ps.hashes[ih]; ok {
		t.Fatal("empty hash kept")
	}
}

// startNodeWithID starts a node whose ID is id, through a state file that
// holds only the ID.
func startNodeWithID(t *testing.T, cfg Config, id [20]byte) *Node {
	t.Helper()
	cfg.StateFile = filepath.Join(t.TempDir(), "dht.state")
	if err := saveState(cfg.StateFile, id, nil); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	if n.ID() != id {
		t.Fatalf("node ID %x; want %x", n.ID(), id)
	}
	return n
}

// The library answers find_node by distance to the zero ID, and only from
// that ID's bucket of its table outward: a node whose ID starts with a 1 bit
// never hands out a node that shares the bit. A node joining through boot
// must still learn of such a node at once, not when that node's next
// refresh happens to come across the joiner.
func TestDHTJoinerLearnsNodesNearerTheBootstrapNode(t *testing.T) {
	var bootID, nearID, joinerID [20]byte
	bootID[0] = 0x80
	nearID[0] = 0xc0 // bucket 1 of boot's table
	joinerID[19] = 2 // bucket 0, like the zero ID
	boot := startNodeWithID(t, testConfig(), bootID)
	// The near node refreshes only every 30s, so it cannot be what
	// introduces itself to the joiner within the deadline below.
	nearCfg := testConfig(boot.Addr().String())
	nearCfg.RefreshInterval = time.Hour
	near := startNodeWithID(t, nearCfg, nearID)
	eventually(t, 10*time.Second, "boot and near know each other", func() bool {
		return boot.Stats().GoodNodes >= 1 && near.Stats().GoodNodes >= 1
	})
	joiner := startNodeWithID(t, testConfig(boot.Addr().String()), joinerID)
	eventually(t, 10*time.Second, "joiner learns of the near node", func() bool {
		return joiner.Stats().GoodNodes >= 2
	})
}
