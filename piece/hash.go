package piece

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// readChunk is how much a hashing worker reads at once: large enough that
// syscalls cost nothing next to SHA-256, small enough that memory stays a
// few MiB whatever the piece length.
const readChunk = 1 << 20

// jobBytes is roughly how much data one hashing job covers (one mapping):
// small pieces are handed out in batches, and mapping 16 MiB at a time was
// measured faster than 4 MiB while leaving the tail imbalance small.
const jobBytes = 16 << 20

// source is a file to hash: its data and its declared length.
type source struct {
	r    io.ReaderAt
	size int64
}

// pieceFunc receives the merkle root of one piece of file f, or the error
// that kept it from being hashed. It is called from several goroutines at
// once, never twice for the same piece.
type pieceFunc func(f, piece int, root Hash, err error)

// Hasher hashes files into BEP 52 merkle trees on all cores. The zero value
// is ready to use.
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

// hashFiles computes the root of every piece of every source. For a file no
// larger than one piece the single "piece root" is the file's pieces root,
// padded to the file's own block count; larger files have pieces padded to
// the piece length.
func (h *Hasher) hashFiles(ctx context.Context, srcs []source, pieceLength int64, fn pieceFunc) error {
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
			w := newHashWorker(pieceLength, h.Progress)
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain so the producer never blocks
				}
				w.run(srcs[j.file], j, pieceLength, fn)
			}
		}()
	}

	perJob := max(1, int(jobBytes/pieceLength))
produce:
	for i, s := range srcs {
		n := int((s.size + pieceLength - 1) / pieceLength)
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

type hashWorker struct {
	buf      []byte
	leaves   []Hash
	progress *atomic.Int64
}

func newHashWorker(pieceLength int64, progress *atomic.Int64) *hashWorker {
	return &hashWorker{
		buf:      make([]byte, min(readChunk, pieceLength)),
		leaves:   make([]Hash, pieceLength/BlockSize),
		progress: progress,
	}
}

func (w *hashWorker) run(s source, j hashJob, pieceLength int64, fn pieceFunc) {
	start := int64(j.first) * pieceLength
	end := min(int64(j.first+j.count)*pieceLength, s.size)
	mapped := w.mapJob(s, start, end)
	if mapped != nil {
		defer unmap(mapped)
	}
	for p := j.first; p < j.first+j.count; p++ {
		off := int64(p) * pieceLength
		size := min(pieceLength, s.size-off)
		width := int(pieceLength / BlockSize)
		if s.size <= pieceLength {
			width = ceilPow2(int((s.size + BlockSize - 1) / BlockSize))
		}
		var root Hash
		var err error
		if mapped != nil {
			root, err = w.mappedPiece(mapped[off-start:off-start+size], width)
		} else {
			root, err = w.piece(s.r, off, size, width)
		}
		if err != nil {
			err = fmt.Errorf("piece %d (bytes %d-%d): %w", p, off, off+size-1, err)
		}
		fn(j.file, p, root, err)
	}
}

// mapJob maps the job's bytes when the file is an *os.File that holds
// them all; otherwise it returns nil and the worker reads instead.
func (w *hashWorker) mapJob(s source, start, end int64) []byte {
	f, ok := s.r.(*os.File)
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

// mappedPiece hashes a piece from mapped memory. A file truncated while it
// is hashed makes the mapping fault; SetPanicOnFault turns that SIGBUS into
// a panic that is recovered here as an error instead of a crash.
func (w *hashWorker) mappedPiece(data []byte, width int) (root Hash, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("file changed while being hashed: %v", r)
		}
	}()
	root = PieceRoot(data, width, w.leaves)
	if w.progress != nil {
		w.progress.Add(int64(len(data)))
	}
	return root, nil
}

// piece hashes size bytes at off into the root of a subtree of width leaves.
func (w *hashWorker) piece(r io.ReaderAt, off, size int64, width int) (Hash, error) {
	leaves := w.leaves[:0]
	for done := int64(0); done < size; {
		n := min(int64(len(w.buf)), size-done)
		got, err := r.ReadAt(w.buf[:n], off+done)
		if w.progress != nil {
			w.progress.Add(int64(got))
		}
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Hash{}, err
		}
		for b := int64(0); b < n; b += BlockSize {
			leaves = append(leaves, BlockHash(w.buf[b:min(b+BlockSize, n)]))
		}
		done += n
	}
	return reduce(leaves, width, 0), nil
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
