package swarm

// The download pipeline: what to request of each peer, blocks received
// and hashed as they arrive, runs of them written by each peer's reader,
// and pieces verified against their hashes before they are announced
// with have: the merkle root in v2, the SHA-1 in v1, both in a hybrid.

import (
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// partialPiece collects what is known of a piece being downloaded: a hash
// of every block as it arrived, and who sent it, so a failing piece can be
// pinned on the peer that sent the bad block. Blocks are hashed with their
// leaf hash where the torrent has merkle trees (v2, hybrid) and with a
// cheap keyed hash for smart ban in a v1 torrent (blame.go).
type partialPiece struct {
	leaves  []piece.Hash // v2 and hybrid: each block's leaf hash
	sums    []uint64     // v1: each block's blockSum
	senders []*peer
	blocks  int // in the piece
	written int // blocks on disk
	pending int // blocks accepted but still being written
	// writtenBytes is the payload on disk: wasted if the piece is given up.
	writtenBytes int64

	// v1 holds the piece's SHA-1 so far (v1 and hybrid), fed by the
	// peers' readers with the blocks that reach the disk in order, so that a
	// piece downloaded in order is never read back; nil until its first
	// block does. Guarded by v1mu, not t.mu: hashing a block under the
	// torrent's lock would stall every peer.
	v1mu sync.Mutex
	v1   *piece.V1Hasher
}

// blockSum is the hash smart ban keeps of a v1 block: 64 bits of a hash
// keyed with a secret seed per torrent. It runs at memory speed, where a
// SHA-1 per block would double the hashing a v1 download already does,
// and a poisoner cannot make its bad block sum like the good one without
// knowing the seed, which never leaves the process: an accidental match
// is a 2^-64 chance per block.
func (t *Torrent) blockSum(data []byte) uint64 { return maphash.Bytes(t.banSeed, data) }

// v1Hashers recycles the SHA-1 state of pieces being downloaded.
var v1Hashers = sync.Pool{New: func() any { return new(piece.V1Hasher) }}

// feedV1 adds a block just written to the piece's SHA-1 if it is the next
// in order. Called by a peer's reader after the write, without t.mu.
func (pp *partialPiece) feedV1(begin int, data []byte) {
	pp.v1mu.Lock()
	defer pp.v1mu.Unlock()
	if pp.v1 == nil {
		if begin != 0 {
			return
		}
		pp.v1 = v1Hashers.Get().(*piece.V1Hasher)
		pp.v1.Reset()
	}
	if pp.v1.Len() == int64(begin) {
		pp.v1.Write(data)
	}
}

// releaseV1 gives the piece's SHA-1 state back to the pool.
func (pp *partialPiece) releaseV1() {
	pp.v1mu.Lock()
	if pp.v1 != nil {
		v1Hashers.Put(pp.v1)
		pp.v1 = nil
	}
	pp.v1mu.Unlock()
}

// blockKey names a block by piece and byte offset.
type blockKey struct{ piece, begin uint32 }

// updateInterest tells the peer whether it has something we want.
// Called with t.mu held.
func (p *peer) updateInterest() {
	// A download stopped by a disk error wants nothing more.
	want := p.t.stopErr == nil && p.t.picker.Interesting(p.pid)
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
	if err := waitLimits(t.ctx, n, t.downLimit.Load(), t.c.downLimit.Load()); err != nil {
		return err
	}
	p.downBytes.Add(int64(n))
	t.downloaded.Add(int64(n))
	var leaf piece.Hash
	var sum uint64
	if t.info.HasV2() {
		leaf = sha256.Sum256(m.Payload)
	} else {
		sum = t.blockSum(m.Payload)
	}
	// Padding is zeros by definition: a peer that sends anything else
	// there sent bad data, and storage would refuse to write it.
	padData := t.padded && p.padData(pc, int(m.Begin), m.Payload)

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
	if padData {
		t.wasted.Add(int64(n))
		t.strike(p, fmt.Sprintf("block %d+%d of piece %d has data where the torrent has padding", m.Begin, n, m.Index))
		t.mu.Unlock()
		return protocolError(ViolationBlock, "block %d+%d of piece %d has data in padding", m.Begin, n, m.Index)
	}
	if t.stopErr != nil {
		// The download stopped (a disk error, an inconsistent torrent):
		// blocks still in flight have nowhere to go.
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
		pp = &partialPiece{blocks: nb, senders: make([]*peer, nb)}
		if t.info.HasV2() {
			pp.leaves = make([]piece.Hash, nb)
		} else {
			pp.sums = make([]uint64, nb)
		}
		t.partial[pc] = pp
	}
	if pp.leaves != nil {
		pp.leaves[blk] = leaf
	} else {
		pp.sums[blk] = sum
	}
	pp.senders[blk] = p
	pp.pending++
	p.fill()
	t.mu.Unlock()

	// The block stays in the reader's buffer, where it was hashed, and
	// joins the run of contiguous blocks that the reader writes with one
	// positioned write before it reads the socket again (flushRun): no
	// copy, no hand-off to another goroutine, and large writes.
	r := &p.run
	if len(r.bufs) > 0 && (r.pc != pc || r.pp != pp || r.begin+r.n != int(m.Begin)) {
		p.flushRun()
	}
	if len(r.bufs) == 0 {
		r.pc, r.begin, r.n, r.pp = pc, int(m.Begin), 0, pp
	}
	r.bufs = append(r.bufs, m.Payload)
	r.n += n
	return nil
}

// blockRun is a run of accepted blocks, contiguous in one piece, that
// still lie in the reader's buffer (wire.Reader.Ready keeps them valid),
// waiting for their one write. Touched by the peer's reader only.
type blockRun struct {
	pc, begin, n int
	pp           *partialPiece
	bufs         [][]byte
}

// flushRun writes the reader's run of blocks, if any, and accounts for
// them. The reader calls it before a read that may move its buffer, and
// when a block does not continue the run. The reader is the one that
// waits for the disk: a slow disk slows the peer down (TCP backpressure)
// instead of filling memory.
func (p *peer) flushRun() {
	r := &p.run
	if len(r.bufs) == 0 {
		return
	}
	p.t.writeRun(r.pc, r.begin, r.bufs, r.pp)
	clear(r.bufs) // the reader's buffer is not ours to keep
	r.bufs = r.bufs[:0]
	r.pp = nil
}

// diskJob is an accepted block on its way to disk.
type diskJob struct {
	pc, begin, n int
	pp           *partialPiece
}

// padData reports whether a block of piece pc starting at begin has
// anything but zeros where the torrent has padding (BEP 47 pad files in a
// v1 torrent). Called by the peer's reader, without t.mu.
func (p *peer) padData(pc, begin int, data []byte) bool {
	p.spans = p.t.info.AppendSpans(p.spans[:0], pc, int64(begin), int64(len(data)))
	off := 0
	for _, s := range p.spans {
		if s.File < 0 {
			for _, c := range data[off : off+int(s.Len)] {
				if c != 0 {
					return true
				}
			}
		}
		off += int(s.Len)
	}
	return false
}

// writeRun writes bufs, contiguous blocks of piece pc from byte begin, with
// one positioned write (Storage.WriteBlocks), and accounts for each block
// as a lone write would: a 16 KiB pwrite costs about as much as a 1 MiB
// one on some file systems (ext4 here: 16 KiB writes ran 35 times slower
// per byte). Called by a peer's reader, without t.mu.
func (t *Torrent) writeRun(pc, begin int, bufs [][]byte, pp *partialPiece) {
	if len(bufs) > 1 && !t.stopped() && t.st.WriteBlocks(pc, begin, bufs) == nil {
		if t.info.HasV1() {
			off := begin
			for _, b := range bufs {
				pp.feedV1(off, b)
				off += len(b)
			}
		}
		// One lock for the run; at most its last block completes the
		// piece, as the piece's blocks are all written once.
		complete := false
		off := begin
		t.mu.Lock()
		for _, b := range bufs {
			_, c := t.blockWritten(diskJob{pc: pc, begin: off, n: len(b), pp: pp}, nil)
			complete = complete || c
			off += len(b)
		}
		t.mu.Unlock()
		if complete {
			t.finishV1(pc, pp)
		}
		return
	}
	off := begin
	for _, b := range bufs {
		j := diskJob{pc: pc, begin: off, n: len(b), pp: pp}
		off += len(b)
		var werr error
		if !t.stopped() {
			// Alone, or again block by block after the joined write
			// failed: the error is then the block's own and names its
			// file, as the download's stop must.
			werr = t.st.WriteBlock(j.pc, j.begin, b)
		}
		if werr == nil && t.info.HasV1() {
			pp.feedV1(j.begin, b)
		}
		t.mu.Lock()
		stopped, complete := t.blockWritten(j, werr)
		t.mu.Unlock()
		if complete {
			t.finishV1(pc, pp)
		}
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

// readBackChunk is how much of a piece checkV1 reads back at a time: the
// buffer of a read-back is this, not the piece (up to 256 MiB), whatever
// the number of readers completing pieces at once.
const readBackChunk = 1 << 20

// readBacks recycles the buffers of read-backs (checkV1), shared by every
// reader.
var readBacks = sync.Pool{New: func() any { return new([readBackChunk]byte) }}

// finishV1 checks piece pc, all of whose blocks are on disk, against its
// SHA-1 and hands it to pieceDone. The SHA-1 may need the piece read
// back: not under t.mu.
func (t *Torrent) finishV1(pc int, pp *partialPiece) {
	ok, rerr := t.checkV1(pc, pp)
	t.mu.Lock()
	t.pieceDone(pc, pp, ok, rerr)
	t.mu.Unlock()
}

// checkV1 completes the SHA-1 of piece pc, all of whose blocks are on disk,
// and reports whether it is the torrent's: the blocks that reached the
// disk in order were hashed then, the rest is read back a chunk at a time
// (readBackChunk). An error is a failed read of our own disk. Called by a
// peer's reader, without t.mu.
func (t *Torrent) checkV1(pc int, pp *partialPiece) (bool, error) {
	pp.v1mu.Lock()
	defer pp.v1mu.Unlock()
	if pp.v1 == nil {
		pp.v1 = v1Hashers.Get().(*piece.V1Hasher)
		pp.v1.Reset()
	}
	if size := t.info.PieceSize(pc); pp.v1.Len() < size {
		buf := readBacks.Get().(*[readBackChunk]byte)
		defer readBacks.Put(buf)
		for at := pp.v1.Len(); at < size; {
			n := int(min(size-at, readBackChunk))
			if err := t.st.ReadRange(pc, int(at), buf[:n]); err != nil {
				return false, err
			}
			pp.v1.Write(buf[:n])
			at += int64(n)
		}
	}
	return pp.v1.Check(t.info, pc), nil
}

// blockWritten accounts for a block on disk. It reports whether its write
// error just stopped the download, and whether the piece is complete and
// needs its SHA-1 finished (v1, hybrid) before pieceDone; a piece of a v2
// torrent is checked here. Called with t.mu held.
func (t *Torrent) blockWritten(j diskJob, werr error) (stopped, complete bool) {
	pp := j.pp
	pp.pending--
	if werr != nil || t.stopErr != nil {
		t.wasted.Add(int64(j.n))
	}
	switch {
	case t.stopErr != nil:
		// Stopped already: dropped, and its piece was given up.
		if werr != nil {
			t.writeErrs.add(t.log, time.Now(), "writing block", "piece", j.pc, "err", werr)
		}
		return false, false
	case werr != nil && t.ctx.Err() != nil:
		return false, false // closing: the storage may be gone already
	case werr != nil:
		// Our disk failed, not the peer, and it will fail the next block
		// too: the torrent stops downloading rather than fetch and drop
		// blocks forever.
		t.stopDownload(j.pc, t.writeFailedOn(j.pc, j.begin, j.n, werr), werr)
		t.writeErrs.add(t.log, time.Now(), "download stopped by a disk error; still serving the verified pieces",
			"file", t.diskErr.Path, "piece", j.pc, "err", werr)
		return true, false
	}
	pp.written++
	pp.writtenBytes += int64(j.n)
	if pp.written == pp.blocks && pp.pending == 0 {
		if t.info.HasV1() {
			return false, true
		}
		t.pieceDone(j.pc, pp, true, nil)
	}
	return false, false
}

// pieceDone checks a fully written piece against its hashes: its merkle
// root if the torrent has v2 and the root is known (a hybrid may still
// lack the piece layer of the piece's file, and is then checked by SHA-1
// alone), and v1ok, what checkV1 found (true for a v2 torrent), with
// v1err should the piece not be read back. Called with t.mu held.
func (t *Torrent) pieceDone(pc int, pp *partialPiece, v1ok bool, v1err error) {
	if t.partial[pc] != pp {
		// Given up while its SHA-1 was finished (an error stopped the
		// download): counted as wasted then.
		pp.releaseV1()
		return
	}
	delete(t.partial, pc)
	pp.releaseV1()
	merkleOK, rootKnown := true, false
	if t.info.HasV2() {
		fi := t.info.FileOfPiece(pc)
		width := t.info.PieceWidth(fi)
		var want piece.Hash
		want, rootKnown = t.meta.ExpectedRoot(pc)
		if rootKnown {
			// Hash a copy in the torrent's scratch: the leaves themselves
			// are kept for blame should the piece fail.
			scratch := t.scratch[:len(pp.leaves)]
			copy(scratch, pp.leaves)
			merkleOK = piece.RootOfLeaves(scratch, width) == want
		} else {
			// A v2 torrent adds no piece whose root is unknown; a hybrid
			// without the layer has the SHA-1 to go on.
			merkleOK = t.info.HasV1()
		}
	}
	if merkleOK && v1ok {
		if t.firstPiece.IsZero() {
			t.firstPiece = time.Now()
			close(t.firstPieceCh)
		}
		t.picker.HandlePieceVerified(pc)
		t.st.MarkVerified(pc)
		t.verifiedBytes.Add(t.dataBytes(pc))
		if _, failed := t.ban.failed[pc]; failed {
			if pp.sums == nil {
				pp.sums = leafSums(pp.leaves)
			}
			t.smartBanPassed(pc, pp)
		}
		delete(t.v1Passed, pc)
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
	switch {
	case v1err != nil:
		// Our disk, not the peers: nobody is blamed. Closing, the
		// storage may be gone already: no news then.
		if t.ctx.Err() == nil {
			t.log.Warn("cannot read piece back to check it; downloading it again", "piece", pc, "err", v1err)
		}
	case rootKnown && merkleOK && pp.leaves != nil:
		// A hybrid piece whose every block matches the merkle tree, which
		// proves them block by block, but whose SHA-1 fails: the torrent's
		// two descriptions of the data disagree, and no peer can send a
		// piece that satisfies both. Nobody is blamed; fetching it again
		// would fail forever, so the download stops.
		t.stopInconsistent(pc, true)
		return
	case rootKnown && !merkleOK && v1ok && t.info.HasV1():
		// The reverse: the data has the SHA-1 the torrent gives, which no
		// peer can forge, yet not its merkle root. Leaf blame would
		// convict the honest senders of the v1 description's data, so it
		// is not asked; the piece is fetched once more, perhaps from
		// others, and a second such outcome stops the download.
		t.v1Passed[pc]++
		if t.v1Passed[pc] >= inconsistentRepeats {
			t.stopInconsistent(pc, false)
			return
		}
		t.log.Warn("piece matches the torrent's v1 hash but not its v2 hash; no peer is blamed, fetching it again", "piece", pc)
	case rootKnown && !merkleOK:
		t.blame(pc, pp.leaves, pp.senders)
	default:
		// A v1 piece, or a hybrid's whose file's piece layer is not known
		// yet: smart ban, over the leaf hashes in a hybrid.
		if pp.sums == nil {
			pp.sums = leafSums(pp.leaves)
		}
		t.smartBanFailed(pc, pp)
	}
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
