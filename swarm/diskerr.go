package swarm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// repeatSummaryEvery is how often a run of suppressed errors is summed up
// in the log.
const repeatSummaryEvery = 10 * time.Second

// DiskError is why a torrent stopped downloading: its storage failed a
// write. A full disk, a failing one or a file swapped for a folder is a
// condition of the torrent, not of a block, so the torrent stops asking
// for blocks instead of fetching the same ones again and again; it keeps
// every verified piece on disk and in the resume record and goes on
// serving them to peers, paused with this error until closed.
type DiskError struct {
	Op    string // what failed: "writing"
	Path  string // the file, under the download folder as the storage was given it
	Piece int    // the piece being written
	Err   error  // the storage's error, in full
}

// Error names the operation, the file and the cause, without the layers of
// context in between: "writing dl/big: no space left on device".
func (e *DiskError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, diskCause(e.Path, e.Err))
}

// Unwrap gives the storage's error, so errors.Is finds syscall.ENOSPC and
// the like.
func (e *DiskError) Unwrap() error { return e.Err }

// diskCause is what went wrong with file path, without repeating it.
func diskCause(path string, err error) error {
	var le *storage.LayoutError
	if errors.As(err, &le) {
		if le.Path == path {
			return errors.New(le.What)
		}
		return le
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Err returns why the torrent stopped downloading (a *DiskError, or an
// *InconsistentError for a hybrid whose two descriptions of the data
// disagree), or nil while nothing stopped it.
func (t *Torrent) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopErr
}

// Failed is closed when an error stops the download; Err says which. A
// caller waiting for Done should wait for this too.
func (t *Torrent) Failed() <-chan struct{} { return t.failed }

// stopped reports whether the download was stopped by an error.
func (t *Torrent) stopped() bool {
	select {
	case <-t.failed:
		return true
	default:
		return false
	}
}

// stopDownload puts the torrent in its failed state after a write to file
// fi of piece pc failed (stopWith). Called with t.mu held, once.
func (t *Torrent) stopDownload(pc, fi int, werr error) {
	t.diskErr = &DiskError{
		Op:    "writing",
		Path:  filepath.Join(append([]string{t.st.Dir()}, t.info.DiskPath(fi)...)...),
		Piece: pc,
		Err:   werr,
	}
	t.stopWith(t.diskErr)
}

// stopWith puts the torrent in its failed state for err: nothing more is
// asked of peers and what is still out is cancelled, peers are told we
// want nothing, and pieces only partly written are given up, their bytes
// counted as wasted. Verified pieces stay and are still served. Called
// with t.mu held; only the first error stops the torrent.
func (t *Torrent) stopWith(err error) {
	if t.stopErr != nil {
		return
	}
	t.stopErr = err
	close(t.failed)
	now := time.Now()
	for q := range t.peers {
		if len(q.requested) > 0 {
			q.sendMu.Lock()
			for k := range q.requested {
				blk := int(k.begin) / piece.BlockSize
				t.picker.HandleTimeout(q.pid, int(k.piece), blk)
				length := uint32(t.info.BlockLen(int(k.piece), blk))
				q.ctrl = wire.AppendCancel(q.ctrl, k.piece, k.begin, length)
				// A block already on its way is still answered: it must
				// count as a late answer, not as unrequested.
				q.cancelled[k] = now
			}
			q.sendMu.Unlock()
			clear(q.requested)
			q.signal()
		}
		q.updateInterest()
	}
	for p, pp := range t.partial {
		t.wasted.Add(pp.writtenBytes)
		delete(t.partial, p)
		t.picker.HandlePieceFailed(p)
	}
}

// writeFailedOn names the file a failed write of bytes [begin, begin+n)
// of piece pc went to: the piece's only file in a torrent with v2; in a v1
// torrent, where a block may cross files, the one its data spans that the
// error names, else the first. Called with t.mu held.
func (t *Torrent) writeFailedOn(pc, begin, n int, werr error) int {
	first := t.info.FileOfPiece(pc)
	if t.info.Format != piece.FormatV1 {
		return first
	}
	t.spans = t.info.AppendSpans(t.spans[:0], pc, int64(begin), int64(n))
	first = -1
	for _, s := range t.spans {
		if s.File < 0 {
			continue
		}
		if first < 0 {
			first = s.File
		}
		if strings.Contains(werr.Error(), filepath.Join(t.info.DiskPath(s.File)...)) {
			return s.File
		}
	}
	if first < 0 {
		return t.info.FileOfPiece(pc)
	}
	return first
}

// repeatLog logs the first of a run of like errors and only counts the
// rest, summing them up at most every repeatSummaryEvery and at close: a
// failing disk must cost a few log lines, not one per block.
type repeatLog struct {
	level  slog.Level
	msg    string    // names the kind in summaries
	logged bool      // the first one is out
	n      int       // suppressed since the last line
	last   time.Time // of the last line
}

// add logs the error described by msg and args, or counts it if one of
// its kind was logged already. Called with t.mu held.
func (r *repeatLog) add(l *slog.Logger, now time.Time, msg string, args ...any) {
	if r.logged {
		r.n++
		return
	}
	r.logged, r.last = true, now
	l.Log(context.Background(), r.level, msg, args...)
}

// flush sums up the errors suppressed since the last line, if the last was
// at least repeatSummaryEvery ago or force is set. Called with t.mu held.
func (r *repeatLog) flush(l *slog.Logger, now time.Time, force bool) {
	if r.n == 0 || !force && now.Sub(r.last) < repeatSummaryEvery {
		return
	}
	l.Log(context.Background(), r.level, r.msg+": more of the same, not logged one by one", "count", r.n)
	r.n, r.last = 0, now
}
