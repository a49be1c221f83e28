package swarm

// Where the super-seeding policy (BEP 16, package superseed) meets the
// swarm: each hook below is called from one line of the code that sees the
// event, with t.mu held, and sends what the policy decides. t.ss is nil
// unless super-seeding is under way.

import (
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/swarm/superseed"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// newSuperSeed starts super-seeding t, or returns nil if there is nothing
// to super-seed (a torrent of empty files only).
func (t *Torrent) newSuperSeed() *superseed.Policy {
	ss := superseed.New(superseed.Config{
		Pieces:      t.info.NumPieces,
		PieceLength: t.info.PieceLength,
		Horizon:     queueTime,
		MinQueue:    minQueueDepth * piece.BlockSize,
		Swarm:       t.picker,
		SpreadTTL:   t.c.cfg.ssTTL,
		InterestTTL: t.c.cfg.ssTTL,
	})
	if ss.Done() {
		return nil
	}
	return ss
}

// ssAddPeer shows a new peer nothing yet.
func (t *Torrent) ssAddPeer(p *peer) {
	if t.ss != nil {
		t.ss.AddPeer(p.pid)
	}
}

// ssSaw records that a peer announced piece x.
func (t *Torrent) ssSaw(x int) {
	if t.ss != nil {
		t.ss.OnHave(x)
		t.ssMaybeEnd()
	}
}

// ssSawBitfield records a peer's bitfield.
func (t *Torrent) ssSawBitfield(bf *bitfield.Bitfield) {
	if t.ss != nil {
		t.ss.OnBitfield(bf)
		t.ssMaybeEnd()
	}
}

// ssSawAll records a peer that announced every piece.
func (t *Torrent) ssSawAll() {
	if t.ss != nil {
		t.ss.OnHaveAll()
		t.ssMaybeEnd()
	}
}

// ssRevealed reports whether p may be told of piece x and served it: it
// was revealed to p, or we are not super-seeding.
func (t *Torrent) ssRevealed(p *peer, x int) bool {
	return t.ss == nil || t.ss.MayServe(p.pid, x)
}

// ssFill tops up p's offers and announces them: whenever p announces
// pieces, is unchoked, or once a second.
func (p *peer) ssFill() {
	t := p.t
	if t.ss == nil {
		return
	}
	xs := t.ss.Fill(p.pid, time.Now(), superseed.Peer{
		Joined:     p.joined,
		Spoke:      p.spoke,
		Announced:  p.sawHaves,
		Choked:     p.amChoking,
		Interested: p.peerInterested,
		Rate:       p.upRate,
	}, t.speakers) // connections that never spoke do not count
	if t.ssMaybeEnd() || len(xs) == 0 {
		return
	}
	p.enqueue(func(b []byte) []byte {
		for _, x := range xs {
			b = wire.AppendHave(b, uint32(x))
		}
		return b
	})
}

// ssDrop forgets a departing peer's offers.
func (t *Torrent) ssDrop(p *peer) {
	if t.ss != nil {
		t.ss.RemovePeer(p.pid)
		t.ssMaybeEnd()
	}
}

// ssDoneMsg is what is logged when super-seeding ends; a test reads the
// seeder's state as it is logged.
const ssDoneMsg = "super-seeding done: every piece is out in the swarm"

// ssMaybeEnd returns to ordinary seeding once the policy is done,
// revealing to every peer what was hidden from it. It reports whether it
// ended.
func (t *Torrent) ssMaybeEnd() bool {
	if t.ss == nil || !t.ss.Done() {
		return false
	}
	t.log.Info(ssDoneMsg)
	ss := t.ss
	t.ss = nil
	for p := range t.peers {
		if hidden := ss.Hidden(p.pid); len(hidden) > 0 {
			p.enqueue(func(b []byte) []byte {
				for _, x := range hidden {
					b = wire.AppendHave(b, uint32(x))
				}
				return b
			})
		}
	}
	return true
}
