package swarm

// Serving data that changed after it was hashed (the second of serve.go's
// two faults). storage notices a file's new size or mtime; its pieces are
// then checked against their hashes again, each before it is next served
// and the bad ones again in the background, since a later change may mend
// them. A piece that no longer matches is not served nor announced to new
// peers. What storage cannot see (same size, mtime put back) is caught
// when a peer asks for a piece's leaf hashes, or leaves right after we
// served it: both are what a downloader does when our data failed it.

import (
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// Tuning of the checks of changed data.
const (
	// verifyQueue bounds the pieces waiting to be checked in the
	// background; a trigger that finds it full is dropped, and the piece
	// is checked before it is next served if its file is suspect.
	verifyQueue = 64
	// servedRecently: a peer that leaves within this of our last write to
	// it may have left because what we sent it failed its hash.
	servedRecently = 5 * time.Second
)

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
	t.srv.setAlert()
}

// setAlert keeps alert set while a file is suspect or a piece is bad: a
// writer that took an upload from its queue before pieceBad purged it
// must still refuse the piece, even once the check that found it bad was
// the last its file needed. Called with t.mu held.
func (s *serveState) setAlert() {
	s.alert.Store(s.suspects > 0 || s.bad != nil && s.bad.Count() > 0)
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
	s.setAlert()
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
		t.srv.setAlert()
		f.bad--
		f.newGood++
		t.st.MarkVerified(pc)
		t.announce([]uint32{uint32(pc)})
	}
}

// queueVerify has piece pc checked against its hash in the background.
// Called with t.mu held.
func (t *Torrent) queueVerify(pc int) {
	if t.closing {
		return
	}
	if t.srv.verifyq == nil {
		t.srv.verifyq = make(chan int, verifyQueue)
	}
	select {
	case t.srv.verifyq <- pc:
	default: // full: this trigger is dropped
	}
	if !t.srv.verifying {
		// Added under t.mu, after the closing check, as addConn does.
		t.srv.verifying = true
		q := t.srv.verifyq
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.verifyLoop(q)
		}()
	}
}

// verifyLoop checks queued pieces one at a time until the queue is empty
// or the torrent closes; queueVerify starts it again for the next piece.
func (t *Torrent) verifyLoop(q <-chan int) {
	scratch := make([]piece.Hash, 0, 64)
	for {
		t.mu.Lock()
		var pc int
		select {
		case pc = <-q:
		default:
			t.srv.verifying = false
			t.mu.Unlock()
			return
		}
		if t.ctx.Err() != nil {
			t.srv.verifying = false
			t.mu.Unlock()
			return
		}
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

// errPieceChanged refuses a hash request for a piece that no longer
// matches on our disk.
func errPieceChanged(pc int) error {
	return fmt.Errorf("piece %d no longer matches its hash on disk", pc)
}
