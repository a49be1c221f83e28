package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
)

// A seeder's files may change under it: edited, truncated, replaced,
// removed. Serving them as they are then sends data that fails every
// downloader's hash check, and gets the seeder banned without it noticing.
// So Storage keeps, per file, its size and mtime as last looked at, and
// flags a file whose stamp changed for a reason other than our own writes.
// Looks are cheap and few: one lstat per open file when the caller asks
// (ChangedFiles, once a second), and the fstat openFile does anyway; never
// one per block.

// stampOf is the stamp of an open file's fs.FileInfo.
func stampOf(st fs.FileInfo) FileStamp {
	return FileStamp{Size: st.Size(), ModTime: st.ModTime().UnixNano()}
}

// lookedLocked records that file fi looks like st now, flagging it
// changed when it differs from the last look for a reason other than our
// own writes (ours says the caller knows of some). Called with s.mu held.
func (s *Storage) lookedLocked(fi int, st FileStamp, ours bool) {
	f := &s.files[fi]
	switch {
	case !f.seenOK:
		f.seen, f.seenOK = st, true
	case st != f.seen:
		f.seen = st
		if !ours && !f.wrote && f.writing == 0 {
			s.flagLocked(fi)
		}
	}
}

// flagLocked marks file fi changed. Called with s.mu held.
func (s *Storage) flagLocked(fi int) {
	if !s.files[fi].changed {
		s.files[fi].changed = true
		s.changed = append(s.changed, fi)
	}
}

// Baseline takes the stamp of every file not looked at yet, so a change
// made from now on is noticed: a torrent hashed outside Check (just
// built, say) would otherwise take its first look only when a file is
// first read, too late to see that it changed since it was hashed. It
// costs one lstat per such file, as Check does.
func (s *Storage) Baseline() {
	s.mu.Lock()
	var look []int
	for i := range s.files {
		if !s.files[i].seenOK {
			look = append(look, i)
		}
	}
	s.mu.Unlock()
	stamps := make([]FileStamp, len(look))
	for k, i := range look {
		stamps[k] = s.lstamp(i)
	}
	s.mu.Lock()
	for k, i := range look {
		if f := &s.files[i]; !f.seenOK {
			f.seen, f.seenOK = stamps[k], true
		}
	}
	s.mu.Unlock()
}

// lstamp looks at file fi by its path; Size -1 means it is not there or
// not a regular file.
func (s *Storage) lstamp(fi int) FileStamp {
	if s.info.Files[fi].Pad {
		return FileStamp{Size: -1} // never on disk
	}
	if st, err := s.root.Lstat(s.paths[fi]); err == nil && st.Mode().IsRegular() {
		return stampOf(st)
	}
	return FileStamp{Size: -1}
}

// ChangedFiles appends to dst the files that changed on disk behind our
// back: it looks again (one lstat each) at the files open now, those being
// read, and reports as well files found changed when they were opened. A
// file whose size or mtime moved only through our own WriteBlock is not
// reported. The handle of a changed file is dropped, so the next read
// opens the path anew (a replaced file is read, not the old one). A file
// stays reported, and ReadBlock refuses it with ErrChanged, until
// ClearChanged.
func (s *Storage) ChangedFiles(dst []int) []int {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return dst
	}
	look := make([]int, 0, len(s.open))
	wrote := make([]bool, 0, len(s.open))
	for fi := range s.open {
		// Cleared before the look, and set by writers after their write
		// (writing covers one under way), so a write this look sees is
		// never taken for somebody else's.
		look = append(look, fi)
		wrote = append(wrote, s.files[fi].wrote)
		s.files[fi].wrote = false
	}
	s.mu.Unlock()
	stamps := make([]FileStamp, len(look))
	for k, fi := range look {
		stamps[k] = s.lstamp(fi)
	}
	var toClose []*os.File
	s.mu.Lock()
	for k, fi := range look {
		s.lookedLocked(fi, stamps[k], wrote[k])
		if h := s.open[fi]; h != nil && s.files[fi].changed {
			toClose = s.evictLocked(h, toClose)
		}
	}
	dst = append(dst, s.changed...)
	s.mu.Unlock()
	for _, f := range toClose {
		f.Close()
	}
	return dst
}

// ClearChanged says the caller has dealt with file fi's change (it will
// check the file's pieces before serving them): ReadBlock serves it again.
func (s *Storage) ClearChanged(fi int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fi < 0 || fi >= len(s.files) || !s.files[fi].changed {
		return
	}
	s.files[fi].changed = false
	if k := slices.Index(s.changed, fi); k >= 0 {
		s.changed = slices.Delete(s.changed, k, k+1)
	}
}

// Probe reports whether file fi can be read in full again, nil if so: it
// is opened anew by its path (not through a handle that may hold a removed
// file), must be a regular file at least as long as the torrent says, and
// its last byte must read. It costs an open, a stat and a one-byte read,
// for a caller retrying a file it could not read. The look counts as one
// for ChangedFiles. A pad file, zeros never on disk, always reads.
func (s *Storage) Probe(fi int) error {
	if fi < 0 || fi >= len(s.info.Files) {
		return fmt.Errorf("probe file %d: %w (torrent has %d files)", fi, ErrRange, len(s.info.Files))
	}
	if s.info.Files[fi].Pad {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var toClose []*os.File
	if h := s.open[fi]; h != nil {
		toClose = s.evictLocked(h, toClose)
	}
	s.mu.Unlock()
	for _, f := range toClose {
		f.Close()
	}
	h, err := s.acquire(fi, false)
	if err != nil {
		return err // openFile's errors name the path
	}
	defer s.release(h)
	want := s.info.Files[fi].Length
	if h.stamp.Size < want {
		return fmt.Errorf("%s: %d bytes, the torrent says %d: %w", s.paths[fi], h.stamp.Size, want, io.ErrUnexpectedEOF)
	}
	if want == 0 {
		return nil
	}
	var b [1]byte
	if _, err := h.f.ReadAt(b[:], want-1); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s: read at %d: %w", s.paths[fi], want-1, err)
	}
	return nil
}
