package storage

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// splitRun cuts data into buffers of uneven sizes, as a reader's run of
// blocks of any size would be.
func splitRun(data []byte) [][]byte {
	sizes := []int{1000, 7, 500, 1}
	var bufs [][]byte
	for k := 0; len(data) > 0; k++ {
		n := min(len(data), sizes[k%len(sizes)])
		bufs = append(bufs, data[:n])
		data = data[n:]
	}
	return bufs
}

// A run written with WriteBlocks lands as its buffers written one by one
// would: within one file (one pwritev) and across files and padding
// alike; the caller's buffers are left as they were.
func TestWriteBlocksAsEachBuffer(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 5)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	for p := in.NumPieces - 1; p >= 0; p-- {
		data := tt.pieceBytes(p)[:in.PieceSize(p)]
		// The piece's first byte alone, then the rest as one run.
		if err := s.WriteBlocks(p, 0, [][]byte{data[:1]}); err != nil {
			t.Fatal(err)
		}
		bufs := splitRun(data[1:])
		before := slices.Clone(bufs)
		if err := s.WriteBlocks(p, 1, bufs); err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
		for i := range bufs {
			if len(bufs[i]) != len(before[i]) || &bufs[i][0] != &before[i][0] {
				t.Fatalf("piece %d: buffer %d changed by the write", p, i)
			}
		}
	}
	for i, f := range in.Files {
		if f.Pad {
			continue
		}
		want, err := os.ReadFile(diskPath(tt.src, in, i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(diskPath(dst, in, i))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if string(got) != string(want) {
			t.Errorf("file %s differs after runs of writes", in.DiskPath(i))
		}
	}
	noPadOnDisk(t, dst)
}

// A single-file torrent's run goes in one write, to the right offset, and
// counts as a write for Sync.
func TestWriteBlocksOneFile(t *testing.T) {
	m, src := makeTorrent(t, []srcFile{{"big.bin", 5*piece.BlockSize + 123}}, 2*piece.BlockSize, 9)
	in := m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	want, err := os.ReadFile(filepath.Join(src, "tor", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for p := range in.NumPieces {
		off := p * int(in.PieceLength)
		data := want[off : off+int(in.PieceSize(p))]
		bufs := [][]byte{data[:min(len(data), piece.BlockSize)]}
		if len(data) > piece.BlockSize {
			bufs = append(bufs, data[piece.BlockSize:])
		}
		if err := s.WriteBlocks(p, 0, bufs); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(diskPath(dst, in, 0)); err != nil || string(got) != string(want) {
		t.Fatalf("file after runs: %d bytes, %v; want the source's %d", len(got), err, len(want))
	}
	s.mu.Lock()
	dirty, writing := s.files[0].dirty, s.files[0].writing
	s.mu.Unlock()
	if !dirty || writing != 0 {
		t.Errorf("after the writes: dirty %v, writing %d; want dirty, none writing", dirty, writing)
	}
}

// A run is refused whole, as WriteBlock refuses a block, where it strays
// out of its piece; a run with data in padding is refused with
// ErrPadData before anything of the file past it is written.
func TestWriteBlocksRefusals(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 3)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	good := tt.pieceBytes(0)
	if err := s.WriteBlocks(0, 2000, [][]byte{good[:500], good[:501]}); !errors.Is(err, ErrRange) {
		t.Errorf("run past the end of piece 0: %v, want ErrRange", err)
	}
	if err := s.WriteBlocks(in.NumPieces, 0, [][]byte{good[:1]}); !errors.Is(err, ErrRange) {
		t.Errorf("run in piece %d of %d: %v, want ErrRange", in.NumPieces, in.NumPieces, err)
	}
	// Piece 4: c/d/e.bin's last 1601 bytes, padding at 1601-2600, then
	// z.bin's first 399.
	bad := slices.Clone(tt.pieceBytes(4))
	bad[2000] = 1
	if err := s.WriteBlocks(4, 1601, [][]byte{bad[1601:2500], bad[2500:2700]}); !errors.Is(err, ErrPadData) {
		t.Fatalf("non-zero padding written in a run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "tor/z.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("z.bin touched by a refused run: %v", err)
	}
}

// ReadBlocks fills a run of buffers with what ReadBlock reads for each:
// within one file (one preadv), across files, and padding as zeros.
func TestReadBlocksAsEachBuffer(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 6)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	writeAll(t, s, tt, 1000)
	for p := range in.NumPieces {
		want := tt.pieceBytes(p)
		got := make([]byte, len(want))
		for i := range got {
			got[i] = 0xee // padding must come back zeroed
		}
		bufs := splitRun(got[1:])
		if err := s.ReadBlocks(p, 1, bufs); err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
		if string(got[1:]) != string(want[1:]) {
			t.Errorf("piece %d read as a run differs from the piece space", p)
		}
	}
	if err := s.ReadBlocks(0, 2000, [][]byte{make([]byte, 500), make([]byte, 501)}); !errors.Is(err, ErrRange) {
		t.Errorf("run past the end of piece 0: %v, want ErrRange", err)
	}
}

// A run is refused with ErrChanged from a file changed behind our back,
// as ReadBlock refuses a block, and a truncated file is an unexpected end.
func TestReadBlocksRefusesChangedAndShortFiles(t *testing.T) {
	// a/big.bin, the first file, has pieces of two blocks.
	m, src := makeTorrent(t, testFiles, 2*piece.BlockSize, 11)
	in := m.Info
	s := seedStorage(t, m, src, Options{})
	run := [][]byte{make([]byte, piece.BlockSize), make([]byte, piece.BlockSize)}
	if err := s.ReadBlocks(1, 0, run); err != nil {
		t.Fatal(err)
	}
	path := diskPath(src, in, 0)
	data, _ := os.ReadFile(path)
	if string(run[0]) != string(data[2*piece.BlockSize:3*piece.BlockSize]) || string(run[1]) != string(data[3*piece.BlockSize:4*piece.BlockSize]) {
		t.Fatal("run of piece 1 read wrong bytes")
	}
	data[5] ^= 0xff
	os.WriteFile(path, data, 0o644)
	touch(t, path, time.Second)
	s.ChangedFiles(nil)
	if err := s.ReadBlocks(1, 0, run); !errors.Is(err, ErrChanged) {
		t.Fatalf("run from a changed file: %v, want ErrChanged", err)
	}
}

// preadv and pwritev move runs of buffers at an offset; preadv past the
// end of the file is an unexpected end, not a short buffer left as it was.
func TestPreadvPwritev(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 13)
	}
	if err := pwritev(f, splitRun(data[100:]), 100); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2900)
	if err := preadv(f, splitRun(got), 100); err != nil || string(got) != string(data[100:]) {
		t.Fatalf("read back: %v, same bytes %v", err, string(got) == string(data[100:]))
	}
	if err := preadv(f, [][]byte{make([]byte, 1000), make([]byte, 1000)}, 1500); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("run past the end of the file: %v, want io.ErrUnexpectedEOF", err)
	}
}

// ReadRange reads any part of a piece, across files and padding, as the
// same bytes ReadPiece gives, and refuses a range past the piece.
func TestReadRangeMatchesReadPiece(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 7)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	writeAll(t, s, tt, 1000)
	for p := range in.NumPieces {
		whole, err := s.ReadPiece(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := len(whole)
		for _, r := range [][2]int{{0, n}, {1, n - 1}, {n / 3, n / 2}, {n, n}} {
			buf := make([]byte, r[1]-r[0])
			if err := s.ReadRange(p, r[0], buf); err != nil {
				t.Fatalf("piece %d bytes %d-%d: %v", p, r[0], r[1], err)
			}
			if string(buf) != string(whole[r[0]:r[1]]) {
				t.Fatalf("piece %d bytes %d-%d differ from ReadPiece's", p, r[0], r[1])
			}
		}
		if err := s.ReadRange(p, n-1, make([]byte, 2)); !errors.Is(err, ErrRange) {
			t.Fatalf("piece %d: a range past its end: %v, want ErrRange", p, err)
		}
	}
}
