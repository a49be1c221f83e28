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

// TestFormatsMatchLibtorrent makes v1 and hybrid torrents of the same
// content with shoal and with libtorrent 2.0, including pieces that cross
// file boundaries, pad files and empty files, and requires the same info
// dict: the same v1 and v2 info-hashes from shoal's Build, from shoal's
// Parse of libtorrent's file and from libtorrent's reading of shoal's.
// shoal then verifies the data against libtorrent's torrent.
func TestFormatsMatchLibtorrent(t *testing.T) {
	lttest.Require(t)
	for _, c := range []struct {
		name  string
		files map[string]int
	}{
		{"single", map[string]int{"": 5*BlockSize + 123}},
		{"crossing", map[string]int{"a/big.bin": 5*BlockSize + 123, "a/tiny": 10, "b.txt": 3000, "c/aligned": 4 * BlockSize, "d/e/f": BlockSize + 7}},
		{"empty-and-unicode", map[string]int{"empty": 0, "ünïcödé/日本語.txt": 4000, "données.bin": 2*BlockSize + 5, "z/last-empty": 0}},
	} {
		for _, format := range []Format{FormatHybrid, FormatV1} {
			pl := 2 * BlockSize
			t.Run(fmt.Sprintf("%s/%v", c.name, format), func(t *testing.T) {
				dir := t.TempDir()
				path, _ := writeCase(t, dir, "content-"+c.name, c.files)
				m, err := Build(context.Background(), path, BuildOptions{PieceLength: int64(pl), Format: format})
				if err != nil {
					t.Fatal(err)
				}
				in := m.Info
				want := hashesString(in)
				b, _ := m.Marshal()
				ours := filepath.Join(dir, "shoal.torrent")
				if err := os.WriteFile(ours, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if got := lttest.Run(t, "lt_torrent.py", "hashes", ours); got != want {
					t.Fatalf("libtorrent reads shoal's %v torrent as %s, shoal as %s", format, got, want)
				}

				ltOut := filepath.Join(dir, "lt.torrent")
				lttest.Run(t, "lt_torrent.py", "create", path, fmt.Sprint(pl), ltOut, format.String())
				ltHashes := lttest.Run(t, "lt_torrent.py", "hashes", ltOut)
				ltBytes, _ := os.ReadFile(ltOut)
				lm, err := Parse(ltBytes)
				if err != nil {
					t.Fatalf("parse libtorrent's %v torrent: %v", format, err)
				}
				if got := hashesString(lm.Info); got != ltHashes || lm.Info.Format != format {
					t.Fatalf("libtorrent's %v torrent parsed as %v %s, libtorrent says %s", format, lm.Info.Format, got, ltHashes)
				}
				if ltHashes != want {
					t.Fatalf("same content, same piece length: libtorrent made %s, shoal %s", ltHashes, want)
				}
				vdir := dir
				if lm.Info.SingleFile() && len(c.files) > 0 && c.files[""] == 0 {
					vdir = path
				}
				if p, err := Verify(context.Background(), lm, vdir, nil); err != nil || len(p) != 0 {
					t.Fatalf("verify against libtorrent's %v torrent: %v %v", format, p, err)
				}
				// And a flipped last byte of the last file with data fails
				// against it.
				fi := len(lm.Info.Files) - 1
				for lm.Info.Files[fi].Length == 0 || lm.Info.Files[fi].Pad {
					fi--
				}
				last := filepath.Join(append([]string{vdir}, lm.Info.DiskPath(fi)...)...)
				data, err := os.ReadFile(last)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)-1] ^= 1
				os.WriteFile(last, data, 0o644)
				if p, err := Verify(context.Background(), lm, vdir, nil); err != nil || len(p) == 0 || p[len(p)-1].Kind != BadPieces {
					t.Fatalf("verify a flipped last byte against libtorrent's %v torrent: %v %v", format, p, err)
				}
			})
		}
	}
}

// hashesString renders a torrent's info-hashes as lt_torrent.py's hashes
// command prints them.
func hashesString(in *Info) string {
	v2, v1 := "-", "-"
	if in.HasV2() {
		v2 = in.HexHash()
	}
	if in.HasV1() {
		v1 = in.V1Hash.String()
	}
	return v2 + " " + v1
}
