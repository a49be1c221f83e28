package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// srcFile is a file of a test torrent: its path under the torrent's folder
// and its size.
type srcFile struct {
	path string
	size int
}

// testFiles covers the shapes v2 alignment cares about: several pieces with
// a short tail, an empty file, files smaller than a piece (width below the
// piece's), exactly one piece, and nesting.
var testFiles = []srcFile{
	{"a/big.bin", 200000},
	{"a/empty", 0},
	{"exact.bin", 32 << 10},
	{"mid.bin", 20000},
	{"small.txt", 5000},
	{"z/deep/x.bin", 70000},
	{"z/empty2", 0},
}

// makeTorrent writes random files under a temp folder and builds a torrent
// of them named "tor"; it returns the torrent and the folder holding tor.
func makeTorrent(t *testing.T, files []srcFile, pieceLength int64, seed uint64) (*piece.MetaInfo, string) {
	t.Helper()
	src := t.TempDir()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	for _, f := range files {
		p := filepath.Join(src, "tor", filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, f.size)
		rng.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := piece.Build(context.Background(), filepath.Join(src, "tor"), piece.BuildOptions{PieceLength: pieceLength})
	if err != nil {
		t.Fatal(err)
	}
	return m, src
}

func diskPath(dir string, in *piece.Info, i int) string {
	return filepath.Join(append([]string{dir}, in.DiskPath(i)...)...)
}

type block struct{ p, begin, n int }

// writeShuffled writes every piece of the torrent from src into s, in
// blocks of odd sizes, in random order, from several goroutines at once.
func writeShuffled(t *testing.T, s *Storage, m *piece.MetaInfo, src string, seed uint64) {
	t.Helper()
	in := m.Info
	var blocks []block
	sizes := []int{piece.BlockSize, 1000, 7, piece.BlockSize / 2}
	for p := 0; p < in.NumPieces; p++ {
		size := int(in.PieceSize(p))
		for b, k := 0, 0; b < size; k++ {
			n := min(sizes[(p+k)%len(sizes)], size-b)
			blocks = append(blocks, block{p, b, n})
			b += n
		}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })

	srcData := make([][]byte, len(in.Files))
	for i := range in.Files {
		var err error
		if srcData[i], err = os.ReadFile(diskPath(src, in, i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(blocks))
	const workers = 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(blocks); k += workers {
				b := blocks[k]
				fi := in.FileOfPiece(b.p)
				off := (b.p-in.Files[fi].FirstPiece)*int(in.PieceLength) + b.begin
				if err := s.WriteBlock(b.p, b.begin, srcData[fi][off:off+b.n]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func assertSameFiles(t *testing.T, in *piece.Info, src, dst string) {
	t.Helper()
	for i := range in.Files {
		want, err := os.ReadFile(diskPath(src, in, i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(diskPath(dst, in, i))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("file %s differs: %d bytes, want %d", in.DiskPath(i), len(got), len(want))
		}
	}
}

func openT(t *testing.T, dir string, in *piece.Info, opts Options) *Storage {
	t.Helper()
	s, err := OpenWith(dir, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestWriteRandomOrderGivesIdenticalFiles(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 1)
	in := m.Info
	dst := filepath.Join(t.TempDir(), "dl")
	s := openT(t, dst, in, Options{})

	// Empty files exist from Open on; data files only once written.
	for i, f := range in.Files {
		_, err := os.Stat(diskPath(dst, in, i))
		if f.Length == 0 && err != nil {
			t.Errorf("empty file %s not created by Open: %v", in.DiskPath(i), err)
		}
		if f.Length > 0 && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("data file %s exists before any write: %v", in.DiskPath(i), err)
		}
	}

	writeShuffled(t, s, m, src, 2)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	assertSameFiles(t, in, src, dst)

	var scratch []piece.Hash
	for p := 0; p < in.NumPieces; p++ {
		want, _ := m.ExpectedRoot(p)
		ok, err := s.VerifyPiece(p, want, 0, scratch)
		if err != nil || !ok {
			t.Errorf("piece %d: verify = %v, %v; want true", p, ok, err)
		}
		// An explicit width must agree with the torrent's.
		fi := in.FileOfPiece(p)
		if ok, err := s.VerifyPiece(p, want, in.PieceWidth(fi), scratch); !ok || err != nil {
			t.Errorf("piece %d with explicit width: %v, %v", p, ok, err)
		}
		if ok, _ := s.VerifyPiece(p, piece.Hash{1}, 0, scratch); ok {
			t.Errorf("piece %d verifies against a wrong hash", p)
		}
		got, err := s.ReadPiece(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != in.PieceSize(p) {
			t.Errorf("piece %d: ReadPiece gave %d bytes, want %d", p, len(got), in.PieceSize(p))
		}
		if piece.PieceRoot(got, in.PieceWidth(fi), nil) != want {
			t.Errorf("piece %d: ReadPiece data does not hash to its root", p)
		}
	}
	// The shapes the torrent was meant to cover are really there.
	var small, multi bool
	for i, f := range in.Files {
		small = small || (f.Length > 0 && f.Length < in.PieceLength && in.PieceWidth(i) < int(in.PieceLength/piece.BlockSize))
		multi = multi || f.NumPieces > 2
	}
	if !small || !multi {
		t.Fatalf("test torrent lacks a small file (%v) or a multi-piece file (%v)", small, multi)
	}
}

func TestLargePiecesVerifyInChunks(t *testing.T) {
	// 2 MiB pieces are hashed a 1 MiB chunk at a time; a 1.5 MiB file is a
	// single piece of width 128 that also takes the chunked path.
	files := []srcFile{{"big", 5<<20 + 12345}, {"one", 3 << 19}}
	m, src := makeTorrent(t, files, 2<<20, 3)
	in := m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{})
	writeShuffled(t, s, m, src, 4)
	for p := 0; p < in.NumPieces; p++ {
		want, _ := m.ExpectedRoot(p)
		if ok, err := s.VerifyPiece(p, want, 0, nil); !ok || err != nil {
			t.Fatalf("piece %d: %v, %v", p, ok, err)
		}
	}
	// A flipped byte in the second chunk of piece 1 must be caught.
	if err := s.WriteBlock(1, 1<<20+5, []byte{0xff ^ mustRead(t, s, 1, 1<<20+5)}); err != nil {
		t.Fatal(err)
	}
	want, _ := m.ExpectedRoot(1)
	if ok, err := s.VerifyPiece(1, want, 0, nil); ok || err != nil {
		t.Fatalf("corrupted piece 1: verify = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.VerifyPiece(0, want, 3, nil); ok || err == nil {
		t.Fatalf("width 3 accepted: %v, %v", ok, err)
	}
}

func mustRead(t *testing.T, s *Storage, p, off int) byte {
	var b [1]byte
	if _, err := s.ReadBlock(p, off, b[:]); err != nil {
		t.Fatal(err)
	}
	return b[0]
}

func TestHostileRangesAreErrors(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 5)
	in := m.Info
	s := openT(t, t.TempDir(), in, Options{})

	// Before anything is written, reading is an error, not a panic or a
	// created file.
	if _, err := s.ReadBlock(0, 0, make([]byte, 10)); err == nil {
		t.Error("ReadBlock of a file never written succeeded")
	}
	writeShuffled(t, s, m, src, 6)

	last := in.NumPieces - 1
	lastSize := int(in.PieceSize(last))
	buf := make([]byte, 100)
	cases := []struct {
		p, begin, n int
	}{
		{-1, 0, 10},
		{in.NumPieces, 0, 10},
		{math.MaxInt, 0, 10},
		{math.MinInt, 0, 10},
		{0, -1, 10},
		{0, math.MinInt, 10},
		{0, math.MaxInt, 10},
		{0, math.MaxInt - 5, 10},
		{0, int(in.PieceLength), 1},
		{0, int(in.PieceLength) - 5, 10},
		{last, lastSize, 1},
		{last, lastSize - 1, 2},
	}
	for _, c := range cases {
		name := fmt.Sprintf("p=%d begin=%d n=%d", c.p, c.begin, c.n)
		if _, err := s.ReadBlock(c.p, c.begin, buf[:c.n]); !errors.Is(err, ErrRange) {
			t.Errorf("ReadBlock %s: %v, want ErrRange", name, err)
		}
		if err := s.WriteBlock(c.p, c.begin, buf[:c.n]); !errors.Is(err, ErrRange) {
			t.Errorf("WriteBlock %s: %v, want ErrRange", name, err)
		}
	}
	for _, p := range []int{-1, in.NumPieces, math.MaxInt} {
		if _, err := s.ReadPiece(p, nil); !errors.Is(err, ErrRange) {
			t.Errorf("ReadPiece %d: %v", p, err)
		}
		if _, err := s.VerifyPiece(p, piece.Hash{}, 0, nil); !errors.Is(err, ErrRange) {
			t.Errorf("VerifyPiece %d: %v", p, err)
		}
		if err := s.MarkVerified(p); !errors.Is(err, ErrRange) {
			t.Errorf("MarkVerified %d: %v", p, err)
		}
	}
	// The refused writes changed nothing.
	assertSameFiles(t, in, src, s.Dir())
	// The last bytes of the last piece are in range.
	if n, err := s.ReadBlock(last, lastSize-1, buf[:1]); n != 1 || err != nil {
		t.Errorf("last byte: %d, %v", n, err)
	}
}

func TestReadOfTruncatedFileIsError(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 7)
	in := m.Info
	dst := t.TempDir()
	s := openT(t, dst, in, Options{})
	writeShuffled(t, s, m, src, 8)
	if err := os.Truncate(diskPath(dst, in, 0), 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlock(1, 0, make([]byte, 100)); err == nil {
		t.Error("read past the end of a truncated file succeeded")
	}
	want, _ := m.ExpectedRoot(0)
	if ok, err := s.VerifyPiece(0, want, 0, nil); ok || err == nil {
		t.Errorf("verify of a truncated piece: %v, %v; want false and an error", ok, err)
	}
}

func TestSymlinksAreNotFollowed(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 9)
	in := m.Info
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	orig := bytes.Repeat([]byte("keep me "), 40000)
	if err := os.WriteFile(victim, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	small := -1
	for i := range in.Files {
		if strings.Join(in.Files[i].Path, "/") == "small.txt" {
			small = i
		}
	}

	tests := []struct {
		name  string
		plant func(t *testing.T, dst string)
		file  int // file whose pieces go through the link
	}{
		{"file link to absolute path", func(t *testing.T, dst string) {
			mustSymlink(t, victim, filepath.Join(dst, "tor", "small.txt"))
		}, small},
		{"file link climbing out", func(t *testing.T, dst string) {
			rel, _ := filepath.Rel(filepath.Join(dst, "tor"), victim)
			mustSymlink(t, rel, filepath.Join(dst, "tor", "small.txt"))
		}, small},
		{"folder link", func(t *testing.T, dst string) {
			if err := os.Remove(filepath.Join(dst, "tor", "a", "empty")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dst, "tor", "a")); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outside, filepath.Join(dst, "tor", "a"))
		}, 0},
		{"top folder link", func(t *testing.T, dst string) {
			if err := os.RemoveAll(filepath.Join(dst, "tor")); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outside, filepath.Join(dst, "tor"))
		}, 0},
		{"folder link inside the folder", func(t *testing.T, dst string) {
			if err := os.RemoveAll(filepath.Join(dst, "tor", "a")); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, "z", filepath.Join(dst, "tor", "a"))
		}, 0},
		{"link inside the folder", func(t *testing.T, dst string) {
			// Even a link that stays inside is refused: it could alias two
			// torrent files onto one.
			mustSymlink(t, "mid.bin", filepath.Join(dst, "tor", "small.txt"))
		}, small},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			s := openT(t, dst, in, Options{})
			tc.plant(t, dst)
			f := in.Files[tc.file]
			data, err := os.ReadFile(diskPath(src, in, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			werr := s.WriteBlock(f.FirstPiece, 0, data[:min(len(data), 1000)])
			if werr == nil {
				t.Error("write through a planted link succeeded")
			}
			if _, err := s.ReadBlock(f.FirstPiece, 0, make([]byte, 10)); err == nil {
				t.Error("read through a planted link succeeded")
			}
			got, err := os.ReadFile(victim)
			if err != nil || !bytes.Equal(got, orig) {
				t.Fatalf("file outside the folder changed (%d bytes, %v)", len(got), err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				t.Errorf("folder outside holds %d entries, want only the victim", len(ents))
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	m, _ := makeTorrent(t, testFiles, 32<<10, 11)
	bad := *m.Info
	bad.Files = append([]piece.File(nil), m.Info.Files...)
	bad.Files[0].Path = []string{"..", "escape"}
	if _, err := Open(t.TempDir(), &bad); err == nil {
		t.Error("Open accepted a path with ..")
	}
	bad.Files[0].Path = []string{"a/b"}
	if _, err := Open(t.TempDir(), &bad); err == nil {
		t.Error("Open accepted a component with a separator")
	}
	// A torrent named like the state folder would have its data and the
	// resume record in one place.
	named := *m.Info
	named.Name = StateDirName
	if _, err := Open(t.TempDir(), &named); err == nil {
		t.Error("Open accepted a torrent named like the state folder")
	}
}

func TestFileHandlesStayBounded(t *testing.T) {
	var files []srcFile
	for i := range 150 {
		files = append(files, srcFile{fmt.Sprintf("d%02d/f%03d", i%10, i), 100 + 997*i%40000})
	}
	m, src := makeTorrent(t, files, 16<<10, 12)
	in := m.Info
	dst := t.TempDir()
	const limit = 8
	fdsBefore := countFDs(t)
	s := openT(t, dst, in, Options{MaxOpenFiles: limit})

	writeShuffled(t, s, m, src, 13)
	for p := 0; p < in.NumPieces; p++ {
		want, _ := m.ExpectedRoot(p)
		if ok, err := s.VerifyPiece(p, want, 0, nil); !ok || err != nil {
			t.Fatalf("piece %d: %v, %v", p, ok, err)
		}
	}
	fdsDuring := countFDs(t)
	now, peak := s.openCounts()
	if peak > limit || now != limit {
		t.Errorf("%d files cached now, %d at most; limit %d", now, peak, limit)
	}
	// The root holds one descriptor; the test's own goroutines none.
	if fdsDuring-fdsBefore > limit+1 {
		t.Errorf("%d descriptors open beyond the baseline, limit %d + root", fdsDuring-fdsBefore, limit)
	}
	// Saving syncs files whose handles were long evicted.
	if err := s.SaveResume(s.Have()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countFDs(t); n > fdsBefore {
		t.Errorf("%d descriptors left open after Close", n-fdsBefore)
	}
	assertSameFiles(t, in, src, dst)
	if err := s.WriteBlock(0, 0, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// --- resume ---

// completeDownload writes the whole torrent into a fresh folder and marks
// every piece verified.
func completeDownload(t *testing.T, m *piece.MetaInfo, src string, opts Options) (*Storage, string) {
	t.Helper()
	dst := t.TempDir()
	s, err := OpenWith(dst, m.Info, opts)
	if err != nil {
		t.Fatal(err)
	}
	writeShuffled(t, s, m, src, 21)
	for p := 0; p < m.Info.NumPieces; p++ {
		want, _ := m.ExpectedRoot(p)
		if ok, err := s.VerifyPiece(p, want, 0, nil); !ok || err != nil {
			t.Fatalf("piece %d: %v, %v", p, ok, err)
		}
		if err := s.MarkVerified(p); err != nil {
			t.Fatal(err)
		}
	}
	return s, dst
}

func allHave(n int) []byte {
	b := bitfield.New(n)
	b.SetAll()
	return b.Bytes()
}

func piecesOf(in *piece.Info, fi int) []int {
	var ps []int
	for p := in.Files[fi].FirstPiece; p < in.Files[fi].FirstPiece+in.Files[fi].NumPieces; p++ {
		ps = append(ps, p)
	}
	return ps
}

// check reopens dst and runs Check, returning the have bitfield and the
// number of bytes hashed.
func check(t *testing.T, dst string, m *piece.MetaInfo, opts Options) (*bitfield.Bitfield, int64) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := openT(t, dst, m.Info, opts)
	var hashed atomic.Int64
	have, err := s.Check(context.Background(), m, &piece.Hasher{Progress: &hashed})
	if err != nil {
		t.Fatal(err)
	}
	bf, err := bitfield.FromBytes(have, m.Info.NumPieces)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Have(), have) {
		t.Error("Have differs from what Check returned")
	}
	return bf, hashed.Load()
}

func TestResumeTrustsUnchangedFiles(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 20)
	s, dst := completeDownload(t, m, src, Options{})
	if !s.Unsaved() {
		t.Error("Unsaved is false after marking pieces")
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if s.Unsaved() {
		t.Error("Unsaved is true right after Save")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec := loadRecord(t, dst, m.Info)
	if !bytes.Equal(rec.Have, allHave(m.Info.NumPieces)) {
		t.Fatalf("record has %x, want all", rec.Have)
	}

	have, hashed := check(t, dst, m, Options{})
	if !have.All() {
		t.Errorf("have %d of %d pieces after resume", have.Count(), have.Len())
	}
	if hashed != 0 {
		t.Errorf("hashed %d bytes; unchanged files should be trusted", hashed)
	}
}

// TestCheckTrustedByRecordLeavesNothingUnsaved: a check the resume record
// vouched for in full leaves nothing to save; one that had to look again
// at a file (its stamp changed) does.
func TestCheckTrustedByRecordLeavesNothingUnsaved(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 21)
	s, dst := completeDownload(t, m, src, Options{})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	recheck := func() *Storage {
		t.Helper()
		s := openT(t, dst, m.Info, Options{Logger: slog.New(slog.DiscardHandler)})
		if _, err := s.Check(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := recheck(); s.Unsaved() {
		t.Error("Unsaved after a check the record vouched for in full")
	}
	var name string
	for i, f := range m.Info.Files {
		if !f.Pad {
			name = filepath.Join(append([]string{dst}, m.Info.DiskPath(i)...)...)
			break
		}
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(name, later, later); err != nil {
		t.Fatal(err)
	}
	if s := recheck(); !s.Unsaved() {
		t.Errorf("nothing unsaved after a check that hashed %s again", name)
	}
}

func TestResumeTrustsRecordNotData(t *testing.T) {
	// A piece the record does not list stays missing even though its data
	// is good: that is what makes resume cheap, and proves it is used.
	m, src := makeTorrent(t, testFiles, 32<<10, 22)
	s, dst := completeDownload(t, m, src, Options{})
	if err := s.MarkMissing(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	have, hashed := check(t, dst, m, Options{})
	if have.Has(2) || have.Count() != m.Info.NumPieces-1 || hashed != 0 {
		t.Errorf("have piece 2 = %v, count %d of %d, hashed %d", have.Has(2), have.Count(), m.Info.NumPieces, hashed)
	}
}

func TestResumeRehashesChangedFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 23)
	in := m.Info
	s, dst := completeDownload(t, m, src, Options{})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Same size, one byte changed in the file's third piece, new mtime.
	big := 0
	path := diskPath(dst, in, big)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[2*in.PieceLength+100] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	have, hashed := check(t, dst, m, Options{})
	if hashed != in.Files[big].Length {
		t.Errorf("hashed %d bytes, want just the changed file's %d", hashed, in.Files[big].Length)
	}
	bad := in.Files[big].FirstPiece + 2
	for p := 0; p < in.NumPieces; p++ {
		if have.Has(p) == (p == bad) {
			t.Errorf("piece %d: have = %v", p, have.Has(p))
		}
	}
}

func TestResumeRehashesResizedFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 24)
	in := m.Info
	s, dst := completeDownload(t, m, src, Options{})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Cut the big file inside its fourth piece and keep its old mtime, so
	// only the size tells.
	path := diskPath(dst, in, 0)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 3*in.PieceLength+10); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	have, hashed := check(t, dst, m, Options{})
	if hashed == 0 {
		t.Error("nothing hashed for a resized file")
	}
	f := in.Files[0]
	for _, p := range piecesOf(in, 0) {
		if want := p < f.FirstPiece+3; have.Has(p) != want {
			t.Errorf("piece %d: have = %v, want %v", p, have.Has(p), want)
		}
	}
	if have.Count() != in.NumPieces-(f.NumPieces-3) {
		t.Errorf("have %d pieces, want %d", have.Count(), in.NumPieces-(f.NumPieces-3))
	}
}

func TestResumeUnusableRecordFallsBackToHashing(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 25)
	in := m.Info
	other, _ := makeTorrent(t, testFiles[:3], 32<<10, 99)

	valid := func(t *testing.T, mutate func(w *wireRecord)) []byte {
		w := wireRecord{
			Version: ResumeVersion, InfoHash: in.Hash[:], Pieces: int64(in.NumPieces),
			Have: allHave(in.NumPieces), Files: make([]wireFile, len(in.Files)),
		}
		mutate(&w)
		b, err := bencode.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spare := allHave(in.NumPieces)
	spare[len(spare)-1] |= 1
	cases := []struct {
		name   string
		record func(t *testing.T, dst string) []byte
	}{
		{"garbage", func(*testing.T, string) []byte { return []byte("d7:versioni1e4:have") }},
		{"empty", func(*testing.T, string) []byte { return nil }},
		{"not a dict", func(*testing.T, string) []byte { return []byte("li1ee") }},
		{"other info-hash", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.InfoHash = other.Info.Hash[:] })
		}},
		{"other piece count", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.Pieces++ })
		}},
		{"other version", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.Version = 99 })
		}},
		{"short bitfield", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.Have = w.Have[1:] })
		}},
		{"spare bits set", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.Have = spare })
		}},
		{"missing files", func(t *testing.T, _ string) []byte {
			return valid(t, func(w *wireRecord) { w.Files = w.Files[1:] })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, dst := completeDownload(t, m, src, Options{})
			if err := s.Save(); err != nil {
				t.Fatal(err)
			}
			// Stamps that would match, so only the record's own flaw can
			// cause the re-hash.
			if err := os.WriteFile(s.ResumePath(), tc.record(t, dst), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Close()
			assertFallsBack(t, dst, m)
		})
	}
	t.Run("another torrent's real record", func(t *testing.T) {
		os2 := other
		s, dst := completeDownload(t, m, src, Options{})
		s.Close()
		// Save the other torrent's record at this torrent's resume path.
		o, err := OpenWith(t.TempDir(), os2.Info, Options{ResumePath: s.ResumePath()})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.SaveResume(allHave(os2.Info.NumPieces)); err != nil {
			t.Fatal(err)
		}
		o.Close()
		assertFallsBack(t, dst, m)
	})
}

