package piece

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

// TestInfoHashMatchesLibtorrent builds the same content with shoal and with
// libtorrent 2.0 and requires the same v2 info-hash, both ways: libtorrent
// must also read shoal's .torrent to that hash.
func TestInfoHashMatchesLibtorrent(t *testing.T) {
	lttest.Require(t)
	type tc struct {
		name  string
		files map[string]int // relative to the content root; "" means PATH is one file
	}
	for _, pl := range []int{BlockSize, 256 << 10} {
		cases := []tc{
			{"small", map[string]int{"": 1000}},
			{"one-block", map[string]int{"": BlockSize}},
			{"one-piece", map[string]int{"": pl}},
			{"multi-piece-odd", map[string]int{"": 5*pl + 12345}},
			{"nested", map[string]int{"a/b/c/deep.bin": 3*pl + 1, "a/top.txt": 77, "z.dat": pl + BlockSize, "a/b/mid": 2 * BlockSize}},
			{"empty-and-unicode", map[string]int{"empty": 0, "sub/also-empty": 0, "ünïcödé/日本語.txt": 4000, "données.bin": 2*pl + 5, ".hidden": 3}},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/pl=%d", c.name, pl), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "content-"+c.name)
				if size, single := c.files[""]; single {
					writeTree(t, dir, map[string]int{filepath.Base(path): size})
				} else {
					writeTree(t, path, c.files)
				}
				m, err := Build(context.Background(), path, BuildOptions{PieceLength: int64(pl)})
				if err != nil {
					t.Fatal(err)
				}
				ltOut := filepath.Join(dir, "lt.torrent")
				want := lttest.Run(t, "lt_torrent.py", "create", path, fmt.Sprint(pl), ltOut, "v2")
				if got := m.Info.HexHash(); got != want {
					t.Fatalf("shoal %s, libtorrent %s", got, want)
				}
				b, _ := m.Marshal()
				ours := filepath.Join(dir, "shoal.torrent")
				os.WriteFile(ours, b, 0o644)
				if got := lttest.Run(t, "lt_torrent.py", "hash", ours); got != want {
					t.Fatalf("libtorrent reads shoal's torrent as %s, want %s", got, want)
				}
				// And shoal reads libtorrent's file, piece layers included.
				ltBytes, _ := os.ReadFile(ltOut)
				lm, err := Parse(ltBytes)
				if err != nil {
					t.Fatalf("parse libtorrent's torrent: %v", err)
				}
				if lm.Info.HexHash() != want || lm.Info.NumPieces != m.Info.NumPieces {
					t.Fatalf("libtorrent's torrent parsed to %s with %d pieces", lm.Info.HexHash(), lm.Info.NumPieces)
				}
			})
		}
	}
}

// TestHybridFromLibtorrent reads a v1+v2 torrent made by libtorrent through
// its v2 part.
func TestHybridFromLibtorrent(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "hy")
	writeTree(t, path, map[string]int{"a.bin": 100000, "b/c.txt": 10, "e": 0})
	out := filepath.Join(dir, "hy.torrent")
	want := lttest.Run(t, "lt_torrent.py", "create", path, "32768", out, "hybrid")
	b, _ := os.ReadFile(out)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Format != FormatHybrid || m.Info.HexHash() != want || len(m.Info.Files) != 3 {
		t.Fatalf("hybrid: %v %s want %s, %d files", m.Info.Format, m.Info.HexHash(), want, len(m.Info.Files))
	}
	if p, err := Verify(context.Background(), m, dir, nil); err != nil || len(p) != 0 {
		t.Fatalf("verify against libtorrent's layers: %v %v", p, err)
	}
}
