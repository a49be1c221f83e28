package piece

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// writeTree creates files (relative path → size) under dir with data that
// differs per file and per block.
func writeTree(t testing.TB, dir string, files map[string]int) {
	t.Helper()
	for p, n := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		seed := uint32(len(p)*7919 + n)
		for i := range data {
			seed = seed*1664525 + 1013904223
			data[i] = byte(seed >> 24)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sample builds a torrent of a folder with a multi-piece file, a small one
// and an empty one, and returns it with its encoding.
func sample(t testing.TB) (*MetaInfo, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sample")
	writeTree(t, dir, map[string]int{"big.bin": 5*BlockSize + 123, "sub/small.txt": 100, "sub/empty": 0})
	m, err := Build(context.Background(), dir, BuildOptions{PieceLength: 2 * BlockSize, Trackers: []string{"http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"}, Comment: "c"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func TestBuildParseRoundTrip(t *testing.T) {
	m, b := sample(t)
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Info.Hash != m.Info.Hash || got.Info.Name != "sample" || got.Info.SingleFile() {
		t.Fatalf("parsed %+v", got.Info)
	}
	var paths []string
	for i := range got.Info.Files {
		paths = append(paths, strings.Join(got.Info.DiskPath(i), "/"))
	}
	if want := "sample/big.bin sample/sub/empty sample/sub/small.txt"; strings.Join(paths, " ") != want {
		t.Errorf("files %v, want %s", paths, want)
	}
	if got.Info.NumPieces != 4 || got.Info.Files[0].NumPieces != 3 || got.Info.Files[1].NumPieces != 0 {
		t.Errorf("pieces: %d total, files %+v", got.Info.NumPieces, got.Info.Files)
	}
	if got.Info.FileOfPiece(3) != 2 || got.Info.PieceSize(2) != BlockSize+123 || got.Info.PieceSize(3) != 100 {
		t.Errorf("piece map: file of 3 = %d, size of 2 = %d, size of 3 = %d", got.Info.FileOfPiece(3), got.Info.PieceSize(2), got.Info.PieceSize(3))
	}
	if len(got.Layers[0]) != 3 || got.Layers[2] != nil {
		t.Errorf("layers %v", got.Layers)
	}
	if tr := got.Trackers(); len(tr) != 2 || got.Announce != tr[0] || got.Comment != "c" {
		t.Errorf("trackers %v announce %q", tr, got.Announce)
	}
	again, _ := got.Marshal()
	if string(again) != string(b) {
		t.Error("re-encoding a parsed torrent changed it")
	}
}

func TestSingleFileTorrent(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"one.iso": 3 * BlockSize})
	m, err := Build(context.Background(), filepath.Join(dir, "one.iso"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Info.SingleFile() || strings.Join(m.Info.DiskPath(0), "/") != "one.iso" {
		t.Fatalf("single %v, path %v", m.Info.SingleFile(), m.Info.DiskPath(0))
	}
}

// A folder holding one file gives a tree with one file at its top: BEP 52
// calls that a single-file torrent, stored under the file's name.
func TestFolderWithOneFileIsSingleFile(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]int{"folder/inner.bin": 100})
	m, err := Build(context.Background(), filepath.Join(dir, "folder"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "folder" || !m.Info.SingleFile() || strings.Join(m.Info.DiskPath(0), "/") != "inner.bin" {
		t.Fatalf("name %q single %v path %v", m.Info.Name, m.Info.SingleFile(), m.Info.DiskPath(0))
	}
}

// decoded returns the sample torrent as generic bencode values to mutate.
func decoded(t *testing.T) map[string]any {
	_, b := sample(t)
	var top map[string]any
	if err := bencode.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	return top
}

func infoOf(top map[string]any) map[string]any { return top["info"].(map[string]any) }
func treeOf(top map[string]any) map[string]any { return infoOf(top)["file tree"].(map[string]any) }

func TestParseRefuses(t *testing.T) {
	leaf := func(top map[string]any) map[string]any {
		return treeOf(top)["sub"].(map[string]any)["small.txt"].(map[string]any)[""].(map[string]any)
	}
	cases := []struct {
		name   string
		mutate func(top map[string]any)
		want   string
	}{
		{"no info", func(top map[string]any) { delete(top, "info") }, "no info dict"},
		{"info not a dict", func(top map[string]any) { top["info"] = "x" }, "want a dict"},
		{"v1 only", func(top map[string]any) { infoOf(top)["meta version"] = 1 }, "meta version 1"},
		{"no meta version", func(top map[string]any) { delete(infoOf(top), "meta version") }, "meta version: missing"},
		{"name missing", func(top map[string]any) { delete(infoOf(top), "name") }, "name: missing"},
		{"name mistyped", func(top map[string]any) { infoOf(top)["name"] = 5 }, "name: an integer, want a string"},
		{"name dotdot", func(top map[string]any) { infoOf(top)["name"] = ".." }, `name: ".."`},
		{"piece length mistyped", func(top map[string]any) { infoOf(top)["piece length"] = "big" }, "piece length: a string"},
		{"piece length not power of two", func(top map[string]any) { infoOf(top)["piece length"] = 3 * BlockSize }, "not a power of two"},
		{"piece length too small", func(top map[string]any) { infoOf(top)["piece length"] = 8192 }, "not a power of two"},
		{"no file tree", func(top map[string]any) { delete(infoOf(top), "file tree") }, "no file tree"},
		{"empty file tree", func(top map[string]any) { infoOf(top)["file tree"] = map[string]any{} }, "holds no files"},
		{"dotdot component", func(top map[string]any) { treeOf(top)[".."] = treeOf(top)["sub"]; delete(treeOf(top), "sub") }, `"..": path component ".."`},
		{"NUL in component", func(top map[string]any) { treeOf(top)["a\x00b"] = treeOf(top)["sub"]; delete(treeOf(top), "sub") }, "NUL"},
		{"empty component", func(top map[string]any) {
			treeOf(top)[""] = map[string]any{"": map[string]any{"length": 0}}
		}, "empty path component"},
		{"file and folder at one path", func(top map[string]any) {
			treeOf(top)["sub"].(map[string]any)[""] = map[string]any{"length": 1, "pieces root": strings.Repeat("x", 32)}
		}, "both a file and a folder"},
		{"empty folder", func(top map[string]any) { treeOf(top)["void"] = map[string]any{} }, "empty folder"},
		{"negative length", func(top map[string]any) { leaf(top)["length"] = -1 }, "negative length"},
		{"length mistyped", func(top map[string]any) { leaf(top)["length"] = "100" }, "length: a string"},
		{"no pieces root", func(top map[string]any) { delete(leaf(top), "pieces root") }, "no pieces root"},
		{"short pieces root", func(top map[string]any) { leaf(top)["pieces root"] = "abc" }, "not 32 bytes"},
		{"empty file with root", func(top map[string]any) {
			treeOf(top)["sub"].(map[string]any)["empty"].(map[string]any)[""].(map[string]any)["pieces root"] = strings.Repeat("x", 32)
		}, "empty file with a pieces root"},
		{"piece layers mistyped", func(top map[string]any) { top["piece layers"] = 7 }, "piece layers: an integer"},
		{"layer wrong size", func(top map[string]any) {
			for k, v := range top["piece layers"].(map[string]any) {
				top["piece layers"].(map[string]any)[k] = v.(string)[:64]
			}
		}, "64 bytes, want 96"},
		{"layer wrong root", func(top map[string]any) {
			for k, v := range top["piece layers"].(map[string]any) {
				s := []byte(v.(string))
				s[0] ^= 1
				top["piece layers"].(map[string]any)[k] = string(s)
			}
		}, "does not hash to its pieces root"},
		{"layer key short", func(top map[string]any) { top["piece layers"].(map[string]any)["short"] = "" }, "32-byte pieces root"},
		{"announce-list mistyped", func(top map[string]any) { top["announce-list"] = []any{"x"} }, "announce-list[0]: a string"},
		{"announce mistyped", func(top map[string]any) { top["announce"] = 1 }, "announce: an integer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top := decoded(t)
			c.mutate(top)
			b, err := bencode.Marshal(top)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestParseRefusesMalformedBencode(t *testing.T) {
	_, good := sample(t)
	cases := map[string]string{
		"empty":             "",
		"not bencode":       "hello",
		"truncated":         string(good[:len(good)/2]),
		"list at top":       "le",
		"unsorted keys":     "d1:bi1e1:ai1ee",
		"duplicate keys":    "d4:infod1:ai1e1:ai2eee",
		"huge string claim": "d4:info99999999999:xe",
		"bad integer":       "d4:infoi1x2ee",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
	}
}

func TestParseInfoDuplicateFileKey(t *testing.T) {
	// Two files at one path can only be written as a duplicate dict key.
	info := "d9:file treed1:ad0:d6:lengthi1e11:pieces root32:" + strings.Repeat("x", 32) + "ee1:ad0:d6:lengthi1e11:pieces root32:" + strings.Repeat("y", 32) + "eee12:meta versioni2e4:name1:n12:piece lengthi16384ee"
	if _, err := ParseInfo([]byte(info)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unsorted") {
		t.Fatalf("error %v, want a refusal of the repeated key", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	if _, err := Parse(make([]byte, MaxTorrentSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v", err)
	}
	if _, err := ParseInfo(make([]byte, MaxInfoSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v", err)
	}
}

func TestCheckLayer(t *testing.T) {
	m, _ := sample(t)
	if err := m.Info.CheckLayer(0, m.Layers[0]); err != nil {
		t.Fatal(err)
	}
	bad := append([]Hash(nil), m.Layers[0]...)
	bad[2][5] ^= 1
	if m.Info.CheckLayer(0, bad) == nil || m.Info.CheckLayer(0, bad[:2]) == nil {
		t.Fatal("forged or short layer accepted")
	}
}

func TestBuildRefusesAndSkips(t *testing.T) {
	dir := t.TempDir()
	if _, err := Build(context.Background(), filepath.Join(dir, "missing"), BuildOptions{}); err == nil {
		t.Error("missing path accepted")
	}
	writeTree(t, dir, map[string]int{"d/e": 0})
	if _, err := Build(context.Background(), filepath.Join(dir, "d"), BuildOptions{}); err == nil {
		t.Error("all-empty folder accepted")
	}
	writeTree(t, dir, map[string]int{"d/f": 10})
	if _, err := Build(context.Background(), filepath.Join(dir, "d"), BuildOptions{PieceLength: 3 << 14}); err == nil {
		t.Error("bad piece length accepted")
	}
	// A symlink is skipped, never followed, so nothing outside the folder
	// ends up in the torrent.
	writeTree(t, dir, map[string]int{"outside": 100})
	if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(dir, "d", "link")); err != nil {
		t.Fatal(err)
	}
	m, err := Build(context.Background(), filepath.Join(dir, "d"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Info.Files {
		if f.Path[0] == "link" {
			t.Fatal("symlink followed")
		}
	}
	if len(m.Info.Files) != 2 {
		t.Errorf("files %+v, want e and f", m.Info.Files)
	}
}

// A hybrid whose v1 file list does not describe its v2 tree is refused:
// the two halves of one swarm would disagree about the data.
func TestHybridDisagreementRefused(t *testing.T) {
	m, _ := sample(t)
	var info map[string]any
	if err := bencode.Unmarshal(m.Info.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	info["pieces"] = strings.Repeat("\x00", 20*m.Info.NumPieces)
	info["files"] = []any{map[string]any{"length": 1, "path": []any{"x"}}}
	b, _ := bencode.Marshal(info)
	if hy, err := ParseInfo(b); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "hybrid") {
		t.Fatalf("mismatched hybrid parsed as %+v, %v", hy, err)
	}
}
