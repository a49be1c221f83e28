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
