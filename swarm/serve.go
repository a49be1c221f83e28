package swarm

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Serving through disk faults. What we serve can go bad under us in two
// ways, and neither is the asking peer's fault:
//
//   - A file cannot be read (removed, truncated, replaced by a folder, an
//     I/O error). That is a condition of the file, not of a block: the file
//     is marked unreadable, every request for it is refused (a reject to a
//     fast peer, a choke to a plain one) so the downloader is told rather
//     than left waiting, the cause is logged once, and the file is probed
//     with back-off until it can be read again.
//   - A file changed after it was hashed (storage notices a new size or
//     mtime). Its pieces are then checked against their hashes again, each
//     before it is next served; one that no longer matches is not served
//     nor announced to new peers. A piece failing a check while its file
//     looked unchanged makes the whole file suspect, and a peer asking for
//     a piece's leaf hashes (it failed for them) has our copy checked first.
//     That is servecheck.go's; the file state both share, the unreadable
//     files and the once-a-second care (serveTick) are here.
//
// Repeated troubles are counted and logged at most once per faultLogEvery
// per file, never per block.

// Tuning of serving through disk faults.
const (
	// probeFirst is how long an unreadable file waits before it is tried
	// again; each failed try doubles the wait, up to probeMax.
	probeFirst = time.Second
	probeMax   = 16 * time.Second
	// maxProbesPerTick bounds the files tried at each tick, so a torrent of
	// many files whose folder vanished costs a few syscalls a second.
	maxProbesPerTick = 16
	// faultLogEvery is the least time between two lines about one file's
	// troubles of one kind; what happens in between is counted.
	faultLogEvery = time.Minute
)

// serveState is what a torrent knows of faults in the data it serves.
// Guarded by t.mu, save alert.
type serveState struct {
	// alert is set while some file is suspect or some piece bad
	// (setAlert): the writers then check a piece before reading it.
	// Without it they take no lock.
	alert    atomic.Bool
	files    map[int]*fileFault // nil while no file has had trouble
	suspects int                // files with suspect set
	gen      int                // numbers changes, so a check that raced one is not trusted
	bad      *bitfield.Bitfield // pieces found not to match their hash; nil until one is
	checked  *bitfield.Bitfield // pieces of suspect files checked since the change
	verifyq  chan int           // pieces to check in the background; nil until needed
	// verifying is set while verifyLoop runs: it ends once verifyq is
	// drained, so that a seed at rest keeps no goroutine for it.
	verifying bool
}

// fileFault is the trouble one file is in.
type fileFault struct {
	unreadable bool
	cause      error
	nextProbe  time.Time
	backoff    time.Duration

	suspect   bool // changed since its pieces were checked
	unchecked int  // pieces of a suspect file not checked since
	gen       int  // the change that made it suspect
	bad       int  // pieces of the file in serveState.bad

	// Counted since the last line of their kind, and when that was.
	refused, newBad, newGood, changes                int
	loggedFault, loggedBad, loggedGood, loggedChange time.Time
}

func (f *fileFault) idle() bool {
	return !f.unreadable && !f.suspect && f.bad == 0 && f.refused == 0 && f.newBad == 0 && f.newGood == 0 && f.changes == 0
}

// fault returns file fi's record, making one. Called with t.mu held.
func (t *Torrent) fault(fi int) *fileFault {
	s := &t.srv
	if s.files == nil {
		s.files = map[int]*fileFault{}
	}
	f := s.files[fi]
	if f == nil {
		f = &fileFault{}
		s.files[fi] = f
	}
	return f
}

// filePath names file fi for logs as the user knows it.
func (t *Torrent) filePath(fi int) string {
	return filepath.Join(t.st.Dir(), filepath.Join(t.info.DiskPath(fi)...))
}

// pieceRange is file fi's pieces, [lo, hi).
func (t *Torrent) pieceRange(fi int) (lo, hi int) {
	f := &t.info.Files[fi]
	return f.FirstPiece, f.FirstPiece + f.NumPieces
}

// filesOf is the files piece pc holds data of, [lo, hi): one in a torrent
// with v2, where pieces never span files, and as many as the piece crosses
// in a v1 torrent (pad and empty files among them, which never have a
// fault).
func (t *Torrent) filesOf(pc int) (lo, hi int) {
	lo = t.info.FileOfPiece(pc)
	if t.info.Format != piece.FormatV1 {
		return lo, lo + 1
	}
	end := int64(pc+1) * t.info.PieceLength
	for hi = lo + 1; hi < len(t.info.Files) && t.info.Files[hi].Offset < end; hi++ {
	}
	return lo, hi
}

// servable reports whether a request for piece pc, which we have, may be
// queued. Called with t.mu held; costs nothing while no file had trouble.
func (t *Torrent) servable(pc int) bool {
	s := &t.srv
	if s.bad != nil && s.bad.Has(pc) {
		return false
	}
	if s.files == nil {
		return true
	}
	lo, hi := t.filesOf(pc)
	for fi := lo; fi < hi; fi++ {
		if f := s.files[fi]; f != nil && f.unreadable {
			return false
		}
	}
	return true
}

