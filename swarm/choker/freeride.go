package choker

import "time"

// Conduct is how a peer has treated us: what the free-rider rule judges.
type Conduct struct {
	// Joined is when the peer connected.
	Joined time.Time
	// Seeding reports that we have every piece, so want nothing of anyone.
	Seeding bool
	// WeWant reports that we are interested in the peer.
	WeWant bool
	// ChokesUs reports that the peer chokes us now; UnchokedUs that it has
	// unchoked us at least once.
	ChokesUs, UnchokedUs bool
	// Snubbed reports that an earlier judgement found it snubbing us.
	Snubbed bool
	// Taken is the payload it has had from us, Given what it has sent us.
	Taken, Given int64
	// PieceLength is the torrent's: a peer may always take one piece
	// before it is judged on what it gave back.
	PieceLength int64
}

// FreeRiding applies the free-rider rule at now. A free-rider is one that
// has pieces we want yet keeps us choked past the Grace a new connection
// gets (it is snubbing us), or one that has taken a good deal from us and
// given almost nothing back. The second catches a free-rider that stays
// behind us, so never has what we want: it looks like a newcomer
// otherwise. A seeder wants nothing, so to it no peer is free-riding, save
// one that snubbed it and never unchoked it before it completed.
//
// snubbing reports a peer found snubbing us now; the caller records it in
// Snubbed for good, since a peer that snubbed us and never unchoked us has
// shown it gives nothing.
func (c Conduct) FreeRiding(now time.Time) (free, snubbing bool) {
	if c.Snubbed && !c.UnchokedUs {
		return true, false
	}
	if c.Seeding {
		return false, false
	}
	if c.WeWant && c.ChokesUs && now.Sub(c.Joined) > Grace {
		return true, true
	}
	// An honest peer behind us has nothing we want, so it has no occasion
	// to unchoke us, but if it ever did, it is no free-rider.
	return !c.UnchokedUs && c.Taken >= max(MinFreeRideAllowance, c.PieceLength) && c.Given < c.Taken/8, false
}
