package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
)

// Pieces read through the storage's spans are hashed here: a v1 piece
// may span files and padding, and VerifyPiece of a hybrid piece needs its
// SHA-1 (over the data and the zeros after it up to the v1 piece size)
// beside its merkle root, both from one read. Check of a v2 or hybrid
// torrent hashes with piece's engine (hashPieces); of a v1 torrent, here
// (hashSpans): the engine's HashSpace hashes every piece of the torrent,
// where a resume must hash only those of changed files, and cannot say
// which file of a piece that spans several holds non-zero bytes, which
// telling a user's file from an interrupted download needs.

// spanChunk is how much a spanHasher reads at once: as piece's engine
// does, large enough that syscalls cost nothing next to hashing, and a
// multiple of BlockSize so a hybrid piece's leaves fall on chunk bounds.
const spanChunk = 1 << 20

// spanJobBytes is about how much one worker of hashSpans takes at a time:
// runs of neighbouring pieces, so reading stays sequential.
const spanJobBytes = 16 << 20

// spanHasher hashes one piece at a time, reusing its buffers so the
// per-piece path allocates nothing but what a failing judged piece blames.
type spanHasher struct {
	s      *Storage
	buf    []byte
	spans  []piece.Span
	leaves []piece.Hash
	v1     piece.V1Hasher
	ok     bool // the piece matched its v1 SHA-1
	root   piece.Hash
	// nonzero lists the files whose bytes in the piece are not all zeros,
	// when asked to judge.
	nonzero []int
	// failed is the file whose read failed, with the error.
	failed int
}

var spanHashers = sync.Pool{New: func() any {
	return &spanHasher{buf: make([]byte, spanChunk)}
}}

func getSpanHasher(s *Storage) *spanHasher {
	h := spanHashers.Get().(*spanHasher)
	h.s = s
	return h
}

func (h *spanHasher) put() {
	h.s = nil
	spanHashers.Put(h)
}

// hash reads piece p in its v1 extent (V1PieceSize; padding as zeros) and
// checks its SHA-1 into h.ok (piece.V1Hasher pads the tail as every v1
// check does) and, with merkle, the root of its data's
// leaves over width leaves into h.root; with judge it lists in h.nonzero
// the files whose bytes in it are not all zeros. A read error names the
// file, which h.failed holds.
func (h *spanHasher) hash(p int, merkle bool, width int, judge bool) error {
	in := h.s.info
	h.v1.Reset()
	h.leaves = h.leaves[:0]
	h.nonzero = h.nonzero[:0]
	h.failed = -1
	h.spans = in.AppendSpans(h.spans[:0], p, 0, in.V1PieceSize(p))
	for _, x := range h.spans {
		if x.File < 0 {
			// Padding inside a v1 piece; a trailing run Check adds itself.
			for n := x.Len; n > 0; {
				k := min(n, int64(len(zeros)))
				h.v1.Write(zeros[:k])
				n -= k
			}
			continue
		}
		if err := h.readSpan(p, x, merkle, judge); err != nil {
			h.failed = x.File
			return err
		}
	}
	h.ok = h.v1.Check(in, p)
	if merkle {
		h.root = piece.RootOfLeaves(h.leaves, width)
	}
	return nil
}

// readSpan feeds span x of piece p to the hashes, a chunk at a time.
func (h *spanHasher) readSpan(p int, x piece.Span, merkle, judge bool) error {
	fh, err := h.s.acquire(x.File, false)
	if err != nil {
		return fmt.Errorf("piece %d: %w", p, err)
	}
	defer h.s.release(fh)
	nonzero := false
	for done := int64(0); done < x.Len; {
		n := min(int64(len(h.buf)), x.Len-done)
		got, err := fh.f.ReadAt(h.buf[:n], x.Off+done)
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("piece %d: read %s at %d: %w", p, h.s.paths[x.File], x.Off+done, err)
		}
		data := h.buf[:n]
		h.v1.Write(data)
		if merkle {
			for b := 0; b < len(data); b += piece.BlockSize {
				h.leaves = append(h.leaves, piece.BlockHash(data[b:min(b+piece.BlockSize, len(data))]))
			}
		}
		if judge && !nonzero {
			nonzero = !allZero(data)
		}
		done += n
	}
	if nonzero {
		h.nonzero = append(h.nonzero, x.File)
	}
	return nil
}

// verifySpans checks piece p of a v1 or hybrid torrent against its SHA-1
// and, in a hybrid, against expected, its merkle root over width leaves
// (0: its file's PieceWidth), from one read.
func (s *Storage) verifySpans(p int, expected piece.Hash, width int) (bool, error) {
	if p < 0 || p >= s.info.NumPieces {
		return false, fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	merkle := s.info.HasV2()
	if merkle && width <= 0 {
		width = s.info.PieceWidth(s.info.FileOfPiece(p))
	}
	h := getSpanHasher(s)
	defer h.put()
	if err := h.hash(p, merkle, width, false); err != nil {
		return false, err
	}
	return h.ok && (!merkle || h.root == expected), nil
}

// hashSpans is hashPieces for v1 torrents: each job's piece is read once
// through its spans on hasher's workers; it is good when its SHA-1
// matches (and, were it given a hybrid, its merkle root is known and
// matches too). A judged piece that is not good blames the files whose
// bytes in it are not zeros (or that could not be read).
func (s *Storage) hashSpans(ctx context.Context, meta *piece.MetaInfo, jobs []hashJob, hasher *piece.Hasher) ([]hashResult, error) {
	in := s.info
	res := make([]hashResult, len(jobs)) // each element written by one worker
	if len(jobs) == 0 {
		return res, ctx.Err()
	}
	workers := hasher.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	perJob := max(1, int(spanJobBytes/in.PieceLength))
	next := make(chan int, workers)
	var mu sync.Mutex
	logged := map[int]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := getSpanHasher(s)
			defer h.put()
			for first := range next {
				for k := first; k < min(first+perJob, len(jobs)) && ctx.Err() == nil; k++ {
					s.hashSpanJob(h, meta, jobs[k], &res[k], hasher, &mu, logged)
				}
			}
		}()
	}
produce:
	for k := 0; k < len(jobs); k += perJob {
		select {
		case next <- k:
		case <-ctx.Done():
			break produce
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return res, nil
}

// hashSpanJob hashes one job's piece with h into r.
func (s *Storage) hashSpanJob(h *spanHasher, meta *piece.MetaInfo, j hashJob, r *hashResult, hasher *piece.Hasher, mu *sync.Mutex, logged map[int]bool) {
	in := s.info
	merkle := in.HasV2()
	var root piece.Hash
	width := 0
	if merkle {
		root, _ = meta.ExpectedRoot(j.p)
		width = in.PieceWidth(in.FileOfPiece(j.p))
	}
	err := h.hash(j.p, merkle, width, j.judge)
	if j.known && hasher.Progress != nil {
		hasher.Progress.Add(in.PieceSize(j.p))
	}
	if err != nil {
		if j.judge {
			r.blame = []int{h.failed}
		}
		if j.short && errors.Is(err, io.ErrUnexpectedEOF) {
			return // a shorter file: its missing end is no news
		}
		mu.Lock()
		if !logged[h.failed] {
			logged[h.failed] = true // reported once per file
			s.log.Warn("cannot read file; its unreadable pieces count as missing", "path", s.paths[h.failed], "err", err)
		}
		mu.Unlock()
		return
	}
	r.good = j.known && h.ok && (!merkle || h.root == root)
	if j.judge && !r.good && len(h.nonzero) > 0 {
		r.blame = append([]int(nil), h.nonzero...)
	}
}
