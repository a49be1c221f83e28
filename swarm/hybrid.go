package swarm

// Hybrid torrents whose two halves do not line up: a torrent whose v1
// piece hashes and v2 merkle roots describe different data stops with an
// InconsistentError; and a hybrid whose piece layers are missing (reached
// by btih in a swarm of v1-only peers, or a .torrent that left them out)
// downloads by SHA-1 alone while the layers are fetched from whichever v2
// peer turns up, each file's pieces checked against both hashes once its
// layer is in.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// inconsistentRepeats is how many times a hybrid piece may pass its SHA-1
// and fail its merkle root before the torrent is deemed inconsistent.
const inconsistentRepeats = 2

// maxHashReqs bounds our hash requests outstanding at one peer.
const maxHashReqs = 4

// InconsistentError is why a hybrid torrent stopped downloading: a piece
// that matches one of its hash formats does not match the other, so the
// torrent's v1 and v2 descriptions of the data disagree and no peer can
// ever send the piece. It is the torrent's fault, not the peers': nobody
// is blamed for it.
type InconsistentError struct {
	// Piece is the piece, counted from 0.
	Piece int
	// V2OK says the piece matched its merkle root and failed its SHA-1;
	// false, the reverse.
	V2OK bool
}

// Error names the piece and says which hash it matched.
func (e *InconsistentError) Error() string {
	if e.V2OK {
		return fmt.Sprintf("piece %d matches the torrent's v2 hash but not its v1 hash: the torrent's v1 and v2 hashes disagree, so it cannot be completed", e.Piece)
	}
	return fmt.Sprintf("piece %d matches the torrent's v1 hash but not its v2 hash: the torrent's v1 and v2 hashes disagree, so it cannot be completed", e.Piece)
}

// stopInconsistent stops the download: piece pc showed the torrent's two
// hash formats disagree (InconsistentError). Called with t.mu held.
func (t *Torrent) stopInconsistent(pc int, v2ok bool) {
	err := &InconsistentError{Piece: pc, V2OK: v2ok}
	// Info, not Error: Err carries it to the caller, who reports it.
	t.log.Info("download stopped: the torrent is inconsistent; no peer is blamed", "piece", pc, "err", err)
	t.stopWith(err)
}

// leafSums turns a hybrid piece's leaf hashes into the block sums smart
// ban compares, for a piece checked by SHA-1 alone: 64 bits of a block's
// SHA-256 serve as its blockSum does, and they are hashed already.
func leafSums(leaves []piece.Hash) []uint64 {
	sums := make([]uint64, len(leaves))
	for i := range leaves {
		sums[i] = binary.LittleEndian.Uint64(leaves[i][:8])
	}
	return sums
}

// speaksV2 reports whether the torrent takes part in BEP 52: it has v2,
// and the client is not playing a v1-only client (Config.TestV1Only).
func (t *Torrent) speaksV2() bool {
	return t.info.HasV2() && !(t.c.cfg.TestV1Only && t.info.Format == piece.FormatHybrid)
}

// layerFetch is the fetch of one file's piece layer from v2 peers, in
// runs of up to maxLayerRequest hashes, each proven up to the file's root
// as it arrives.
type layerFetch struct {
	fi     int
	layer  []piece.Hash // NumPieces long, filled run by run
	chunks []layerChunk
	left   int // runs not received yet
}

// layerChunk is one run of a layer: its request, and whom it is out at.
type layerChunk struct {
	req      piece.HashRequest
	asked    *peer // nil when not out
	deadline time.Time
	done     bool
}

// missingLayers sets up the fetch of every piece layer meta lacks.
func missingLayers(meta *piece.MetaInfo) map[int]*layerFetch {
	info := meta.Info
	var out map[int]*layerFetch
	for _, fi := range meta.MissingLayers() {
		f := &info.Files[fi]
		lf := &layerFetch{fi: fi, layer: make([]piece.Hash, f.NumPieces)}
		for index := 0; index < f.NumPieces; {
			r := info.LayerRequest(fi, index, maxLayerRequest)
			lf.chunks = append(lf.chunks, layerChunk{req: r})
			index += r.Length
		}
		lf.left = len(lf.chunks)
		if out == nil {
			out = map[int]*layerFetch{}
		}
		out[fi] = lf
	}
	return out
}

// askLayers sends the layer requests that are not out: never sent, or out
// at a peer that left, refused or did not answer in time. Each goes to a
// v2 connection with room for another hash request that has not refused
// a layer before. Called with t.mu held.
func (t *Torrent) askLayers(now time.Time) {
	for _, lf := range t.layers {
		root := t.info.Files[lf.fi].PiecesRoot
		for i := range lf.chunks {
			c := &lf.chunks[i]
			if c.done {
				continue
			}
			if c.asked != nil {
				_, there := t.peers[c.asked]
				if there && now.Before(c.deadline) {
					continue
				}
				// Still counted at the peer, which may answer late: its
				// reply is then one we asked for, not hashes nobody
				// asked for, which would drop an honest slow peer.
				c.asked = nil
			}
			var ask *peer
			for q := range t.peers {
				if q.v2 && !q.noLayers && q.hashReqs < maxHashReqs && (ask == nil || q.hashReqs < ask.hashReqs) {
					ask = q
				}
			}
			if ask == nil {
				return // no v2 peer with room: the next tick or peer tries again
			}
			c.asked, c.deadline = ask, now.Add(hashReplyTimeout)
			ask.hashReqs++
			r := c.req
			ask.enqueue(func(b []byte) []byte {
				return wire.AppendHashRequest(b, root, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))
			})
		}
	}
}

