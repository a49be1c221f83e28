package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/piece"
)

// startTestDHT runs a DHT node on loopback that joins through bootstrap
// (none: the first node of a network of the test's own).
func startTestDHT(t *testing.T, bootstrap ...string) *dht.Node {
	t.Helper()
	n, err := dht.New(context.Background(), dht.Config{
		ListenAddr: "127.0.0.1:0",
		Bootstrap:  append([]string{}, bootstrap...),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// lookupFinds polls n's lookups of ih until one finds addr.
func lookupFinds(t *testing.T, n *dht.Node, ih [20]byte, addr netip.AddrPort, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ps, _ := n.Lookup(ctx, ih)
		cancel()
		if slices.Contains(ps, addr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DHT never had %s (%v): found %v", what, addr, ps)
		}
	}
}

// Reannounce asks the DHT too: a seeder that announced itself after the
// torrent's first DHT round is found at once, where the next round would
// come only a quarter of an hour later. Every node is on loopback, in a
// network of the test's own.
func TestReannounceAsksTheDHT(t *testing.T) {
	boot := startTestDHT(t)
	probe := startTestDHT(t, boot.Addr().String())
	src := t.TempDir()
	m := makeContent(t, src, "dhtdata", twoFiles, 32<<10, piece.FormatV2)
	ih := m.Info.Hash.Truncated()
	// A seeder with no DHT of its own: it never dials the daemon, which
	// finds it only through the DHT.
	sd := startSeeder(t, m, src, 0)

	cfg := testConfig(t, t.TempDir())
	cfg.NoDHT, cfg.Bootstrap = false, []string{boot.Addr().String()}
	s := openSession(t, cfg)
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	// The torrent's first DHT round has announced it, and found no one.
	daemonAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.peerPort()))
	lookupFinds(t, probe, ih, daemonAddr, "the daemon's announce")

	// Now the seeder comes up in the DHT.
	probe.Announce(ih, int(sd.addr().Port()), nil)
	lookupFinds(t, probe, ih, sd.addr(), "the seeder's announce")
	time.Sleep(500 * time.Millisecond)
	if st := status(t, s, st.ID, 0); st.PeersConnected != 0 || st.Verified != 0 {
		t.Fatalf("the daemon found the seeder before any reannounce: %+v", st)
	}

	if err := s.Reannounce([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, st.ID, 10*time.Second, "seeding after a reannounce", seeding)
}
