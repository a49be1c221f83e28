package swarm

import (
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/addrbook"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// blame works out who sent a piece that failed its hash. A piece from one
// peer convicts that peer outright. Otherwise the leaf hashes of the piece
// are asked of a peer that has it; the reply is checked against the piece
// hash we trust, so even the culprit cannot lie, and each block whose leaf
// differs convicts its sender. Called with t.mu held.
func (t *Torrent) blame(pc int, leaves []piece.Hash, senders []*peer) {
	distinct := map[*peer]bool{}
	for _, s := range senders {
		if s != nil {
			distinct[s] = true
		}
	}
	if len(distinct) == 1 {
		for s := range distinct {
			t.strike(s, fmt.Sprintf("piece %d failed its hash and came from it alone", pc))
		}
		return
	}
	fi := t.info.FileOfPiece(pc)
	f := &t.info.Files[fi]
	width := t.info.PieceWidth(fi)
	if width < 2 {
		return // a one-block piece has one sender: handled above
	}
	// Ask a peer that has the piece, preferring one that sent none of it.
	var ask *peer
	for q := range t.peers {
		// Only a v2 connection may be sent a hash request (BEP 52).
		if !q.v2 || q.hashReqs >= 4 || !t.peerHas(q, pc) {
			continue
		}
		if ask == nil || (distinct[ask] && !distinct[q]) {
			ask = q
		}
	}
	if ask == nil {
		t.log.Info("piece failed its hash; no peer to ask for its leaf hashes", "piece", pc)
		return
	}
	r := t.info.LeafRequest(pc)
	t.suspects[pc] = &suspect{leaves: leaves, senders: senders, asked: ask, deadline: time.Now().Add(hashReplyTimeout)}
	ask.hashReqs++
	root := f.PiecesRoot
	ask.enqueue(func(b []byte) []byte {
		return wire.AppendHashRequest(b, root, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))
	})
}

// peerHas reports whether q announced piece pc. The picker keeps peers'
// bitfields; availability alone cannot say who, so ask it per peer.
func (t *Torrent) peerHas(q *peer, pc int) bool { return t.picker.PeerHas(q.pid, pc) }

// strike records proven bad data from a peer and bans it after
// strikesToBan. Called with t.mu held.
func (t *Torrent) strike(p *peer, why string) {
	keys := addrbook.Keys(p.addr, p.id)
	// Bounded: a peer with endless addresses could otherwise grow these
	// forever. Forgetting strikes only delays a ban; a full ban list stops
	// growing and the oldest connections' bans stay.
	if len(t.strikes) >= maxStrikeEntries {
		clear(t.strikes)
	}
	n := 0
	for _, k := range keys {
		t.strikes[k]++
		n = max(n, t.strikes[k])
	}
	t.log.Warn("bad data from peer", "peer", p.addr, "client", clientName(p.id), "why", why, "strikes", n)
	if n >= strikesToBan {
		// Ban counts a peer once: bad pieces still in flight strike it
		// again. The hold keeps its address off should the ban list be
		// full.
		t.addressBook.Ban(keys...)
		t.addressBook.Hold(p.addr, time.Now().Add(24*time.Hour))
		p.close(fmt.Errorf("%w after %d pieces of bad data", errBanned, n))
	}
}

// handleHashes matches a hashes reply to the failed piece it was asked for.
// Called with t.mu held.
func (p *peer) handleHashes(m *wire.Message) error {
	t := p.t
	if !p.v2 {
		return protocolError(ViolationUnaskedHashes, "BEP 52 hashes on a v1 connection")
	}
	if p.hashReqs == 0 {
		return protocolError(ViolationUnaskedHashes, "hashes nobody asked for")
	}
	p.hashReqs--
	for pc, s := range t.suspects {
		r := t.info.LeafRequest(pc)
		if s.asked != p || r.PiecesRoot != m.PiecesRoot || uint32(r.Index) != m.Index || uint32(r.Length) != m.Length || m.BaseLayer != 0 {
			continue
		}
		delete(t.suspects, pc)
		hashes := make([]piece.Hash, m.NumHashes())
		for i := range hashes {
			hashes[i] = m.Hash(i)
		}
		want, _ := t.meta.ExpectedRoot(pc)
		r.ProofLayers = int(m.ProofLayers)
		good, err := piece.CheckHashes(r, hashes, want)
		if err != nil {
			// The honest answer hashes to the piece hash; this one does not.
			return protocolError(ViolationForgedHashes, "forged leaf hashes for piece %d: %v", pc, err)
		}
		bad := map[*peer]int{}
		for b, leaf := range s.leaves {
			if leaf != good[b] && s.senders[b] != nil {
				bad[s.senders[b]]++
			}
		}
		for q, n := range bad {
			t.provenBlocks += n
			t.strike(q, fmt.Sprintf("%d blocks of piece %d do not match their leaf hashes", n, pc))
		}
		return nil
	}
	return nil // a late reply to a request we gave up on
}

// suspect is a failed piece whose leaf hashes were asked of a peer.
type suspect struct {
	leaves   []piece.Hash
	senders  []*peer
	asked    *peer
	deadline time.Time
}
