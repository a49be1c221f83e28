package piece

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// geometrySample is a torrent of 4-block pieces whose files cover the
// shapes requests care about: a layer that is not a power of two, one
// larger than a request, a file of exactly one piece, files smaller than a
// piece (width below the piece's) and an empty one. It returns each file's
// data too.
func geometrySample(t *testing.T) (*MetaInfo, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{
		"g/a": 10*4*BlockSize + 3*BlockSize + 17, // 11 pieces
		"g/b": 3*BlockSize + 5,                   // one piece of width 4
		"g/c": 4 * BlockSize,                     // exactly one piece
		"g/d": 1,                                 // one block
		"g/e": 33*4*BlockSize - 1,                // 33 pieces, padded to 64
		"g/z": 0,
	})
	m, err := Build(context.Background(), filepath.Join(dir, "g"), BuildOptions{PieceLength: 4 * BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	datas := make([][]byte, len(m.Info.Files))
	for i := range m.Info.Files {
		if datas[i], err = os.ReadFile(filepath.Join(append([]string{dir}, m.Info.DiskPath(i)...)...)); err != nil {
			t.Fatal(err)
		}
	}
	return m, datas
}

func TestBlocksInAndBlockLenTilePieces(t *testing.T) {
	m, _ := geometrySample(t)
	in := m.Info
	for p := range in.NumPieces {
		n := in.BlocksIn(p)
		var sum int64
		for b := range n {
			l := in.BlockLen(p, b)
			if l <= 0 || l > BlockSize || (b < n-1 && l != BlockSize) {
				t.Errorf("piece %d block %d of %d: length %d", p, b, n, l)
			}
			sum += int64(l)
		}
		if sum != in.PieceSize(p) {
			t.Errorf("piece %d: blocks sum to %d bytes, piece has %d", p, sum, in.PieceSize(p))
		}
		if l := in.BlockLen(p, n); l != 0 {
			t.Errorf("piece %d: block %d past the end has length %d", p, n, l)
		}
	}
	// The short tail of file a: its last piece holds 3 blocks, the last 17 bytes.
	last := in.Files[0].FirstPiece + in.Files[0].NumPieces - 1
	if in.BlocksIn(last) != 4 || in.BlockLen(last, 3) != 17 {
		t.Errorf("last piece of a: %d blocks, last of %d bytes; want 4 and 17", in.BlocksIn(last), in.BlockLen(last, 3))
	}
}

// A piece's leaf request, answered by an honest tree, is proven by the
// piece's root alone, and gives back the piece's leaves.
func TestLeafRequestIsAnsweredAndChecked(t *testing.T) {
	m, datas := geometrySample(t)
	in := m.Info
	asked := 0
	for p := range in.NumPieces {
		fi := in.FileOfPiece(p)
		f := in.Files[fi]
		if in.PieceWidth(fi) < 2 {
			continue // its one leaf is its root: nothing to ask
		}
		asked++
		r := in.LeafRequest(p)
		if err := r.Validate(f.Length); err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
		if r.ReplyLen() != r.Length || r.Length != in.PieceWidth(fi) || r.PiecesRoot != f.PiecesRoot {
			t.Fatalf("piece %d: request %+v", p, r)
		}
		tree, err := NewFileTree(in, fi, m.Layers[fi])
		if err != nil {
			t.Fatal(err)
		}
		want := pieceLeaves(datas[fi], p-f.FirstPiece, r.Length)
		reply, err := tree.Hashes(r, func(int) ([]Hash, error) { return slices.Clone(want), nil })
		if err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
		root, _ := m.ExpectedRoot(p)
		got, err := CheckHashes(r, reply, root)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("piece %d: %v", p, err)
		}
		reply[1][0] ^= 1
		if _, err := CheckHashes(r, reply, root); err == nil {
			t.Fatalf("piece %d: forged leaf accepted", p)
		}
	}
	if asked != in.NumPieces-1 {
		t.Fatalf("asked for the leaves of %d pieces, want all but the one-block one", asked)
	}
}

// Fetching a layer request by request, as the swarm does, gives the layer
// of the torrent, each reply proven up to the file's root.
func TestLayerRequestsFetchTheLayer(t *testing.T) {
	m, _ := geometrySample(t)
	in := m.Info
	for fi, f := range in.Files {
		if f.NumPieces < 2 {
			if f.Length > 0 && in.LayerRequest(fi, 0, 512).Validate(f.Length) == nil {
				t.Errorf("file %d of one piece: layer request validates", fi)
			}
			continue
		}
		tree, err := NewFileTree(in, fi, m.Layers[fi])
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 3, 8, 512} {
			var layer []Hash
			for index := 0; index < f.NumPieces; {
				r := in.LayerRequest(fi, index, limit)
				if err := r.Validate(f.Length); err != nil {
					t.Fatalf("file %d limit %d index %d: %v", fi, limit, index, err)
				}
				if r.Length > limit || r.Index != index {
					t.Fatalf("file %d limit %d: request %+v", fi, limit, r)
				}
				reply, err := tree.Hashes(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				base, err := CheckHashes(r, reply, f.PiecesRoot)
				if err != nil {
					t.Fatalf("file %d limit %d index %d: %v", fi, limit, index, err)
				}
				layer = append(layer, base[:min(len(base), f.NumPieces-index)]...)
				index += r.Length
			}
			if !slices.Equal(layer, m.Layers[fi]) {
				t.Errorf("file %d limit %d: fetched layer differs", fi, limit)
			}
		}
	}
}
