package piece

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// A file truncated after it was mapped must give an error, not kill the
// process with SIGBUS.
func TestMappedPieceSurvivesTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 8*BlockSize), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newHashWorker(8, 0, nil)
	defer w.release()
	m := mapJob(f, 0, 8*BlockSize)
	if m == nil {
		t.Fatal("mapping failed on a platform that supports it")
	}
	defer unmap(m)
	if _, err := w.mappedLeaves(m); err != nil {
		t.Fatalf("intact mapping: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.mappedLeaves(m); err == nil {
		t.Fatal("hashing a truncated mapping succeeded")
	}
}

// engineFiles writes files of the given sizes and returns their paths and
// contents.
func engineFiles(t *testing.T, sizes []int) ([]string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, len(sizes))
	datas := make([][]byte, len(sizes))
	for i, n := range sizes {
		rel := fmt.Sprintf("f%d", i)
		writeTree(t, dir, map[string]int{rel: n})
		paths[i] = filepath.Join(dir, rel)
		var err error
		if datas[i], err = os.ReadFile(paths[i]); err != nil {
			t.Fatal(err)
		}
	}
	return paths, datas
}

// openFile opens path for the engine.
func openFile(path string) func() (io.ReaderAt, func(), error) {
	return func() (io.ReaderAt, func(), error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
}

// The engine's roots and leaves, mapped or read, are the textbook ones:
// SHA-256 of each 16 KiB block, zero leaves up to the piece's width, pairs
// hashed up to the root.
func TestHashFilesMatchesNaiveTree(t *testing.T) {
	const pl = 4 * BlockSize
	sizes := []int{100, BlockSize, 3*BlockSize + 5, pl, 5*pl + 7*BlockSize + 1, 0}
	paths, datas := engineFiles(t, sizes)
	for _, read := range []bool{false, true} {
		files := make([]HashFile, len(paths))
		for i, p := range paths {
			files[i] = HashFile{Size: int64(sizes[i]), Open: openFile(p), Map: !read}
		}
		var progress atomic.Int64
		h := &Hasher{Workers: 3, Progress: &progress}
		var mu sync.Mutex
		seen := map[[2]int]bool{}
		err := h.HashFiles(context.Background(), pl, files, HashLeaves, func(p *PieceHashes) {
			mu.Lock()
			defer mu.Unlock()
			key := [2]int{p.File, p.Piece}
			if seen[key] {
				t.Errorf("file %d piece %d reported twice", p.File, p.Piece)
			}
			seen[key] = true
			if p.Err != nil {
				t.Errorf("file %d piece %d: %v", p.File, p.Piece, p.Err)
				return
			}
			data := datas[p.File][p.Piece*pl : min((p.Piece+1)*pl, sizes[p.File])]
			width := pl / BlockSize
			if sizes[p.File] <= pl {
				width = ceilPow2((sizes[p.File] + BlockSize - 1) / BlockSize)
			}
			var want []Hash
			for b := 0; b < len(data); b += BlockSize {
				want = append(want, sha256.Sum256(data[b:min(b+BlockSize, len(data))]))
			}
			padded := make([]Hash, width)
			copy(padded, want)
			if !slices.Equal(p.Leaves, padded) {
				t.Errorf("read=%v file %d piece %d: %d leaves differ from the %d expected", read, p.File, p.Piece, len(p.Leaves), width)
			}
			if root := naiveRoot(want, width); p.Root != root {
				t.Errorf("read=%v file %d piece %d: root %x, want %x", read, p.File, p.Piece, p.Root, root)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		total, pieces := 0, 0
		for _, n := range sizes {
			total += n
			pieces += (n + pl - 1) / pl
		}
		if len(seen) != pieces {
			t.Errorf("read=%v: %d pieces reported, want %d", read, len(seen), pieces)
		}
		if progress.Load() != int64(total) {
			t.Errorf("read=%v: progress %d, want %d", read, progress.Load(), total)
		}
	}
}

// A file that cannot be opened, or is shorter than its declared size, gives
// per-piece errors for exactly the pieces it cannot supply.
func TestHashFilesReportsUnreadablePieces(t *testing.T) {
	const pl = 2 * BlockSize
	paths, _ := engineFiles(t, []int{3 * pl})
	files := []HashFile{
		{Size: 5 * pl, Open: openFile(paths[0]), Map: true}, // declared longer than on disk
		{Size: 2 * pl, Open: openFile(paths[0] + ".missing")},
	}
	var mu sync.Mutex
	bad := map[[2]int]error{}
	err := (&Hasher{}).HashFiles(context.Background(), pl, files, 0, func(p *PieceHashes) {
		mu.Lock()
		defer mu.Unlock()
		if p.Err != nil {
			bad[[2]int{p.File, p.Piece}] = p.Err
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 4 || bad[[2]int{0, 3}] == nil || bad[[2]int{0, 4}] == nil || bad[[2]int{1, 0}] == nil || bad[[2]int{1, 1}] == nil {
		t.Fatalf("bad pieces %v; want pieces 3 and 4 of file 0 and all of file 1", bad)
	}
	if !errors.Is(bad[[2]int{0, 3}], io.ErrUnexpectedEOF) || !errors.Is(bad[[2]int{1, 0}], fs.ErrNotExist) {
		t.Errorf("errors do not say why: %v", bad)
	}
	if err := (&Hasher{}).HashFiles(context.Background(), 3*BlockSize, files, 0, func(*PieceHashes) {}); err == nil {
		t.Error("a piece length that is not a power of two was accepted")
	}
}

// Files are opened a job at a time, so hashing a folder of many files never
// holds more open than there are workers, and every open is released.
func TestHashFilesOpensPerJob(t *testing.T) {
	sizes := make([]int, 40)
	for i := range sizes {
		sizes[i] = 3*BlockSize + i
	}
	paths, _ := engineFiles(t, sizes)
	var open, peak, opens atomic.Int64
	files := make([]HashFile, len(paths))
	for i, p := range paths {
		inner := openFile(p)
		files[i] = HashFile{Size: int64(sizes[i]), Open: func() (io.ReaderAt, func(), error) {
			r, done, err := inner()
			if err != nil {
				return nil, nil, err
			}
			opens.Add(1)
			n := open.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			return r, func() { open.Add(-1); done() }, nil
		}}
	}
	err := (&Hasher{Workers: 2}).HashFiles(context.Background(), BlockSize, files, 0, func(p *PieceHashes) {
		if p.Err != nil {
			t.Error(p.Err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if opens.Load() != int64(len(files)) || open.Load() != 0 || peak.Load() > 2 {
		t.Fatalf("%d opens for %d files, %d still open, %d open at once with 2 workers", opens.Load(), len(files), open.Load(), peak.Load())
	}
}

// PieceLeaves, the one-piece path, agrees with the parallel one and refuses
// a width that cannot hold the piece.
func TestPieceLeaves(t *testing.T) {
	const pl = 8 * BlockSize
	paths, datas := engineFiles(t, []int{2*pl + 3*BlockSize + 9})
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(len(datas[0]))
	files := []HashFile{{Size: size, Open: openFile(paths[0]), Map: true}}
	err = (&Hasher{}).HashFiles(context.Background(), pl, files, HashLeaves, func(p *PieceHashes) {
		off := int64(p.Piece) * pl
		got, err := PieceLeaves(f, off, min(pl, size-off), 8, make([]Hash, 0, 8))
		if err != nil || !slices.Equal(got, p.Leaves) {
			t.Errorf("piece %d: PieceLeaves = %d leaves, %v; differs from HashFiles", p.Piece, len(got), err)
		}
		if RootOfLeaves(got, 8) != p.Root {
			t.Errorf("piece %d: root of PieceLeaves differs", p.Piece)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, width := range []int{0, 2, 3, 6} {
		if _, err := PieceLeaves(f, 0, 3*BlockSize, width, nil); err == nil {
			t.Errorf("width %d accepted for a 3-block piece", width)
		}
	}
	if _, err := PieceLeaves(f, size-10, 20, 2, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("piece past the end of the file: %v", err)
	}
}
