package swarm

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"
)

// Choking follows the mainstream tit-for-tat scheme (BEP 3, libtorrent's
// "fixed slots" choker): every RechokeInterval the peers that give us the
// most (when downloading), or take from us the fastest (when seeding), get
// the regular upload slots, and one more peer, rotated every
// OptimisticInterval, is unchoked at random so newcomers and peers with
// nothing to give yet get a chance to prove themselves.
//
// Between rechokes a slot never idles: a newly interested peer takes a
// free one at once, and a slot freed by a peer that left or lost interest
// goes to the waiting peer that gives us most. A free-riding peer (see
// peer.freeRiding: it keeps us choked while it has what we want, or took
// a piece and gave nothing back) is owed only the optimistic slot, and
// loses any other within a tick, so on a fast swarm tit-for-tat bites in
// seconds rather than at the next rechoke.
const (
	RechokeInterval    = 10 * time.Second
	OptimisticInterval = 30 * time.Second
	// DefaultUploadSlots is the number of regular unchoke slots.
	DefaultUploadSlots = 4
)

// chokeCandidate is what the choker needs to know of a peer.
type chokeCandidate[K comparable] struct {
	key        K
	interested bool
	// rate is bytes/s received from the peer when downloading, or sent to
	// it when seeding.
	rate int64
	// joined is when the peer connected; newcomers are favoured for the
	// optimistic slot, since they cannot have earned a regular one yet.
	joined time.Time
	// freeRiding marks a peer that does not reciprocate: it may have the
	// optimistic slot, never a regular one.
	freeRiding bool
}

// choker picks the peers to unchoke. It is used from one goroutine.
type choker[K comparable] struct {
	slots      int
	leechOnly  bool // never unchoke anyone
	rnd        *rand.Rand
	optimistic K
	hasOpt     bool
	lastOpt    time.Time
}

func newChoker[K comparable](slots int, rnd *rand.Rand) *choker[K] {
	if slots < 0 {
		return &choker[K]{leechOnly: true, rnd: rnd}
	}
	if slots == 0 {
		slots = DefaultUploadSlots
	}
	return &choker[K]{slots: slots, rnd: rnd}
}

// rechoke returns the set of peers to unchoke now. It sorts, but only once
// per RechokeInterval over the connected peers: off every hot path.
func (c *choker[K]) rechoke(peers []chokeCandidate[K], now time.Time) map[K]bool {
	unchoke := make(map[K]bool, c.slots+1)
	if c.leechOnly {
		return unchoke
	}
	var interested []chokeCandidate[K]
	present := false
	for _, p := range peers {
		if p.interested {
			interested = append(interested, p)
		}
		if c.hasOpt && p.key == c.optimistic && p.interested {
			present = true
		}
	}
	slices.SortStableFunc(interested, func(a, b chokeCandidate[K]) int { return cmp.Compare(b.rate, a.rate) })
	var rest []chokeCandidate[K]
	for _, p := range interested {
		if len(unchoke) < c.slots && !p.freeRiding && !(present && p.key == c.optimistic) {
			unchoke[p.key] = true
		} else if !(present && p.key == c.optimistic) {
			rest = append(rest, p)
		}
	}
	if !present || now.Sub(c.lastOpt) >= OptimisticInterval {
		c.hasOpt = false
		if len(rest) > 0 {
			c.optimistic = c.pickOptimistic(rest, now)
			c.hasOpt, c.lastOpt = true, now
		}
	}
	if c.hasOpt {
		unchoke[c.optimistic] = true
	}
	return unchoke
}

// isOptimistic reports whether k holds the optimistic slot.
func (c *choker[K]) isOptimistic(k K) bool { return c.hasOpt && c.optimistic == k }

// pickOptimistic draws among choked interested peers, giving peers that
// joined within the last optimistic round three tickets instead of one.
func (c *choker[K]) pickOptimistic(cands []chokeCandidate[K], now time.Time) K {
	total := 0
	weight := func(p chokeCandidate[K]) int {
		if now.Sub(p.joined) < OptimisticInterval {
			return 3
		}
		return 1
	}
	for _, p := range cands {
		total += weight(p)
	}
	n := c.rnd.IntN(total)
	for _, p := range cands {
		if n -= weight(p); n < 0 {
			return p.key
		}
	}
	return cands[len(cands)-1].key
}