// servableHave is what we can serve, for a new peer's bitfield: pieces we
// have, less those of unreadable files and those that no longer match.
// Called with t.mu held.
func (t *Torrent) servableHave() *bitfield.Bitfield {
	have := t.picker.HaveBitfield()
	s := &t.srv
	if s.bad != nil {
		for x := s.bad.NextSet(0); x >= 0; x = s.bad.NextSet(x + 1) {
			have.Clear(x)
		}
	}
	for fi, f := range s.files {
		if f.unreadable {
			lo, hi := t.pieceRange(fi)
			for x := lo; x < hi; x++ {
				have.Clear(x)
			}
		}
	}
	return have
}

// refuse answers a request we will not serve: a fast peer gets a reject,
// a plain one a choke, the only refusal BEP 3 has. Either way the peer
// knows and stays connected: the fault is ours. Called with t.mu held.
func (t *Torrent) refuse(p *peer, m *wire.Message) {
	t.refused.add(RejectedServeFault)
	if f := t.srv.files[t.info.FileOfPiece(int(m.Index))]; f != nil {
		f.refused++
	}
	if p.fast {
		p.enqueue(func(b []byte) []byte { return wire.AppendReject(b, m.Index, m.Begin, m.Length) })
	} else if !p.amChoking {
		t.choker.Choke(p)
	}
}

// serveBlock reads the block of upload u into buf for sending, or reports
// false when it must be refused: its piece no longer matches, or its file
// cannot be read. Called by a peer's writer, without locks.
func (t *Torrent) serveBlock(u upload, buf []byte) bool {
	pc := int(u.piece)
	if t.srv.alert.Load() && !t.checkBeforeServing(pc) {
		return false
	}
	_, err := t.st.ReadBlock(pc, int(u.begin), buf)
	if err == nil {
		return true
	}
	fi := t.info.FileOfPiece(pc)
	if errors.Is(err, storage.ErrChanged) {
		// Noticed by the open: deal with it now, not at the next tick.
		// A v1 piece may span files: whichever changed is dealt with.
		changed := []int{fi}
		if lo, hi := t.filesOf(pc); hi-lo > 1 {
			changed = t.st.ChangedFiles(nil)
		}
		t.mu.Lock()
		for _, c := range changed {
			t.fileChanged(c)
		}
		t.mu.Unlock()
		if !t.checkBeforeServing(pc) {
			return false
		}
		if _, err = t.st.ReadBlock(pc, int(u.begin), buf); err == nil {
			return true
		}
		if errors.Is(err, storage.ErrChanged) {
			return false // changing as we speak: refuse this one, not the file
		}
	}
	fi = t.failedFile(pc, fi)
	t.mu.Lock()
	t.readFailed(fi, err)
	t.mu.Unlock()
	return false
}

// failedFile picks, of the files piece pc spans, the one a read of it
// failed on: the first that a probe finds unreadable, else fi. In a
// torrent with v2 a piece lies in one file, fi. Called without locks: it
// may open files.
func (t *Torrent) failedFile(pc, fi int) int {
	lo, hi := t.filesOf(pc)
	if hi-lo < 2 {
		return fi
	}
	for c := lo; c < hi; c++ {
		if f := &t.info.Files[c]; !f.Pad && f.Length > 0 && t.st.Probe(c) != nil {
			return c
		}
	}
	return fi
}

// readFailed marks file fi unreadable after err, once: later failures are
// counted. Called with t.mu held.
func (t *Torrent) readFailed(fi int, err error) {
	if errors.Is(err, storage.ErrClosed) || t.ctx.Err() != nil {
		return // shutting down: nothing is wrong with the file
	}
	f := t.fault(fi)
	if f.unreadable {
		f.refused++
		return
	}
	now := time.Now()
	f.unreadable, f.cause = true, err
	f.backoff, f.nextProbe = probeFirst, now.Add(probeFirst)
	t.setSuspect(f, false)
	if now.Sub(f.loggedFault) >= faultLogEvery {
		t.log.Error("cannot read file; not serving it until it can be read again", "path", t.filePath(fi), "err", err)
		f.loggedFault = now
	} else {
		f.refused++ // a relapse soon after: the next summary tells
	}
	lo, hi := t.pieceRange(fi)
	t.purgeUploads(fi, lo, hi)
}

