package piece

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/internal/lttest"
)

// tf is one file of a hand-made torrent: its slash-separated path in the
// tree, its length and its BEP 47 attributes.
type tf struct {
	path string
	n    int64
	attr string
}

// fakeRoot is a pieces root for a file whose data no test reads: any
// non-zero 32 bytes, different per path.
func fakeRoot(path string) string {
	h := sha256.Sum256([]byte(path))
	return string(h[:])
}

// v2Tree builds a BEP 52 file tree from files.
func v2Tree(files ...tf) map[string]any {
	tree := map[string]any{}
	for _, f := range files {
		node := tree
		parts := strings.Split(f.path, "/")
		for _, c := range parts[:len(parts)-1] {
			next, ok := node[c].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[c] = next
			}
			node = next
		}
		leaf := map[string]any{"length": f.n}
		if f.n > 0 {
			leaf["pieces root"] = fakeRoot(f.path)
		}
		if f.attr != "" {
			leaf["attr"] = f.attr
		}
		node[parts[len(parts)-1]] = map[string]any{"": leaf}
	}
	return tree
}

// v1List builds a v1 "files" list, files given in order.
func v1List(files ...tf) []any {
	var out []any
	for _, f := range files {
		var path []any
		for _, c := range strings.Split(f.path, "/") {
			path = append(path, c)
		}
		e := map[string]any{"length": f.n, "path": path}
		if f.attr != "" {
			e["attr"] = f.attr
		}
		out = append(out, e)
	}
	return out
}

// zeroPieces returns a "pieces" string for total bytes in pieces of pl:
// parsing never checks the hashes themselves.
func zeroPieces(total, pl int64) string {
	return strings.Repeat("\x01", int(20*((total+pl-1)/pl)))
}

func v2Dict(pl int64, files ...tf) map[string]any {
	return map[string]any{"meta version": 2, "name": "n", "piece length": pl, "file tree": v2Tree(files...)}
}

func v1Dict(pl int64, files ...tf) map[string]any {
	var total int64
	for _, f := range files {
		total += f.n
	}
	return map[string]any{"name": "n", "piece length": pl, "files": v1List(files...), "pieces": zeroPieces(total, pl)}
}

// hybridDict is v2Dict plus the v1 list libtorrent writes for the same
// files (given in tree order): a pad file after every file but the last
// that does not end on a piece boundary.
func hybridDict(pl int64, files ...tf) map[string]any {
	info := v2Dict(pl, files...)
	var v1 []tf
	var off int64
	for i, f := range files {
		v1 = append(v1, f)
		off += f.n
		if rem := f.n % pl; rem != 0 && i < len(files)-1 {
			v1 = append(v1, tf{fmt.Sprintf(".pad/%d", pl-rem), pl - rem, "p"})
			off += pl - rem
		}
	}
	info["files"] = v1List(v1...)
	info["pieces"] = zeroPieces(off, pl)
	return info
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func torrentOf(t testing.TB, info map[string]any) []byte {
	return encode(t, map[string]any{"info": info})
}

// builtTorrent hashes files (relative path → size) into a real v2
// torrent with piece layers and returns its decoded top-level dict.
func builtTorrent(t testing.TB, pl int64, files map[string]int) map[string]any {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "n")
	writeTree(t, dir, files)
	m, err := Build(context.Background(), dir, BuildOptions{PieceLength: pl})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := bencode.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	return top
}

