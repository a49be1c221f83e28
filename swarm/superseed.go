package swarm

import (
	"math/rand/v2"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Super-seeding (BEP 16) is how an initial seeder gets one whole copy into
// the swarm as fast as its upload allows: it poses as a peer with nothing
// and reveals, to each peer, only pieces no peer has yet, so every byte it
// uploads is a byte the swarm did not have. Peers then trade those pieces
// among themselves, and the seeder's upload is never spent twice on the
// same piece before every piece has gone out once.
//
// A peer is offered pieces in proportion to how fast we upload to it, so a
// lone fast downloader is not throttled by the one-piece-at-a-time rule of
// the BEP, while many slow ones each hold only a few. As in the BEP's
// strict mode, a piece a peer got from us counts against its share until
// some other peer has it too: a peer that never uploads (a free-rider, or
// one that left its upload at zero) gets a handful of pieces and no more,
// instead of draining our upload into a dead end. A piece that has sat
// with one peer for superSeedSpreadTTL is stuck: it may be offered to
// another peer, so a hoarder cannot keep it from the swarm, and it counts
// against the hoarder for good. Super-seeding ends
// for good once every piece has been announced by some peer: from then on
// a full copy exists outside us and ordinary seeding serves the swarm
// better (BEP 16 warns against super-seeding in a swarm with other seeds).
const (
	// superSeedMinOffers is how many pieces an unchoked peer holds on
	// offer at least: one to download and one queued behind it, so the
	// round trip of have → request does not idle the link.
	superSeedMinOffers = 2
	superSeedMaxOffers = 64
	// superSeedOfferTTL is how long an offer keeps its piece from being
	// offered to anyone else. A peer that sits on an offer (choked by us,
	// slow, or hostile) must not hold up the first copy for good.
	superSeedOfferTTL = 20 * time.Second
	// superSeedSpreadTTL is how long a piece may sit with the one peer we
	// gave it to before we call it stuck. In a swarm that trades, a fresh
	// piece is the rarest thing around and is fetched within moments.
	superSeedSpreadTTL = 2 * time.Second
	// superSeedInterestTTL is how long a peer shown a piece may take to
	// say it is interested. One that stays silent does not want it (its
	// download stopped, or it holds a copy it cannot serve): its offer
	// lapses, so the piece, maybe the last one the swarm lacks, is not
	// kept from the others for superSeedOfferTTL, and it is shown no other
	// piece until it asks or superSeedOfferTTL passes.
	superSeedInterestTTL = 2 * time.Second
)

// superSeed is a torrent's super-seeding state. Guarded by t.mu.
type superSeed struct {
	// offered counts, per piece, the peers it is on offer to that have
	// not announced it yet.
	offered []int32
	// seen marks pieces announced by some peer since we started; left is
	// how many are not. At zero, super-seeding ends.
	seen *bitfield.Bitfield
	left int
	// stuck marks pieces whose only holder did not pass them on.
	stuck *bitfield.Bitfield
	rnd   *rand.Rand
}

// superPeer is a peer's side of super-seeding. Guarded by t.mu.
type superPeer struct {
	revealed *bitfield.Bitfield // pieces we told this peer we have
	offers   []offer            // revealed pieces it does not have yet
	// quiet is until when it is shown nothing new unless it is
	// interested: an offer to it lapsed for want of interest.
	quiet time.Time
	// unspread lists offered pieces it has that no other peer had yet,
	// and the stuck ones, which stay listed while it is connected.
	unspread []holding
}

// holding is a piece a peer got from us, since when, and whether it sat
// there too long.
type holding struct {
	piece int32
	since time.Time
	stuck bool
}

// offer is a piece revealed to one peer, and when.
type offer struct {
	piece int32
	at    time.Time
}

func newSuperSeed(pieces int) *superSeed {
	return &superSeed{
		offered: make([]int32, pieces),
		seen:    bitfield.New(pieces),
		stuck:   bitfield.New(pieces),
		left:    pieces,
		rnd:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// ssSaw records that a peer announced piece x. Called with t.mu held.
func (t *Torrent) ssSaw(x int) {
	ss := t.ss
	if ss == nil || !ss.seen.Set(x) {
		return
	}
	ss.left--
	t.ssMaybeEnd()
}

// ssMaybeEnd ends super-seeding once every piece has reached a peer and
// none is stuck with a peer that keeps it to itself. It reports whether
// it ended. Called with t.mu held.
func (t *Torrent) ssMaybeEnd() bool {
	if t.ss == nil || t.ss.left > 0 || t.ss.stuck.Count() > 0 {
		return false
	}
	t.endSuperSeed()
	return true
}

// ssSawAll records a peer that announced every piece.
func (t *Torrent) ssSawAll() {
	for x := range t.info.NumPieces {
		if t.ss == nil {
			return
		}
		t.ssSaw(x)
	}
}

// endSuperSeed reveals to every peer what we hid from it and returns to
// ordinary seeding. Called with t.mu held.
func (t *Torrent) endSuperSeed() {
	t.log.Info("super-seeding done: every piece is out in the swarm")
	t.ss = nil
	for p := range t.peers {
		sp := p.ss
		p.ss = nil
		if sp == nil {
			continue
		}
		p.enqueue(func(b []byte) []byte {
			for x := range t.info.NumPieces {
				if !sp.revealed.Has(x) && !t.picker.PeerHas(p.pid, x) {
					b = wire.AppendHave(b, uint32(x))
				}
			}
			return b
		})
	}
}

// ssTarget is how many pieces p should hold on offer: enough to keep its
// link busy for one request-queue horizon at the rate we upload to it.
func (p *peer) ssTarget(lone bool) int {
	if p.amChoking {
		return 1 // so it has a reason to be interested
	}
	if lone {
		// A lone downloader will take every piece from us anyway; holding
		// it to its rate only slows its start.
		return superSeedMaxOffers
	}
	pl := p.t.info.PieceLength
	n := int(p.upRate*queueTime.Seconds()/float64(pl)) + 1
	// At least what a downloader's shallowest request queue covers, plus
	// one: with less, it finishes every offer between two of our haves,
	// loses interest, and the choke that follows costs a round trip.
	floor := int((minQueueDepth*piece.BlockSize+pl-1)/pl) + 1
	return min(superSeedMaxOffers, max(superSeedMinOffers, floor, n))
}

// ssFill tops up p's offers. Called with t.mu held, whenever p announces
// pieces, is unchoked, or once a second.
func (p *peer) ssFill() {
	t, ss, sp := p.t, p.t.ss, p.ss
	if ss == nil || sp == nil || !p.sawHaves && time.Since(p.joined) < time.Second {
		// Wait for its bitfield (BEP 3 lets a peer with nothing skip it),
		// so we do not offer what it already has.
		return
	}
	now := time.Now()
	kept := sp.offers[:0]
	for _, o := range sp.offers {
		switch {
		case t.picker.PeerHas(p.pid, int(o.piece)):
			ss.offered[o.piece]--
			sp.unspread = append(sp.unspread, holding{piece: o.piece, since: now})
		case now.Sub(o.at) > superSeedOfferTTL:
			ss.offered[o.piece]--
		case !p.peerInterested && now.Sub(o.at) > superSeedInterestTTL:
			ss.offered[o.piece]--
			sp.quiet = now.Add(superSeedOfferTTL)
		default:
			kept = append(kept, o)
		}
	}
	sp.offers = kept
	unstuck := false
	still := sp.unspread[:0]
	for _, h := range sp.unspread {
		spread := t.picker.Availability(int(h.piece)) >= 2
		switch {
		case h.stuck:
			if spread && ss.stuck.Clear(int(h.piece)) {
				unstuck = true
			}
		case spread:
			continue
		case now.Sub(h.since) > superSeedSpreadTTL:
			h.stuck = true
			ss.stuck.Set(int(h.piece))
		}
		still = append(still, h)
	}
	sp.unspread = still
	if unstuck && t.ssMaybeEnd() {
		return
	}
	if !p.peerInterested && now.Before(sp.quiet) {
		return
	}
	// A lone peer has no one to pass pieces on to: it is not held to
	// what it has spread.
	lone := len(t.peers) < 2
	held := len(sp.unspread)
	if lone {
		held = 0
	}
	for target := p.ssTarget(lone); len(sp.offers)+held < target; {
		x := t.ssPick(p)
		if x < 0 {
			return
		}
		sp.offers = append(sp.offers, offer{int32(x), now})
		ss.offered[x]++
		sp.revealed.Set(x)
		p.enqueue(func(b []byte) []byte { return wire.AppendHave(b, uint32(x)) })
	}
}

// ssPick chooses the piece to reveal to p next: one that no peer has and
// none holds on offer, or -1. Handing out a piece already on offer
// elsewhere would spend our upload twice on it before every piece went out
// once, so a peer with nothing left to take from us waits, and the slot it
// then frees (it loses interest) goes to a peer that still has an offer.
// The scan starts at a random piece so offers spread over the torrent; it
// is linear, but runs once per piece handed out, not per block.
func (t *Torrent) ssPick(p *peer) int {
	n := t.info.NumPieces
	start := t.ss.rnd.IntN(n)
	for i := range n {
		x := start + i
		if x >= n {
			x -= n
		}
		if a := t.picker.Availability(x); t.ss.offered[x] == 0 && (a == 0 || a == 1 && t.ss.stuck.Has(x)) && !p.ss.revealed.Has(x) {
			return x
		}
	}
	return -1
}

// ssDrop forgets a departing peer's offers. Called with t.mu held.
func (t *Torrent) ssDrop(p *peer) {
	if t.ss == nil || p.ss == nil {
		return
	}
	for _, o := range p.ss.offers {
		t.ss.offered[o.piece]--
	}
	for _, h := range p.ss.unspread {
		if h.stuck {
			t.ss.stuck.Clear(int(h.piece))
		}
	}
	p.ss.unspread, p.ss.offers = nil, nil
	t.ssMaybeEnd()
}
