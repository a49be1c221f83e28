package piece

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// PieceWidth returns the number of leaves the merkle subtree of a piece of
// file f spans: the piece length in blocks, or for a file no larger than
// one piece, its own block count rounded up to a power of two (its pieces
// root is then the piece's root).
func (in *Info) PieceWidth(f int) int {
	return pieceWidth(in.Files[f].Length, in.PieceLength)
}

// ExpectedRoot returns the root that piece p (global index) must hash to,
// and false when it is not known yet (a file larger than a piece whose
// layer has not been fetched).
func (m *MetaInfo) ExpectedRoot(p int) (Hash, bool) {
	fi := m.Info.FileOfPiece(p)
	f := &m.Info.Files[fi]
	if f.NumPieces == 1 {
		return f.PiecesRoot, true
	}
	if fi >= len(m.Layers) || m.Layers[fi] == nil {
		return Hash{}, false
	}
	return m.Layers[fi][p-f.FirstPiece], true
}

// ProblemKind says how a file on disk differs from the torrent.
type ProblemKind int

// The kinds of problem Verify reports.
const (
	Missing    ProblemKind = iota + 1 // the file does not exist
	WrongSize                         // the file has another size
	BadPieces                         // some pieces do not hash to the tree
	Unreadable                        // the file exists but cannot be read
)

// Problem is one file whose data does not match the torrent.
type Problem struct {
	File int    // index in Info.Files
	Path string // path relative to the download folder, '/'-separated
	Kind ProblemKind
	// Size is the size found on disk and Want the torrent's (for WrongSize).
	Size, Want int64
	// Pieces lists the failing pieces, counted from the file's first piece.
	Pieces []int
	Err    error
}

func (p Problem) String() string {
	switch p.Kind {
	case Missing:
		return fmt.Sprintf("%s: missing", p.Path)
	case WrongSize:
		return fmt.Sprintf("%s: size %d, want %d", p.Path, p.Size, p.Want)
	case Unreadable:
		return fmt.Sprintf("%s: %v", p.Path, p.Err)
	}
	return fmt.Sprintf("%s: %d bad pieces %v", p.Path, len(p.Pieces), p.Pieces)
}

// statRegular opens rel inside root, as reading it will, and returns its
// status, or an error if it is not a regular file.
func statRegular(root *os.Root, rel string) (fs.FileInfo, error) {
	fh, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	return st, err
}

