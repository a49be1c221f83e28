package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// VerifyPiece reads piece p back from disk and reports whether its merkle
// root is expected. width is the number of leaves its subtree spans; 0
// means the torrent's own, info.PieceWidth of the piece's file, which for a
// file no larger than a piece is the file's block count rounded up to a
// power of two rather than the piece length in blocks. scratch may be nil;
// passing one of at least width hashes per goroutine avoids allocating. A
// piece that cannot be read in full is reported as not matching, with the
// error.
func (s *Storage) VerifyPiece(p int, expected piece.Hash, width int, scratch []piece.Hash) (bool, error) {
	if width <= 0 && p >= 0 && p < s.info.NumPieces {
		width = s.info.PieceWidth(s.info.FileOfPiece(p))
	}
	leaves, err := s.leaves(p, width, scratch)
	if err != nil {
		return false, err
	}
	return piece.RootOfLeaves(leaves, width) == expected, nil
}

// PieceLeaves reads piece p from disk and returns its leaf hashes, padded
// with zero hashes to the piece's width: what a BEP 52 hash request below
// the piece layer asks for.
func (s *Storage) PieceLeaves(p int) ([]piece.Hash, error) {
	if p < 0 || p >= s.info.NumPieces {
		return nil, fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	return s.leaves(p, s.info.PieceWidth(s.info.FileOfPiece(p)), nil)
}

// leaves hashes piece p with piece's engine, reading through the storage's
// handles so that the path checks of openFile apply.
func (s *Storage) leaves(p, width int, scratch []piece.Hash) ([]piece.Hash, error) {
	fi, off, err := s.locate(p, 0, 0)
	if err != nil {
		return nil, err
	}
	h, err := s.acquire(fi, false)
	if err != nil {
		return nil, fmt.Errorf("piece %d: %w", p, err)
	}
	defer s.release(h)
	leaves, err := piece.PieceLeaves(h.f, off, s.info.PieceSize(p), width, scratch)
	if err != nil {
		return nil, fmt.Errorf("piece %d: %w", p, err)
	}
	return leaves, nil
}

// Check works out which pieces are already on disk and good, and makes that
// the storage's Have. Files whose size and mtime match the resume record are
// trusted as recorded; every other file present on disk is hashed again on
// all cores (hasher.Workers goroutines, GOMAXPROCS when 0; hasher may be
// nil), its pieces compared with meta.ExpectedRoot, and a piece whose root
// is not known yet counts as missing. An unusable resume record is logged
// and treated as absent: it costs a re-hash, never the download.
func (s *Storage) Check(ctx context.Context, meta *piece.MetaInfo, hasher *piece.Hasher) ([]byte, error) {
	if meta == nil || meta.Info == nil || meta.Info.Hash != s.info.Hash {
		return nil, errors.New("check: metainfo is not the storage's torrent")
	}
	if hasher == nil {
		hasher = &piece.Hasher{}
	}
	rec, err := s.LoadResume()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rec = nil
	case err != nil:
		s.log.Warn("ignoring resume record; re-hashing the data on disk", "path", s.resumePath, "err", err)
		rec = nil
	}

	in := s.info
	have := bitfield.New(in.NumPieces)
	stamps := make([]FileStamp, len(in.Files))
	var toHash []int
	for i, f := range in.Files {
		stamps[i] = FileStamp{Size: -1}
		st, err := s.root.Lstat(s.paths[i])
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("cannot look at file; counting its pieces missing", "path", s.paths[i], "err", err)
			}
			continue
		}
		if !st.Mode().IsRegular() {
			s.log.Warn("not a regular file; counting its pieces missing", "path", s.paths[i], "type", st.Mode().Type().String())
			continue
		}
		stamps[i] = FileStamp{Size: st.Size(), ModTime: st.ModTime().UnixNano()}
		if f.NumPieces == 0 {
			continue
		}
		if rec != nil && rec.Files[i] == stamps[i] && stamps[i].Size == f.Length {
			for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
				if rec.have.Has(p) {
					have.Set(p)
				}
			}
			continue
		}
		for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
			if _, known := meta.ExpectedRoot(p); known {
				toHash = append(toHash, p)
			}
		}
	}

	good, err := s.hashPieces(ctx, meta, toHash, hasher)
	if err != nil {
		return nil, err
	}
	for k, p := range toHash {
		if good[k] {
			have.Set(p)
		}
	}

	s.mu.Lock()
	for i := range stamps {
		if !s.files[i].stale {
			s.files[i].stamp, s.files[i].stamped = stamps[i], true
		}
	}
	s.mu.Unlock()
	s.haveMu.Lock()
	s.have = have
	s.changes++
	s.haveMu.Unlock()
	return have.Bytes(), nil
}

// hashPieces verifies the given pieces against meta with hasher and reports
// which are good. It hashes the whole of every file they lie in, which is
// what Check asks for, with the engine that piece.Build and piece.Verify
// use. Unreadable pieces are bad, not fatal: a torrent with a damaged file
// should download that file again, not refuse to start.
func (s *Storage) hashPieces(ctx context.Context, meta *piece.MetaInfo, ps []int, hasher *piece.Hasher) ([]bool, error) {
	in := s.info
	asked := make([]int, in.NumPieces) // piece → 1 + its index in ps, 0 if not asked
	var files []int                    // to hash, each once
	seen := make([]bool, len(in.Files))
	for k, p := range ps {
		asked[p] = k + 1
		if fi := in.FileOfPiece(p); !seen[fi] {
			seen[fi] = true
			files = append(files, fi)
		}
	}
	hf := make([]piece.HashFile, len(files))
	for k, fi := range files {
		// Through the storage's handles, so that openFile's checks apply.
		// Read, not mapped: this check runs while other torrents may be
		// busy, where mapping measured slower than reading (see Map).
		hf[k] = piece.HashFile{Size: in.Files[fi].Length, Open: func() (io.ReaderAt, func(), error) {
			h, err := s.acquire(fi, false)
			if err != nil {
				return nil, nil, err
			}
			return h.f, func() { s.release(h) }, nil
		}}
	}
	good := make([]bool, len(ps)) // each element written by one worker
	readErrs := make([]error, len(files))
	var mu sync.Mutex
	err := hasher.HashFiles(ctx, in.PieceLength, hf, 0, func(ph *piece.PieceHashes) {
		p := in.Files[files[ph.File]].FirstPiece + ph.Piece
		k := asked[p] - 1
		switch {
		case k < 0:
		case ph.Err != nil:
			mu.Lock()
			if readErrs[ph.File] == nil {
				readErrs[ph.File] = ph.Err // reported once per file
			}
			mu.Unlock()
		default:
			root, _ := meta.ExpectedRoot(p)
			good[k] = ph.Root == root
		}
	})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for k, err := range readErrs {
		if err != nil {
			s.log.Warn("cannot read file; its unreadable pieces count as missing", "path", s.paths[files[k]], "err", err)
		}
	}
	return good, nil
}
