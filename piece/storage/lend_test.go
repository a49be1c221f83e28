package storage

import (
	"errors"
	"os"
	"testing"
)

// LendBlock lends the file and offset of a block that lies in one file,
// and declines, without error, a block crossing files or padding; the
// bytes it points at are the block's.
func TestLendBlock(t *testing.T) {
	// 32 KiB pieces: piece 0 holds a.bin's 30000 bytes, then 2000 of
	// padding and b.bin from piece 1; c.bin follows b.bin directly.
	tt := makeV1(t, []v1File{
		{path: "a.bin", size: 30000}, {path: ".pad/2000", size: 2000, pad: true},
		{path: "b.bin", size: 40000}, {path: "c.bin", size: 30000},
	}, 32<<10, 3)
	in := tt.m.Info
	s := openT(t, tt.src, in, Options{ResumePath: t.TempDir() + "/resume"})
	for _, tc := range []struct {
		name     string
		p, begin int
		n        int
		ok       bool
	}{
		{"inside a.bin", 0, 0, 16 << 10, true},
		{"a.bin's end then the pad", 0, 16 << 10, 16 << 10, false},
		{"only the pad", 0, 30000, 2000, false},
		{"inside b.bin", 1, 0, 16 << 10, true},
		{"b.bin into c.bin", 2, 0, 16 << 10, false},
		{"inside c.bin", 2, 16 << 10, 16 << 10, true},
	} {
		l, ok, err := s.LendBlock(tc.p, tc.begin, tc.n)
		if err != nil || ok != tc.ok {
			t.Fatalf("%s: LendBlock = %v, %v; want %v", tc.name, ok, err, tc.ok)
		}
		if !ok {
			continue
		}
		got := make([]byte, tc.n)
		if _, err := l.File.ReadAt(got, l.Off); err != nil {
			t.Fatal(err)
		}
		s.Return(l)
		start := tc.p*int(in.PieceLength) + tc.begin
		if string(got) != string(tt.space[start:start+tc.n]) || l.Len != int64(tc.n) {
			t.Errorf("%s: lent %s at %d (%d bytes), not the block's bytes", tc.name, l.File.Name(), l.Off, l.Len)
		}
	}
	if _, _, err := s.LendBlock(0, 30000, 4000); !errors.Is(err, ErrRange) {
		t.Errorf("a block past the piece: %v, want ErrRange", err)
	}
}

// A file found changed is not lent, as it is not read: its pieces must be
// checked first.
func TestLendBlockRefusesChangedFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 41)
	s := seedStorage(t, m, src, Options{})
	if l, ok, err := s.LendBlock(0, 0, 100); err != nil || !ok {
		t.Fatalf("LendBlock = %v, %v", ok, err)
	} else {
		s.Return(l)
	}
	path := diskPath(src, m.Info, 0)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{1}, 0)
	f.Close()
	touch(t, path, 2e9)
	s.ChangedFiles(nil)
	if _, _, err := s.LendBlock(0, 0, 100); !errors.Is(err, ErrChanged) {
		t.Fatalf("LendBlock of a changed file: %v, want ErrChanged", err)
	}
}