// assertFallsBack checks that Check on dst ignores the record with a
// warning, hashes everything and finds every piece good.
func assertFallsBack(t *testing.T, dst string, m *piece.MetaInfo) {
	t.Helper()
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	s := openT(t, dst, m.Info, Options{Logger: log})
	if _, err := s.LoadResume(); !errors.Is(err, ErrBadResume) {
		t.Errorf("LoadResume: %v, want ErrBadResume", err)
	}
	var hashed atomic.Int64
	have, err := s.Check(context.Background(), m, &piece.Hasher{Progress: &hashed})
	if err != nil {
		t.Fatalf("Check failed on an unusable record: %v", err)
	}
	if !bytes.Equal(have, allHave(m.Info.NumPieces)) {
		t.Errorf("have %x, want all pieces", have)
	}
	if hashed.Load() != m.Info.TotalLength {
		t.Errorf("hashed %d bytes, want all %d", hashed.Load(), m.Info.TotalLength)
	}
	if !strings.Contains(logBuf.String(), "ignoring resume record") {
		t.Errorf("no warning logged; log: %q", logBuf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestCheckWithoutRecordHashesOnAllWorkers(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 26)
	in := m.Info
	_, dst := completeDownload(t, m, src, Options{})
	// Corrupt one piece of the deep file and delete another file: no record
	// exists, so everything present is hashed.
	deep := -1
	for i := range in.Files {
		if strings.Join(in.Files[i].Path, "/") == "z/deep/x.bin" {
			deep = i
		}
	}
	f, err := os.OpenFile(diskPath(dst, in, deep), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 1, 2, 3}, in.PieceLength+7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(diskPath(dst, in, 0)); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dst, in, Options{})
	var hashed atomic.Int64
	have, err := s.Check(context.Background(), m, &piece.Hasher{Workers: 3, Progress: &hashed})
	if err != nil {
		t.Fatal(err)
	}
	bf, _ := bitfield.FromBytes(have, in.NumPieces)
	for p := 0; p < in.NumPieces; p++ {
		fi := in.FileOfPiece(p)
		want := fi != 0 && p != in.Files[deep].FirstPiece+1
		if bf.Has(p) != want {
			t.Errorf("piece %d (file %d): have = %v, want %v", p, fi, bf.Has(p), want)
		}
	}
	if want := in.TotalLength - in.Files[0].Length; hashed.Load() != want {
		t.Errorf("hashed %d bytes, want %d", hashed.Load(), want)
	}
}

func TestCheckCountsUnknownRootsMissing(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 27)
	in := m.Info
	_, dst := completeDownload(t, m, src, Options{})
	noLayers := *m
	noLayers.Layers = nil // as from a magnet link before the hash exchange
	have, hashed := check(t, dst, &noLayers, Options{})
	var want int64
	for i, f := range in.Files {
		for _, p := range piecesOf(in, i) {
			if have.Has(p) != (f.NumPieces == 1) {
				t.Errorf("piece %d of file %d (%d pieces): have = %v", p, i, f.NumPieces, have.Has(p))
			}
		}
		if f.NumPieces == 1 {
			want += f.Length
		}
	}
	if hashed != want {
		t.Errorf("hashed %d bytes, want only the single-piece files' %d", hashed, want)
	}
}