// ltVerdicts asks libtorrent about each torrent in one run: "ok V2 V1" or
// "error: WHY", one per torrent.
func ltVerdicts(t *testing.T, torrents [][]byte) []string {
	t.Helper()
	dir := t.TempDir()
	var args []string
	for i, b := range torrents {
		p := filepath.Join(dir, fmt.Sprintf("%d.torrent", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out := strings.Split(lttest.Run(t, "lt_accepts.py", args...), "\n")
	if len(out) != len(torrents) {
		t.Fatalf("libtorrent gave %d verdicts for %d torrents:\n%s", len(out), len(torrents), strings.Join(out, "\n"))
	}
	return out
}

const kib16 = BlockSize

// parseCase is one torrent and what shoal does with it. ltDiffers, when
// set, says why shoal deliberately parts from libtorrent on it; the test
// checks libtorrent still does the opposite, so the note stays true.
type parseCase struct {
	name      string
	torrent   []byte
	want      string                // "" to accept, else a fragment of the refusal
	check     func(*MetaInfo) error // for an accepted torrent
	ltDiffers string
}

func diskPaths(in *Info) string {
	var out []string
	for i, f := range in.Files {
		if !f.Pad {
			out = append(out, strings.Join(in.DiskPath(i), "/"))
		}
	}
	return strings.Join(out, " ")
}

func wantPaths(want string) func(*MetaInfo) error {
	return func(m *MetaInfo) error {
		if got := diskPaths(m.Info); got != want {
			return fmt.Errorf("disk paths %q, want %q", got, want)
		}
		return nil
	}
}

func parseCases(t testing.TB) []parseCase {
	pl := int64(kib16)
	tor := func(info map[string]any) []byte { return torrentOf(t, info) }
	with := func(info map[string]any, k string, v any) map[string]any { info[k] = v; return info }
	base := v2Dict(pl, tf{"a", 100, ""}, tf{"b/c", 3 * pl, ""})
	baseInfo := encode(t, base)
	baseBytes := tor(base)

	// Two files of several pieces with real layers; one layer is dropped.
	built := builtTorrent(t, pl, map[string]int{"x.bin": 3 * kib16, "y.bin": 2*kib16 + 5})
	noLayers := map[string]any{"info": built["info"]}
	partial := map[string]any{"info": built["info"], "piece layers": map[string]any{}}
	for k, v := range built["piece layers"].(map[string]any) {
		partial["piece layers"].(map[string]any)[k] = v
		break
	}
	shortLayer := map[string]any{"info": built["info"], "piece layers": map[string]any{}}
	for k, v := range built["piece layers"].(map[string]any) {
		shortLayer["piece layers"].(map[string]any)[k] = v.(string)[32:]
	}

	hy := func() []any { return v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b/c", 3 * pl, ""}) }
	hyInfo := func(files []any) map[string]any {
		info := v2Dict(pl, tf{"a", 100, ""}, tf{"b/c", 3 * pl, ""})
		info["files"] = files
		info["pieces"] = zeroPieces(4*pl, pl)
		return info
	}
	// libtorrent's own layout: a pad after the last file with data even
	// though only an empty file follows it.
	ltLayout := hybridDict(pl, tf{"0", 0, ""}, tf{"a", 100, ""}, tf{"b/c", 10, ""}, tf{"e", 0, ""})

	// A '/' cannot be written through v2Tree or v1List, which split on it.
	slashTree := tor(with(v2Dict(pl, tf{"c", 1, ""}), "file tree", map[string]any{
		"a/b": v2Tree(tf{"x", 100, ""})["x"], "c": v2Tree(tf{"c", 1, ""})["c"]}))
	v1Odd := tor(with(v1Dict(pl, tf{"d", 1, ""}, tf{"e", 1, ""}), "files", []any{
		map[string]any{"length": 1, "path": []any{"d/x"}}, map[string]any{"length": 1, "path": []any{"e\xff"}}}))

	cases := []parseCase{
		// What mainstream clients accept.
		{name: "trailing newline", torrent: append(slices.Clip(baseBytes), '\n'), check: func(m *MetaInfo) error {
			if m.Info.Hash != sha256.Sum256(baseInfo) {
				return errors.New("info-hash does not cover exactly the info dict")
			}
			return nil
		}},
		{name: "trailing junk", torrent: append(slices.Clip(baseBytes), "xyz\x00"...)},
		{name: "no piece layers", torrent: encode(t, noLayers), check: func(m *MetaInfo) error {
			if got := m.MissingLayers(); len(got) != 2 || m.Layers[0] != nil || m.Layers[1] != nil {
				return fmt.Errorf("missing layers %v", got)
			}
			return nil
		}},
		{name: "incomplete piece layers", torrent: encode(t, partial), check: func(m *MetaInfo) error {
			if got := m.MissingLayers(); len(got) != 1 {
				return fmt.Errorf("missing layers %v, want one", got)
			}
			return nil
		}},
		{name: "invalid UTF-8 in a component", torrent: tor(v2Dict(pl, tf{"a\xff\xfeb", 100, ""}, tf{"c", 1, ""})), check: wantPaths("n/a\uFFFDb n/c")},
		{name: "invalid UTF-8 in the name", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}, tf{"c", 1, ""}), "name", "n\xffx")), check: wantPaths("n\uFFFDx/a n\uFFFDx/c")},
		{name: "slash in a component", torrent: slashTree, check: wantPaths("n/a_b n/c")},
		{name: "backslash in a component", torrent: tor(v2Dict(pl, tf{`a\b`, 100, ""}, tf{"c", 1, ""})), check: wantPaths("n/a_b n/c")},
		{name: "slash in the name", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}, tf{"c", 1, ""}), "name", "/etc")), check: wantPaths("_etc/a _etc/c")},
		{name: "v1 slash and invalid UTF-8", torrent: v1Odd, check: wantPaths("n/d_x n/e\uFFFD")},
		{name: "v1 pad file with a path leading up", torrent: tor(v1Dict(pl, tf{"a", 100, ""}, tf{"../../x", pl - 100, "p"}, tf{"c", 1, ""})), check: func(m *MetaInfo) error {
			if f := m.Info.Files[1]; !f.Pad || strings.Join(f.Path, "/") != ".pad/16284" {
				return fmt.Errorf("pad file %+v", f)
			}
			return nil
		}},
		{name: "v1 piece length not a power of two", torrent: tor(with(v1Dict(1500, tf{"a", 5000, ""}), "pieces", zeroPieces(5000, 1500)))},
		{name: "hybrid in libtorrent's layout", torrent: tor(ltLayout), check: func(m *MetaInfo) error {
			// The v1 piece space runs through the pad after b/c.
			if got := m.Info.V1PieceSize(1); got != pl {
				return fmt.Errorf("last v1 piece of %d bytes, want %d", got, pl)
			}
			return nil
		}},
		{name: "hybrid pad after the last file", torrent: tor(with(with(v2Dict(pl, tf{"a", 100, ""}), "files", v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"})), "pieces", zeroPieces(pl, pl))), check: func(m *MetaInfo) error {
			if got, data := m.Info.V1PieceSize(0), m.Info.PieceSize(0); got != pl || data != 100 {
				return fmt.Errorf("piece 0: %d bytes of v1, %d of data; want %d and 100", got, data, pl)
			}
			return nil
		}},
		{name: "hybrid without a pad before trailing empty files", torrent: tor(with(ltLayout, "files", v1List(tf{"0", 0, ""}, tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b/c", 10, ""}, tf{"e", 0, ""}))), check: func(m *MetaInfo) error {
			if got := m.Info.V1PieceSize(1); got != 10 {
				return fmt.Errorf("last v1 piece of %d bytes, want 10", got)
			}
			return nil
		}},

		// What they refuse.
		{name: "pad file in a v2 tree", torrent: tor(v2Dict(pl, tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"c", 1, ""})), want: "pad file"},
		{name: "no pieces root", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}), "file tree", map[string]any{"a": map[string]any{"": map[string]any{"length": 100}}})), want: "no pieces root"},
		{name: "all-zero pieces root", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}), "file tree", map[string]any{"a": map[string]any{"": map[string]any{"length": 100, "pieces root": string(make([]byte, 32))}}})), want: "all zeros"},
		{name: "negative length", torrent: tor(v2Dict(pl, tf{"a", -1, ""})), want: "negative length"},
		{name: "v1 negative length", torrent: tor(with(v1Dict(pl, tf{"a", 5, ""}, tf{"b", -5, ""}), "pieces", "")), want: "negative length"},
		{name: "absurd length", torrent: tor(v2Dict(pl, tf{"a", 1 << 50, ""})), want: "beyond 17592186028031 bytes"},
		{name: "a file of 16 TiB", torrent: tor(with(v2Dict(pl, tf{"a", 1 << 44, ""}), "piece length", 1<<28)), want: "beyond 17592186028031 bytes"},
		{name: "files of 16 TiB less a piece", torrent: tor(with(v2Dict(pl, tf{"a", 1<<44 - 1<<28, ""}, tf{"b", 1<<44 - 1<<28, ""}), "piece length", 1<<28))},
		{name: "256 TiB in all", torrent: tor(with(v2Dict(pl, func() []tf {
			var fs []tf
			for i := range 32 {
				fs = append(fs, tf{fmt.Sprintf("f%02d", i), 1 << 43, ""})
			}
			return fs
		}()...), "piece length", 1<<28)), want: "total length beyond"},
		{name: "v2 piece length of 512 MiB", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}), "piece length", 1<<29)), want: "not a power of two from", ltDiffers: "libtorrent takes up to 512 MiB; shoal stops at 256, where a bad piece already costs too much"},
		{name: "absurd piece count", torrent: tor(v2Dict(pl, tf{"a", MaxPieces*pl + 1, ""})), want: "more than 2097152 pieces"},
		{name: "v1 absurd length", torrent: tor(map[string]any{"name": "n", "piece length": 1 << 28, "length": int64(1) << 62, "pieces": strings.Repeat("x", 20)}), want: "outside 0 to"},
		{name: "v1 absurd file", torrent: tor(with(v1Dict(1<<28, tf{"a", 1 << 44, ""}, tf{"c", 1, ""}), "pieces", strings.Repeat("x", 20))), want: "beyond 17592186028031 bytes"},
		{name: "v1 files but no pieces", torrent: tor(map[string]any{"name": "n", "piece length": pl, "length": 100}), want: "v1 files but no pieces"},
		{name: "v1 pieces of the wrong count", torrent: tor(with(v1Dict(pl, tf{"a", 3 * pl, ""}), "pieces", zeroPieces(pl, pl))), want: "want 60"},
		{name: "v2 only empty files", torrent: tor(v2Dict(pl, tf{"a", 0, ""}, tf{"b", 0, ""})), want: "no data"},
		{name: "v1 only empty files", torrent: tor(with(v1Dict(pl, tf{"a", 0, ""}), "pieces", "")), want: "no data"},
		{name: "layer of the wrong size", torrent: encode(t, shortLayer), want: "want 96"},
		{name: "empty component in a v2 tree", torrent: tor(with(v2Dict(pl, tf{"a", 1, ""}), "file tree", map[string]any{"": map[string]any{"": map[string]any{"length": 1, "pieces root": fakeRoot("x")}}, "a": v2Tree(tf{"a", 1, ""})["a"]})), want: "empty path component"},
		{name: "v2 file and folder at one path", torrent: tor(with(v2Dict(pl, tf{"a", 1, ""}), "file tree", map[string]any{"a": map[string]any{"": map[string]any{"length": 1, "pieces root": fakeRoot("a")}, "b": v2Tree(tf{"b", 1, ""})["b"]}})), want: "both a file and a folder"},
		{name: "v1 single file named ..", torrent: tor(map[string]any{"name": "..", "piece length": pl, "length": 100, "pieces": zeroPieces(100, pl)}), want: `name: ".."`},
		{name: "hybrid pad after an aligned last file", torrent: tor(hyInfo(append(hy(), v1List(tf{".pad/1", 1, "p"})...))), want: "pad file after the last file"},
		{name: "hybrid pad after an empty file", torrent: tor(with(with(v2Dict(pl, tf{"a", 100, ""}, tf{"b", 0, ""}), "files", v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b", 0, ""}, tf{".pad/16284", pl - 100, "p"})), "pieces", zeroPieces(2*pl, pl))), want: "pad file after the last file"},
		{name: "hybrid short pad after the last file", torrent: tor(with(with(v2Dict(pl, tf{"a", 100, ""}), "files", v1List(tf{"a", 100, ""}, tf{".pad/50", 50, "p"})), "pieces", zeroPieces(pl, pl))), want: "pad file of 50 bytes"},
		{name: "hybrid pad of the wrong size", torrent: tor(hyInfo(v1List(tf{"a", 100, ""}, tf{".pad/16283", pl - 101, "p"}, tf{"b/c", 3 * pl, ""}))), want: "pad file of 16283 bytes"},
		{name: "hybrid missing pad", torrent: tor(hyInfo(v1List(tf{"a", 100, ""}, tf{"b/c", 3 * pl, ""}))), want: "not followed by a pad file"},
		{name: "hybrid pad where no file needs one", torrent: tor(hyInfo(v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{".pad/0", 0, "p"}, tf{"b/c", 3 * pl, ""}))), want: "is a pad file where v2 has"},
		{name: "hybrid files in another order", torrent: tor(hyInfo(v1List(tf{"b/c", 3 * pl, ""}, tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}))), want: "is not v2 file"},
		{name: "hybrid sizes differ", torrent: tor(hyInfo(v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b/c", 3*pl - 1, ""}))), want: "is not v2 file"},
		{name: "hybrid paths differ", torrent: tor(hyInfo(v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b/d", 3 * pl, ""}))), want: "is not v2 file"},
		{name: "hybrid extra v1 file", torrent: tor(hyInfo(append(hy(), v1List(tf{"z", 1, ""})...))), want: "no v2 counterpart"},
		{name: "hybrid single file", torrent: tor(with(with(v2Dict(pl, tf{"n", 100, ""}), "length", 100), "pieces", zeroPieces(100, pl))), check: wantPaths("n")},
		{name: "hybrid single file named otherwise", torrent: tor(with(with(v2Dict(pl, tf{"a", 100, ""}), "length", 100), "pieces", zeroPieces(100, pl))), want: "is not v2 file"},
		{name: "hybrid v1 lacks an empty file", torrent: tor(with(ltLayout, "files", v1List(tf{"a", 100, ""}, tf{".pad/16284", pl - 100, "p"}, tf{"b/c", 10, ""}, tf{".pad/16374", pl - 10, "p"}, tf{"e", 0, ""}))), want: "is not v2 file"},

		// Where shoal refuses what libtorrent repairs: a name that leads
		// up or nowhere comes from no honest creator, and two files at one
		// path would overwrite each other.
		{name: "dotdot component", torrent: tor(v2Dict(pl, tf{"../x", 100, ""}, tf{"c", 1, ""})), want: `".."`, ltDiffers: "libtorrent drops the component"},
		{name: "dot component", torrent: tor(v2Dict(pl, tf{"./x", 100, ""}, tf{"c", 1, ""})), want: `"."`, ltDiffers: "libtorrent drops the component"},
		{name: "v1 dotdot component", torrent: tor(v1Dict(pl, tf{"../x", 100, ""}, tf{"c", 1, ""})), want: `".."`, ltDiffers: "libtorrent drops the component"},
		{name: "NUL in a component", torrent: tor(v2Dict(pl, tf{"a\x00b", 100, ""}, tf{"c", 1, ""})), want: "NUL", ltDiffers: "libtorrent drops the NUL"},
		{name: "v1 empty component", torrent: tor(v1Dict(pl, tf{"/x", 100, ""}, tf{"c", 1, ""})), want: "empty path component", ltDiffers: "libtorrent names it _"},
		{name: "v2 name ..", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}, tf{"c", 1, ""}), "name", "..")), want: `name: ".."`, ltDiffers: "libtorrent names the folder after the info-hash"},
		{name: "v2 empty name", torrent: tor(with(v2Dict(pl, tf{"a", 100, ""}, tf{"c", 1, ""}), "name", "")), want: "empty path component", ltDiffers: "libtorrent names the folder _"},
		{name: "v1 two files at one path", torrent: tor(v1Dict(pl, tf{"a", 100, ""}, tf{"a", 100, ""})), want: "two files at one path", ltDiffers: "libtorrent renames the second a.1"},
		{name: "v1 file and folder at one path", torrent: tor(v1Dict(pl, tf{"a", 100, ""}, tf{"a/b", 100, ""})), want: "both a file and a folder", ltDiffers: "libtorrent renames the file a.1"},
		{name: "sanitized names collide", torrent: tor(v2Dict(pl, tf{`a\b`, 100, ""}, tf{"a_b", 1, ""})), want: "two files at one path", ltDiffers: "libtorrent drops the backslash, so the names differ"},
		{name: "v1 piece length under 1 KiB", torrent: tor(with(v1Dict(512, tf{"a", 5000, ""}), "pieces", zeroPieces(5000, 512))), want: "piece length 512", ltDiffers: "libtorrent takes any positive length; tiny pieces only multiply hashes"},
		{name: "hybrid without pieces", torrent: tor(func() map[string]any { i := hyInfo(hy()); delete(i, "pieces"); return i }()), want: "v1 files but no pieces", ltDiffers: "libtorrent reads the v2 part alone"},
	}
	return cases
}

// TestParseLikeLibtorrent parses torrents that mainstream clients accept
// or refuse, each built to show one rule, and asks libtorrent 2.0 about
// every one: it must agree, except where a case says why shoal differs.
func TestParseLikeLibtorrent(t *testing.T) {
	cases := parseCases(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(c.torrent)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want a refusal mentioning %q", c.want)
			case c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %q, want ErrInvalid mentioning %q", err, c.want)
			case c.want == "" && c.check != nil:
				if err := c.check(m); err != nil {
					t.Fatal(err)
				}
			}
			if err == nil {
				for i := range m.Info.Files {
					for _, comp := range m.Info.DiskPath(i) {
						if CheckPathComponent(comp) != nil {
							t.Fatalf("unsafe path %q accepted", m.Info.DiskPath(i))
						}
					}
				}
			}
		})
	}
	lttest.Require(t)
	var all [][]byte
	for _, c := range cases {
		all = append(all, c.torrent)
	}
	for i, v := range ltVerdicts(t, all) {
		c := cases[i]
		ltOK := strings.HasPrefix(v, "ok ")
		agrees := ltOK == (c.want == "")
		switch {
		case c.ltDiffers == "" && !agrees:
			t.Errorf("%s: libtorrent says %q, shoal %s", c.name, v, map[bool]string{true: "accepts", false: "refuses"}[c.want == ""])
		case c.ltDiffers != "" && agrees:
			t.Errorf("%s: libtorrent now agrees with shoal (%q); the note %q is stale", c.name, v, c.ltDiffers)
		case ltOK && c.want == "":
			// The info-hashes are those of the bytes as given, sanitizing
			// or not: libtorrent and shoal join one swarm.
			m, err := Parse(c.torrent)
			if err != nil {
				continue // reported above
			}
			v2, v1 := "-", "-"
			if m.Info.HasV2() {
				v2 = m.Info.HexHash()
			}
			if m.Info.HasV1() {
				v1 = m.Info.V1Hash.String()
			}
			if want := "ok " + v2 + " " + v1; v != want {
				t.Errorf("%s: libtorrent reads %q, shoal %q", c.name, v, want)
			}
		}
	}
}

