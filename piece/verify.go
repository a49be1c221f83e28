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
// symbolic link leading out of it counts as unreadable.
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
	for i, f := range in.Files {
		if f.NumPieces > 1 && (i >= len(m.Layers) || len(m.Layers[i]) != f.NumPieces) {
			return nil, fmt.Errorf("verify %s: piece layer of file %d unknown", in.Name, i)
		}
	}

	var problems []Problem
	var files []HashFile
	var idx []int // files[k] is file idx[k]
	for i, f := range in.Files {
		rel := filepath.Join(in.DiskPath(i)...)
		slash := filepath.ToSlash(rel)
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
		if f.Length == 0 {
			continue
		}
		// Hash the declared length: pieces past the end of a short file fail
		// to read and count as bad. Files are opened again a job at a time,
		// so a torrent of many files never holds them all open.
		files = append(files, HashFile{Size: f.Length, Open: func() (io.ReaderAt, func(), error) {
			fh, err := root.Open(rel)
			if err != nil {
				return nil, nil, err
			}
			return fh, func() { fh.Close() }, nil
		}, Map: true})
		idx = append(idx, i)
	}

	bad := make([][]int, len(in.Files))
	var mu sync.Mutex
	err = h.HashFiles(ctx, in.PieceLength, files, 0, func(p *PieceHashes) {
		fi := idx[p.File]
		want, _ := m.ExpectedRoot(in.Files[fi].FirstPiece + p.Piece)
		if p.Err == nil && p.Root == want {
			return
		}
		mu.Lock()
		bad[fi] = append(bad[fi], p.Piece)
		mu.Unlock()
	})
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
