package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
// BEP 52's zero leaves make. onChunk, if not nil, sees each chunk as read.
func (s *Storage) pieceRoot(p, width int, scratch []piece.Hash, onChunk func([]byte)) (piece.Hash, error) {
	fi, _, err := s.locate(p, 0, 0)
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
	if size <= chunkSize {
		var root piece.Hash
		err := s.readChunks(p, func(data []byte) {
			if onChunk != nil {
				onChunk(data)
			}
			root = piece.PieceRoot(data, width, scratch)
		})
		return root, err
	}
	// size > one chunk implies width > chunkBlocks, both powers of two.
	roots := make([]piece.Hash, 0, (size+chunkSize-1)/chunkSize)
	err = s.readChunks(p, func(data []byte) {
		if onChunk != nil {
			onChunk(data)
		}
		roots = append(roots, piece.PieceRoot(data, chunkBlocks, scratch))
	})
	if err != nil {
		return piece.Hash{}, err
	}
	return piece.RootOf(roots, width/chunkBlocks, bits.TrailingZeros(chunkBlocks)), nil
}

// readChunks reads piece p in chunks of at most chunkSize bytes, in order,
// and hands each to fn, whose slice is only valid during the call.
func (s *Storage) readChunks(p int, fn func([]byte)) error {
	fi, off, err := s.locate(p, 0, 0)
	if err != nil {
		return err
	}
	size := s.info.PieceSize(p)
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	for done := int64(0); done < size; done += chunkSize {
		data := buf[:min(chunkSize, size-done)]
		if _, err := s.readAt(p, fi, data, off+done, false); err != nil {
			return err
		}
		fn(data)
	}
	return nil
}

// zeroChunk is compared against, not written: a run of zero bytes is what
// a file shoal sized but has not written yet reads as.
var zeroChunk [chunkSize]byte

func isZero(b []byte) bool { return bytes.Equal(b, zeroChunk[:len(b)]) }

// Check works out which pieces are already on disk and good, and makes that
// the storage's Have. Files whose size and mtime match the resume record are
// trusted as recorded; every other file present on disk is hashed again on
// all cores (hasher.Workers goroutines, GOMAXPROCS when 0; hasher may be
// nil), its pieces compared with meta.ExpectedRoot, and a piece whose root
// is not known yet counts as missing. An unusable resume record is logged
// and treated as absent: it costs a re-hash, never the download.
//
// Check also decides which existing files are ours to write into, so that
// a file of the user's that merely shares a name with one of the torrent's
// is never modified. A file is foreign (see Foreign) when its size is not
// the torrent's, as shoal sizes every file it writes at once; or, with no
// resume record of this torrent in the folder, when some piece of it
// neither verifies nor reads as zeros, which is what an interrupted
// download whose record was lost looks like. With a record the folder is a
// download shoal began, and a file of the right size is its own, however
// far its writing got. Writes to a foreign file fail until Adopt.
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
	foreign := make([]bool, len(in.Files))
	var jobs []hashJob
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
		foreign[i] = st.Size() != f.Length
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
		judge := rec == nil && !foreign[i]
		for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
			_, known := meta.ExpectedRoot(p)
			if known || judge {
				jobs = append(jobs, hashJob{p: p, known: known, judge: judge, short: st.Size() < f.Length})
			}
		}
	}

	res, err := s.hashPieces(ctx, meta, jobs, hasher)
	if err != nil {
		return nil, err
	}
	for k, j := range jobs {
		switch {
		case res[k].good:
			have.Set(j.p)
		case j.judge && !res[k].zero:
			foreign[in.FileOfPiece(j.p)] = true
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
		s.files[i].foreign = foreign[i]
	}
	s.mu.Unlock()
	s.haveMu.Lock()
	s.have = have
	s.changes++
	s.haveMu.Unlock()
	return have.Bytes(), nil
}

// hashJob is a piece for hashPieces: hashed if its root is known, and with
// judge, also looked at for whether it is all zeros.
type hashJob struct {
	p            int
	known, judge bool
	short        bool // its file is shorter than the torrent's: reads past the end are expected
}

// hashResult is what hashPieces found of a piece.
type hashResult struct {
	good bool // read in full and hashes to its expected root
	zero bool // read in full and every byte is zero (judged pieces only)
}

// hashPieces verifies the given pieces against meta on hasher's workers and
// reports what it found. Unreadable pieces are bad, not fatal: a torrent
// with a damaged file should download that file again, not refuse to
// start. Judged pieces whose root is not known are only read, not hashed,
// and do not count in hasher.Progress.
func (s *Storage) hashPieces(ctx context.Context, meta *piece.MetaInfo, jobs []hashJob, hasher *piece.Hasher) ([]hashResult, error) {
	res := make([]hashResult, len(jobs))
	if len(jobs) == 0 {
		return res, ctx.Err()
	}
	workers := hasher.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	var readErrs sync.Map // file index → first error, reported once per file
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]piece.Hash, 0, chunkBlocks)
			// One closure per worker, not per piece: zero is reset per job.
			var judge, zero bool
			onChunk := func(data []byte) {
				if hasher.Progress != nil {
					hasher.Progress.Add(int64(len(data)))
				}
				if judge && zero {
					zero = isZero(data)
				}
			}
			scan := func(data []byte) { zero = zero && isZero(data) }
			for k := range next {
				j := jobs[k]
				judge, zero = j.judge, true
				var err error
				if j.known {
					var root piece.Hash
					root, err = s.pieceRoot(j.p, 0, scratch, onChunk)
					want, _ := meta.ExpectedRoot(j.p)
					res[k].good = err == nil && root == want
				} else {
					err = s.readChunks(j.p, scan)
				}
				if err != nil {
					if !j.short || !errors.Is(err, io.ErrUnexpectedEOF) {
						readErrs.LoadOrStore(s.info.FileOfPiece(j.p), err)
					}
					continue
				}
				res[k].zero = j.judge && zero
			}
		}()
	}
feed:
	for k := range jobs {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	readErrs.Range(func(fi, err any) bool {
		s.log.Warn("cannot read file; its unreadable pieces count as missing", "path", s.paths[fi.(int)], "err", err)
		return true
	})
	return res, nil
}