func TestCheckRefusesOtherTorrentAndHonoursCancel(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 28)
	other, _ := makeTorrent(t, testFiles[:2], 32<<10, 29)
	s, _ := completeDownload(t, m, src, Options{})
	defer s.Close()
	if _, err := s.Check(context.Background(), other, nil); err == nil {
		t.Error("Check accepted another torrent's metainfo")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Check(ctx, m, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context: %v", err)
	}
}

func TestSaveIsAtomicAndLeavesNoTemp(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 30)
	state := filepath.Join(t.TempDir(), "state", "nested")
	rp := filepath.Join(state, "x.resume")
	s, _ := completeDownload(t, m, src, Options{ResumePath: rp})
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			have := allHave(m.Info.NumPieces)
			have[0] &^= byte(i)
			if err := s.SaveResume(have); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ents, err := os.ReadDir(state)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 1 || names[0] != "x.resume" {
		t.Errorf("state folder holds %v, want only x.resume", names)
	}
	if _, err := s.LoadResume(); err != nil {
		t.Errorf("record after concurrent saves: %v", err)
	}
	if err := s.SaveResume([]byte{1}); err == nil {
		t.Error("SaveResume accepted a bitfield of the wrong length")
	}
	// A save that fails (state path is a file) leaves the old record.
	before, _ := os.ReadFile(rp)
	blocked := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocked, nil, 0o644)
	s2 := openT(t, t.TempDir(), m.Info, Options{ResumePath: filepath.Join(blocked, "x.resume")})
	if err := s2.SaveResume(allHave(m.Info.NumPieces)); err == nil {
		t.Error("save under a file succeeded")
	}
	if after, _ := os.ReadFile(rp); !bytes.Equal(before, after) {
		t.Error("record changed")
	}
}

