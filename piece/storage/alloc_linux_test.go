package storage

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

// allocated is the disk space file path holds, from st_blocks.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// A file's first write sizes it and reserves its whole length, so the
// download's writes find their blocks allocated; a file kept sparse (not
// selected, written only for a shared v1 piece) holds only what was
// written; a file never written is not created.
func TestPreallocateOnFirstWrite(t *testing.T) {
	tt := makeV1(t, []v1File{
		{path: "a.bin", size: 3 << 20}, {path: "b.bin", size: 3 << 20}, {path: "c.bin", size: 3 << 20},
	}, 1<<20, 9)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{ResumePath: t.TempDir() + "/resume"})
	s.KeepSparse(func(fi int) bool { return fi == 1 })
	// Piece 3 is b.bin's first MiB; piece 0 a.bin's.
	if err := s.WriteBlock(0, 0, tt.space[:16<<10]); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(3, 0, tt.space[3<<20:3<<20+16<<10]); err != nil {
		t.Fatal(err)
	}
	if got := allocated(t, diskPath(dst, in, 0)); got < in.Files[0].Length {
		t.Errorf("a.bin holds %d bytes of disk after its first write, want its length %d", got, in.Files[0].Length)
	}
	if got := allocated(t, diskPath(dst, in, 1)); got >= in.Files[1].Length/2 {
		t.Errorf("b.bin, kept sparse, holds %d bytes of disk after a 16 KiB write", got)
	}
	if _, err := os.Stat(diskPath(dst, in, 2)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("c.bin, never written: %v, want it not to exist", err)
	}
	// Preallocated space reads as zeros, and what was written is there.
	data, err := os.ReadFile(diskPath(dst, in, 0))
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:16<<10]) != string(tt.space[:16<<10]) || !allZero(data[16<<10:]) {
		t.Error("a.bin is not the block written followed by zeros")
	}
}
