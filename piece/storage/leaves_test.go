package storage

import (
	"crypto/sha256"
	"errors"
	"os"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

// PieceLeaves gives what a BEP 52 hash request below the piece layer must
// carry: SHA-256 of each block on disk, zero hashes up to the piece's
// width, hashing to the piece's root.
func TestPieceLeaves(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 40)
	in := m.Info
	s, dst := completeDownload(t, m, src, Options{})
	defer s.Close()
	for p := 0; p < in.NumPieces; p++ {
		fi := in.FileOfPiece(p)
		data, err := os.ReadFile(diskPath(dst, in, fi))
		if err != nil {
			t.Fatal(err)
		}
		off := int64(p-in.Files[fi].FirstPiece) * in.PieceLength
		data = data[off : off+in.PieceSize(p)]
		want := make([]piece.Hash, in.PieceWidth(fi))
		for b := 0; b*piece.BlockSize < len(data); b++ {
			want[b] = sha256.Sum256(data[b*piece.BlockSize : min((b+1)*piece.BlockSize, len(data))])
		}
		got, err := s.PieceLeaves(p)
		if err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
		if len(got) != len(want) {
			t.Fatalf("piece %d: %d leaves, want %d", p, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("piece %d: leaf %d differs", p, i)
			}
		}
		root, _ := m.ExpectedRoot(p)
		if piece.RootOfLeaves(got, len(got)) != root {
			t.Errorf("piece %d: leaves do not hash to its root", p)
		}
	}
	if _, err := s.PieceLeaves(in.NumPieces); !errors.Is(err, ErrRange) {
		t.Errorf("PieceLeaves past the last piece: %v", err)
	}
	if err := os.Truncate(diskPath(dst, in, 0), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PieceLeaves(in.Files[0].FirstPiece + 1); err == nil {
		t.Error("leaves of a piece cut off by truncation")
	}
}