// Verify checks the data under dir against the torrent and returns one
// Problem per file that differs. Files are looked up only inside dir: a
// symbolic link leading out of it counts as unreadable. v2 pieces are
// checked against the merkle tree, v1 pieces by SHA-1 over the piece space
// (pad files, never on disk, read as zeros), and a hybrid's against both
// from one read of the data. A v1 piece that fails counts against every
// file it holds data of, as it would have to be fetched again whole.
func Verify(ctx context.Context, m *MetaInfo, dir string, h *Hasher) ([]Problem, error) {
	if h == nil {
		h = &Hasher{}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	in := m.Info
	if !in.HasV1() {
		// A hybrid's pieces can be checked by SHA-1 where a layer is not
		// known; a v2 torrent's cannot.
		for i, f := range in.Files {
			if f.NumPieces > 1 && (i >= len(m.Layers) || len(m.Layers[i]) != f.NumPieces) {
				return nil, fmt.Errorf("verify %s: piece layer of file %d unknown", in.Name, i)
			}
		}
	}

	var problems []Problem
	files := make([]HashFile, len(in.Files)) // indexed like in.Files
	hashed := make([]bool, len(in.Files))    // to hash, and count bad pieces against
	for i, f := range in.Files {
		if f.Pad {
			continue // never on disk
		}
		rel := filepath.Join(in.DiskPath(i)...)
		slash := filepath.ToSlash(rel)
		// Files are opened again a job at a time, so a torrent of many
		// files never holds them all open. A file that cannot be read
		// fails the v1 pieces it shares with others.
		files[i] = HashFile{Size: f.Length, Open: func() (io.ReaderAt, func(), error) {
			fh, err := root.Open(rel)
			if err != nil {
				return nil, nil, err
			}
			return fh, func() { fh.Close() }, nil
		}, Map: true}
		st, err := statRegular(root, rel)
		if errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, Problem{File: i, Path: slash, Kind: Missing})
			continue
		}
		if err != nil {
			problems = append(problems, Problem{File: i, Path: slash, Kind: Unreadable, Err: err})
			continue
		}
		if st.Size() != f.Length {
			problems = append(problems, Problem{File: i, Path: slash, Kind: WrongSize, Size: st.Size(), Want: f.Length})
		}
		// Hash the declared length: pieces past the end of a short file
		// fail to read and count as bad.
		hashed[i] = f.Length > 0
	}

	bad := make([][]int, len(in.Files))
	if in.Format == FormatV1 {
		err = verifyV1(ctx, in, files, hashed, h, bad)
	} else {
		err = verifyV2(ctx, m, files, hashed, h, bad)
	}
	if err != nil {
		return nil, err
	}
	for fi, ps := range bad {
		if len(ps) == 0 {
			continue
		}
		slices.Sort(ps)
		problems = append(problems, Problem{File: fi, Path: filepath.ToSlash(filepath.Join(in.DiskPath(fi)...)), Kind: BadPieces, Pieces: ps})
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.File - b.File })
	return problems, nil
}

// verifyV2 hashes the files of a v2 or hybrid torrent that hashed marks,
// each once, and records in bad the pieces, counted from each file's
// first, whose merkle root or, in a hybrid, SHA-1 is not the torrent's.
func verifyV2(ctx context.Context, m *MetaInfo, all []HashFile, hashed []bool, h *Hasher, bad [][]int) error {
	in := m.Info
	var want HashKind
	if in.HasV1() {
		want = HashV1
	}
	var files []HashFile
	var idx []int // files[k] is file idx[k]
	for i, f := range all {
		if !hashed[i] {
			continue
		}
		if in.HasV1() {
			last := in.Files[i].FirstPiece + in.Files[i].NumPieces - 1
			f.Pad = in.V1PieceSize(last) > in.PieceSize(last)
		}
		files = append(files, f)
		idx = append(idx, i)
	}
	var mu sync.Mutex
	return h.HashFiles(ctx, in.PieceLength, files, want, func(p *PieceHashes) {
		fi := idx[p.File]
		global := in.Files[fi].FirstPiece + p.Piece
		ok := p.Err == nil
		// Verify made sure a v2 torrent's layers are all known.
		if root, known := m.ExpectedRoot(global); ok && known {
			ok = p.Root == root
		}
		if ok && in.HasV1() {
			ok = p.V1 == in.PieceHash(global)
		}
		if ok {
			return
		}
		mu.Lock()
		bad[fi] = append(bad[fi], p.Piece)
		mu.Unlock()
	})
}

// verifyV1 hashes a v1 torrent's piece space and records in bad, for every
// file that hashed marks, the pieces holding its data whose SHA-1 is not
// the torrent's, counted from the file's first piece.
func verifyV1(ctx context.Context, in *Info, files []HashFile, hashed []bool, h *Hasher, bad [][]int) error {
	var mu sync.Mutex
	return h.HashSpace(ctx, in, files, func(p *PieceHashes) {
		if p.Err == nil && p.V1 == in.PieceHash(p.Piece) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// Rare (a bad piece), so finding its files may allocate.
		for _, sp := range in.AppendSpans(nil, p.Piece, 0, in.V1PieceSize(p.Piece)) {
			if sp.File >= 0 && hashed[sp.File] {
				bad[sp.File] = append(bad[sp.File], p.Piece-in.Files[sp.File].FirstPiece)
			}
		}
	})
}
