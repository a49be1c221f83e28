package swarm

// The upload side: requests a peer queues with us, checked against the
// torrent and our choke, and cancels. The writer (send.go) serves them.

import (
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// upload is a block a peer asked us for.
type upload struct {
	piece, begin, length uint32
}

// handleRequest queues an upload after checking it against the torrent.
// Called with t.mu held.
func (p *peer) handleRequest(m *wire.Message) error {
	t := p.t
	if int(m.Index) >= t.info.NumPieces {
		return protocolError(ViolationRequest, "request for piece %d of %d", m.Index, t.info.NumPieces)
	}
	size := t.wireSize(int(m.Index))
	if m.Length == 0 || m.Length > wire.MaxRequestLength || int64(m.Begin)+int64(m.Length) > size {
		return protocolError(ViolationRequest, "request %d+%d outside piece %d of %d bytes", m.Begin, m.Length, m.Index, size)
	}
	reject := func() { p.enqueue(func(b []byte) []byte { return wire.AppendReject(b, m.Index, m.Begin, m.Length) }) }
	if !t.picker.Have(int(m.Index)) || !t.ssRevealed(p, int(m.Index)) {
		if p.fast {
			t.refused.add(RejectedNotHave)
			reject()
			return nil
		}
		return protocolError(ViolationRequestNotHave, "request for piece %d we do not have", m.Index)
	}
	if !t.servable(int(m.Index)) {
		t.refuse(p, m) // announced, but our disk failed us: not its fault
		return nil
	}
	if p.amChoking && !p.grantedFast(m.Index) {
		t.refused.add(RejectedChoked)
		if p.fast {
			reject()
		}
		return nil // a plain peer may race our choke; drop silently
	}
	p.sendMu.Lock()
	queued := len(p.uploads) - p.upHead
	if queued >= DefaultRequestQueue {
		p.sendMu.Unlock()
		return protocolError(ViolationRequestFlood, "more than %d requests queued", DefaultRequestQueue)
	}
	p.uploads = append(p.uploads, upload{m.Index, m.Begin, m.Length})
	p.sendMu.Unlock()
	p.signal()
	return nil
}

// wireSize returns how many bytes of piece pc a request may address. A v1
// piece is addressed as the v1 piece space has it: V1PieceSize, its pad
// bytes served as zeros by storage. In a torrent with v2 it is the piece
// length for every piece, not PieceSize: BEP 52 lets the last piece of a
// file end early, but libtorrent addresses every piece as if each file,
// the last one too, were followed by zero padding up to the piece
// boundary, and asks for whole blocks across that gap; we serve the gap
// as zeros (send.go). That covers V1PieceSize, which a v1 peer on a hybrid
// asks for, as well.
func (t *Torrent) wireSize(pc int) int64 {
	if t.info.Format == piece.FormatV1 {
		return t.info.V1PieceSize(pc)
	}
	return t.info.PieceLength
}

// cancelUpload drops a queued upload; a fast peer gets a reject instead,
// as BEP 6 asks every request to be answered.
func (p *peer) cancelUpload(index, begin, length uint32) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	for i := p.upHead; i < len(p.uploads); i++ {
		u := &p.uploads[i]
		if u.piece == index && u.begin == begin && u.length == length {
			u.length = 0 // skipped by the writer
			if p.fast {
				p.ctrl = wire.AppendReject(p.ctrl, index, begin, length)
			}
			return
		}
	}
}
