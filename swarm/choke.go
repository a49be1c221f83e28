package swarm

import (
	"time"

	"github.com/shoal-p2p/shoal/swarm/choker"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Every choke decision is the choker's (package choker, t.choker); the
// peer below is what it decides about, and SetChoked carries a decision
// to the wire.

var _ choker.Peer = (*peer)(nil)

// Interested reports whether the peer wants to download from us. Called
// with t.mu held, as are the other choker.Peer methods.
func (p *peer) Interested() bool { return p.peerInterested }

// DownRate is what the peer sends us, in bytes/s.
func (p *peer) DownRate() float64 { return p.downRate }

// UpRate is what we send the peer, in bytes/s.
func (p *peer) UpRate() float64 { return p.upRate }

// Joined is when the peer connected.
func (p *peer) Joined() time.Time { return p.joined }

// String names the peer by its address.
func (p *peer) String() string { return p.addr.String() }

// FreeRiding judges the peer by choker's free-rider rule, recording a snub
// (eviction counts it too: evictRank).
func (p *peer) FreeRiding(now time.Time) bool {
	free, snubbing := choker.Conduct{
		Joined:      p.joined,
		Seeding:     p.t.seeding,
		WeWant:      p.amInterested,
		ChokesUs:    p.peerChoking,
		UnchokedUs:  p.unchokedUs,
		Snubbed:     p.snubbedUs,
		Taken:       p.upBytes.Load(),
		Given:       p.downBytes.Load(),
		PieceLength: p.t.info.PieceLength,
	}.FreeRiding(now)
	if snubbing {
		p.snubbedUs = true
	}
	return free
}

// SetChoked changes our choke state toward the peer, as the choker
// decided. Called with t.mu held.
func (p *peer) SetChoked(choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	if choke {
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
	p.enqueue(wire.AppendUnchoke)
	p.ssFill()
}
