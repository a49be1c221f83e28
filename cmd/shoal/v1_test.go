package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// v1Entry is one entry of a v1 file list: data from disk, or a BEP 47 pad
// file of zeros.
type v1Entry struct {
	path []string
	size int64
	pad  bool
}

// v1Files lists the files under dir/data in the order given, with a pad
// file (attr "p", path .pad/N as libtorrent names them) after every file
// but the last that does not end on a piece boundary when pads is set.
func v1Files(t *testing.T, dir string, pl int64, pads bool, rel ...string) []v1Entry {
	t.Helper()
	var out []v1Entry
	for i, r := range rel {
		st, err := os.Stat(filepath.Join(dir, "data", r))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v1Entry{path: strings.Split(r, "/"), size: st.Size()})
		if rem := st.Size() % pl; pads && rem != 0 && i < len(rel)-1 {
			out = append(out, v1Entry{path: []string{".pad", fmt.Sprint(pl - rem)}, size: pl - rem, pad: true})
		}
	}
	return out
}

// v1Pieces hashes the v1 piece space of files under dir/data: the files
// end to end, pad files as zeros, one SHA-1 per piece.
func v1Pieces(t *testing.T, dir string, pl int64, files []v1Entry) string {
	t.Helper()
	var space []byte
	for _, f := range files {
		if f.pad {
			space = append(space, make([]byte, f.size)...)
			continue
		}
		data, err := os.ReadFile(filepath.Join(append([]string{dir, "data"}, f.path...)...))
		if err != nil {
			t.Fatal(err)
		}
		space = append(space, data...)
	}
	var pieces []byte
	for off := 0; off < len(space); off += int(pl) {
		h := sha1.Sum(space[off:min(off+int(pl), len(space))])
		pieces = append(pieces, h[:]...)
	}
	return string(pieces)
}

func v1List(files []v1Entry) []any {
	var list []any
	for _, f := range files {
		e := map[string]any{"length": f.size, "path": f.path}
		if f.pad {
			e["attr"] = "p"
		}
		list = append(list, e)
	}
	return list
}

// handTorrent is a torrent written by hand, with the hashes the test
// computed itself from the info dict it encoded.
type handTorrent struct {
	path   string
	v1, v2 string // hex info-hashes, "" where the format has none
}

// writeV1Torrent writes dir/NAME.torrent, a v1 torrent of dir/data's
// files (rel, in that order), with pad files if pads is set, built from
// the bencoded dict up rather than by shoal, so that shoal's reading of
// it is checked against an independent writer.
func writeV1Torrent(t *testing.T, dir, name string, pl int64, pads bool, rel ...string) handTorrent {
	t.Helper()
	files := v1Files(t, dir, pl, pads, rel...)
	info := map[string]any{"name": "data", "piece length": pl, "pieces": v1Pieces(t, dir, pl, files), "files": v1List(files)}
	return writeHand(t, dir, name, map[string]any{"announce": "http://127.0.0.1:1/announce"}, info, false)
}

// writeHybridTorrent turns the v2 torrent shoal creates of dir/data into
// a hybrid by hand: the v1 file list (with the pad files BEP 52 requires
// between files that do not end on a piece boundary) and the SHA-1 piece
// hashes added to its info dict, its piece layers kept.
func writeHybridTorrent(t *testing.T, dir, name string, pl int64, rel ...string) handTorrent {
	t.Helper()
	if r := shoal(t, dir, nil, "create", "data", "-o", name+".v2", "--piece-length", fmt.Sprint(pl)); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, name+".v2"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := bencode.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	info, ok := top["info"].(map[string]any)
	if !ok {
		t.Fatalf("create wrote no info dict")
	}
	files := v1Files(t, dir, pl, true, rel...)
	info["files"] = v1List(files)
	info["pieces"] = v1Pieces(t, dir, pl, files)
	return writeHand(t, dir, name, top, info, true)
}

func writeHand(t *testing.T, dir, name string, top, info map[string]any, v2 bool) handTorrent {
	t.Helper()
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	top["info"] = bencode.Bytes(ib)
	data, err := bencode.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	h := handTorrent{path: name}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s1 := sha1.Sum(ib)
	h.v1 = hex.EncodeToString(s1[:])
	if v2 {
		s2 := sha256.Sum256(ib)
		h.v2 = hex.EncodeToString(s2[:])
	}
	return h
}

// hashesOf computes the hashes of the torrent at path from its info
// dict's bytes, as the test reads them.
func hashesOf(t *testing.T, path string, v2 bool) handTorrent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Info bencode.Bytes `bencode:"info"`
	}
	if err := bencode.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s1 := sha1.Sum(raw.Info)
	h := handTorrent{path: filepath.Base(path), v1: hex.EncodeToString(s1[:])}
	if v2 {
		s2 := sha256.Sum256(raw.Info)
		h.v2 = hex.EncodeToString(s2[:])
	}
	return h
}

