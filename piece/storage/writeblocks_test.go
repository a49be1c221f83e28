package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
