package storage

import (
	"errors"
	"fmt"
	"io/fs"
)

// ForeignFile is a file at one of the torrent's paths that Check found
// holding data that is not this torrent's and that shoal has no sign of
// having written: most likely a file of the user's that shares its name.
type ForeignFile struct {
	File   int    // index in Info.Files
	Path   string // relative to the download folder
	Size   int64  // on disk when Check looked
	Length int64  // the torrent's size for it
	Good   int    // its pieces that verified
	Pieces int    // its pieces in all
}

// Foreign returns the files Check found foreign, in file order; none
// before Check. Their verified pieces count in Have, but nothing is
// written to them until Adopt.
func (s *Storage) Foreign() []ForeignFile {
	s.mu.Lock()
	var out []ForeignFile
	for i := range s.files {
		if s.files[i].foreign {
			f := s.info.Files[i]
			out = append(out, ForeignFile{File: i, Path: s.paths[i], Size: s.files[i].stamp.Size, Length: f.Length, Pieces: f.NumPieces})
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	s.haveMu.Lock()
	for k := range out {
		f := s.info.Files[out[k].File]
		for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
			if s.have.Has(p) {
				out[k].Good++
			}
		}
	}
	s.haveMu.Unlock()
	return out
}

// Adopt takes over the foreign files, as the user asked to replace them:
// each is sized to the torrent's length at once (keeping the pieces that
// verified, which lie within it) and may be written from then on.
func (s *Storage) Adopt() error {
	s.mu.Lock()
	var adopt []int
	for i := range s.files {
		if s.files[i].foreign {
			s.files[i].foreign = false
			adopt = append(adopt, i)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, fi := range adopt {
		errs = append(errs, s.resize(fi))
	}
	return errors.Join(errs...)
}

// Complete makes every file exactly the torrent's size, for when every
// piece is verified: a file taken over whose tail lay past the torrent's
// length loses that tail, and a missing empty file is made. It fails,
// naming the file, when one cannot be made so (a data file gone, a foreign
// file, something not a regular file), since then the download is not what
// the torrent describes whatever its pieces say. Pad files are not on
// disk and are not made.
func (s *Storage) Complete() error { return s.CompleteFiles(nil) }

// CompleteFiles is Complete for the files want selects (nil: all), for a
// download of some files only: the others may be absent, or (in v1) hold
// only the bytes of pieces they share with a wanted file.
func (s *Storage) CompleteFiles(want func(fi int) bool) error {
	var errs []error
	for i, f := range s.info.Files {
		if f.Pad || (want != nil && !want(i)) {
			continue
		}
		st, err := s.root.Lstat(s.paths[i])
		switch {
		case err == nil && st.Mode().IsRegular() && st.Size() == f.Length:
			continue
		case err == nil && !st.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("%s: not a regular file (%v)", s.paths[i], st.Mode().Type()))
			continue
		case errors.Is(err, fs.ErrNotExist) && f.Length > 0:
			errs = append(errs, fmt.Errorf("%s: missing", s.paths[i]))
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.resize(i))
	}
	return errors.Join(errs...)
}

// resize makes file fi exactly the torrent's length, creating it if
// missing.
func (s *Storage) resize(fi int) error {
	h, err := s.acquire(fi, true)
	if err != nil {
		return fmt.Errorf("size %s: %w", s.paths[fi], err)
	}
	// openFile sizes a file it opens, but a handle already open for
	// writing may predate a change made behind our back.
	err = h.f.Truncate(s.info.Files[fi].Length)
	s.release(h)
	s.mu.Lock()
	// A new size and mtime for the next record, made durable by its sync;
	// and our own change, not one a seeder must distrust (acquire counted
	// it as a write under way, as for WriteBlock).
	s.files[fi].stale, s.files[fi].dirty = true, true
	s.files[fi].wrote = true
	s.files[fi].writing--
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("size %s to %d: %w", s.paths[fi], s.info.Files[fi].Length, err)
	}
	return nil
}