// infoJSON is what the tests read of info --json.
type infoJSON struct {
	Name        string `json:"name"`
	Format      string `json:"format"`
	InfoHash    string `json:"info_hash"`
	InfoHashV1  string `json:"info_hash_v1"`
	InfoHashV2  string `json:"info_hash_v2"`
	PieceLength int64  `json:"piece_length"`
	TotalSize   int64  `json:"total_size"`
	NumPieces   int    `json:"num_pieces"`
	PadFiles    int    `json:"pad_files"`
	Magnet      string `json:"magnet"`
	Files       []struct {
		Path []string `json:"path"`
		Size int64    `json:"size"`
	} `json:"files"`
}

func infoOf(t *testing.T, dir, arg string) infoJSON {
	t.Helper()
	r := shoal(t, dir, nil, "info", "--json", arg)
	var out infoJSON
	if r.code != 0 {
		t.Fatalf("info --json %s: exit %d: %s", arg, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("info --json %s: %v\n%s", arg, err, r.stdout)
	}
	return out
}

// info shows a torrent's format and every hash it has, in JSON and in
// text, and lists the files a user will find on disk: a v1 torrent's pad
// files are counted, not listed, as they never reach the disk.
func TestInfoFormats(t *testing.T) {
	dir := content(t)
	const pl = 16 << 10
	order := []string{"big.bin", "docs/read me.txt", "empty"}
	r := shoal(t, dir, nil, "create", "data", "-o", "v2.torrent", "--piece-length", "16k")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	v2 := handTorrent{path: "v2.torrent", v2: field(r.stdout, "info-hash")}
	v1 := writeV1Torrent(t, dir, "v1.torrent", pl, false, order...)
	v1pad := writeV1Torrent(t, dir, "v1pad.torrent", pl, true, order...)
	hybrid := writeHybridTorrent(t, dir, "hybrid.torrent", pl, order...)
	v2.v1, v1.v2, v1pad.v2 = "", "", ""
	// And as create makes them: a hybrid with its pad files implied
	// (tail included), a v1 without any.
	var made []handTorrent
	for _, f := range []string{"v1", "hybrid"} {
		name := "made-" + f + ".torrent"
		if r := shoal(t, dir, nil, "create", "data", "--format", f, "--piece-length", "16k", "-o", name); r.code != 0 {
			t.Fatalf("create --format %s: %s", f, r.stderr)
		}
		made = append(made, hashesOf(t, filepath.Join(dir, name), f == "hybrid"))
	}

	for _, tc := range []struct {
		h      handTorrent
		format string
		pads   int
	}{
		{v2, "v2", 0},
		{v1, "v1", 0},
		// big.bin and "read me.txt" each end mid-piece.
		{v1pad, "v1", 2},
		{hybrid, "hybrid", 0},
		{made[0], "v1", 0},
		{made[1], "hybrid", 0},
	} {
		t.Run(tc.h.path, func(t *testing.T) {
			want := tc.h.v2
			if want == "" {
				want = tc.h.v1
			}
			got := infoOf(t, dir, tc.h.path)
			if got.Format != tc.format || got.InfoHash != want || got.InfoHashV1 != tc.h.v1 || got.InfoHashV2 != tc.h.v2 {
				t.Errorf("format %q, hashes %q v1 %q v2 %q; want %q, %q, %q, %q",
					got.Format, got.InfoHash, got.InfoHashV1, got.InfoHashV2, tc.format, want, tc.h.v1, tc.h.v2)
			}
			if got.Name != "data" || got.TotalSize != 301000 || got.PieceLength != pl || got.PadFiles != tc.pads {
				t.Errorf("name %q, size %d, piece length %d, pad files %d", got.Name, got.TotalSize, got.PieceLength, got.PadFiles)
			}
			var paths []string
			for _, f := range got.Files {
				paths = append(paths, fmt.Sprintf("%s=%d", strings.Join(f.Path, "/"), f.Size))
			}
			if strings.Join(paths, " ") != "big.bin=300000 docs/read me.txt=1000 empty=0" {
				t.Errorf("files: %v", paths)
			}
			// Every hash in the magnet, hex, v2 first as CLI.md shows it.
			var xt []string
			if tc.h.v2 != "" {
				xt = append(xt, "xt=urn:btmh:1220"+tc.h.v2)
			}
			if tc.h.v1 != "" {
				xt = append(xt, "xt=urn:btih:"+tc.h.v1)
			}
			if !strings.HasPrefix(got.Magnet, "magnet:?"+strings.Join(xt, "&")+"&dn=data") {
				t.Errorf("magnet %s, want %v", got.Magnet, xt)
			}

			r := shoal(t, dir, nil, "info", tc.h.path)
			if r.code != 0 {
				t.Fatalf("info: %d %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(row(r.stdout, "format"), tc.format+" (") || row(r.stdout, "info-hash") != want {
				t.Errorf("info text, want format %s and info-hash %s:\n%s", tc.format, want, r.stdout)
			}
			// The v1 hash of a hybrid under its own name; a v1 torrent's
			// is its info-hash.
			if v := row(r.stdout, "info-hash v1"); (tc.format == "hybrid") != (v == tc.h.v1 && v != "") {
				t.Errorf("info text: info-hash v1 %q, want it for a hybrid only:\n%s", v, r.stdout)
			}
			if strings.Contains(r.stdout, ".pad") || strings.Contains(r.stdout, "pad files") != (tc.pads > 0) {
				t.Errorf("info text lists pad files, or does not say they are left out:\n%s", r.stdout)
			}
		})
	}
}

// row returns the value of a "key:   value" row of info's text output.
func row(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok && (v == "" || v[0] == ' ') {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// info reads every way a v1 or hybrid torrent is named: btih links in hex
// and base32 (either case), hybrid links with both hashes, bare 40-hex and
// 32-base32 hashes, a bare btih URN. It shows the hashes the link carries,
// in hex, and a link that names them all.
func TestInfoV1Magnets(t *testing.T) {
	v1 := sha1.Sum([]byte("a v1 info dict"))
	v2 := sha256.Sum256([]byte("a v2 info dict"))
	h1, h2 := hex.EncodeToString(v1[:]), hex.EncodeToString(v2[:])
	b32 := base32.StdEncoding.EncodeToString(v1[:])
	for _, tc := range []struct {
		arg, format, v1, v2 string
	}{
		{"magnet:?xt=urn:btih:" + h1 + "&dn=x", "v1", h1, ""},
		{"magnet:?xt=urn:btih:" + strings.ToUpper(h1), "v1", h1, ""},
		{"magnet:?xt=urn:btih:" + b32, "v1", h1, ""},
		{"magnet:?xt=urn:btih:" + strings.ToLower(b32), "v1", h1, ""},
		{"magnet:?xt=urn:btih:" + h1 + "&xt=urn:btmh:1220" + h2 + "&dn=x", "hybrid", h1, h2},
		{"magnet:?xt=urn:btmh:1220" + h2 + "&xt=urn:btih:" + b32, "hybrid", h1, h2},
		{h1, "v1", h1, ""},
		{b32, "v1", h1, ""},
		{"urn:btih:" + b32, "v1", h1, ""},
		{h2, "v2", "", h2},
	} {
		got := infoOf(t, t.TempDir(), tc.arg)
		id := tc.v2
		if id == "" {
			id = tc.v1
		}
		var xt []string
		if tc.v2 != "" {
			xt = append(xt, "xt=urn:btmh:1220"+tc.v2)
		}
		if tc.v1 != "" {
			xt = append(xt, "xt=urn:btih:"+tc.v1)
		}
		if got.Format != tc.format || got.InfoHash != id || got.InfoHashV1 != tc.v1 || got.InfoHashV2 != tc.v2 ||
			!strings.HasPrefix(got.Magnet, "magnet:?"+strings.Join(xt, "&")) || got.Files != nil {
			t.Errorf("info %s: %+v; want format %s, v1 %q, v2 %q", tc.arg, got, tc.format, tc.v1, tc.v2)
		}
		r := shoal(t, t.TempDir(), nil, "info", tc.arg)
		if r.code != 0 || row(r.stdout, "info-hash") != id || !strings.HasPrefix(row(r.stdout, "format"), tc.format) {
			t.Errorf("info %s: %d\n%s%s", tc.arg, r.code, r.stdout, r.stderr)
		}
		if v := row(r.stdout, "info-hash v1"); (tc.format == "hybrid") != (v == tc.v1 && v != "") {
			t.Errorf("info %s: info-hash v1 %q, want it for a hybrid link only", tc.arg, v)
		}
	}
}

// A malformed v1 hash, in a link or bare, is bad input: exit 2 and one
// line that says what is wrong, before get makes the output folder or
// starts anything.
func TestGetBadV1HashExitsTwo(t *testing.T) {
	h1 := strings.Repeat("ab", 20)
	b32 := base32.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 20)))
	for _, tc := range []struct {
		arg, says string
	}{
		{"magnet:?xt=urn:btih:" + h1[:39], "have 39 characters"},
		{"magnet:?xt=urn:btih:" + h1 + "0", "have 41 characters"},
		{"magnet:?xt=urn:btih:" + h1[:39] + "g", "invalid byte"},
		{"magnet:?xt=urn:btih:" + b32[:31], "32 base32 letters, have 31"},
		{"magnet:?xt=urn:btih:" + b32[:31] + "1", "not base32"},
		{"magnet:?xt=urn:btih:" + b32[:31] + "=", "not base32"},
		{"magnet:?xt=urn:btih:" + h1 + "&xt=urn:btih:" + strings.Repeat("cd", 20), "two different btih"},
		{"magnet:?xt=urn:btih:" + h1 + "&xt=urn:btmh:1220" + h1, "want 64 hex digits"},
		{"magnet:?xt=urn:btih:", "have 0 characters"},
		{"urn:btih:" + h1[:20], "have 20 characters"},
		{h1[:39], "it has 39 characters"},
		{h1 + "a", "it has 41 characters"},
		{h1[:39] + "z", "not an info-hash"},
		{b32[:31] + "8", "not an info-hash"},
	} {
		dir := t.TempDir()
		out := filepath.Join(dir, "dl")
		r := shoal(t, dir, nil, "get", tc.arg, "-o", out, "--no-dht", "--peer", "127.0.0.1:1")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: get: ") || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("get %s: exit %d, %q; want 2 and a line saying %q", tc.arg, r.code, r.stderr, tc.says)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("get %s made the output folder before refusing", tc.arg)
		}
	}
}

// Two v1 torrents have no v2 hash to tell them apart: --save-torrent must
// still see that an existing v1 torrent of other data is not the one being
// seeded, and keep it.
func TestSaveTorrentKeepsOtherV1Torrent(t *testing.T) {
	dir := content(t)
	writeV1Torrent(t, dir, "mine.torrent", 16<<10, false, "big.bin", "docs/read me.txt", "empty")
	writeV1Torrent(t, dir, "other.torrent", 32<<10, true, "big.bin", "docs/read me.txt", "empty")
	before, err := os.ReadFile(filepath.Join(dir, "other.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	r := shoal(t, dir, nil, "seed", "data", "--torrent", "mine.torrent", "--save-torrent", "other.torrent", "--no-dht", "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "other.torrent already exists") {
		t.Fatalf("seed --save-torrent over another v1 torrent: exit %d %q; want 2, already exists", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "other.torrent")); string(after) != string(before) {
		t.Fatal("the other v1 torrent was replaced")
	}
}

// A single-file v1 torrent ("length", no "files") lists its one file
// under its own name.
func TestInfoV1SingleFile(t *testing.T) {
	dir := content(t)
	const pl = 32 << 10
	files := []v1Entry{{path: []string{"big.bin"}, size: 300000}}
	info := map[string]any{"name": "big.bin", "piece length": pl, "length": 300000, "pieces": v1Pieces(t, dir, pl, files)}
	h := writeHand(t, dir, "one.torrent", map[string]any{}, info, false)
	got := infoOf(t, dir, "one.torrent")
	if got.Format != "v1" || got.InfoHash != h.v1 || got.InfoHashV1 != h.v1 || got.InfoHashV2 != "" ||
		got.NumPieces != 10 || len(got.Files) != 1 || strings.Join(got.Files[0].Path, "/") != "big.bin" || got.Files[0].Size != 300000 ||
		got.Magnet != "magnet:?xt=urn:btih:"+h.v1+"&dn=big.bin" {
		t.Fatalf("info of a single-file v1 torrent: %+v", got)
	}
}

// Torrents libtorrent 2.0 made (testdata): info names their format and
// hashes as computed from their bytes here, and lists no pad file.
func TestInfoLibtorrentTorrents(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, format string
		pads         bool
	}{
		{"libtorrent-v1.torrent", "v1", false},
		{"libtorrent-v1-pad.torrent", "v1", true},
		{"libtorrent-v1-single.torrent", "v1", false},
		{"libtorrent-hybrid.torrent", "hybrid", false},
		{"libtorrent-hybrid-pads.torrent", "hybrid", false},
		{"libtorrent-v2.torrent", "v2", false},
	} {
		path := filepath.Join(wd, "..", "..", "testdata", "torrents", tc.file)
		h := hashesOf(t, path, tc.format != "v1")
		if tc.format == "v2" {
			h.v1 = ""
		}
		id := h.v2
		if id == "" {
			id = h.v1
		}
		got := infoOf(t, t.TempDir(), path)
		if got.Format != tc.format || got.InfoHash != id || got.InfoHashV1 != h.v1 || got.InfoHashV2 != h.v2 || (got.PadFiles > 0) != tc.pads {
			t.Errorf("%s: %+v; want format %s, v1 %q, v2 %q, pad files %v", tc.file, got, tc.format, h.v1, h.v2, tc.pads)
		}
		for _, f := range got.Files {
			if strings.HasPrefix(f.Path[0], ".pad") {
				t.Errorf("%s: lists pad file %v", tc.file, f.Path)
			}
		}
	}
}
