package dht

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// The node as a swarm.PeerFinder: an Announcer for a torrent we serve, and
// FindPeers for one known only by hash.

// finderResult runs an Announcer's FindPeers on a goroutine of its own.
type finderResult struct {
	mu    sync.Mutex
	found []netip.AddrPort
	done  chan error
}

func runAnnouncer(ctx context.Context, a *Announcer, ih [20]byte) *finderResult {
	r := &finderResult{done: make(chan error, 1)}
	go func() {
		r.done <- a.FindPeers(ctx, ih, func(ps []netip.AddrPort) {
			r.mu.Lock()
			r.found = append(r.found, ps...)
			r.mu.Unlock()
		})
	}()
	return r
}

func (r *finderResult) has(a netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.found, a)
}

// ended waits for FindPeers to return, failing after d.
func (r *finderResult) ended(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(d):
		t.Fatalf("FindPeers still running %v after it should have stopped", d)
		return nil
	}
}

func TestDHTFinderAnnounceAndLookup(t *testing.T) {
	_, nodes := startNetwork(t, 12)
	seeder, leecher, asker := nodes[2], nodes[9], nodes[5]
	ih := piece.Hash{0: 0xab, 1: 0xcd, 31: 0x01}.Truncated() // a v2 swarm, under its first 20 bytes
	sctx, stopSeeder := context.WithCancel(context.Background())
	defer stopSeeder()
	seeding := runAnnouncer(sctx, seeder.Announcer(4242), ih)
	leeching := runAnnouncer(context.Background(), leecher.Announcer(4343), ih)
	eventually(t, 5*time.Second, "both count as announcing", func() bool {
		return seeder.Stats().Announcing == 1 && leecher.Stats().Announcing == 1
	})

	want := netip.MustParseAddrPort("127.0.0.1:4242")
	eventually(t, 30*time.Second, "a lookup finds the announcer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got []netip.AddrPort
		if err := asker.FindPeers(ctx, ih, func(ps []netip.AddrPort) { got = append(got, ps...) }); err != nil {
			t.Logf("lookup: %v", err)
		}
		return slices.Contains(got, want)
	})
	eventually(t, 30*time.Second, "the other announcer finds the seeder", func() bool {
		return leeching.has(want)
	})

	// The caller's context ends the announce, and the hash no longer
	// counts.
	stopSeeder()
	if err := seeding.ended(t, 2*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("announcer ended with %v; want the context's error", err)
	}
	if n := seeder.Stats().Announcing; n != 0 {
		t.Fatalf("announcing %d after the announcer stopped", n)
	}

	// Closing the node ends a running announcer, without waiting for it
	// to time out.
	start := time.Now()
	if err := leecher.Close(); err != nil {
		t.Fatal(err)
	}
	if err := leeching.ended(t, time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("announcer on a closed node ended with %v; want ErrClosed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with an announcer running", d)
	}
	if err := leecher.FindPeers(context.Background(), ih, func([]netip.AddrPort) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup on a closed node: %v", err)
	}
	if err := leecher.Announcer(1).FindPeers(context.Background(), ih, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("announce on a closed node: %v", err)
	}
}

func TestDHTAnnouncerReplacedByRemove(t *testing.T) {
	n := startNode(t, testConfig())
	ih := [20]byte{7}
	r := runAnnouncer(context.Background(), n.Announcer(1), ih)
	eventually(t, 5*time.Second, "announcing", func() bool { return n.Stats().Announcing == 1 })
	n.Remove(ih)
	if err := r.ended(t, 2*time.Second); err != nil {
		t.Fatalf("announcer removed: %v; want nil", err)
	}
}
