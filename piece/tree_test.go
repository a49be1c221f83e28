package piece

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// treeSample builds a file of 11 pieces of 4 blocks (the last short) and
// returns its torrent and data.
func treeSample(t *testing.T) (*MetaInfo, []byte) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"f": 10*4*BlockSize + 3*BlockSize + 17})
	m, err := Build(context.Background(), filepath.Join(dir, "f"), BuildOptions{PieceLength: 4 * BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "f"))
	return m, data
}

func pieceLeaves(data []byte, p, bpp int) []Hash {
	out := make([]Hash, bpp)
	for b := 0; b < bpp; b++ {
		off := (p*bpp + b) * BlockSize
		if off >= len(data) {
			break
		}
		out[b] = BlockHash(data[off:min(off+BlockSize, len(data))])
	}
	return out
}

func TestFileTreeServesVerifiableHashes(t *testing.T) {
	m, data := treeSample(t)
	f := m.Info.Files[0]
	tree, err := NewFileTree(m.Info, 0, m.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	leaves := func(p int) ([]Hash, error) { return pieceLeaves(data, p, 4), nil }
	h := treeHeight(f.Length) // 64 leaves → 6

	// The piece layer in two halves with full proof, checked against the root.
	for _, idx := range []int{0, 8} {
		r := HashRequest{PiecesRoot: f.PiecesRoot, BaseLayer: 2, Index: idx, Length: 8, ProofLayers: h - 2 - 1}
		if err := r.Validate(f.Length); err != nil {
			t.Fatal(err)
		}
		got, err := tree.Hashes(r, leaves)
		if err != nil {
			t.Fatal(err)
		}
		base, err := CheckHashes(r, got, f.PiecesRoot)
		if err != nil {
			t.Fatalf("index %d: %v", idx, err)
		}
		for i, b := range base {
			if idx+i < len(m.Layers[0]) && b != m.Layers[0][idx+i] {
				t.Fatalf("piece hash %d differs", idx+i)
			}
		}
	}

	// The leaves of piece 7 with no proof, checked against its piece hash.
	r := HashRequest{PiecesRoot: f.PiecesRoot, BaseLayer: 0, Index: 7 * 4, Length: 4, ProofLayers: 1}
	if r.ReplyLen() != 4 {
		t.Fatalf("a whole piece's leaves need no uncles, got %d", r.ReplyLen()-4)
	}
	got, err := tree.Hashes(r, leaves)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckHashes(r, got, m.Layers[0][7]); err != nil {
		t.Fatal(err)
	}

	// Two leaves with proof up to the root.
	r = HashRequest{PiecesRoot: f.PiecesRoot, BaseLayer: 0, Index: 42, Length: 2, ProofLayers: h - 1}
	if err := r.Validate(f.Length); err != nil {
		t.Fatal(err)
	}
	got, err = tree.Hashes(r, leaves)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckHashes(r, got, f.PiecesRoot); err != nil {
		t.Fatal(err)
	}
	// A forged reply fails.
	got[1][0] ^= 1
	if _, err := CheckHashes(r, got, f.PiecesRoot); err == nil {
		t.Fatal("forged hashes accepted")
	}
	if _, err := CheckHashes(r, got[:2], f.PiecesRoot); err == nil {
		t.Fatal("short reply accepted")
	}

	// Leaves that do not match the piece layer (corrupt disk) are not served.
	bad := func(p int) ([]Hash, error) { l := pieceLeaves(data, p, 4); l[0][0] ^= 1; return l, nil }
	if _, err := tree.Hashes(HashRequest{BaseLayer: 0, Index: 0, Length: 4}, bad); err == nil {
		t.Fatal("served leaves that contradict the piece layer")
	}
}

func TestHashRequestValidateRefuses(t *testing.T) {
	const length = 64 * BlockSize // height 6
	for name, r := range map[string]HashRequest{
		"base above tree":     {BaseLayer: 6, Index: 0, Length: 1},
		"negative base":       {BaseLayer: -1, Index: 0, Length: 2},
		"length not pow2":     {BaseLayer: 0, Index: 0, Length: 3},
		"length zero":         {BaseLayer: 0, Index: 0, Length: 0},
		"length huge":         {BaseLayer: 0, Index: 0, Length: 1 << 20},
		"index unaligned":     {BaseLayer: 0, Index: 2, Length: 4},
		"index past layer":    {BaseLayer: 2, Index: 16, Length: 16},
		"too many proofs":     {BaseLayer: 0, Index: 0, Length: 2, ProofLayers: 6},
		"negative proof":      {BaseLayer: 0, Index: 0, Length: 2, ProofLayers: -1},
		"negative index":      {BaseLayer: 0, Index: -4, Length: 4},
		"past end base layer": {BaseLayer: 0, Index: 64, Length: 2},
	} {
		if err := r.Validate(length); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (HashRequest{BaseLayer: 0, Index: 0, Length: 2}).Validate(0); err == nil {
		t.Error("request for an empty file accepted")
	}
}
