package piece

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// This file is shoal's one hashing engine: torrent creation (Build),
// `shoal verify` (Verify), the resume check of piece/storage and the leaf
// hashes served for blame all hash pieces through it, so they cannot
// disagree about what a piece hashes to.

// readChunk is how much a hashing worker reads at once: large enough that
// syscalls cost nothing next to SHA-256, small enough that memory stays a
// few MiB whatever the piece length.
const readChunk = 1 << 20

// jobBytes is roughly how much data one hashing job covers (one mapping):
// small pieces are handed out in batches, and mapping 16 MiB at a time was
// measured faster than 4 MiB while leaving the tail imbalance small.
const jobBytes = 16 << 20

// readBufs holds read buffers of readChunk bytes, shared by every hashing
// call so that hashing one piece at a time does not allocate a megabyte.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// HashKind is a set of hashes the engine computes for each piece besides
// its merkle root, which it always computes.
type HashKind uint8

const (
	// HashLeaves asks for each piece's leaf hashes (PieceHashes.Leaves).
	HashLeaves HashKind = 1 << iota
	// HashV1 asks for each piece's v1 hash (PieceHashes.V1), the SHA-1 a
	// hybrid torrent lists in "pieces": the worker feeds the bytes it
	// already reads or maps for the leaves into SHA-1 as well, so a hybrid
	// is hashed from one read of its data, and runs a file's last piece on
	// through zeros to the piece length when HashFile.Pad says a pad file
	// follows it.
	HashV1
)

// zeros is read by SHA-1 in place of pad files, which are never on disk.
var zeros [64 << 10]byte

// HashFile is one file for Hasher.HashFiles or Hasher.HashSpace.
type HashFile struct {
	// Size is the file's length in the torrent. The pieces to hash and
	// their widths follow from it; pieces past the end of a shorter file
	// fail to read.
	Size int64
	// Open gives the file's data for one job (a run of pieces of about
	// 16 MiB) and a function, which may be nil, that the engine calls when
	// the job is done with it. It is called from the hashing goroutines, a
	// job at a time, so a folder of many files never has more open than
	// there are workers. Its error becomes every piece's of the job.
	Open func() (io.ReaderAt, func(), error)
	// Map lets the engine hash an *os.File that holds all of a job's bytes
	// from a memory mapping instead of reading it, which spares read(2)'s
	// copy. Whether that pays depends on the machine: it measured faster
	// where the README's figures come from, but cost 1.75 times the CPU of
	// reading on a virtual machine where page faults are dear. Build and
	// Verify map, as they did; storage's resume check reads, as it did.
	Map bool
	// Pad says that, in a hybrid torrent's v1 piece space, a pad file
	// follows this file up to the next piece boundary: with HashV1, the
	// SHA-1 of its last piece covers zeros up to the piece length.
	Pad bool
}

// PieceHashes is what the engine computed for one piece.
type PieceHashes struct {
	// File indexes the files given to HashFiles; Piece counts from the
	// file's first piece. From HashSpace, Piece is the torrent's piece
	// index and File the first file the piece holds data of (-1 for a
	// piece of padding only) or, when Err is set, the file that failed.
	File, Piece int
	// Root is the root of the piece's merkle subtree (see PieceWidth);
	// zero from HashSpace.
	Root Hash
	// V1, with HashV1 and from HashSpace, is the piece's SHA-1.
	V1 [20]byte
	// Leaves, with HashLeaves, holds the piece's leaf hashes padded with
	// zero hashes to its width. It is reused once the callback returns.
	Leaves []Hash
	// Err says why the piece could not be hashed; the hashes are then
	// meaningless.
	Err error
}

// Hasher hashes files into BEP 52 merkle trees and v1 SHA-1 pieces on all
// cores. The zero value is ready to use.
type Hasher struct {
	// Workers is the number of goroutines hashing; 0 means GOMAXPROCS.
	Workers int
	// Progress, if not nil, is advanced by the number of bytes read.
	Progress *atomic.Int64
}

type hashJob struct {
	file         int
	first, count int // pieces of the file
}

// pieceWidth returns the number of leaves the subtree of a piece of a file
// of the given size spans: the piece length in blocks or, for a file no
// larger than one piece, its own block count rounded up to a power of two
// (its pieces root is then that piece's root).
func pieceWidth(size, pieceLength int64) int {
	if size <= pieceLength {
		return ceilPow2(numBlocks(size))
	}
	return int(pieceLength / BlockSize)
}