// fileReadable puts file fi back in service after a probe read it. Its
// content may not be what was hashed, so each piece is checked before it
// is served again. Called with t.mu held.
func (t *Torrent) fileReadable(fi int, f *fileFault) {
	f.unreadable, f.cause = false, nil
	t.log.Info("file can be read again; serving it", "path", t.filePath(fi), "refused", f.refused)
	f.refused = 0
	t.makeSuspect(fi, f)
	t.st.ClearChanged(fi)
	// Peers were refused these pieces, or not shown them: show them again.
	lo, hi := t.pieceRange(fi)
	var ps []uint32
	for x := lo; x < hi; x++ {
		if t.picker.Have(x) && (t.srv.bad == nil || !t.srv.bad.Has(x)) {
			ps = append(ps, uint32(x))
		}
	}
	t.announce(ps)
}

// announce sends haves for pieces to every peer; a super-seeding peer,
// shown pieces one at a time, hears only of those it was shown. Called
// with t.mu held.
func (t *Torrent) announce(ps []uint32) {
	if len(ps) == 0 {
		return
	}
	for q := range t.peers {
		q.enqueue(func(b []byte) []byte {
			for _, x := range ps {
				if t.ssRevealed(q, int(x)) {
					b = wire.AppendHave(b, x)
				}
			}
			return b
		})
	}
}

// purgeUploads refuses the uploads queued for pieces [lo, hi) of file fi:
// rejects to fast peers, a choke to plain ones. Called with t.mu held.
func (t *Torrent) purgeUploads(fi, lo, hi int) {
	n := 0
	for q := range t.peers {
		choke := false
		q.sendMu.Lock()
		for i := q.upHead; i < len(q.uploads); i++ {
			u := &q.uploads[i]
			if u.length == 0 || int(u.piece) < lo || int(u.piece) >= hi {
				continue
			}
			if q.fast {
				q.ctrl = wire.AppendReject(q.ctrl, u.piece, u.begin, u.length)
			} else {
				choke = true
			}
			u.length = 0 // skipped by the writer
			n++
		}
		q.sendMu.Unlock()
		if choke && !q.amChoking {
			t.choker.Choke(q)
		}
		q.signal()
	}
	if n > 0 {
		t.fault(fi).refused += n
	}
}

// serveTick is the once-a-second care of the data we serve: files that
// changed under us become suspect, unreadable ones are tried again, and
// what was counted since the last line about a file is logged. Called
// from run, without t.mu.
func (t *Torrent) serveTick(now time.Time) {
	for _, fi := range t.st.ChangedFiles(nil) {
		t.mu.Lock()
		t.fileChanged(fi)
		t.mu.Unlock()
	}
	t.mu.Lock()
	if t.srv.files == nil {
		t.mu.Unlock()
		return
	}
	var probe []int
	// Due within half a tick counts as due: ticks jitter, and a probe
	// missed by a millisecond would wait a whole tick more.
	due := now.Add(tickInterval / 2)
	for fi, f := range t.srv.files {
		if f.unreadable && !due.Before(f.nextProbe) && len(probe) < maxProbesPerTick {
			probe = append(probe, fi)
			f.backoff = min(2*f.backoff, probeMax)
			f.nextProbe = now.Add(f.backoff)
		}
		t.logFault(fi, f, now)
		if f.idle() {
			delete(t.srv.files, fi)
		}
	}
	if len(t.srv.files) == 0 {
		t.srv.files = nil
	}
	t.mu.Unlock()
	for _, fi := range probe {
		err := t.st.Probe(fi)
		t.mu.Lock()
		if f := t.srv.files[fi]; f != nil && f.unreadable {
			if err == nil {
				t.fileReadable(fi, f)
			} else if !errors.Is(err, storage.ErrClosed) {
				f.cause = err
			}
		}
		t.mu.Unlock()
	}
}

// logFault logs what was counted about file fi since the last line of
// each kind, at most once per faultLogEvery. Called with t.mu held.
func (t *Torrent) logFault(fi int, f *fileFault, now time.Time) {
	if f.unreadable && f.refused > 0 && now.Sub(f.loggedFault) >= faultLogEvery {
		t.log.Warn("file still cannot be read; not serving it", "path", t.filePath(fi), "err", f.cause, "refused", f.refused)
		f.refused, f.loggedFault = 0, now
	}
	if !f.unreadable {
		f.refused = 0 // reported by fileReadable
	}
	if f.changes > 0 && now.Sub(f.loggedChange) >= faultLogEvery {
		t.log.Info("file changed on disk again", "path", t.filePath(fi), "times", f.changes)
		f.changes, f.loggedChange = 0, now
	}
	if f.newBad > 0 && now.Sub(f.loggedBad) >= faultLogEvery {
		t.log.Warn("pieces no longer match the torrent: the file changed on disk; not serving them",
			"path", t.filePath(fi), "pieces", f.newBad, "unservable", f.bad)
		f.newBad, f.loggedBad = 0, now
	}
	if f.newGood > 0 && now.Sub(f.loggedGood) >= faultLogEvery {
		t.log.Info("pieces match the torrent again; serving them", "path", t.filePath(fi), "pieces", f.newGood, "unservable", f.bad)
		f.newGood, f.loggedGood = 0, now
	}
}