// ParseInfo reads an info dict whose hash must cover exactly its bytes:
// trailing bytes there are refused, unlike after a whole .torrent.
func TestParseInfoRefusesTrailingBytes(t *testing.T) {
	b := encode(t, v2Dict(kib16, tf{"a", 100, ""}))
	if _, err := ParseInfo(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseInfo(append(b, '\n')); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "trailing") {
		t.Fatalf("error %v, want a refusal of the trailing byte", err)
	}
}

// A sanitized name changes only where the file lands: Bytes, and so both
// info-hashes, stay those of the original, and a re-encoded torrent keeps
// the original names.
func TestSanitizedNameKeepsBytes(t *testing.T) {
	info := hybridDict(kib16, tf{"a\xff", 100, ""}, tf{`b\c`, 10, ""})
	raw := encode(t, info)
	in, err := ParseInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(in.Bytes) != string(raw) || in.Hash != sha256.Sum256(raw) {
		t.Fatal("Bytes or Hash changed by sanitizing")
	}
	if got := diskPaths(in); got != "n/a\uFFFD n/b_c" {
		t.Fatalf("paths %q", got)
	}
	m := &MetaInfo{Info: in}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "a\xff") || !strings.Contains(string(b), `b\c`) {
		t.Fatal("re-encoded torrent lost the original names")
	}
}