// HashFiles hashes every piece of every file on the Hasher's workers and
// passes each to fn, which is called from several goroutines at once, never
// twice for the same piece, and must not keep p. A piece that cannot be read
// is reported through p.Err, not as HashFiles' error, which only says that
// ctx ended or that pieceLength is not a power of two ≥ BlockSize.
func (h *Hasher) HashFiles(ctx context.Context, pieceLength int64, files []HashFile, want HashKind, fn func(p *PieceHashes)) error {
	if pieceLength < BlockSize || pieceLength&(pieceLength-1) != 0 {
		return fmt.Errorf("hash: piece length %d is not a power of two of at least %d", pieceLength, BlockSize)
	}
	workers := h.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	jobs := make(chan hashJob, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newHashWorker(int(pieceLength/BlockSize), want, h.Progress)
			defer w.release()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain so the producer never blocks
				}
				w.run(files[j.file], j, pieceLength, fn)
			}
		}()
	}

	perJob := max(1, int(jobBytes/pieceLength))
produce:
	for i, f := range files {
		n := int((f.Size + pieceLength - 1) / pieceLength)
		for p := 0; p < n; p += perJob {
			select {
			case jobs <- hashJob{file: i, first: p, count: min(perJob, n-p)}:
			case <-ctx.Done():
				break produce
			}
		}
	}
	close(jobs)
	wg.Wait()
	return ctx.Err()
}

// PieceLeaves hashes one piece on the calling goroutine, with the same code
// as HashFiles: size bytes of r at off, whose subtree spans width leaves.
// It returns the leaf hashes padded with zero hashes to width, in leaves if
// it can hold them (RootOfLeaves then gives the piece's root). It reads and
// never maps, which for a single piece costs less.
func PieceLeaves(r io.ReaderAt, off, size int64, width int, leaves []Hash) ([]Hash, error) {
	blocks := numBlocks(size)
	if size < 0 || width < 1 || bits.OnesCount(uint(width)) != 1 || width < blocks {
		return nil, fmt.Errorf("hash: width %d is not a power of two of at least the %d blocks of a %d-byte piece", width, blocks, size)
	}
	if cap(leaves) < width {
		leaves = make([]Hash, 0, width)
	}
	w := hashWorker{buf: readBufs.Get().(*[]byte), leaves: leaves[:0]}
	defer w.release()
	got, err := w.readLeaves(r, off, size)
	if err != nil {
		return nil, err
	}
	out := got[:width]
	clear(out[len(got):])
	return out, nil
}

// hashWorker is one goroutine's state, reused for every piece it hashes so
// that the per-piece path allocates nothing.
type hashWorker struct {
	buf      *[]byte // from readBufs
	leaves   []Hash  // the leaves of the piece being hashed
	padded   []Hash  // its leaves padded to its width, with HashLeaves
	want     HashKind
	progress *atomic.Int64
	out      PieceHashes
	sha1     hash.Hash // with HashV1 or for HashSpace; nil otherwise
	spans    []Span    // HashSpace's spans of the piece being hashed
}

func newHashWorker(maxWidth int, want HashKind, progress *atomic.Int64) *hashWorker {
	w := &hashWorker{
		buf:      readBufs.Get().(*[]byte),
		leaves:   make([]Hash, 0, maxWidth),
		want:     want,
		progress: progress,
	}
	if want&HashLeaves != 0 {
		w.padded = make([]Hash, maxWidth)
	}
	if want&HashV1 != 0 {
		w.sha1 = sha1.New()
	}
	return w
}

// sumV1 writes the SHA-1 of what was fed to w.sha1 since its last reset to
// w.out.V1, without allocating.
func (w *hashWorker) sumV1() {
	w.sha1.Sum(w.out.V1[:0])
}

// writeZeros feeds n zero bytes to w.sha1: the pad files of the piece
// space.
func (w *hashWorker) writeZeros(n int64) {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		w.sha1.Write(zeros[:k])
		n -= k
	}
}

func (w *hashWorker) release() {
	if w.buf != nil {
		readBufs.Put(w.buf)
		w.buf = nil
	}
}

func (w *hashWorker) run(f HashFile, j hashJob, pieceLength int64, fn func(*PieceHashes)) {
	r, done, err := f.Open()
	if err == nil && done != nil {
		defer done()
	}
	start := int64(j.first) * pieceLength
	end := min(int64(j.first+j.count)*pieceLength, f.Size)
	var mapped []byte
	if err == nil && f.Map {
		mapped = mapJob(r, start, end)
	}
	if mapped != nil {
		defer unmap(mapped)
	}
	width := pieceWidth(f.Size, pieceLength)
	for p := j.first; p < j.first+j.count; p++ {
		w.out = PieceHashes{File: j.file, Piece: p, Err: err}
		if err == nil {
			off := int64(p) * pieceLength
			size := min(pieceLength, f.Size-off)
			if w.sha1 != nil {
				w.sha1.Reset()
			}
			w.hash(r, mapped, start, off, size, width)
			if w.sha1 != nil && w.out.Err == nil {
				if f.Pad {
					w.writeZeros(pieceLength - size)
				}
				w.sumV1()
			}
		}
		fn(&w.out)
	}
}

