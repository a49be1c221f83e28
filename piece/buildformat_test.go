package piece

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// naiveV1Pieces is the textbook v1 "pieces": the files in order, each
// followed, in a multi-file hybrid, by zeros up to the next piece
// boundary, cut into pieces of pl bytes, each hashed with SHA-1.
func naiveV1Pieces(datas [][]byte, pl int, padded bool) []byte {
	var space []byte
	for _, d := range datas {
		space = append(space, d...)
		if padded && len(d)%pl != 0 {
			space = append(space, make([]byte, pl-len(d)%pl)...)
		}
	}
	var out []byte
	for off := 0; off < len(space); off += pl {
		h := sha1.Sum(space[off:min(off+pl, len(space))])
		out = append(out, h[:]...)
	}
	return out
}

// buildCases are layouts whose v1 pieces cross file boundaries, hold small
// files whole, end in empty files and fall exactly on piece boundaries.
var buildCases = []struct {
	name  string
	files map[string]int // "" means PATH is one file
}{
	{"single", map[string]int{"": 5*BlockSize + 123}},
	{"single-small", map[string]int{"": 100}},
	{"folder-of-one", map[string]int{"only": 3*BlockSize + 1}},
	{"multi", map[string]int{"a/big.bin": 5*BlockSize + 123, "a/tiny": 10, "b.txt": 3000, "c/aligned": 4 * BlockSize, "d/e/f": BlockSize + 7}},
	{"empty-last", map[string]int{"a.bin": 100000, "b/c.txt": 10, "e": 0}},
	{"empty-middle", map[string]int{"a": 2*BlockSize + 1, "b": 0, "c": 5}},
}

// writeCase writes a buildCases layout under dir and returns the path to
// build and the files' contents in file tree order.
func writeCase(t *testing.T, dir, name string, files map[string]int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if n, single := files[""]; single {
		writeTree(t, dir, map[string]int{name: n})
		d, _ := os.ReadFile(path)
		return path, [][]byte{d}
	}
	writeTree(t, path, files)
	var rels [][]string
	for rel := range files {
		rels = append(rels, strings.Split(rel, "/"))
	}
	slices.SortFunc(rels, slices.Compare)
	var datas [][]byte
	for _, r := range rels {
		d, err := os.ReadFile(filepath.Join(append([]string{path}, r...)...))
		if err != nil {
			t.Fatal(err)
		}
		datas = append(datas, d)
	}
	return path, datas
}

// Build makes v1 and hybrid torrents whose SHA-1 pieces are the textbook
// ones, which Parse reads back to the same info and which agree with a v2
// build of the same data on every pieces root.
func TestBuildFormats(t *testing.T) {
	for _, c := range buildCases {
		for _, pl := range []int{BlockSize, 2 * BlockSize} {
			t.Run(fmt.Sprintf("%s/pl=%d", c.name, pl), func(t *testing.T) {
				path, datas := writeCase(t, t.TempDir(), "content", c.files)
				v2, err := Build(context.Background(), path, BuildOptions{PieceLength: int64(pl)})
				if err != nil {
					t.Fatal(err)
				}
				for _, format := range []Format{FormatHybrid, FormatV1} {
					m, err := Build(context.Background(), path, BuildOptions{PieceLength: int64(pl), Format: format, Hasher: &Hasher{Workers: 3}})
					if err != nil {
						t.Fatalf("%v: %v", format, err)
					}
					in := m.Info
					if in.Format != format {
						t.Fatalf("asked for %v, built %v", format, in.Format)
					}
					_, one := c.files[""]
					if want := naiveV1Pieces(datas, pl, format == FormatHybrid && !one); !bytes.Equal(in.Pieces, want) {
						t.Fatalf("%v: %d bytes of pieces differ from the %d expected", format, len(in.Pieces), len(want))
					}
					b, err := m.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					back, err := Parse(b)
					if err != nil {
						t.Fatalf("%v: shoal does not parse its own torrent: %v", format, err)
					}
					if back.Info.V1Hash != in.V1Hash || back.Info.Hash != in.Hash || back.Info.Format != format {
						t.Fatalf("%v: parsed back as %v %s/%s", format, back.Info.Format, back.Info.V1Hash, back.Info.HexHash())
					}
					// A hybrid is stored as its v2 part says; a v1 torrent
					// is one file only when PATH is.
					wantSingle := one
					if format == FormatHybrid {
						wantSingle = v2.Info.SingleFile()
					}
					if in.SingleFile() != wantSingle || in.TotalLength != v2.Info.TotalLength {
						t.Fatalf("%v: single %v total %d; want %v %d", format, in.SingleFile(), in.TotalLength, wantSingle, v2.Info.TotalLength)
					}
					if format == FormatHybrid {
						if len(in.Files) != len(v2.Info.Files) || in.NumPieces != v2.Info.NumPieces {
							t.Fatalf("hybrid: %d files, %d pieces; v2: %d, %d", len(in.Files), in.NumPieces, len(v2.Info.Files), v2.Info.NumPieces)
						}
						for i := range in.Files {
							if in.Files[i].PiecesRoot != v2.Info.Files[i].PiecesRoot {
								t.Fatalf("hybrid: root of file %d differs from the v2 build's", i)
							}
						}
						for i, l := range back.Layers {
							if !slices.Equal(l, v2.Layers[i]) {
								t.Fatalf("hybrid: layer of file %d differs from the v2 build's", i)
							}
						}
					}
					checkPads(t, in.Bytes, int64(pl), format)
					dir := filepath.Dir(path)
					if !one && in.SingleFile() {
						dir = path // BEP 52: a folder of one file is stored as that file
					}
					if p, err := Verify(context.Background(), back, dir, nil); err != nil || len(p) != 0 {
						t.Fatalf("%v: verify intact data: %v %v", format, p, err)
					}
				}
			})
		}
	}
}

// checkPads requires the pad files libtorrent 2.0 writes in a hybrid (one
// after every file that does not end on a piece boundary, the last one
// included, path .pad/<size>, attr p) and none in a v1 torrent.
func checkPads(t *testing.T, infoBytes []byte, pl int64, format Format) {
	t.Helper()
	var d struct {
		Files []struct {
			Length int64    `bencode:"length"`
			Path   []string `bencode:"path"`
			Attr   string   `bencode:"attr"`
		} `bencode:"files"`
	}
	if err := bencode.Unmarshal(infoBytes, &d); err != nil {
		t.Fatal(err)
	}
	for i, f := range d.Files {
		pad := f.Attr == "p"
		wantPad := format == FormatHybrid && i > 0 && d.Files[i-1].Attr != "p" && d.Files[i-1].Length%pl != 0
		if pad {
			if !wantPad || f.Length != pl-d.Files[i-1].Length%pl || !slices.Equal(f.Path, []string{".pad", fmt.Sprint(f.Length)}) {
				t.Fatalf("%v: files[%d] is a pad file %v of %d bytes where none belongs", format, i, f.Path, f.Length)
			}
		} else if wantPad {
			t.Fatalf("%v: files[%d] %v: no pad file after a file that does not end on a piece boundary", format, i, f.Path)
		}
	}
	if n := len(d.Files); n > 0 && format == FormatHybrid && d.Files[n-1].Attr != "p" && d.Files[n-1].Length%pl != 0 {
		t.Fatalf("%v: no pad file after the last file, which does not end on a piece boundary", format)
	}
}