// fixtureData is the content libtorrent hashed into the fixtures
// libtorrent-v1*.torrent and libtorrent-hybrid-pads.torrent: byte i of a
// file is i·31 plus the length of the file's name.
func fixtureData(name string, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + len(name))
	}
	return b
}

// The fixtures made by libtorrent (v1 with and without pad files, v1
// single-file, hybrid with a pad before an empty file and one at the
// end) parse to the piece space libtorrent hashed: every v1 piece's
// SHA-1 over its spans, pads read as zeros, is the one in the torrent,
// and libtorrent reads each to the info-hashes shoal does.
func TestLibtorrentFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/torrents/*.torrent")
	var accepted [][]byte
	var infos []*Info
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(b)
		if strings.Contains(p, "evil") {
			if err == nil {
				t.Errorf("%s accepted", p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		accepted, infos = append(accepted, b), append(infos, m.Info)
		name := filepath.Base(p)
		if !strings.HasPrefix(name, "libtorrent-v1") && name != "libtorrent-hybrid-pads.torrent" {
			continue
		}
		in := m.Info
		if want := map[bool]Format{true: FormatV1, false: FormatHybrid}[strings.HasPrefix(name, "libtorrent-v1")]; in.Format != want {
			t.Errorf("%s: format %v, want %v", name, in.Format, want)
		}
		data := make([][]byte, len(in.Files))
		for i, f := range in.Files {
			if !f.Pad {
				data[i] = fixtureData(f.Path[len(f.Path)-1], f.Length)
			}
		}
		var spans []Span
		for p := range in.NumPieces {
			h := sha1.New()
			spans = in.AppendSpans(spans[:0], p, 0, in.V1PieceSize(p))
			for _, s := range spans {
				if s.File < 0 {
					h.Write(make([]byte, s.Len))
				} else {
					h.Write(data[s.File][s.Off : s.Off+s.Len])
				}
			}
			if got := [20]byte(h.Sum(nil)); got != in.PieceHash(p) {
				t.Errorf("%s: piece %d of %d: SHA-1 over its spans is not the torrent's", name, p, in.NumPieces)
			}
		}
	}
	lttest.Require(t)
	for i, v := range ltVerdicts(t, accepted) {
		in := infos[i]
		v2, v1 := "-", "-"
		if in.HasV2() {
			v2 = in.HexHash()
		}
		if in.HasV1() {
			v1 = in.V1Hash.String()
		}
		if want := "ok " + v2 + " " + v1; v != want {
			t.Errorf("%s: libtorrent reads %q, shoal %q", in.Name, v, want)
		}
	}
}
