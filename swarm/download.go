package swarm

// The download pipeline: what to request of each peer, blocks received
// and hashed as they arrive, the disk queue, and pieces verified against
// their merkle root before they are announced with have.

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// partialPiece collects what is known of a piece being downloaded: the
// leaf hash of every block as it arrived, and who sent it, so a failing
// piece can be pinned on the peer that sent the bad block.
type partialPiece struct {
	leaves  []piece.Hash
	senders []*peer
	written int // blocks on disk
	pending int // blocks accepted but still being written
	// writtenBytes is the payload on disk: wasted if the piece is given up.
	writtenBytes int64
}

// blockKey names a block by piece and byte offset.
type blockKey struct{ piece, begin uint32 }

// updateInterest tells the peer whether it has something we want.
// Called with t.mu held.
func (p *peer) updateInterest() {
	// A download stopped by a disk error wants nothing more.
	want := p.t.diskErr == nil && p.t.picker.Interesting(p.pid)
	if want == p.amInterested {
		return
	}
	p.amInterested = want
	if want {
		p.enqueue(wire.AppendInterested)
	} else {
		p.enqueue(wire.AppendNotInterested)
	}
}

// queueDepth is how many requests to keep outstanding at the peer.
func (p *peer) queueDepth() int {
	d := int(p.downRate * queueTime.Seconds() / wire.BlockSize)
	return min(p.peerReqq, max(minQueueDepth, min(d, maxQueueDepth)))
}

// fill tops up the request pipeline. Called with t.mu held.
func (p *peer) fill() {
	t := p.t
	p.updateInterest()
	// A fast peer that chokes us may still allow some pieces (BEP 6): the
	// picker asks it for those only.
	if p.peerChoking && !t.picker.AllowedFast(p.pid) || !p.amInterested {
		return
	}
	depth := p.queueDepth()
	free := depth - len(p.requested)
	// Refill in batches: one request per arriving block would cost the
	// writer a wake-up and a tiny write each.
	if free <= 0 || (len(p.requested) > 0 && free < max(4, depth/8)) {
		return
	}
	t.pickBuf = t.picker.PickFor(p.pid, t.pickBuf[:0], free)
	if len(t.pickBuf) == 0 {
		return
	}
	now := time.Now()
	p.sendMu.Lock()
	for _, r := range t.pickBuf {
		begin := uint32(r.Block * piece.BlockSize)
		length := uint32(t.info.BlockLen(r.Piece, r.Block))
		p.requested[blockKey{uint32(r.Piece), begin}] = now
		p.ctrl = wire.AppendRequest(p.ctrl, uint32(r.Piece), begin, length)
	}
	p.sendMu.Unlock()
	p.signal()
}

// handlePiece is the hot path: hash the block outside any lock, claim it
// in the picker, write it to disk, and verify the piece when its last
// block lands. The data is the reader's buffer, valid until the next read.
func (p *peer) handlePiece(m *wire.Message) error {
	t := p.t
	n := len(m.Payload)
	if int(m.Index) >= t.info.NumPieces {
		return protocolError(ViolationBlock, "piece %d of %d", m.Index, t.info.NumPieces)
	}
	pc, blk := int(m.Index), int(m.Begin)/piece.BlockSize
	// BlockLen is 0 past the end of the piece, which no block fits.
	if want := t.info.BlockLen(pc, blk); m.Begin%piece.BlockSize != 0 || want == 0 || n != want {
		return protocolError(ViolationBlock, "block %d+%d does not fit piece %d", m.Begin, n, m.Index)
	}
	if lim := t.c.downLimit; lim != nil {
		if err := lim.WaitN(t.ctx, n); err != nil {
			return err
		}
	}
	p.downBytes.Add(int64(n))
	t.downloaded.Add(int64(n))
	leaf := piece.Hash(sha256.Sum256(m.Payload))

	t.mu.Lock()
	k := blockKey{m.Index, m.Begin}
	if _, ok := p.requested[k]; ok {
		delete(p.requested, k)
	} else if _, ok := p.cancelled[k]; ok {
		// A late answer to a request we gave up on: still good data if the
		// block is still missing, which HandleBlock decides.
		delete(p.cancelled, k)
	} else {
		t.mu.Unlock()
		t.wasted.Add(int64(n))
		// BEP 52: a block nobody asked for closes the connection.
		return protocolError(ViolationUnrequestedBlock, "unrequested block %d+%d of piece %d", m.Begin, n, m.Index)
	}
	p.lastBlock = time.Now()
	if t.diskErr != nil {
		// The download stopped on a disk error: blocks still in flight
		// have nowhere to go.
		t.refused.add(DiscardedStoppedBlock)
		t.wasted.Add(int64(n))
		t.mu.Unlock()
		return nil
	}
	cancels, ok := t.picker.HandleBlock(p.pid, pc, blk)
	if !ok {
		t.refused.add(DiscardedDuplicateBlock)
		t.wasted.Add(int64(n))
		p.fill()
		t.mu.Unlock()
		return nil
	}
	for _, id := range cancels {
		if q := t.byID[id]; q != nil && q != p {
			if _, had := q.requested[k]; had {
				delete(q.requested, k)
				q.cancelled[k] = p.lastBlock
				q.enqueue(func(b []byte) []byte { return wire.AppendCancel(b, m.Index, m.Begin, uint32(n)) })
			}
		}
	}
	pp := t.partial[pc]
	if pp == nil {
		nb := t.info.BlocksIn(pc)
		pp = &partialPiece{leaves: make([]piece.Hash, nb), senders: make([]*peer, nb)}
		t.partial[pc] = pp
	}
	pp.leaves[blk] = leaf
	pp.senders[blk] = p
	pp.pending++
	p.fill()
	t.mu.Unlock()

	// Disk writes happen on the torrent's disk goroutines, so this reader
	// goes back to the socket at once: reading and hashing overlap with
	// writing. The block is copied out of the reader's buffer into a pooled
	// one; the queue is bounded, so a slow disk slows the peer down (TCP
	// backpressure) instead of filling memory.
	buf := blockPool.Get().(*[piece.BlockSize]byte)
	copy(buf[:], m.Payload)
	select {
	case t.diskq <- diskJob{pc: pc, begin: int(m.Begin), n: n, buf: buf, pp: pp}:
	case <-t.ctx.Done():
		blockPool.Put(buf)
		t.wasted.Add(int64(n))
		return t.ctx.Err()
	}
	return nil
}

