package piece

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// v1Layout parses a v1 info dict over files of the given sizes (pads marks
// BEP 47 pad files) with placeholder piece hashes, for the engine's tests.
func v1Layout(t *testing.T, pl int64, sizes []int, pads map[int]bool) *Info {
	t.Helper()
	var list []any
	var total int64
	for i, n := range sizes {
		e := map[string]any{"length": n, "path": []string{fmt.Sprintf("f%d", i)}}
		if pads[i] {
			e["attr"] = "p"
			e["path"] = []string{".pad", fmt.Sprint(n)}
		}
		list = append(list, e)
		total += int64(n)
	}
	b, err := bencode.Marshal(map[string]any{
		"name": "x", "piece length": pl, "files": list,
		"pieces": string(make([]byte, 20*((total+pl-1)/pl))),
	})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// HashSpace gives the textbook v1 piece hashes (SHA-1 of the files laid
// end to end, pad files as zeros) for piece lengths that are not powers of
// two nor multiples of a page, pieces that span several files and files
// that span several jobs, mapped or read, reading each byte once.
func TestHashSpaceMatchesNaive(t *testing.T) {
	sizes := []int{100, 3*BlockSize + 5, 0, 924, 7000, 20000 - 8024, 3 << 20, 1, 2*BlockSize + 9}
	pads := map[int]bool{3: true, 5: true}
	var disk []int // sizes of the files on disk; pads are never there
	for i, n := range sizes {
		if !pads[i] {
			disk = append(disk, n)
		}
	}
	paths, datas := engineFiles(t, disk)
	for _, pl := range []int64{1024, 20000, 3 * BlockSize, 1 << 20} {
		in := v1Layout(t, pl, sizes, pads)
		var space []byte
		var dataBytes int64
		files := make([]HashFile, len(sizes))
		k := 0
		for i, n := range sizes {
			if pads[i] {
				space = append(space, make([]byte, n)...)
				continue
			}
			space = append(space, datas[k]...)
			dataBytes += int64(n)
			files[i] = HashFile{Open: openFile(paths[k])}
			k++
		}
		for _, mapped := range []bool{false, true} {
			for i := range files {
				files[i].Map = mapped
			}
			var progress atomic.Int64
			var mu sync.Mutex
			seen := make([]int, in.NumPieces)
			h := &Hasher{Workers: 3, Progress: &progress}
			err := h.HashSpace(context.Background(), in, files, func(p *PieceHashes) {
				mu.Lock()
				defer mu.Unlock()
				seen[p.Piece]++
				if p.Err != nil {
					t.Errorf("pl %d mapped=%v piece %d: %v", pl, mapped, p.Piece, p.Err)
					return
				}
				off := int64(p.Piece) * pl
				if want := sha1.Sum(space[off:min(off+pl, int64(len(space)))]); p.V1 != want {
					t.Errorf("pl %d mapped=%v piece %d: SHA-1 %x, want %x", pl, mapped, p.Piece, p.V1, want)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			for p, n := range seen {
				if n != 1 {
					t.Errorf("pl %d mapped=%v: piece %d reported %d times", pl, mapped, p, n)
				}
			}
			if progress.Load() != dataBytes {
				t.Errorf("pl %d mapped=%v: %d bytes read, want each of the %d once", pl, mapped, progress.Load(), dataBytes)
			}
		}
	}
}

// A missing or short file fails exactly the pieces that hold its bytes,
// naming it, and no others.
func TestHashSpaceReportsUnreadablePieces(t *testing.T) {
	const pl = 1024
	sizes := []int{1500, 2000, 1000, 3000}
	paths, _ := engineFiles(t, []int{1500, 2000, 1000, 1000})
	in := v1Layout(t, pl, sizes, nil)
	files := []HashFile{
		{Open: openFile(paths[0])},
		{Open: openFile(paths[1] + ".missing")}, // bytes 1500-3499: pieces 1-3
		{Open: openFile(paths[2]), Map: true},
		{Open: openFile(paths[3]), Map: true}, // 1000 of 3000 bytes: 5500-7499 missing, pieces 5-7
	}
	var mu sync.Mutex
	bad := map[int]*PieceHashes{}
	err := (&Hasher{Workers: 2}).HashSpace(context.Background(), in, files, func(p *PieceHashes) {
		mu.Lock()
		defer mu.Unlock()
		if p.Err != nil {
			c := *p
			bad[p.Piece] = &c
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 6 {
		t.Fatalf("%d bad pieces, want 1, 2, 3, 5, 6 and 7: %v", len(bad), bad)
	}
	for _, p := range []int{1, 2, 3} {
		if b := bad[p]; b == nil || b.File != 1 || !errors.Is(b.Err, fs.ErrNotExist) {
			t.Errorf("piece %d: %+v, want file 1 missing", p, b)
		}
	}
	for _, p := range []int{5, 6, 7} {
		if b := bad[p]; b == nil || b.File != 3 || !errors.Is(b.Err, io.ErrUnexpectedEOF) {
			t.Errorf("piece %d: %+v, want file 3 short", p, b)
		}
	}
	if err := (&Hasher{}).HashSpace(context.Background(), in, files[:2], func(*PieceHashes) {}); err == nil {
		t.Error("a file list that is not the torrent's was accepted")
	}
}

// With HashV1, HashFiles gives each piece's SHA-1 from the same read as
// its leaves, zero-padded to the piece length where a pad file follows.
func TestHashFilesV1FromOneRead(t *testing.T) {
	const pl = 4 * BlockSize
	sizes := []int{100, pl, 5*pl + 7*BlockSize + 1, 3*BlockSize + 5}
	paths, datas := engineFiles(t, sizes)
	for _, mapped := range []bool{false, true} {
		files := make([]HashFile, len(sizes))
		total := 0
		for i, p := range paths {
			files[i] = HashFile{Size: int64(sizes[i]), Open: openFile(p), Map: mapped, Pad: i < 3}
			total += sizes[i]
		}
		var progress atomic.Int64
		var mu sync.Mutex
		n := 0
		err := (&Hasher{Workers: 3, Progress: &progress}).HashFiles(context.Background(), pl, files, HashV1|HashLeaves, func(p *PieceHashes) {
			mu.Lock()
			defer mu.Unlock()
			n++
			if p.Err != nil {
				t.Error(p.Err)
				return
			}
			data := datas[p.File][p.Piece*pl : min((p.Piece+1)*pl, sizes[p.File])]
			if files[p.File].Pad {
				data = append(data[:len(data):len(data)], make([]byte, pl-len(data))...)
			}
			if want := sha1.Sum(data); p.V1 != want {
				t.Errorf("mapped=%v file %d piece %d: SHA-1 %x, want %x", mapped, p.File, p.Piece, p.V1, want)
			}
			if len(p.Leaves) == 0 || p.Root == (Hash{}) {
				t.Errorf("mapped=%v file %d piece %d: no leaves or root beside the SHA-1", mapped, p.File, p.Piece)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + 1 + 7 + 1; n != want {
			t.Errorf("mapped=%v: %d pieces reported, want %d", mapped, n, want)
		}
		if progress.Load() != int64(total) {
			t.Errorf("mapped=%v: %d bytes read for %d of data: read more than once", mapped, progress.Load(), total)
		}
	}
}

// Hashing a job of v1 or hybrid pieces allocates nothing per piece: the
// spans, the SHA-1 state and the sums are the worker's, reused.
func TestHashV1DoesNotAllocatePerPiece(t *testing.T) {
	const pl = 2 * BlockSize
	paths, _ := engineFiles(t, []int{5*pl + 100, 3*pl + 7, 2 * pl})
	var opened []*os.File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		opened = append(opened, f)
	}
	files := make([]HashFile, len(opened))
	for i, f := range opened {
		st, _ := f.Stat()
		files[i] = HashFile{Size: st.Size(), Open: func() (io.ReaderAt, func(), error) { return f, nil, nil }, Pad: true}
	}
	fn := func(p *PieceHashes) {
		if p.Err != nil {
			t.Fatal(p.Err)
		}
	}

	in := v1Layout(t, pl, []int{5*pl + 100, 3*pl + 7, 2 * pl}, nil)
	ws := &hashWorker{buf: readBufs.Get().(*[]byte), sha1: sha1.New()}
	defer ws.release()
	job := spaceJob{first: 0, count: in.NumPieces}
	ws.runSpace(in, files, job, fn) // grow the spans once
	if a := testing.AllocsPerRun(20, func() { ws.runSpace(in, files, job, fn) }); a != 0 {
		t.Errorf("HashSpace: %.0f allocations for a job of %d pieces", a, in.NumPieces)
	}

	w := newHashWorker(pl/BlockSize, HashV1|HashLeaves, nil)
	defer w.release()
	hj := hashJob{file: 0, first: 0, count: 6}
	if a := testing.AllocsPerRun(20, func() { w.run(files[0], hj, pl, fn) }); a != 0 {
		t.Errorf("HashFiles with HashV1: %.0f allocations for a job of 6 pieces", a)
	}
}