func TestDefaultResumePath(t *testing.T) {
	m, _ := makeTorrent(t, testFiles[:1], 32<<10, 31)
	dir := t.TempDir()
	s := openT(t, dir, m.Info, Options{})
	want := filepath.Join(dir, ".shoal", m.Info.HexHash()+".resume")
	if s.ResumePath() != want {
		t.Errorf("ResumePath = %s, want %s", s.ResumePath(), want)
	}
	if err := s.SaveResume(make([]byte, (m.Info.NumPieces+7)/8)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(want); err != nil {
		t.Error(err)
	}
}

// A state folder that is a symbolic link out of the download folder is
// refused at Open, and one swapped in later makes the save fail: the
// resume record never lands outside. A link that stays inside is fine.
func TestStateFolderLinkedOutsideIsRefused(t *testing.T) {
	m, _ := makeTorrent(t, testFiles[:1], 32<<10, 33)
	have := make([]byte, (m.Info.NumPieces+7)/8)
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, StateDirName)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, m.Info)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StateDirName)+" is a symbolic link leading out of "+dir) {
		t.Fatalf("Open with .shoal linked outside: %v", err)
	}
	if err := CheckStateDir(dir); err == nil {
		t.Fatal("CheckStateDir accepted .shoal linked outside")
	}

	// Swapped for a link after Open.
	dir2 := t.TempDir()
	s := openT(t, dir2, m.Info, Options{})
	if err := s.SaveResume(have); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir2, StateDirName))
	os.Symlink(outside, filepath.Join(dir2, StateDirName))
	if err := s.SaveResume(have); err == nil {
		t.Error("saved through a state folder linked outside")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside the download folder: %v", ents)
	}

	// Linked to a folder inside: followed.
	dir3 := t.TempDir()
	os.Mkdir(filepath.Join(dir3, "state"), 0o755)
	os.Symlink("state", filepath.Join(dir3, StateDirName))
	if err := CheckStateDir(dir3); err != nil {
		t.Fatalf("CheckStateDir refused a link inside: %v", err)
	}
	s3 := openT(t, dir3, m.Info, Options{})
	if err := s3.SaveResume(have); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir3, "state", m.Info.HexHash()+".resume")); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.LoadResume(); err != nil {
		t.Fatal(err)
	}
}