// hash fills w.out with the hashes of size bytes at off, from mapped (the
// job's bytes from start) when not nil, from r otherwise.
func (w *hashWorker) hash(r io.ReaderAt, mapped []byte, start, off, size int64, width int) {
	var leaves []Hash
	var err error
	if mapped != nil {
		leaves, err = w.mappedLeaves(mapped[off-start : off-start+size])
	} else {
		leaves, err = w.readLeaves(r, off, size)
	}
	if err != nil {
		w.out.Err = fmt.Errorf("piece %d (bytes %d-%d): %w", w.out.Piece, off, off+size-1, err)
		return
	}
	if w.want&HashLeaves != 0 {
		w.out.Leaves = w.padded[:width]
		clear(w.out.Leaves[copy(w.out.Leaves, leaves):])
	}
	w.out.Root = reduce(leaves, width, 0)
}

// mapJob maps the bytes [start, end) of r when it is an *os.File that holds
// them all; otherwise it returns nil and the worker reads instead.
func mapJob(r io.ReaderAt, start, end int64) []byte {
	f, ok := r.(*os.File)
	if !ok || end <= start {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Size() < end {
		return nil // a short file: reading reports which pieces are missing
	}
	b, err := mapRange(f, start, end-start)
	if err != nil {
		return nil
	}
	return b
}

// mappedLeaves hashes a piece's blocks from mapped memory. A file truncated
// while it is hashed makes the mapping fault; SetPanicOnFault turns that
// SIGBUS into a panic that is recovered here as an error instead of a crash.
func (w *hashWorker) mappedLeaves(data []byte) (leaves []Hash, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			leaves, err = nil, fmt.Errorf("file changed while being hashed: %v", r)
		}
	}()
	leaves = w.leaves[:0]
	for b := 0; b < len(data); b += BlockSize {
		block := data[b:min(b+BlockSize, len(data))]
		leaves = append(leaves, BlockHash(block))
		if w.sha1 != nil {
			// Block by block, while the block is in the cache.
			w.sha1.Write(block)
		}
	}
	if w.progress != nil {
		w.progress.Add(int64(len(data)))
	}
	return leaves, nil
}

// readLeaves hashes the blocks of size bytes of r at off, a chunk at a
// time.
func (w *hashWorker) readLeaves(r io.ReaderAt, off, size int64) ([]Hash, error) {
	buf := *w.buf
	leaves := w.leaves[:0]
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		got, err := r.ReadAt(buf[:n], off+done)
		if w.progress != nil {
			w.progress.Add(int64(got))
		}
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		for b := int64(0); b < n; b += BlockSize {
			block := buf[b:min(b+BlockSize, n)]
			leaves = append(leaves, BlockHash(block))
			if w.sha1 != nil {
				w.sha1.Write(block)
			}
		}
		done += n
	}
	return leaves, nil
}

// PieceRoot returns the merkle root of one piece's data, padded with zero
// leaves to width leaves (the piece length in blocks, or for a file no
// larger than a piece, its block count rounded up to a power of two).
// leaves is scratch space of at least width hashes; passing it keeps the
// per-piece path free of allocation.
func PieceRoot(data []byte, width int, leaves []Hash) Hash {
	leaves = leaves[:0]
	for b := 0; b < len(data); b += BlockSize {
		leaves = append(leaves, BlockHash(data[b:min(b+BlockSize, len(data))]))
	}
	return reduce(leaves, width, 0)
}

// spaceJob is a run of pieces of the piece space for HashSpace.
type spaceJob struct{ first, count int }

