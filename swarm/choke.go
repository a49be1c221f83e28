package swarm

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
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

// setChoking changes our choke state toward the peer. Called with t.mu held.
func (p *peer) setChoking(choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	if choke {
		p.t.unchoked--
		p.sendMu.Lock()
		// BEP 6: queued requests of a fast peer are rejected explicitly; a
		// plain peer knows a choke discards them. The choke goes first, so
		// the rejects read as the choke's, not as pieces we cannot serve.
		p.ctrl = wire.AppendChoke(p.ctrl)
		for _, u := range p.uploads[p.upHead:] {
			if p.fast && u.length > 0 {
				p.ctrl = wire.AppendReject(p.ctrl, u.piece, u.begin, u.length)
			}
		}
		p.uploads, p.upHead = p.uploads[:0], 0
		p.sendMu.Unlock()
		p.signal()
		return
	}
	p.t.unchoked++
	p.unchokedAt = time.Now()
	p.enqueue(wire.AppendUnchoke)
	p.ssFill()
}

// freeRiding reports a peer that tit-for-tat owes only the optimistic
// slot: one that has pieces we want yet keeps us choked past the grace a
// new connection gets, or one that has taken a good deal from us and given
// almost nothing back. The second catches a free-rider that stays behind
// us, so never has what we want: it looks like a newcomer otherwise. A
// seeder wants nothing, so to it no peer is free-riding, save one that
// snubbed it and never unchoked it before it completed. Called with t.mu
// held; it may record the snub.
func (p *peer) freeRiding(now time.Time) bool {
	if p.snubbedUs && !p.unchokedUs {
		return true
	}
	if p.t.seeding {
		return false
	}
	if p.amInterested && p.peerChoking && now.Sub(p.joined) > reciprocityGrace {
		p.snubbedUs = true
		return true
	}
	// An honest peer behind us has nothing we want, so it has no occasion
	// to unchoke us, but if it ever did, it is no free-rider.
	taken, given := p.upBytes.Load(), p.downBytes.Load()
	return !p.unchokedUs && taken >= max(minFreeRideAllowance, p.t.info.PieceLength) && given < taken/8
}

// rechoke applies tit-for-tat. Called with t.mu held.
func (t *Torrent) rechoke(now time.Time) {
	cands := make([]chokeCandidate[*peer], 0, len(t.peers))
	for p := range t.peers {
		r := p.downRate
		if t.seeding {
			r = p.upRate
		}
		cands = append(cands, chokeCandidate[*peer]{key: p, interested: p.peerInterested, rate: int64(r), joined: p.joined, freeRiding: p.freeRiding(now)})
	}
	unchoke := t.choker.rechoke(cands, now)
	for p := range t.peers {
		p.setChoking(!unchoke[p])
	}
}

// maybeUnchoke gives a newly interested peer a free slot at once rather
// than at the next rechoke, so a fresh swarm starts in milliseconds. A
// free-riding peer gets none: tit-for-tat owes it only the
// optimistic slot. Called with t.mu held.
func (t *Torrent) maybeUnchoke(p *peer) {
	if p.amChoking && p.peerInterested && !t.choker.leechOnly && t.unchoked < t.choker.slots+1 && !p.freeRiding(time.Now()) {
		p.setChoking(false)
	}
}

// unchokeWaiting hands a slot that fell free (its peer left or lost
// interest) to the choked peer that wants one and gives us the most,
// instead of leaving it idle until the next rechoke. Called with t.mu held.
func (t *Torrent) unchokeWaiting() {
	now := time.Now()
	for t.unchoked < t.choker.slots+1 && !t.choker.leechOnly {
		var best *peer
		for q := range t.peers {
			if q.amChoking && q.peerInterested && !q.freeRiding(now) && (best == nil || q.downRate > best.downRate) {
				best = q
			}
		}
		if best == nil {
			return
		}
		best.setChoking(false)
	}
}

// chokeFreeRiders applies tit-for-tat between rechokes: a peer we unchoke
// that turns out to be free-riding (see freeRiding) loses its slot to one
// that reciprocates. Without this a free-rider keeps the
// free slot it got as a newcomer for a whole RechokeInterval, which on a
// fast swarm is the whole download. Called with t.mu held, once a tick.
func (t *Torrent) chokeFreeRiders(now time.Time) {
	freed := false
	for p := range t.peers {
		if !p.amChoking && !t.choker.isOptimistic(p) && now.Sub(p.unchokedAt) > reciprocityGrace && p.freeRiding(now) {
			p.setChoking(true)
			freed = true
		}
	}
	if freed {
		t.unchokeWaiting()
	}
}
