package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"runtime"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// chunkBlocks is how many 16 KiB blocks VerifyPiece reads at once: 1 MiB,
// so memory stays small whatever the piece length (up to 256 MiB).
const chunkBlocks = 64

const chunkSize = chunkBlocks * piece.BlockSize

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// VerifyPiece reads piece p back from disk and reports whether its merkle
// root is expected. width is the number of leaves its subtree spans; 0
// means the torrent's own, info.PieceWidth of the piece's file, which for a
// file no larger than a piece is the file's block count rounded up to a
// power of two rather than the piece length in blocks. scratch may be nil;
// passing one of at least 64 hashes per goroutine avoids allocating. A piece
// that cannot be read in full is reported as not matching, with the error.
func (s *Storage) VerifyPiece(p int, expected piece.Hash, width int, scratch []piece.Hash) (bool, error) {
	root, err := s.pieceRoot(p, width, scratch, nil)
	if err != nil {
		return false, err
	}
	return root == expected, nil
}

// pieceRoot hashes piece p a chunk at a time: each chunk's blocks are folded
// into the root of a 64-leaf subtree, and those roots into the piece's.
// Padding agrees at both levels because a zero-padded chunk subtree is what
// BEP 52's zero leaves make.
func (s *Storage) pieceRoot(p, width int, scratch []piece.Hash, progress func(int)) (piece.Hash, error) {
	fi, off, err := s.locate(p, 0, 0)
	if err != nil {
		return piece.Hash{}, err
	}
	size := s.info.PieceSize(p)
	if width <= 0 {
		width = s.info.PieceWidth(fi)
	}
	blocks := int((size + piece.BlockSize - 1) / piece.BlockSize)
	if width < blocks || bits.OnesCount(uint(width)) != 1 {
		return piece.Hash{}, fmt.Errorf("piece %d: width %d is not a power of two of at least its %d blocks", p, width, blocks)
	}
	if cap(scratch) < chunkBlocks {
		scratch = make([]piece.Hash, 0, chunkBlocks)
	}
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp

	if size <= chunkSize {
		data := buf[:size]
		if _, err := s.readAt(p, fi, data, off, false); err != nil {
			return piece.Hash{}, err
		}
		if progress != nil {
			progress(len(data))
		}
		return piece.PieceRoot(data, width, scratch), nil
	}
	// size > one chunk implies width > chunkBlocks, both powers of two.
	roots := make([]piece.Hash, 0, (size+chunkSize-1)/chunkSize)
	for done := int64(0); done < size; done += chunkSize {
		data := buf[:min(chunkSize, size-done)]
		if _, err := s.readAt(p, fi, data, off+done, false); err != nil {
			return piece.Hash{}, err
		}
		if progress != nil {
			progress(len(data))
		}
		roots = append(roots, piece.PieceRoot(data, chunkBlocks, scratch))
	}
	return piece.RootOf(roots, width/chunkBlocks, bits.TrailingZeros(chunkBlocks)), nil
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
		f := &s.files[i]
		if !f.stale {
			f.stamp, f.stamped = stamps[i], true
		}
		// What was hashed is what serving compares with (ChangedFiles).
		if !f.wrote && f.writing == 0 {
			f.seen, f.seenOK = stamps[i], true
		}
	}
	s.mu.Unlock()
	s.haveMu.Lock()
	s.have = have
	s.changes++
	s.haveMu.Unlock()
	return have.Bytes(), nil
}

// hashPieces verifies the given pieces against meta on hasher's workers and
// reports which are good. Unreadable pieces are bad, not fatal: a torrent
// with a damaged file should download that file again, not refuse to start.
func (s *Storage) hashPieces(ctx context.Context, meta *piece.MetaInfo, ps []int, hasher *piece.Hasher) ([]bool, error) {
	good := make([]bool, len(ps))
	if len(ps) == 0 {
		return good, ctx.Err()
	}
	workers := hasher.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(ps))
	var progress func(int)
	if hasher.Progress != nil {
		progress = func(n int) { hasher.Progress.Add(int64(n)) }
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var readErrs sync.Map // file index → first error, reported once per file
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]piece.Hash, 0, chunkBlocks)
			for k := range jobs {
				p := ps[k]
				want, _ := meta.ExpectedRoot(p)
				root, err := s.pieceRoot(p, 0, scratch, progress)
				if err != nil {
					readErrs.LoadOrStore(s.info.FileOfPiece(p), err)
					continue
				}
				good[k] = root == want
			}
		}()
	}
feed:
	for k := range ps {
		select {
		case jobs <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	readErrs.Range(func(fi, err any) bool {
		s.log.Warn("cannot read file; its unreadable pieces count as missing", "path", s.paths[fi.(int)], "err", err)
		return true
	})
	return good, nil
}
