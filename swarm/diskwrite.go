package swarm

// The disk queue of a download: blocks accepted by the peers' readers
// wait here for the torrent's one disk writer, which joins contiguous
// ones into larger writes and ends once the download is done.

import (
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// blockPool recycles block buffers between readers and disk writers.
var blockPool = sync.Pool{New: func() any { return new([piece.BlockSize]byte) }}

// diskJob is an accepted block on its way to disk.
type diskJob struct {
	pc, begin, n int
	buf          *[piece.BlockSize]byte
	pp           *partialPiece
}

// makeDiskQueue makes diskq (diskStart).
func (t *Torrent) makeDiskQueue() {
	// Under t.mu for the status page, which reads its length.
	t.mu.Lock()
	t.diskq = make(chan diskJob, diskQueue)
	t.mu.Unlock()
}

// startDiskWriter starts the disk writer, diskRunning being set by the
// caller. It runs on a peer's reader, itself in t.wg, so Close's wait
// cannot have ended.
func (t *Torrent) startDiskWriter() {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.diskLoop()
	}()
}

// diskLoop writes accepted blocks and verifies pieces once their last block
// is on disk. Once a disk error stopped the download, what is still queued
// is dropped unwritten.
//
// Blocks queued one after another that are contiguous in their piece are
// written with one positioned write (writeRun): a 16 KiB pwrite costs
// about as much as a 1 MiB one on some file systems (ext4 here: 16 KiB
// writes ran 35 times slower per byte), so the writer drains what the
// readers queued and joins it. A writer that keeps up sees short runs,
// one falling behind sees long ones: it catches up by writing larger.
func (t *Torrent) diskLoop() {
	var readBuf []byte // pieces read back for their SHA-1, reused
	var stage []byte   // a run of blocks joined for one write, reused
	batch := make([]diskJob, 0, diskQueue)
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.done:
			// Done may come after the writer's last batch (a piece's
			// check finishing elsewhere): it ends then, the queue empty.
			if t.diskWriterEnds() {
				return
			}
		case j := <-t.diskq:
			batch = append(batch[:0], j)
		drain:
			for len(batch) < cap(batch) {
				select {
				case j := <-t.diskq:
					batch = append(batch, j)
				default:
					break drain
				}
			}
			for i := 0; i < len(batch); {
				n := runLen(batch[i:], maxRun)
				stage = t.writeRun(batch[i:i+n], stage, &readBuf)
				i += n
			}
			clear(batch) // drop the buffers' and pieces' references
			if t.diskWriterEnds() {
				return
			}
		}
	}
}

// diskWriterEnds reports whether the disk writer should end, and then
// clears diskRunning: once the download is done and nothing is queued, its
// goroutine and buffers (a piece read back, a joined run of up to maxRun)
// are not kept for the seeding that follows. A block still arriving (an
// endgame duplicate, a file selected again) starts another writer.
func (t *Torrent) diskWriterEnds() bool {
	select {
	case <-t.done:
	default:
		return false
	}
	if len(t.diskq) > 0 {
		return false
	}
	t.diskRunning.Store(false)
	// A block queued between the look and the store found the writer
	// running and started none: this one stays for it.
	return len(t.diskq) == 0 || !t.diskRunning.CompareAndSwap(false, true)
}

// maxRun bounds the bytes joined into one write, and so the stage buffer.
const maxRun = 1 << 20

// runLen is how many jobs at the head of jobs are contiguous blocks of
// one piece, at most limit bytes in all (at least one job).
func runLen(jobs []diskJob, limit int) int {
	n, size := 1, jobs[0].n
	for n < len(jobs) {
		prev, j := jobs[n-1], jobs[n]
		if j.pc != prev.pc || j.begin != prev.begin+prev.n || size+j.n > limit {
			break
		}
		size += j.n
		n++
	}
	return n
}

// writeRun writes a run of contiguous blocks of one piece, with one write
// through stage (grown as needed and returned for reuse) when there are
// several, and accounts for each block in order as a lone write would.
// Called by a disk writer, without t.mu.
func (t *Torrent) writeRun(run []diskJob, stage []byte, readBuf *[]byte) []byte {
	joined := false
	if len(run) > 1 && !t.stopped() {
		stage = stage[:0]
		for _, j := range run {
			stage = append(stage, j.buf[:j.n]...)
		}
		joined = t.st.WriteBlock(run[0].pc, run[0].begin, stage) == nil
	}
	for _, j := range run {
		var werr error
		if !joined && !t.stopped() {
			// Alone, or again block by block after the joined write
			// failed: the error is then the block's own and names its
			// file, as the download's stop must.
			werr = t.st.WriteBlock(j.pc, j.begin, j.buf[:j.n])
		}
		if werr == nil && t.info.HasV1() {
			j.pp.feedV1(j.begin, j.buf[:j.n])
		}
		blockPool.Put(j.buf)
		t.mu.Lock()
		stopped, complete := t.blockWritten(j, werr)
		t.mu.Unlock()
		if complete {
			// The SHA-1 may need the piece read back: not under t.mu.
			var ok bool
			var rerr error
			ok, *readBuf, rerr = t.checkV1(j.pc, j.pp, *readBuf)
			t.mu.Lock()
			t.pieceDone(j.pc, j.pp, ok, rerr)
			t.mu.Unlock()
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
	return stage
}
