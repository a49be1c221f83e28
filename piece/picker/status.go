package picker

import (
	"fmt"
	"io"
)

// Status is a snapshot of the picker's state, for status dumps and bug
// reports. It answers "why is this download not moving": pieces missing
// that no connected peer has, requests stuck outstanding, endgame.
type Status struct {
	Pieces  int // pieces in the torrent
	Missing int // pieces not verified yet
	// Partial counts started pieces: some block received or requested.
	Partial int
	// Unavailable counts missing pieces that no connected peer has.
	Unavailable int
	// MinAvailability is the fewest connected peers that have a missing
	// piece; 0 when some piece is unavailable or none is missing.
	MinAvailability int
	// BlocksReceived counts blocks of partial pieces already received.
	BlocksReceived int
	// Outstanding counts requests out at peers, endgame duplicates
	// included; Unrequested the blocks of missing pieces neither received
	// nor requested; Requestable those of them some connected peer has.
	Outstanding, Unrequested, Requestable int
	// Endgame reports that every missing block is requested, so blocks
	// are now asked of a second peer (see Config.EndgameRequests).
	Endgame bool
	// Peers counts the peers the picker knows of; Choking those of them
	// that choke us.
	Peers, Choking int
}

// Status returns the picker's state. It walks every piece once: it is
// for status dumps, not for the event or pick paths.
func (p *Picker) Status() Status {
	s := Status{
		Pieces:      p.n,
		Missing:     p.missing,
		Partial:     len(p.active),
		Unrequested: p.unrequested,
		Requestable: p.freeBlocks,
		Endgame:     p.Endgame(),
		Peers:       len(p.peers),
	}
	minAvail := -1
	for x := range p.n {
		if p.st[x] == stHave {
			continue
		}
		a := int(p.avail[x])
		if a == 0 {
			s.Unavailable++
		}
		if minAvail < 0 || a < minAvail {
			minAvail = a
		}
	}
	s.MinAvailability = max(minAvail, 0)
	for _, x := range p.active {
		ps := p.ps[x]
		s.BlocksReceived += ps.received
		s.Outstanding += ps.pending
	}
	for _, pe := range p.peers {
		if pe.choked {
			s.Choking++
		}
	}
	return s
}

// WriteStatus writes the picker's state to w, a few lines each starting
// "picker:", for the swarm's status dump.
func (p *Picker) WriteStatus(w io.Writer) {
	s := p.Status()
	if s.Missing == 0 {
		fmt.Fprintf(w, "picker: all %d pieces verified; peers known: %d, %d of them choking us\n", s.Pieces, s.Peers, s.Choking)
		return
	}
	fmt.Fprintf(w, "picker: %d of %d pieces missing, %d partial (%d blocks in), %d on no connected peer, the rarest on %d\n",
		s.Missing, s.Pieces, s.Partial, s.BlocksReceived, s.Unavailable, s.MinAvailability)
	fmt.Fprintf(w, "picker: %d requests out, %d blocks unrequested (%d on connected peers), endgame %t; peers known: %d, %d of them choking us\n",
		s.Outstanding, s.Unrequested, s.Requestable, s.Endgame, s.Peers, s.Choking)
}