func loadRecord(t *testing.T, dst string, in *piece.Info) *Record {
	t.Helper()
	s := openT(t, dst, in, Options{})
	rec, err := s.LoadResume()
	if err != nil {
		t.Fatal(err)
	}
	if rec.InfoHash != in.Hash || rec.NumPieces != in.NumPieces || len(rec.Files) != len(in.Files) {
		t.Fatalf("record header %x/%d/%d files", rec.InfoHash, rec.NumPieces, len(rec.Files))
	}
	for i, f := range rec.Files {
		if f.Size != in.Files[i].Length || f.ModTime == 0 {
			t.Errorf("file %d stamp %+v, want size %d and a time", i, f, in.Files[i].Length)
		}
	}
	return rec
}

func TestFilesAreSizedOnFirstWrite(t *testing.T) {
	m, _ := makeTorrent(t, testFiles, 32<<10, 32)
	in := m.Info
	dst := t.TempDir()
	// A leftover longer than the torrent's file is cut to size; a new file
	// is made full size (sparse) by its first block.
	long := diskPath(dst, in, 0)
	if err := os.MkdirAll(filepath.Dir(long), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(long, make([]byte, in.Files[0].Length+5000), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dst, in, Options{})
	for _, fi := range []int{0, len(in.Files) - 2} {
		f := in.Files[fi]
		if f.NumPieces == 0 {
			t.Fatalf("file %d is empty", fi)
		}
		if err := s.WriteBlock(f.FirstPiece, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(diskPath(dst, in, fi))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != f.Length {
			t.Errorf("file %d after one write: size %d, want %d", fi, st.Size(), f.Length)
		}
	}
}

func TestSaveRestampsWrittenFiles(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 33)
	in := m.Info
	s, dst := completeDownload(t, m, src, Options{})
	path := diskPath(dst, in, 0)
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	// Rewriting a piece moves the mtime to now; the next save must record
	// the new stamp, not the one it cached.
	data, err := s.ReadPiece(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(1, 0, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	have, hashed := check(t, dst, m, Options{})
	if !have.All() || hashed != 0 {
		t.Errorf("have %d of %d, hashed %d; want all trusted", have.Count(), have.Len(), hashed)
	}
}

func TestCheckThenSaveMakesNextStartCheap(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 34)
	_, dst := completeDownload(t, m, src, Options{}) // never saved
	s := openT(t, dst, m.Info, Options{})
	var hashed atomic.Int64
	if _, err := s.Check(context.Background(), m, &piece.Hasher{Progress: &hashed}); err != nil {
		t.Fatal(err)
	}
	if hashed.Load() != m.Info.TotalLength {
		t.Fatalf("first check hashed %d, want %d", hashed.Load(), m.Info.TotalLength)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	have, n := check(t, dst, m, Options{})
	if !have.All() || n != 0 {
		t.Errorf("second start: have %d of %d, hashed %d", have.Count(), have.Len(), n)
	}
}

func TestSaveRecoversFromDeletedFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 35)
	// One handle, so the deleted file is not held open (fsync on an open,
	// unlinked file succeeds) and must be reopened to be synced.
	s, dst := completeDownload(t, m, src, Options{MaxOpenFiles: 1})
	defer s.Close()
	if err := os.Remove(diskPath(dst, m.Info, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err == nil {
		t.Error("save syncing a deleted file reported no error")
	}
	// The file is gone for good; later saves must not keep failing on it.
	if err := s.Save(); err != nil {
		t.Fatalf("second save: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	have, _ := check(t, dst, m, Options{})
	for p := 0; p < m.Info.NumPieces; p++ {
		if have.Has(p) == (m.Info.FileOfPiece(p) == 0) {
			t.Errorf("piece %d: have = %v", p, have.Has(p))
		}
	}
}