// blockPool recycles block buffers between readers and disk writers.
var blockPool = sync.Pool{New: func() any { return new([piece.BlockSize]byte) }}

// diskJob is an accepted block on its way to disk.
type diskJob struct {
	pc, begin, n int
	buf          *[piece.BlockSize]byte
	pp           *partialPiece
}

// diskLoop writes accepted blocks and verifies pieces once their last block
// is on disk. Once a disk error stopped the download, what is still queued
// is dropped unwritten.
func (t *Torrent) diskLoop() {
	for {
		select {
		case <-t.ctx.Done():
			return
		case j := <-t.diskq:
			var werr error
			if !t.stopped() {
				werr = t.st.WriteBlock(j.pc, j.begin, j.buf[:j.n])
			}
			blockPool.Put(j.buf)
			t.mu.Lock()
			stopped := t.blockWritten(j, werr)
			t.mu.Unlock()
			if stopped {
				// Keep what was verified: the record may be all the next
				// run has to go on.
				if err := t.st.Save(); err != nil {
					t.mu.Lock()
					t.saveErrs.add(t.log, time.Now(), "saving resume record", "err", err)
					t.mu.Unlock()
				}
			}
		}
	}
}

// blockWritten accounts for a block on disk, and reports whether its write
// error just stopped the download. Called with t.mu held.
func (t *Torrent) blockWritten(j diskJob, werr error) (stopped bool) {
	pp := j.pp
	pp.pending--
	if werr != nil || t.diskErr != nil {
		t.wasted.Add(int64(j.n))
	}
	switch {
	case t.diskErr != nil:
		// Stopped already: dropped, and its piece was given up.
		if werr != nil {
			t.writeErrs.add(t.log, time.Now(), "writing block", "piece", j.pc, "err", werr)
		}
		return false
	case werr != nil && t.ctx.Err() != nil:
		return false // closing: the storage may be gone already
	case werr != nil:
		// Our disk failed, not the peer, and it will fail the next block
		// too: the torrent stops downloading rather than fetch and drop
		// blocks forever.
		t.stopDownload(j.pc, werr)
		t.writeErrs.add(t.log, time.Now(), "download stopped by a disk error; still serving the verified pieces",
			"file", t.diskErr.Path, "piece", j.pc, "err", werr)
		return true
	}
	pp.written++
	pp.writtenBytes += int64(j.n)
	if pp.written == len(pp.leaves) && pp.pending == 0 {
		t.pieceDone(j.pc, pp)
	}
	return false
}

// pieceDone checks a fully written piece against its hash. Called with
// t.mu held.
func (t *Torrent) pieceDone(pc int, pp *partialPiece) {
	delete(t.partial, pc)
	fi := t.info.FileOfPiece(pc)
	width := t.info.PieceWidth(fi)
	want, known := t.meta.ExpectedRoot(pc)
	// Hash a copy in the torrent's scratch: the leaves themselves are kept
	// for blame should the piece fail.
	scratch := t.scratch[:len(pp.leaves)]
	copy(scratch, pp.leaves)
	got := piece.RootOfLeaves(scratch, width)
	if known && got == want {
		if t.firstPiece.IsZero() {
			t.firstPiece = time.Now()
			close(t.firstPieceCh)
		}
		t.picker.HandlePieceVerified(pc)
		t.st.MarkVerified(pc)
		t.verifiedBytes.Add(t.info.PieceSize(pc))
		t.cancelPiece(pc)
		for q := range t.peers {
			q.enqueue(func(b []byte) []byte { return wire.AppendHave(b, uint32(pc)) })
			q.updateInterest()
		}
		if t.picker.Complete() && !t.seeding {
			t.seeding = true
			close(t.done)
			t.log.Info("download complete")
			for q := range t.peers {
				q.updateInterest()
			}
		}
		return
	}
	t.wasted.Add(t.info.PieceSize(pc))
	t.picker.HandlePieceFailed(pc)
	t.st.MarkMissing(pc)
	t.blame(pc, pp.leaves, pp.senders)
	for q := range t.peers {
		q.fill()
	}
}

// cancelPiece cancels requests still out for a verified piece (endgame).
func (t *Torrent) cancelPiece(pc int) {
	nb := t.info.BlocksIn(pc)
	for q := range t.peers {
		for b := range nb {
			k := blockKey{uint32(pc), uint32(b * piece.BlockSize)}
			if _, ok := q.requested[k]; ok {
				delete(q.requested, k)
				q.cancelled[k] = time.Now()
				length := uint32(t.info.BlockLen(pc, b))
				q.enqueue(func(b []byte) []byte { return wire.AppendCancel(b, k.piece, k.begin, length) })
			}
		}
	}
}
