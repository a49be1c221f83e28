package storage

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
)

// v1File is a file of a hand-made v1 torrent: its path under the
// torrent's folder, its size, and whether it is a BEP 47 pad file.
type v1File struct {
	path string
	size int
	pad  bool
}

// v1Torrent is a hand-made v1 or hybrid torrent and its data.
type v1Torrent struct {
	m     *piece.MetaInfo
	src   string // folder holding the torrent's files, as a seeder has them
	space []byte // the piece space: every file's data, padding as zeros
}

// pieceBytes returns piece p's bytes in the piece space, V1PieceSize long.
func (tt *v1Torrent) pieceBytes(p int) []byte {
	in := tt.m.Info
	start := int64(p) * in.PieceLength
	return tt.space[start : start+in.V1PieceSize(p)]
}

// makeV1 writes random files under a temp folder and makes a v1 torrent
// named "tor" of them, its info dict bencoded by hand and parsed as a
// peer's would be. Pad files are left out of the folder.
func makeV1(t *testing.T, files []v1File, pieceLength int64, seed uint64) *v1Torrent {
	t.Helper()
	tt := &v1Torrent{src: t.TempDir()}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	var list []any
	for _, f := range files {
		data := make([]byte, f.size)
		e := map[string]any{"length": f.size, "path": strings.Split(f.path, "/")}
		if f.pad {
			e["attr"] = "p"
		} else {
			rng.Read(data)
			p := filepath.Join(tt.src, "tor", filepath.FromSlash(f.path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tt.space = append(tt.space, data...)
		list = append(list, e)
	}
	info := map[string]any{
		"name":         "tor",
		"piece length": pieceLength,
		"pieces":       string(v1Pieces(tt.space, pieceLength)),
		"files":        list,
	}
	tt.m = parseInfoDict(t, info, nil)
	return tt
}

// v1Pieces returns the SHA-1 of every piece of space.
func v1Pieces(space []byte, pieceLength int64) []byte {
	var out []byte
	for off := int64(0); off < int64(len(space)); off += pieceLength {
		h := sha1.Sum(space[off:min(off+pieceLength, int64(len(space)))])
		out = append(out, h[:]...)
	}
	return out
}

func parseInfoDict(t *testing.T, info map[string]any, layers [][]piece.Hash) *piece.MetaInfo {
	t.Helper()
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	in, err := piece.ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return &piece.MetaInfo{Info: in, Layers: layers}
}

// makeHybrid builds a v2 torrent of files with piece's Build and adds the
// v1 half by hand: the same files in the same order, each but the last
// followed by a pad file up to its piece boundary, as libtorrent makes
// them.
func makeHybrid(t *testing.T, files []srcFile, pieceLength int64, seed uint64) *v1Torrent {
	t.Helper()
	v2, src := makeTorrent(t, files, pieceLength, seed)
	in2 := v2.Info
	tt := &v1Torrent{src: src}
	var list []any
	for i, f := range in2.Files {
		data, err := os.ReadFile(diskPath(src, in2, i))
		if err != nil {
			t.Fatal(err)
		}
		tt.space = append(tt.space, data...)
		list = append(list, map[string]any{"length": f.Length, "path": f.Path})
		if rem := f.Length % pieceLength; rem != 0 && i < len(in2.Files)-1 {
			tt.space = append(tt.space, make([]byte, pieceLength-rem)...)
			list = append(list, map[string]any{"length": pieceLength - rem, "path": []string{".pad", "x"}, "attr": "p"})
		}
	}
	var info map[string]any
	if err := bencode.Unmarshal(in2.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	info["pieces"] = string(v1Pieces(tt.space, pieceLength))
	info["files"] = list
	tt.m = parseInfoDict(t, info, v2.Layers)
	if tt.m.Info.Format != piece.FormatHybrid {
		t.Fatalf("made a %v torrent, want hybrid", tt.m.Info.Format)
	}
	return tt
}

// v1Files has pieces of 3000 bytes (not a power of two, as v1 allows)
// that cross file boundaries, a file of one byte and an empty one inside
// a piece, a pad file, and files nested in folders.
var v1Files = []v1File{
	{"a/one.bin", 2500, false},
	{"a/tiny", 1, false},
	{"b.bin", 7000, false},
	{"empty", 0, false},
	{"c/d/e.bin", 4100, false},
	{".pad/1000", 1000, true},
	{"z.bin", 3333, false},
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// writeAll writes the piece space of tt into s in blocks of blockLen (the
// last of each piece short), last piece first.
func writeAll(t *testing.T, s *Storage, tt *v1Torrent, blockLen int) {
	t.Helper()
	in := tt.m.Info
	for p := in.NumPieces - 1; p >= 0; p-- {
		data := tt.pieceBytes(p)[:in.PieceSize(p)]
		for b := 0; b < len(data); b += blockLen {
			if err := s.WriteBlock(p, b, data[b:min(b+blockLen, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// noPadOnDisk fails the test if anything named .pad exists under dir.
func noPadOnDisk(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == ".pad" {
			t.Errorf("%s exists: pad files must never reach the disk", path)
		}
		return nil
	})
}

// A v1 torrent's blocks, which cross files and padding, land in the right
// files at the right offsets; whole pieces and blocks crossing files read
// back as the piece space; every piece verifies by SHA-1; and a fresh
// check of the folder finds them all.
func TestV1PiecesAndBlocksCrossFiles(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 1)
	in := tt.m.Info
	if in.Format != piece.FormatV1 || in.NumPieces != 6 {
		t.Fatalf("torrent is %v of %d pieces, want v1 of 6", in.Format, in.NumPieces)
	}
	dst := filepath.Join(t.TempDir(), "dl")
	s := openT(t, dst, in, Options{Logger: quiet()})
	if err := s.Preflight(); err != nil {
		t.Fatal(err)
	}
	// Blocks of 1100 bytes: many cross a file boundary, one (piece 0 at
	// 2200) crosses two, through the one-byte file.
	writeAll(t, s, tt, 1100)
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	for i, f := range in.Files {
		if f.Pad {
			continue
		}
		want, _ := os.ReadFile(diskPath(tt.src, in, i))
		if f.Length == 0 {
			want = []byte{}
		}
		got, err := os.ReadFile(diskPath(dst, in, i))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("file %s: %d bytes (err %v), want its %d", in.DiskPath(i), len(got), err, len(want))
		}
	}
	noPadOnDisk(t, dst)

	var buf []byte
	for p := range in.NumPieces {
		var err error
		if buf, err = s.ReadPiece(p, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, tt.pieceBytes(p)) {
			t.Errorf("ReadPiece(%d) differs from the piece space", p)
		}
		if ok, err := s.VerifyPiece(p, piece.Hash{}, 0, nil); !ok || err != nil {
			t.Errorf("VerifyPiece(%d) = %v, %v", p, ok, err)
		}
	}
	// Piece 0 bytes 2400-2599 cross one.bin, tiny and b.bin; piece 4 bytes
	// 1500-2999 are c/d/e.bin's end, padding and z.bin's start.
	for _, r := range []struct{ p, begin, n int }{{0, 2400, 200}, {4, 1500, 1500}, {4, 0, 3000}, {5, 0, 2934}} {
		got := make([]byte, r.n)
		for i := range got {
			got[i] = 0xee // padding must be zeroed, not left as it was
		}
		if n, err := s.ReadBlock(r.p, r.begin, got); err != nil || n != r.n {
			t.Fatalf("ReadBlock(%d, %d, %d) = %d, %v", r.p, r.begin, r.n, n, err)
		}
		if want := tt.pieceBytes(r.p)[r.begin : r.begin+r.n]; !bytes.Equal(got, want) {
			t.Errorf("ReadBlock(%d, %d, %d) differs from the piece space", r.p, r.begin, r.n)
		}
	}

	// A second storage on the folder, with no record, hashes and finds it
	// whole; nothing is foreign.
	s2 := openT(t, dst, in, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
	have, err := s2.Check(context.Background(), tt.m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, allHave(in.NumPieces)) {
		t.Errorf("check found %08b, want every piece", have)
	}
	if f := s2.Foreign(); f != nil {
		t.Errorf("foreign files after a clean download: %+v", f)
	}
}

// Reading and writing a block that crosses files costs no allocation.
func TestV1BlockIOAllocatesNothing(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 2)
	s := openT(t, t.TempDir(), tt.m.Info, Options{Logger: quiet()})
	data := tt.pieceBytes(0)[2000:2800] // a.bin, tiny and b.bin
	buf := make([]byte, len(data))
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.WriteBlock(0, 2000, data); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadBlock(0, 2000, buf); err != nil {
			t.Fatal(err)
		}
	})
	// Under the race detector sync.Pool drops what it is given one time in
	// four, by design, so the span slice is sometimes made anew.
	if allocs != 0 && !raceEnabled {
		t.Errorf("%.1f allocations per block written and read, want 0", allocs)
	}
}

// Padding is never written: a block that is zeros where it falls in a pad
// file is written around it; one that is not is refused whole with
// ErrPadData, leaving the file it would have written untouched.
func TestV1PadWritesMustBeZeros(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 3)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	// Piece 4 is c/d/e.bin's last 1601 bytes, then 1000 of padding at
	// 1601-2600, then z.bin's first 399.
	good := slices.Clone(tt.pieceBytes(4))
	if !allZero(good[1601:2601]) {
		t.Fatal("test torrent: piece 4 bytes 1601-2600 are not its padding")
	}
	bad := slices.Clone(good)
	bad[2000] = 1
	err := s.WriteBlock(4, 0, bad)
	if !errors.Is(err, ErrPadData) {
		t.Fatalf("non-zero padding written: %v", err)
	}
	if !strings.Contains(err.Error(), "piece 4: bytes 1601-2600") {
		t.Errorf("error does not say where: %v", err)
	}
	for _, name := range []string{"tor/c/d/e.bin", "tor/z.bin"} {
		if _, err := os.Stat(filepath.Join(dst, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s touched by a refused block: %v", name, err)
		}
	}
	// All padding, not zeros.
	if err := s.WriteBlock(4, 1700, []byte{0, 0, 7}); !errors.Is(err, ErrPadData) {
		t.Errorf("non-zero block inside padding written: %v", err)
	}
	if err := s.WriteBlock(4, 0, good); err != nil {
		t.Fatal(err)
	}
	noPadOnDisk(t, dst)
	got := make([]byte, 1000)
	got[0] = 9
	if _, err := s.ReadBlock(4, 1601, got); err != nil || !allZero(got) {
		t.Errorf("padding read as %v, %v; want zeros", got[:8], err)
	}
	if ok, err := s.VerifyPiece(4, piece.Hash{}, 0, nil); !ok || err != nil {
		t.Errorf("piece 4 after a good write: VerifyPiece = %v, %v", ok, err)
	}
}

// A hybrid's v1 peers may ask for the padding past a file's data in its
// last piece: ReadBlock serves it as zeros up to V1PieceSize and no
// further, while writes stay within the file's data (PieceSize).
func TestHybridReadBlockOfPadTail(t *testing.T) {
	tt := makeHybrid(t, []srcFile{{"a.bin", 40000}, {"b.bin", 5000}, {"c.bin", 20000}}, 32<<10, 4)
	in := tt.m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{Logger: quiet()})
	writeAll(t, s, tt, piece.BlockSize)
	noPadOnDisk(t, dst)
	// Piece 1 is a.bin's last: 7232 bytes of data, then padding to 32 KiB.
	const p = 1
	if in.PieceSize(p) != 40000-32768 || in.V1PieceSize(p) != 32768 {
		t.Fatalf("piece 1: size %d, v1 size %d", in.PieceSize(p), in.V1PieceSize(p))
	}
	buf := make([]byte, piece.BlockSize)
	for i := range buf {
		buf[i] = 0xee
	}
	if n, err := s.ReadBlock(p, piece.BlockSize, buf); err != nil || n != len(buf) {
		t.Fatalf("ReadBlock of the pad tail: %d, %v", n, err)
	}
	if !allZero(buf) {
		t.Error("pad tail not read as zeros")
	}
	all := make([]byte, 32768)
	if _, err := s.ReadBlock(p, 0, all); err != nil || !bytes.Equal(all, tt.pieceBytes(p)) {
		t.Errorf("whole v1 piece read: %v, or differs from data and zeros", err)
	}
	if _, err := s.ReadBlock(p, 32768-10, make([]byte, 11)); !errors.Is(err, ErrRange) {
		t.Errorf("read past the v1 piece size: %v", err)
	}
	// The last piece of the last file has no padding after it.
	last := in.NumPieces - 1
	if _, err := s.ReadBlock(last, 0, make([]byte, in.PieceSize(last)+1)); !errors.Is(err, ErrRange) {
		t.Errorf("read past the torrent's end: %v", err)
	}
	if err := s.WriteBlock(p, int(in.PieceSize(p)), make([]byte, 100)); !errors.Is(err, ErrRange) {
		t.Errorf("write into a hybrid's padding: %v", err)
	}
	for p := range in.NumPieces {
		want, _ := tt.m.ExpectedRoot(p)
		if ok, err := s.VerifyPiece(p, want, 0, nil); !ok || err != nil {
			t.Errorf("VerifyPiece(%d) = %v, %v", p, ok, err)
		}
	}
}

// A hybrid piece counts only when both of its hashes match: Check keeps
// out a piece whose merkle root matches but whose SHA-1 does not (a
// torrent whose halves disagree), and VerifyPiece says no to either.
func TestHybridCheckNeedsBothHashes(t *testing.T) {
	tt := makeHybrid(t, []srcFile{{"a.bin", 40000}, {"b.bin", 70000}}, 32<<10, 5)
	in := tt.m.Info
	// Break piece 3's SHA-1 in a copy of the info dict.
	var info map[string]any
	if err := bencode.Unmarshal(in.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	pieces := []byte(info["pieces"].(string))
	pieces[3*20] ^= 1
	info["pieces"] = string(pieces)
	bad := parseInfoDict(t, info, tt.m.Layers)

	s := openT(t, tt.src, bad.Info, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
	var hashed atomic.Int64
	have, err := s.Check(context.Background(), bad, &piece.Hasher{Progress: &hashed})
	if err != nil {
		t.Fatal(err)
	}
	for p := range in.NumPieces {
		if got := have[p/8]&(0x80>>(p%8)) != 0; got != (p != 3) {
			t.Errorf("piece %d: had = %v", p, got)
		}
	}
	if hashed.Load() != in.TotalLength {
		t.Errorf("progress %d bytes, want the %d checked", hashed.Load(), in.TotalLength)
	}
	root, _ := bad.ExpectedRoot(3)
	if ok, _ := s.VerifyPiece(3, root, 0, nil); ok {
		t.Error("VerifyPiece passed a piece whose SHA-1 does not match")
	}
	root, _ = bad.ExpectedRoot(2)
	root[0] ^= 1
	if ok, _ := s.VerifyPiece(2, root, 0, nil); ok {
		t.Error("VerifyPiece passed a piece whose merkle root does not match")
	}
}

// The pieces a v1 download verified survive a restart through the resume
// record, which is named by the v1 info-hash; a file changed since costs
// every piece it overlaps, including those shared with its neighbours,
// and only those are hashed again.
func TestV1ResumeKeepsVerifiedPieces(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 6)
	in := tt.m.Info
	dst := t.TempDir()
	s, err := OpenWith(dst, in, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dst, StateDirName, in.V1Hash.String()+".resume"); s.ResumePath() != want {
		t.Errorf("resume path %s, want %s", s.ResumePath(), want)
	}
	writeAll(t, s, tt, 1024)
	verified := []int{0, 1, 2, 4, 5} // piece 3 written but not yet verified
	for _, p := range verified {
		if err := s.MarkVerified(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	check := func(want []int, wantHashed int64) {
		t.Helper()
		s := openT(t, dst, in, Options{Logger: quiet()})
		var hashed atomic.Int64
		have, err := s.Check(context.Background(), tt.m, &piece.Hasher{Progress: &hashed})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for p := range in.NumPieces {
			if have[p/8]&(0x80>>(p%8)) != 0 {
				got = append(got, p)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("have pieces %v, want %v", got, want)
		}
		if hashed.Load() != wantHashed {
			t.Errorf("hashed %d bytes, want %d", hashed.Load(), wantHashed)
		}
		if f := s.Foreign(); f != nil {
			t.Errorf("foreign files: %+v", f)
		}
		s.Close()
	}
	// Unchanged: taken from the record, nothing hashed.
	check(verified, 0)

	// b.bin (piece space 2501-9500: pieces 0 to 3) changes in its middle,
	// in piece 1: pieces 0-3 are hashed again, 1 fails, 3 now passes.
	bpath := filepath.Join(dst, "tor", "b.bin")
	f, err := os.OpenFile(bpath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xfe}, 3000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Whatever the clock's granularity, the change shows in the mtime.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(bpath, later, later); err != nil {
		t.Fatal(err)
	}
	check([]int{0, 2, 3, 4, 5}, 4*3000)
}

// A user's file at one of a v1 torrent's paths, of the right size but not
// the torrent's data, is found foreign with no resume record, and is not
// written until adopted; its neighbour, absent, is not blamed.
func TestV1ForeignFileIsNotWritten(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 7)
	in := tt.m.Info
	dst := t.TempDir()
	user := make([]byte, 7000)
	for i := range user {
		user[i] = byte(i)
	}
	bpath := filepath.Join(dst, "tor", "b.bin")
	os.MkdirAll(filepath.Dir(bpath), 0o755)
	if err := os.WriteFile(bpath, user, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dst, in, Options{Logger: quiet()})
	if _, err := s.Check(context.Background(), tt.m, nil); err != nil {
		t.Fatal(err)
	}
	ff := s.Foreign()
	if len(ff) != 1 || ff[0].Path != filepath.Join("tor", "b.bin") {
		t.Fatalf("foreign files %+v, want tor/b.bin alone", ff)
	}
	// Piece 1 lies wholly in b.bin; piece 0 crosses a.bin, tiny and b.bin.
	if err := s.WriteBlock(1, 0, tt.pieceBytes(1)); !errors.Is(err, ErrForeign) {
		t.Errorf("write to a foreign file: %v", err)
	}
	if err := s.WriteBlock(0, 0, tt.pieceBytes(0)); !errors.Is(err, ErrForeign) {
		t.Errorf("write of a block crossing into a foreign file: %v", err)
	}
	if got, _ := os.ReadFile(bpath); !bytes.Equal(got, user) {
		t.Fatal("the user's file was modified")
	}
	if err := s.Adopt(); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, tt, 3000)
	for p := range in.NumPieces {
		if ok, err := s.VerifyPiece(p, piece.Hash{}, 0, nil); !ok || err != nil {
			t.Errorf("after adopting, VerifyPiece(%d) = %v, %v", p, ok, err)
		}
	}
}

// Storage refuses, before touching the disk, an Info built by hand whose
// v1 file paths lead out of the download folder, which the parser would
// have refused; a pad file's path, which the parser does not check, is
// never used at all, whatever it says.
func TestV1PathTraversalWritesNothingOutside(t *testing.T) {
	tt := makeV1(t, v1Files, 3000, 8)
	base := t.TempDir()
	dir := filepath.Join(base, "in", "dl")
	for _, path := range [][]string{
		{"..", "..", "evil"},
		{"ok", "..", "..", "..", "evil"},
		{"/etc", "evil"},
		{"a/../../evil"},
		{"."},
		{""},
	} {
		in := *tt.m.Info
		in.Files = slices.Clone(in.Files)
		in.Files[2].Path = path // b.bin
		if s, err := Open(dir, &in); err == nil {
			s.Close()
			t.Errorf("path %q: opened", path)
		}
	}
	// A single-file v1 torrent named "..".
	single := makeV1Single(t, 5000, 1024)
	in := *single.Info
	in.Name = ".."
	in.Files = slices.Clone(in.Files)
	in.Files[0].Path = []string{".."}
	if s, err := Open(dir, &in); err == nil {
		s.Close()
		t.Error("single file named .. opened")
	}

	// Pad files with hostile paths are accepted by the parser; storage
	// never goes near them.
	files := slices.Clone(v1Files)
	files[5].path = "../../../../pad-escape"
	tt2 := makeV1(t, files, 3000, 9)
	s := openT(t, dir, tt2.m.Info, Options{Logger: quiet()})
	writeAll(t, s, tt2, 1500)
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(context.Background(), tt2.m, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Preflight(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, path); err == nil && !d.IsDir() && !filepath.IsLocal(rel) {
			t.Errorf("%s written outside the download folder", path)
		}
		return nil
	})
	if _, err := os.Lstat(filepath.Join(base, "pad-escape")); err == nil {
		t.Error("pad file's path created")
	}
}

// makeV1Single makes a single-file v1 torrent ("length", no "files").
func makeV1Single(t *testing.T, size int, pieceLength int64) *piece.MetaInfo {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return parseInfoDict(t, map[string]any{
		"name":         "one.bin",
		"piece length": pieceLength,
		"pieces":       string(v1Pieces(data, pieceLength)),
		"length":       size,
	}, nil)
}

// Torrents that piece.Build makes in v1 and hybrid format (pad files as
// libtorrent makes them) go through storage as a download does: a seeder's
// blocks, read from its folder up to the v1 piece size, are written to a
// new folder, which then checks whole, with no pad file on either side.
func TestBuiltV1AndHybridDownload(t *testing.T) {
	for _, format := range []piece.Format{piece.FormatV1, piece.FormatHybrid} {
		t.Run(format.String(), func(t *testing.T) {
			src := t.TempDir()
			rng := rand.NewChaCha8([32]byte{byte(format), 10})
			for _, f := range testFiles {
				p := filepath.Join(src, "tor", filepath.FromSlash(f.path))
				os.MkdirAll(filepath.Dir(p), 0o755)
				data := make([]byte, f.size)
				rng.Read(data)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := piece.Build(context.Background(), filepath.Join(src, "tor"), piece.BuildOptions{PieceLength: 32 << 10, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			in := m.Info
			if in.Format != format {
				t.Fatalf("built %v", in.Format)
			}
			seed := openT(t, src, in, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
			if have, err := seed.Check(context.Background(), m, nil); err != nil || !bytes.Equal(have, allHave(in.NumPieces)) {
				t.Fatalf("seeder's check: %08b, %v", have, err)
			}
			dst := t.TempDir()
			dl := openT(t, dst, in, Options{Logger: quiet()})
			buf := make([]byte, piece.BlockSize)
			for p := range in.NumPieces {
				v1size := int(in.V1PieceSize(p))
				for b := 0; b < v1size; b += len(buf) {
					n, err := seed.ReadBlock(p, b, buf[:min(len(buf), v1size-b)])
					if err != nil {
						t.Fatal(err)
					}
					// A v1 peer's block may run into a hybrid's padding,
					// which shoal does not write.
					if keep := min(n, max(0, int(in.PieceSize(p))-b)); keep > 0 {
						if err := dl.WriteBlock(p, b, buf[:keep]); err != nil {
							t.Fatal(err)
						}
					}
				}
				if ok, err := dl.VerifyPiece(p, expectedRoot(m, p), 0, nil); !ok || err != nil {
					t.Errorf("piece %d: VerifyPiece = %v, %v", p, ok, err)
				}
			}
			if err := dl.Complete(); err != nil {
				t.Fatal(err)
			}
			noPadOnDisk(t, src)
			noPadOnDisk(t, dst)
			check := openT(t, dst, in, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
			if have, err := check.Check(context.Background(), m, nil); err != nil || !bytes.Equal(have, allHave(in.NumPieces)) {
				t.Errorf("downloaded folder's check: %08b, %v", have, err)
			}
		})
	}
}

func expectedRoot(m *piece.MetaInfo, p int) piece.Hash {
	if !m.Info.HasV2() {
		return piece.Hash{}
	}
	h, _ := m.ExpectedRoot(p)
	return h
}