// HashSpace computes the v1 hash (SHA-1) of every piece of in over its
// piece space, where a piece may span files and pad files read as zeros,
// on the Hasher's workers, and passes each to fn as HashFiles does (from
// several goroutines, never twice for a piece; fn must not keep p). Each
// byte is read once, a job of pieces (about 16 MiB) at a time, and a
// worker holds one file open at a time. files is indexed like in.Files;
// the Open of pad and empty files is never called, and Size and Pad are
// ignored: the sizes are the torrent's. A piece that cannot be read is
// reported through p.Err; HashSpace's own error only says that ctx ended.
func (h *Hasher) HashSpace(ctx context.Context, in *Info, files []HashFile, fn func(p *PieceHashes)) error {
	if len(files) != len(in.Files) {
		return fmt.Errorf("hash: %d files given for a torrent of %d", len(files), len(in.Files))
	}
	pl := in.PieceLength
	if pl <= 0 {
		return fmt.Errorf("hash: piece length %d", pl)
	}
	workers := h.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	jobs := make(chan spaceJob, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &hashWorker{buf: readBufs.Get().(*[]byte), sha1: sha1.New(), progress: h.Progress}
			defer w.release()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain so the producer never blocks
				}
				w.runSpace(in, files, j, fn)
			}
		}()
	}
	perJob := max(1, int(jobBytes/pl))
produce:
	for p := 0; p < in.NumPieces; p += perJob {
		select {
		case jobs <- spaceJob{first: p, count: min(perJob, in.NumPieces-p)}:
		case <-ctx.Done():
			break produce
		}
	}
	close(jobs)
	wg.Wait()
	return ctx.Err()
}

// spaceFile is the file a HashSpace worker has open: spans come in file
// order within a job, so each file of a job is opened once.
type spaceFile struct {
	index   int // in Info.Files; -1 when none is open
	r       io.ReaderAt
	done    func()
	err     error  // why it could not be opened
	mapped  []byte // the job's part of the file, when mapped
	mapFrom int64  // the file offset of mapped[0]
}

func (s *spaceFile) close() {
	if s.mapped != nil {
		unmap(s.mapped)
	}
	if s.done != nil {
		s.done()
	}
	*s = spaceFile{index: -1}
}

// runSpace hashes the pieces of job j over the piece space.
func (w *hashWorker) runSpace(in *Info, files []HashFile, j spaceJob, fn func(*PieceHashes)) {
	pl := in.PieceLength
	jobStart := int64(j.first) * pl
	jobEnd := jobStart + int64(j.count)*pl
	cur := spaceFile{index: -1}
	defer cur.close()
	for p := j.first; p < j.first+j.count; p++ {
		w.out = PieceHashes{File: -1, Piece: p}
		w.sha1.Reset()
		w.spans = in.AppendSpans(w.spans[:0], p, 0, in.V1PieceSize(p))
		for _, sp := range w.spans {
			if sp.File < 0 {
				w.writeZeros(sp.Len)
				continue
			}
			if w.out.File < 0 {
				w.out.File = sp.File
			}
			if cur.index != sp.File {
				cur.close()
				cur.index = sp.File
				f := &in.Files[sp.File]
				cur.r, cur.done, cur.err = files[sp.File].Open()
				if cur.err == nil && files[sp.File].Map {
					// The job's bytes of this file, mapped at once from
					// a page boundary: a v1 piece may start anywhere.
					from := max(0, jobStart-f.Offset)
					from -= from % int64(os.Getpagesize())
					to := min(f.Length, jobEnd-f.Offset)
					if cur.mapped = mapJob(cur.r, from, to); cur.mapped != nil {
						cur.mapFrom = from
					}
				}
			}
			err := cur.err
			if err == nil {
				err = w.feedSpan(&cur, sp)
			}
			if err != nil {
				w.out.File = sp.File
				w.out.Err = fmt.Errorf("piece %d (bytes %d-%d of file %d): %w", p, sp.Off, sp.Off+sp.Len-1, sp.File, err)
				break
			}
		}
		if w.out.Err == nil {
			w.sumV1()
		}
		fn(&w.out)
	}
}

// feedSpan feeds the bytes of span sp of the open file to SHA-1, from its
// mapping when there is one.
func (w *hashWorker) feedSpan(f *spaceFile, sp Span) (err error) {
	if f.mapped != nil {
		old := debug.SetPanicOnFault(true)
		defer func() {
			debug.SetPanicOnFault(old)
			if r := recover(); r != nil {
				err = fmt.Errorf("file changed while being hashed: %v", r)
			}
		}()
		w.sha1.Write(f.mapped[sp.Off-f.mapFrom : sp.Off-f.mapFrom+sp.Len])
		if w.progress != nil {
			w.progress.Add(sp.Len)
		}
		return nil
	}
	buf := *w.buf
	for done := int64(0); done < sp.Len; {
		n := min(int64(len(buf)), sp.Len-done)
		got, err := f.r.ReadAt(buf[:n], sp.Off+done)
		if w.progress != nil {
			w.progress.Add(int64(got))
		}
		if int64(got) < n {
			if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		w.sha1.Write(buf[:n])
		done += n
	}
	return nil
}
