package swarm

import (
	"fmt"
	"slices"
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
	if t.info.PieceWidth(t.info.FileOfPiece(pc)) < 2 {
		return // a one-block piece has one sender: handled above
	}
	t.askLeaves(pc, &suspect{leaves: leaves, senders: senders})
}

// askLeaves asks the leaf hashes of failed piece pc of a peer that has
// it, preferring one that sent none of it and skipping those that
// refused already, and records s as awaiting them; with nobody left to
// ask, the blame stays unknown. Called with t.mu held.
func (t *Torrent) askLeaves(pc int, s *suspect) {
	sent := func(q *peer) bool { return slices.Contains(s.senders, q) }
	var ask *peer
	for q := range t.peers {
		// Only a v2 connection may be sent a hash request (BEP 52).
		if !q.v2 || q.hashReqs >= maxHashReqs || !t.peerHas(q, pc) || slices.Contains(s.refused, q) {
			continue
		}
		if ask == nil || (sent(ask) && !sent(q)) {
			ask = q
		}
	}
	if ask == nil {
		delete(t.suspects, pc)
		t.log.Info("piece failed its hash; no peer to ask for its leaf hashes", "piece", pc)
		return
	}
	r := t.info.LeafRequest(pc)
	s.asked, s.deadline = ask, time.Now().Add(hashReplyTimeout)
	t.suspects[pc] = s
	ask.hashReqs++
	root := t.info.Files[t.info.FileOfPiece(pc)].PiecesRoot
	ask.enqueue(func(b []byte) []byte {
		return wire.AppendHashRequest(b, root, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))
	})
}

// leavesRejected moves a failed piece whose leaf hashes p refused (a
// seeder whose own data failed it rejects hash requests for it) on to
// another peer. Called with t.mu held.
func (p *peer) leavesRejected(m *wire.Message) {
	t := p.t
	for pc, s := range t.suspects {
		r := t.info.LeafRequest(pc)
		if s.asked != p || r.PiecesRoot != m.PiecesRoot || uint32(r.Index) != m.Index || uint32(r.Length) != m.Length || m.BaseLayer != 0 {
			continue
		}
		s.refused = append(s.refused, p)
		t.askLeaves(pc, s)
		return
	}
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
	if ok, err := p.layerHashes(m); ok {
		return err
	}
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
	refused  []*peer // peers that rejected the request, not asked again
	deadline time.Time
}

// Smart ban: finding who sent the bad block of a v1 piece, which has no
// merkle tree to ask leaf hashes of. When a piece that several peers sent
// fails its SHA-1, who sent each block and a hash of it (blockSum) are
// kept; once the piece passes, the data that passed is the truth, and each
// peer that had sent a block that differs from it is struck. A piece sent
// by one peer alone convicts it at once, as in blame.

// maxBanBlocks bounds the blocks smart ban remembers across all failed
// pieces (16 bytes each): past it the oldest failed pieces are forgotten,
// which only spares their senders a strike.
const maxBanBlocks = 1 << 16

// smartBan is what is kept of failed v1 pieces until they pass. Guarded
// by t.mu.
type smartBan struct {
	failed map[int][]banAttempt // by piece, each failed download of it
	order  []int                // pieces in the order they failed, oldest first; may hold some no longer in failed
	blocks int                  // blocks held in failed
}

// banAttempt is one failed download of a piece: each block's sender and
// blockSum.
type banAttempt struct {
	senders []*peer
	sums    []uint64
}

// smartBanFailed records who sent what of a failed v1 piece. Called with
// t.mu held.
func (t *Torrent) smartBanFailed(pc int, pp *partialPiece) {
	var lone *peer
	several := false
	for _, s := range pp.senders {
		if s == nil {
			continue
		}
		if lone == nil {
			lone = s
		} else if s != lone {
			several = true
			break
		}
	}
	if !several {
		if lone != nil {
			t.strike(lone, fmt.Sprintf("piece %d failed its hash and came from it alone", pc))
		}
		return
	}
	b := &t.ban
	if b.failed == nil {
		b.failed = map[int][]banAttempt{}
	}
	for b.blocks+len(pp.sums) > maxBanBlocks && len(b.order) > 0 {
		old := b.order[0]
		b.order = b.order[1:]
		for _, a := range b.failed[old] {
			b.blocks -= len(a.sums)
		}
		delete(b.failed, old)
	}
	if len(pp.sums) > maxBanBlocks {
		return // a piece this large could not be remembered at all
	}
	if _, ok := b.failed[pc]; !ok {
		b.order = append(b.order, pc)
	}
	// The partial piece is dropped now: its slices are the attempt's.
	b.failed[pc] = append(b.failed[pc], banAttempt{senders: pp.senders, sums: pp.sums})
	b.blocks += len(pp.sums)
	if len(b.order) > 2*len(b.failed)+16 {
		// Pieces that passed since leave stale entries: drop them, so the
		// order does not grow with every failure of a long session.
		b.order = slices.DeleteFunc(b.order, func(x int) bool { _, ok := b.failed[x]; return !ok })
	}
}

// smartBanPassed strikes the peers that sent blocks of piece pc, which has
// just passed its hash, that differ from what passed. Called with t.mu
// held.
func (t *Torrent) smartBanPassed(pc int, pp *partialPiece) {
	b := &t.ban
	attempts, ok := b.failed[pc]
	if !ok {
		return
	}
	delete(b.failed, pc)
	bad := map[*peer]int{}
	for _, a := range attempts {
		b.blocks -= len(a.sums)
		for i, s := range a.senders {
			if s != nil && i < len(pp.sums) && a.sums[i] != pp.sums[i] {
				bad[s]++
			}
		}
	}
	for q, n := range bad {
		t.provenBlocks += n
		t.strike(q, fmt.Sprintf("%d blocks of piece %d differ from the data that passed its hash", n, pc))
	}
}
