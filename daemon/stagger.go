package daemon

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/swarm"
)

// announceSpacing is the least time between the first DHT announces of
// two torrents: a session starting with a thousand torrents spreads their
// announces over minutes instead of sending them all at once, and as each
// torrent re-announces on its own interval from its first, they stay
// spread.
const announceSpacing = 100 * time.Millisecond

// stagger hands out the start times of the session's DHT announces.
type stagger struct {
	spacing time.Duration
	mu      sync.Mutex
	last    time.Time
}

// wait returns how long the next announce waits for its turn.
func (g *stagger) wait(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	slot := now
	if next := g.last.Add(g.spacing); next.After(slot) {
		slot = next
	}
	g.last = slot
	return slot.Sub(now)
}

// staggered is a PeerFinder that starts f in its turn (stagger).
type staggered struct {
	f swarm.PeerFinder
	g *stagger
}

// FindPeers waits for the announce's turn, then runs it.
func (s staggered) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	if d := s.g.wait(time.Now()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return s.f.FindPeers(ctx, ih, found)
}