// layerChunkFor finds the run of a layer that hash message m from p
// answers. With anyAsker, a run still missing is found whoever it is out
// at now: hashes are proven before they are taken, so a late answer to a
// request given up on is as good as any. Called with t.mu held.
func (t *Torrent) layerChunkFor(p *peer, m *wire.Message, anyAsker bool) (*layerFetch, *layerChunk) {
	for _, lf := range t.layers {
		if t.info.Files[lf.fi].PiecesRoot != m.PiecesRoot {
			continue
		}
		for i := range lf.chunks {
			c := &lf.chunks[i]
			if (c.asked == p || anyAsker) && !c.done && uint32(c.req.Index) == m.Index && uint32(c.req.BaseLayer) == m.BaseLayer && uint32(c.req.Length) == m.Length {
				return lf, c
			}
		}
	}
	return nil, nil
}

// layerHashes takes a hashes message that answers one of our layer
// requests, reporting whether it did: the run is proven up to the file's
// root, and once every run of the file is in, the layer is the torrent's
// and the file's pieces are checked against both hashes from then on.
// Hashes that do not prove out are forged. p.hashReqs is already counted
// down. Called with t.mu held.
func (p *peer) layerHashes(m *wire.Message) (bool, error) {
	t := p.t
	lf, c := t.layerChunkFor(p, m, true)
	if c == nil {
		return false, nil
	}
	f := &t.info.Files[lf.fi]
	hashes := make([]piece.Hash, m.NumHashes())
	for i := range hashes {
		hashes[i] = m.Hash(i)
	}
	base, err := piece.CheckHashes(c.req, hashes, f.PiecesRoot)
	if err != nil {
		if c.asked == p {
			c.asked = nil
		}
		return true, protocolError(ViolationForgedHashes, "forged piece layer hashes %d+%d of file %d: %v", m.Index, m.Length, lf.fi, err)
	}
	copy(lf.layer[c.req.Index:], base[:min(len(base), f.NumPieces-c.req.Index)])
	c.done, c.asked = true, nil
	lf.left--
	if lf.left > 0 {
		t.askLayers(time.Now())
		return true, nil
	}
	delete(t.layers, lf.fi)
	if err := t.info.CheckLayer(lf.fi, lf.layer); err != nil {
		// Every run was proven: only a bug gets here. Start over.
		t.log.Error("piece layer does not add up; fetching it again", "file", lf.fi, "err", err)
		t.layers[lf.fi] = missingLayers(&piece.MetaInfo{Info: t.info, Layers: make([][]piece.Hash, len(t.info.Files))})[lf.fi]
		t.askLayers(time.Now())
		return true, nil
	}
	t.meta.Layers[lf.fi] = lf.layer
	t.log.Info("piece layer received; the file's pieces are checked against both hashes from now on",
		"file", lf.fi, "peer", p.addr, "layers_missing", len(t.layers))
	t.recheckWithLayer(lf.fi)
	return true, nil
}

// recheckWithLayer checks the pieces of file fi verified so far, by SHA-1
// alone, against the merkle roots its layer now gives, in the background:
// a piece that matches its SHA-1 and not its root shows the torrent
// inconsistent, which stops a download (InconsistentError) as it would
// have had the layer been there all along. Called with t.mu held, just
// after the layer arrived.
func (t *Torrent) recheckWithLayer(fi int) {
	if t.closing {
		return
	}
	f := &t.info.Files[fi]
	var had []int
	for pc := f.FirstPiece; pc < f.FirstPiece+f.NumPieces; pc++ {
		if t.picker.Have(pc) {
			had = append(had, pc)
		}
	}
	if len(had) == 0 {
		return
	}
	width := t.info.PieceWidth(fi)
	// Added under t.mu, after the closing check, as addConn does.
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		var buf []byte
		var leaves []piece.Hash
		v := v1Hashers.Get().(*piece.V1Hasher)
		defer v1Hashers.Put(v)
		for _, pc := range had {
			if t.ctx.Err() != nil {
				return
			}
			data, err := t.st.ReadPiece(pc, buf)
			if err != nil {
				continue // the serving checks deal with a file gone bad
			}
			buf = data
			v.Reset()
			v.Write(data)
			if !v.Check(t.info, pc) {
				continue // changed since it was verified: not the torrent's fault
			}
			if leaves, err = piece.PieceLeaves(bytes.NewReader(data), 0, int64(len(data)), width, leaves); err != nil {
				continue
			}
			t.mu.Lock()
			want, _ := t.meta.ExpectedRoot(pc)
			if piece.RootOfLeaves(leaves, width) != want {
				if t.seeding {
					// Complete already: the copy is the one the v1 half
					// describes, and stays.
					t.log.Warn("piece matches the torrent's v1 hash but not its v2 hash: the torrent is inconsistent", "piece", pc)
				} else {
					t.stopInconsistent(pc, false)
				}
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
		}
	}()
}

// layerRejected takes a hash reject that answers one of our layer
// requests: the peer is not asked for layers again, and the run goes to
// another. Called with t.mu held, p.hashReqs already counted down.
func (p *peer) layerRejected(m *wire.Message) {
	_, c := p.t.layerChunkFor(p, m, false)
	if c == nil {
		return
	}
	c.asked = nil
	p.noLayers = true
	p.t.askLayers(time.Now())
}
