package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// VerifyPiece reads piece p back from disk and reports whether it matches
// its hashes: in a v2 torrent its merkle root must be expected; in a v1
// torrent its SHA-1 must be the torrent's (expected and width are ignored);
// in a hybrid, both, from one read. width is the number of leaves its
// subtree spans; 0 means the torrent's own, info.PieceWidth of the piece's
// file, which for a file no larger than a piece is the file's block count
// rounded up to a power of two rather than the piece length in blocks.
// scratch may be nil; passing one of at least width hashes per goroutine
// avoids allocating for a v2 piece. A piece that cannot be read in full is
// reported as not matching, with the error.
func (s *Storage) VerifyPiece(p int, expected piece.Hash, width int, scratch []piece.Hash) (bool, error) {
	if s.info.HasV1() {
		return s.verifySpans(p, expected, width)
	}
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
// the piece layer asks for. A v1 torrent has none.
func (s *Storage) PieceLeaves(p int) ([]piece.Hash, error) {
	if p < 0 || p >= s.info.NumPieces {
		return nil, fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	if !s.info.HasV2() {
		return nil, fmt.Errorf("piece %d: a v1 torrent has no merkle leaves", p)
	}
	return s.leaves(p, s.info.PieceWidth(s.info.FileOfPiece(p)), nil)
}

// leaves hashes piece p of a v2 or hybrid torrent with piece's engine,
// reading through the storage's handles so that the path checks of
// openFile apply. Its data lies in one file, as v2 aligns files to pieces.
func (s *Storage) leaves(p, width int, scratch []piece.Hash) ([]piece.Hash, error) {
	if err := s.checkRange(p, 0, 0, false); err != nil {
		return nil, err
	}
	fi := s.info.FileOfPiece(p)
	f := &s.info.Files[fi]
	off := int64(p-f.FirstPiece) * s.info.PieceLength
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
// nil), its pieces compared with their hashes (as VerifyPiece does; the
// merkle root from meta.ExpectedRoot), and a piece of a v2 torrent whose
// root is not known yet counts as missing (a hybrid's is checked by its
// SHA-1 alone until its layer comes). In a v1 torrent a piece may overlap several
// files: it is taken from the record only when all of them are unchanged,
// and is missing when one is missing; padding is zeros, never looked for
// on disk. An unusable resume record is logged and treated as absent: it
// costs a re-hash, never the download.
//
// Check also decides which existing files are ours to write into, so that
// a file of the user's that merely shares a name with one of the torrent's
// is never modified. A file is foreign (see Foreign) when its size is not
// the torrent's, as shoal sizes every file it writes at once; or, with no
// resume record of this torrent in the folder, when some piece of it
// neither verifies nor reads as zeros, which is what an interrupted
// download whose record was lost looks like (of a v1 piece over several
// files, the files whose part of it is not zeros). With a record the
// folder is a download shoal began, and a file of the right size is its
// own, however far its writing got. Writes to a foreign file fail until
// Adopt.
func (s *Storage) Check(ctx context.Context, meta *piece.MetaInfo, hasher *piece.Hasher) ([]byte, error) {
	if meta == nil || meta.Info == nil {
		return nil, errors.New("check: no metainfo")
	}
	if meta.Info.Hash != s.info.Hash || meta.Info.V1Hash != s.info.V1Hash {
		return nil, fmt.Errorf("check: metainfo is torrent %s, the storage's is %s", meta.Info.ID(), s.info.ID())
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
	// A file's state, for the pieces it overlaps: in v1 a piece may
	// overlap several, and is trusted or hashed only as all of them allow.
	const (
		absent  = iota // missing or not a regular file: its pieces are missing
		present        // to hash
		trusted        // unchanged since the record: its pieces as recorded
	)
	state := make([]uint8, len(in.Files))
	for i, f := range in.Files {
		stamps[i] = FileStamp{Size: -1}
		if f.Pad {
			continue // never on disk, nor in a span: AppendSpans gives padding
		}
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
		state[i] = present
		if rec != nil && rec.Files[i] == stamps[i] && stamps[i].Size == f.Length {
			state[i] = trusted
		}
	}
	var jobs []hashJob
	var spans []piece.Span
	for p := range in.NumPieces {
		spans = in.AppendSpans(spans[:0], p, 0, in.PieceSize(p))
		// A piece of padding alone has no file to trust: it is hashed, so
		// that it counts as had without being downloaded.
		data, kept, missing := 0, 0, false
		j := hashJob{p: p}
		for _, x := range spans {
			if x.File < 0 {
				continue
			}
			data++
			switch state[x.File] {
			case absent:
				missing = true
			case trusted:
				kept++
			case present:
				j.judge = j.judge || (rec == nil && !foreign[x.File])
				j.short = j.short || stamps[x.File].Size < in.Files[x.File].Length
			}
		}
		all := data > 0 && kept == data
		switch {
		case missing:
		case all:
			if rec != nil && rec.have.Has(p) {
				have.Set(p)
			}
		default:
			// A hybrid's SHA-1 proves a piece whose merkle root is not
			// known yet (its layer is still to come from peers), as
			// the download itself trusts it meanwhile.
			j.known = in.HasV1()
			if in.Format == piece.FormatV2 {
				_, j.known = meta.ExpectedRoot(p)
			}
			if j.known || j.judge {
				jobs = append(jobs, j)
			}
		}
	}

	hash := s.hashPieces
	if in.Format == piece.FormatV1 {
		hash = s.hashSpans
	}
	res, err := hash(ctx, meta, jobs, hasher)
	if err != nil {
		return nil, err
	}
	for k, j := range jobs {
		if res[k].good {
			have.Set(j.p)
			continue
		}
		for _, fi := range res[k].blame {
			foreign[fi] = true
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
	// A record that vouched for every file and for all that was found is
	// what a save would write again: nothing to save (Unsaved), so that
	// a session restarting a thousand seeds does not rewrite and sync a
	// thousand records for nothing.
	same := rec != nil && len(jobs) == 0 && bytes.Equal(have.Bytes(), rec.Have)
	for i, f := range in.Files {
		same = same && (f.Pad || state[i] == trusted)
	}
	s.haveMu.Lock()
	s.have = have
	if !same {
		s.changes++
	}
	s.haveMu.Unlock()
	return have.Bytes(), nil
}

// hashJob is a piece for hashPieces: hashed if its hashes are known, and
// with judge, also looked at for whether it is all zeros.
type hashJob struct {
	p            int
	known, judge bool
	short        bool // a file of it is shorter than the torrent's: reads past the end are expected
}

// hashResult is what hashPieces found of a piece.
type hashResult struct {
	good bool // read in full and hashes to what the torrent says
	// blame lists, for a judged piece that is not good, the files whose
	// bytes in it are not all zeros or could not be read: none of them is
	// what a download shoal sized and has not written looks like.
	blame []int
}

// hashPieces hashes the given pieces of a v2 or hybrid torrent (merkle
// root, and a hybrid's SHA-1 from the same read) and reports what it
// found. It hashes the whole of every file they lie in, which is what
// Check asks for, with the engine that piece.Build and piece.Verify use;
// a judged piece is all zeros when every leaf is the hash of a zero block,
// so telling an interrupted download from a user's file costs no second
// read. Unreadable pieces are bad, not fatal: a torrent with a damaged
// file should download that file again, not refuse to start.
func (s *Storage) hashPieces(ctx context.Context, meta *piece.MetaInfo, jobs []hashJob, hasher *piece.Hasher) ([]hashResult, error) {
	in := s.info
	res := make([]hashResult, len(jobs)) // each element written by one worker
	if len(jobs) == 0 {
		return res, ctx.Err()
	}
	asked := make([]int, in.NumPieces) // piece → 1 + its index in jobs, 0 if not asked
	var files []int                    // to hash, each once
	seen := make([]bool, len(in.Files))
	var want piece.HashKind
	if in.HasV1() {
		want |= piece.HashV1 // a hybrid: SHA-1 from the same read
	}
	for k, j := range jobs {
		asked[j.p] = k + 1
		if fi := in.FileOfPiece(j.p); !seen[fi] {
			seen[fi] = true
			files = append(files, fi)
		}
		if j.judge {
			want |= piece.HashLeaves
		}
	}
	hf := make([]piece.HashFile, len(files))
	for k, fi := range files {
		// Through the storage's handles, so that openFile's checks apply.
		// Read, not mapped: this check runs while other torrents may be
		// busy, where mapping measured slower than reading (see Map).
		f := &in.Files[fi]
		last := f.FirstPiece + f.NumPieces - 1
		hf[k] = piece.HashFile{Size: f.Length, Open: func() (io.ReaderAt, func(), error) {
			h, err := s.acquire(fi, false)
			if err != nil {
				return nil, nil, err
			}
			return h.f, func() { s.release(h) }, nil
		}, Pad: in.HasV1() && in.V1PieceSize(last) > in.PieceSize(last)}
	}
	readErrs := make([]error, len(files))
	var mu sync.Mutex
	// Progress counts the pieces checked against a hash, not what is read
	// around them or only looked at for zeros.
	progress := hasher.Progress
	engine := *hasher
	engine.Progress = nil
	err := engine.HashFiles(ctx, in.PieceLength, hf, want, func(ph *piece.PieceHashes) {
		p := in.Files[files[ph.File]].FirstPiece + ph.Piece
		k := asked[p] - 1
		if k >= 0 && jobs[k].known && progress != nil {
			progress.Add(in.PieceSize(p))
		}
		switch {
		case k < 0:
		case ph.Err != nil:
			if jobs[k].judge {
				res[k].blame = []int{files[ph.File]} // unreadable: not zeros either
			}
			if jobs[k].short && errors.Is(ph.Err, io.ErrUnexpectedEOF) {
				return // a shorter file: its missing end is no news
			}
			mu.Lock()
			if readErrs[ph.File] == nil {
				readErrs[ph.File] = ph.Err // reported once per file
			}
			mu.Unlock()
		default:
			if jobs[k].known {
				// Known means the root is, or (a hybrid) the SHA-1 is.
				root, rootKnown := meta.ExpectedRoot(p)
				res[k].good = (!rootKnown || ph.Root == root) && (!in.HasV1() || ph.V1 == in.PieceHash(p))
			}
			if jobs[k].judge && !res[k].good && !zeroLeaves(in, p, ph.Leaves) {
				res[k].blame = []int{files[ph.File]}
			}
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
	return res, nil
}

// zeroBlockLeaf is the leaf hash of a whole block of zeros.
var zeroBlockLeaf = piece.Hash(sha256.Sum256(make([]byte, piece.BlockSize)))

// zeroLeaves reports whether leaves, piece p's leaf hashes, are those of a
// piece of zero bytes: what a file shoal sized but has not written reads as.
func zeroLeaves(in *piece.Info, p int, leaves []piece.Hash) bool {
	n := in.BlocksIn(p)
	if len(leaves) < n {
		return false
	}
	for b := range n {
		want := zeroBlockLeaf
		if l := in.BlockLen(p, b); l != piece.BlockSize {
			want = sha256.Sum256(make([]byte, l))
		}
		if leaves[b] != want {
			return false
		}
	}
	return true
}
