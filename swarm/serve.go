package swarm

import (
	"errors"
	"fmt"
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
	// verifyQueue bounds the pieces waiting to be checked in the
	// background; a trigger that finds it full is dropped, and the piece
	// is checked before it is next served if its file is suspect.
	verifyQueue = 64
	// servedRecently: a peer that leaves within this of our last write to
	// it may have left because what we sent it failed its hash.
	servedRecently = 5 * time.Second
)

// serveState is what a torrent knows of faults in the data it serves.
// Guarded by t.mu, save alert.
type serveState struct {
	// alert is set while some file is suspect: the writers then check a
	// piece before reading it. Without it they take no lock.
	alert    atomic.Bool
	files    map[int]*fileFault // nil while no file has had trouble
	suspects int                // files with suspect set
	gen      int                // numbers changes, so a check that raced one is not trusted
	bad      *bitfield.Bitfield // pieces found not to match their hash; nil until one is
	checked  *bitfield.Bitfield // pieces of suspect files checked since the change
	verifyq  chan int           // pieces to check in the background; nil until needed
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

// checkBeforeServing reports whether piece pc may be served, checking it
// against its hash first when its file changed since. Called without
// locks: the check reads the piece.
func (t *Torrent) checkBeforeServing(pc int) bool {
	fi := t.info.FileOfPiece(pc)
	t.mu.Lock()
	if !t.servable(pc) {
		if f := t.srv.files[fi]; f != nil {
			f.refused++
		}
		t.mu.Unlock()
		return false
	}
	if !t.pieceSuspect(pc) {
		t.mu.Unlock()
		return true
	}
	gen := t.genOfPiece(pc)
	t.mu.Unlock()
	ok, err := t.verifyStored(pc, nil)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.genOfPiece(pc) != gen {
		return false // changed again meanwhile: the next request checks anew
	}
	return t.checked(pc, ok, err)
}

// pieceSuspect reports whether piece pc must be checked before it is
// served: a file it holds data of changed, and it was not checked since.
// Called with t.mu held.
func (t *Torrent) pieceSuspect(pc int) bool {
	lo, hi := t.filesOf(pc)
	for fi := lo; fi < hi; fi++ {
		if f := t.srv.files[fi]; f != nil && f.suspect {
			// checked exists once a file was made suspect.
			return !t.srv.checked.Has(pc)
		}
	}
	return false
}

// genOfPiece is the latest change that made a file of piece pc suspect:
// gens only grow, so a check that raced a change to any of them is
// caught. Called with t.mu held.
func (t *Torrent) genOfPiece(pc int) int {
	lo, hi := t.filesOf(pc)
	g := 0
	for fi := lo; fi < hi; fi++ {
		g = max(g, t.genOf(fi))
	}
	return g
}

// verifyStored reads piece pc back from disk and reports whether it still
// matches the torrent: storage checks its merkle root if the torrent has
// v2, its SHA-1 if it has v1, both from one read in a hybrid. scratch is
// for a v2 piece's leaves and may be nil. Called without locks: it reads
// the piece.
func (t *Torrent) verifyStored(pc int, scratch []piece.Hash) (bool, error) {
	t.mu.Lock()
	want, known := t.meta.ExpectedRoot(pc) // unused for a v1 torrent
	t.mu.Unlock()
	if !known && t.info.Format == piece.FormatHybrid {
		return t.verifyStoredV1(pc)
	}
	return t.st.VerifyPiece(pc, want, 0, scratch)
}

// verifyStoredV1 is verifyStored for a hybrid piece whose file's piece
// layer is not known yet, verified by its SHA-1 alone as it was
// downloaded (hybrid.go).
func (t *Torrent) verifyStoredV1(pc int) (bool, error) {
	data, err := t.st.ReadPiece(pc, nil)
	if err != nil {
		return false, err
	}
	v := v1Hashers.Get().(*piece.V1Hasher)
	defer v1Hashers.Put(v)
	v.Reset()
	v.Write(data)
	return v.Check(t.info, pc), nil
}

// genOf is the change file fi was last made suspect by. Called with t.mu
// held.
func (t *Torrent) genOf(fi int) int {
	if f := t.srv.files[fi]; f != nil {
		return f.gen
	}
	return 0
}

// checked records what checking piece pc against its hash found, and
// reports whether it may be served. Called with t.mu held.
func (t *Torrent) checked(pc int, ok bool, err error) bool {
	switch {
	case err != nil:
		t.readFailed(t.info.FileOfPiece(pc), err)
		return false
	case !ok:
		t.pieceBad(pc)
		return false
	}
	t.pieceGood(pc)
	return true
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

// fileChanged makes file fi suspect after storage saw it change behind
// our back, and lets storage serve it again. Called with t.mu held.
func (t *Torrent) fileChanged(fi int) {
	defer t.st.ClearChanged(fi)
	f := t.fault(fi)
	if f.unreadable {
		f.nextProbe = time.Time{} // the change may be its repair: look now
		return
	}
	now := time.Now()
	if now.Sub(f.loggedChange) >= faultLogEvery {
		t.log.Info("file changed on disk since it was hashed; checking each piece again before serving it", "path", t.filePath(fi))
		f.loggedChange = now
	} else {
		f.changes++
	}
	t.makeSuspect(fi, f)
}

// makeSuspect has every piece of file fi checked again before it is next
// served, and pieces found bad before checked again in the background:
// the change may have mended them. Called with t.mu held.
func (t *Torrent) makeSuspect(fi int, f *fileFault) {
	s := &t.srv
	s.gen++
	f.gen = s.gen
	t.setSuspect(f, true)
	lo, hi := t.pieceRange(fi)
	f.unchecked = hi - lo
	if s.checked == nil {
		s.checked = bitfield.New(t.info.NumPieces)
	}
	for x := lo; x < hi; x++ {
		if !s.checked.Clear(x) {
			continue
		}
		// A v1 piece shared with another suspect file was counted as
		// checked there: it is not any more.
		flo, fhi := t.filesOf(x)
		for o := flo; o < fhi; o++ {
			if g := s.files[o]; o != fi && g != nil && g.suspect {
				g.unchecked++
			}
		}
	}
	if f.bad > 0 {
		for x := s.bad.NextSet(lo); x >= 0 && x < hi; x = s.bad.NextSet(x + 1) {
			t.queueVerify(x)
		}
	}
}

// setSuspect sets f.suspect, keeping the count and alert in step. Called
// with t.mu held.
func (t *Torrent) setSuspect(f *fileFault, on bool) {
	if f.suspect == on {
		return
	}
	f.suspect = on
	if on {
		t.srv.suspects++
	} else {
		t.srv.suspects--
	}
	t.srv.alert.Store(t.srv.suspects > 0)
}

// markChecked records that piece pc was checked since its suspect files
// changed; a file is no longer suspect once all its pieces were. A v1
// piece may span files: each suspect one counts it, and a set bit in
// checked means every file of the piece suspect now has counted it
// (makeSuspect keeps that true). Called with t.mu held.
func (t *Torrent) markChecked(pc int) {
	if !t.pieceSuspect(pc) {
		return
	}
	t.srv.checked.Set(pc)
	lo, hi := t.filesOf(pc)
	for fi := lo; fi < hi; fi++ {
		if f := t.srv.files[fi]; f != nil && f.suspect {
			if f.unchecked--; f.unchecked == 0 {
				t.setSuspect(f, false)
			}
		}
	}
}

// pieceBad stops serving piece pc: it no longer matches its hash. A piece
// gone bad while its file looked unchanged says others may have too: the
// whole file becomes suspect. Called with t.mu held.
func (t *Torrent) pieceBad(pc int) {
	s := &t.srv
	fi := t.info.FileOfPiece(pc)
	f := t.fault(fi)
	if !f.suspect && !f.unreadable {
		t.makeSuspect(fi, f)
	}
	t.markChecked(pc)
	if s.bad == nil {
		s.bad = bitfield.New(t.info.NumPieces)
	}
	if !s.bad.Set(pc) {
		return
	}
	f.bad++
	f.newBad++
	t.st.MarkMissing(pc) // so the resume record does not vouch for it
	t.purgeUploads(fi, pc, pc+1)
}

// pieceGood records that piece pc matches its hash, serving it again if
// it did not before. Called with t.mu held.
func (t *Torrent) pieceGood(pc int) {
	fi := t.info.FileOfPiece(pc)
	t.markChecked(pc)
	f := t.srv.files[fi]
	if f == nil {
		return
	}
	if t.srv.bad != nil && t.srv.bad.Clear(pc) {
		f.bad--
		f.newGood++
		t.st.MarkVerified(pc)
		t.announce([]uint32{uint32(pc)})
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

// queueVerify has piece pc checked against its hash in the background.
// Called with t.mu held.
func (t *Torrent) queueVerify(pc int) {
	if t.closing {
		return
	}
	if t.srv.verifyq == nil {
		// Added under t.mu, after the closing check, as addConn does.
		q := make(chan int, verifyQueue)
		t.srv.verifyq = q
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.verifyLoop(q)
		}()
	}
	select {
	case t.srv.verifyq <- pc:
	default: // full: this trigger is dropped
	}
}

// verifyLoop checks queued pieces one at a time until the torrent closes.
func (t *Torrent) verifyLoop(q <-chan int) {
	scratch := make([]piece.Hash, 0, 64)
	for {
		select {
		case <-t.ctx.Done():
			return
		case pc := <-q:
			t.mu.Lock()
			gen := t.genOfPiece(pc)
			t.mu.Unlock()
			ok, err := t.verifyStored(pc, scratch)
			t.mu.Lock()
			if t.genOfPiece(pc) == gen {
				t.checked(pc, ok, err)
			}
			t.mu.Unlock()
		}
	}
}

// recheckServed checks again the last pieces we sent a peer that left
// right after: a downloader drops (or bans) a peer whose data failed its
// hash, and if ours changed in a way storage cannot see (same size and
// mtime), this is how we learn it. Called with t.mu held, as the peer is
// removed.
func (t *Torrent) recheckServed(p *peer) {
	p.sendMu.Lock()
	recent := p.servedN > 0 && time.Since(p.lastWrite) < servedRecently && !t.c.cfg.NoServeChecks
	served, n := p.served, min(int(p.servedN), len(p.served))
	p.sendMu.Unlock()
	if !recent {
		return
	}
	for _, pc := range served[:n] {
		if t.picker.Have(int(pc)) && t.servable(int(pc)) {
			t.queueVerify(int(pc))
		}
	}
}

// leavesMatch reports whether the leaf hashes of piece pc, as read from
// disk to answer a hash request, still make up its expected root.
func (t *Torrent) leavesMatch(pc int, leaves []piece.Hash) bool {
	fi := t.info.FileOfPiece(pc)
	nb := t.info.BlocksIn(pc)
	cp := make([]piece.Hash, nb)
	copy(cp, leaves)
	want, known := t.meta.ExpectedRoot(pc)
	return known && piece.RootOfLeaves(cp, t.info.PieceWidth(fi)) == want
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

// errPieceChanged refuses a hash request for a piece that no longer
// matches on our disk.
func errPieceChanged(pc int) error {
	return fmt.Errorf("piece %d no longer matches its hash on disk", pc)
}
