package piece

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"s/big.bin": 5*BlockSize + 123, "s/sub/small.txt": 100, "s/sub/empty": 0})
	m, err := Build(context.Background(), filepath.Join(dir, "s"), BuildOptions{PieceLength: 2 * BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	check := func() []Problem {
		t.Helper()
		p, err := Verify(context.Background(), m, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := check(); len(p) != 0 {
		t.Fatalf("intact data: %v", p)
	}

	big := filepath.Join(dir, "s", "big.bin")
	data, _ := os.ReadFile(big)
	data[2*BlockSize*2+10] ^= 0xff // a byte in piece 2
	os.WriteFile(big, data, 0o644)
	p := check()
	if len(p) != 1 || p[0].Kind != BadPieces || p[0].Path != "s/big.bin" || len(p[0].Pieces) != 1 || p[0].Pieces[0] != 2 {
		t.Fatalf("flipped byte: %+v", p)
	}
	data[2*BlockSize*2+10] ^= 0xff
	os.WriteFile(big, data[:3*BlockSize], 0o644) // truncate inside piece 1
	p = check()
	if len(p) != 2 || p[0].Kind != WrongSize || p[0].Size != 3*BlockSize || p[0].Want != 5*BlockSize+123 {
		t.Fatalf("truncated: %+v", p)
	}
	if p[1].Kind != BadPieces || len(p[1].Pieces) != 2 || p[1].Pieces[0] != 1 || p[1].Pieces[1] != 2 {
		t.Fatalf("truncated: pieces %+v, want 1 and 2", p[1])
	}
	os.WriteFile(big, data, 0o644)
	os.Remove(filepath.Join(dir, "s", "sub", "empty"))
	os.Remove(filepath.Join(dir, "s", "sub", "small.txt"))
	p = check()
	if len(p) != 2 || p[0].Kind != Missing || p[1].Kind != Missing {
		t.Fatalf("missing files: %+v", p)
	}
}

func TestVerifyDoesNotFollowSymlinkOut(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"f": 2 * BlockSize})
	m, err := Build(context.Background(), filepath.Join(dir, "f"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(dir, "inner")
	os.Mkdir(inner, 0o755)
	os.Symlink(filepath.Join(dir, "f"), filepath.Join(inner, "f"))
	p, err := Verify(context.Background(), m, inner, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p[0].Kind != Unreadable {
		t.Fatalf("a link out of the folder was read: %+v", p)
	}
}

// v1 pieces span files: a flipped byte fails its piece in every file the
// piece holds data of, each counted from the file's own first piece, and
// a missing file fails the pieces it shares with its neighbours.
func TestVerifyV1(t *testing.T) {
	const pl = 2 * BlockSize
	dir := t.TempDir()
	// a: bytes 0-40000 (pieces 0-1), b: 40001-50000 (piece 1), c: 50001-
	// 120000 (pieces 1-3).
	writeTree(t, dir, map[string]int{"s/a": 40001, "s/b": 10000, "s/c": 70000})
	m, err := Build(context.Background(), filepath.Join(dir, "s"), BuildOptions{PieceLength: pl, Format: FormatV1})
	if err != nil {
		t.Fatal(err)
	}
	check := func() []Problem {
		t.Helper()
		p, err := Verify(context.Background(), m, dir, &Hasher{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := check(); len(p) != 0 {
		t.Fatalf("intact data: %v", p)
	}
	b := filepath.Join(dir, "s", "b")
	data, _ := os.ReadFile(b)
	data[5000] ^= 1 // piece 1, which a, b and c share
	os.WriteFile(b, data, 0o644)
	p := check()
	if len(p) != 3 || p[0].Path != "s/a" || p[1].Path != "s/b" || p[2].Path != "s/c" {
		t.Fatalf("a flipped byte in a shared piece: %v", p)
	}
	for i, want := range []int{1, 0, 0} { // piece 1 is a's second, b's and c's first
		if p[i].Kind != BadPieces || len(p[i].Pieces) != 1 || p[i].Pieces[0] != want {
			t.Errorf("%s: %+v, want bad piece %d", p[i].Path, p[i], want)
		}
	}
	os.Remove(b)
	p = check()
	if len(p) != 3 || p[1].Kind != Missing || p[0].Kind != BadPieces || p[2].Kind != BadPieces {
		t.Fatalf("b missing: %v", p)
	}
}

// A hybrid's pieces are checked against both hash families from one read:
// a piece whose SHA-1 or whose merkle root is not the torrent's is bad,
// and without piece layers the SHA-1s still find a flipped byte.
func TestVerifyHybrid(t *testing.T) {
	const pl = 2 * BlockSize
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"s/a": 3*pl + 100, "s/b": 10000})
	m, err := Build(context.Background(), filepath.Join(dir, "s"), BuildOptions{PieceLength: pl, Format: FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	check := func(m *MetaInfo) []Problem {
		t.Helper()
		p, err := Verify(context.Background(), m, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := check(m); len(p) != 0 {
		t.Fatalf("intact data: %v", p)
	}
	badOnly := func(p []Problem, path string, piece int) bool {
		return len(p) == 1 && p[0].Path == path && p[0].Kind == BadPieces && len(p[0].Pieces) == 1 && p[0].Pieces[0] == piece
	}
	// The v1 hash of b's piece (the torrent's fifth) alone is wrong.
	v1 := *m
	info := *m.Info
	info.Pieces = append([]byte(nil), m.Info.Pieces...)
	info.Pieces[4*20] ^= 1
	v1.Info = &info
	if p := check(&v1); !badOnly(p, "s/b", 0) {
		t.Fatalf("a wrong SHA-1 in pieces: %v", p)
	}
	// The v2 hash of a's third piece alone is wrong.
	v2 := *m
	v2.Layers = [][]Hash{append([]Hash(nil), m.Layers[0]...), nil}
	v2.Layers[0][2][0] ^= 1
	if p := check(&v2); !badOnly(p, "s/a", 2) {
		t.Fatalf("a wrong root in the piece layer: %v", p)
	}
	// Without layers, SHA-1 still finds a flipped byte in a's second piece.
	a := filepath.Join(dir, "s", "a")
	data, _ := os.ReadFile(a)
	data[pl+7] ^= 1
	os.WriteFile(a, data, 0o644)
	noLayers := *m
	noLayers.Layers = nil
	if p := check(&noLayers); !badOnly(p, "s/a", 1) {
		t.Fatalf("a flipped byte, no piece layers: %v", p)
	}
}
