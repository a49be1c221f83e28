package swarm

// BEP 52 hash serving: answering a peer's hash request from the file's
// merkle tree, with leaf hashes read from disk below the piece layer.

import (
	"fmt"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// handleHashRequest answers a BEP 52 hash request from the file's tree,
// reading leaves from disk when asked below the piece layer. Called
// without t.mu: it takes the lock only to look things up, so a peer asking
// for leaf hashes cannot stall the torrent while a piece is read and
// hashed. The reader goroutine serves one request at a time per peer.
func (p *peer) handleHashRequest(m *wire.Message) error {
	t := p.t
	r := piece.HashRequest{PiecesRoot: m.PiecesRoot, BaseLayer: int(m.BaseLayer), Index: int(m.Index), Length: int(m.Length), ProofLayers: int(m.ProofLayers)}
	reject := func() error {
		t.refused.add(RejectedHashRequest)
		p.enqueue(func(b []byte) []byte {
			return wire.AppendHashReject(b, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers)
		})
		return nil
	}
	if !p.v2 {
		// BEP 52 hash messages are for v2 connections: a v1 peer of a
		// hybrid, or any peer of a v1 torrent, gets none. libtorrent drops
		// such a peer; a reject costs us less and tells it as much.
		return reject()
	}
	fi := -1
	for i := range t.info.Files {
		if !t.info.HasV2() {
			break // a v1 torrent has no merkle trees to answer from
		}
		if t.info.Files[i].PiecesRoot == m.PiecesRoot && t.info.Files[i].Length > 0 {
			fi = i
			break
		}
	}
	if fi < 0 || r.Validate(t.info.Files[fi].Length) != nil {
		return reject()
	}
	t.mu.Lock()
	tree, err := t.tree(fi)
	t.mu.Unlock()
	if err != nil {
		return reject()
	}
	f := &t.info.Files[fi]
	hashes, err := tree.Hashes(r, func(pf int) ([]piece.Hash, error) {
		pc := f.FirstPiece + pf
		t.mu.Lock()
		have := t.picker.Have(pc) && t.servable(pc)
		t.mu.Unlock()
		if !have {
			return nil, fmt.Errorf("piece %d not here", pc)
		}
		leaves, err := t.st.PieceLeaves(pc)
		// A peer asks for a piece's leaves when the piece failed for it:
		// ours may be what changed. Having just read it, check it, so we
		// neither vouch for it nor go on serving it if it no longer matches.
		if err == nil && !t.c.cfg.NoServeChecks && !t.leavesMatch(pc, leaves) {
			err = errPieceChanged(pc)
			t.mu.Lock()
			t.pieceBad(pc)
			t.mu.Unlock()
		} else if err != nil {
			t.mu.Lock()
			t.readFailed(fi, err)
			t.mu.Unlock()
		}
		return leaves, err
	})
	if err != nil {
		return reject()
	}
	buf := make([]byte, 0, 32*len(hashes))
	for _, h := range hashes {
		buf = append(buf, h[:]...)
	}
	p.enqueue(func(b []byte) []byte {
		return wire.AppendHashes(b, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers, buf)
	})
	return nil
}

// tree returns file fi's merkle tree above the piece layer, built once.
// A file whose piece layer is not known (a hybrid still fetching it, its
// pieces verified by SHA-1 alone) has none: hash requests for it are
// rejected, never answered with hashes nothing proved. Called with t.mu
// held.
func (t *Torrent) tree(fi int) (*piece.FileTree, error) {
	if tr := t.trees[fi]; tr != nil {
		return tr, nil
	}
	var layer []piece.Hash
	if fi < len(t.meta.Layers) {
		layer = t.meta.Layers[fi]
	}
	tr, err := piece.NewFileTree(t.info, fi, layer)
	if err != nil {
		return nil, err
	}
	t.trees[fi] = tr
	return tr, nil
}
