package storage

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// seedStorage opens src (the folder holding "tor") as a seeder does: the
// data is there, Check hashes it.
func seedStorage(t *testing.T, m *piece.MetaInfo, src string, opts Options) *Storage {
	t.Helper()
	opts.ResumePath = t.TempDir() + "/resume"
	s := openT(t, src, m.Info, opts)
	if _, err := s.Check(context.Background(), m, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// touch moves a file's mtime, as any editor saving it would.
func touch(t *testing.T, path string, by time.Duration) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime().Add(by), st.ModTime().Add(by)); err != nil {
		t.Fatal(err)
	}
}

// A file edited in place while open is reported on the next look, and not
// served until the caller says it dealt with it; other files are served
// throughout.
func TestChangedFileIsReportedAndRefused(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 40)
	in := m.Info
	s := seedStorage(t, m, src, Options{})
	buf := make([]byte, 100)
	for _, p := range []int{0, in.Files[5].FirstPiece} {
		if _, err := s.ReadBlock(p, 0, buf); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.ChangedFiles(nil); len(got) != 0 {
		t.Fatalf("untouched files reported changed: %v", got)
	}
	path := diskPath(src, in, 0)
	data, _ := os.ReadFile(path)
	data[5] ^= 0xff
	os.WriteFile(path, data, 0o644)
	touch(t, path, time.Second)

	if got := s.ChangedFiles(nil); !slices.Equal(got, []int{0}) {
		t.Fatalf("ChangedFiles = %v, want [0]", got)
	}
	if _, err := s.ReadBlock(0, 0, buf); !errors.Is(err, ErrChanged) {
		t.Fatalf("read of a changed file: %v, want ErrChanged", err)
	}
	if _, err := s.ReadBlock(in.Files[5].FirstPiece, 0, buf); err != nil {
		t.Fatalf("an unchanged file is refused too: %v", err)
	}
	// Verification still reads it: that is how the caller deals with it.
	want, _ := m.ExpectedRoot(0)
	if ok, err := s.VerifyPiece(0, want, 0, nil); ok || err != nil {
		t.Fatalf("verify of the edited piece: %v, %v; want a mismatch", ok, err)
	}
	if got := s.ChangedFiles(nil); !slices.Equal(got, []int{0}) {
		t.Fatalf("still changed until cleared: %v", got)
	}
	s.ClearChanged(0)
	if _, err := s.ReadBlock(0, 0, buf); err != nil {
		t.Fatalf("read after ClearChanged: %v", err)
	}
	if _, err := s.ReadBlock(0, 5, buf[:1]); err != nil || buf[0] != data[5] {
		t.Fatalf("read after ClearChanged: %v, %x; want the new byte %x", err, buf[0], data[5])
	}
	if got := s.ChangedFiles(nil); len(got) != 0 {
		t.Fatalf("reported again without a new change: %v", got)
	}
}

// A change to a file that is not open is noticed when it is opened, by
// the stat opening does anyway: the first read of it is refused.
func TestChangeNoticedOnOpen(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 41)
	in := m.Info
	s := seedStorage(t, m, src, Options{MaxOpenFiles: 1})
	buf := make([]byte, 100)
	if _, err := s.ReadBlock(in.Files[5].FirstPiece, 0, buf); err != nil {
		t.Fatal(err) // file 0's handle is evicted now
	}
	touch(t, diskPath(src, in, 0), time.Second)
	if _, err := s.ReadBlock(0, 0, buf); !errors.Is(err, ErrChanged) {
		t.Fatalf("first read after a change: %v, want ErrChanged", err)
	}
	if got := s.ChangedFiles(nil); !slices.Contains(got, 0) {
		t.Fatalf("ChangedFiles = %v, want file 0 in it", got)
	}
}

// A file replaced by another (rename over it) is read anew after the
// change is seen, not through the handle on the old one.
func TestReplacedFileIsReopened(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 42)
	in := m.Info
	s := seedStorage(t, m, src, Options{})
	buf := make([]byte, 1)
	if _, err := s.ReadBlock(0, 0, buf); err != nil {
		t.Fatal(err)
	}
	path := diskPath(src, in, 0)
	data, _ := os.ReadFile(path)
	data[0] ^= 0xff
	os.WriteFile(path+".new", data, 0o644)
	touch(t, path+".new", time.Second)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if got := s.ChangedFiles(nil); !slices.Equal(got, []int{0}) {
		t.Fatalf("ChangedFiles = %v, want [0]", got)
	}
	s.ClearChanged(0)
	if _, err := s.ReadBlock(0, 0, buf); err != nil || buf[0] != data[0] {
		t.Fatalf("read %x, %v; want the replacement's %x", buf[0], err, data[0])
	}
}

// Our own writes move sizes and mtimes too; they are never reported.
func TestOwnWritesAreNotChanges(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 43)
	dst := t.TempDir()
	s := openT(t, dst, m.Info, Options{})
	s.Baseline()
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeShuffled(t, s, m, src, 44)
	}()
	deadline := time.After(10 * time.Second)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-deadline:
			t.Fatal("writing took too long")
		default:
		}
		if got := s.ChangedFiles(nil); len(got) != 0 {
			t.Fatalf("our own writes reported as changes of %v", got)
		}
		buf := make([]byte, 1)
		for p := range m.Info.NumPieces {
			if _, err := s.ReadBlock(p, 0, buf); errors.Is(err, ErrChanged) {
				t.Fatalf("piece %d refused while we write: %v", p, err)
			}
		}
	}
	assertSameFiles(t, m.Info, src, dst)
}

// Probe tells an unreadable file from a readable one: gone, a folder in
// its place, or truncated fail; put back, it passes.
func TestProbe(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 45)
	in := m.Info
	s := seedStorage(t, m, src, Options{})
	if err := s.Probe(0); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	path := diskPath(src, in, 0)
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed file: %v, want not-exist", err)
	}
	os.Mkdir(path, 0o755)
	if err := s.Probe(0); err == nil {
		t.Error("a folder in the file's place passes")
	}
	os.Remove(path)
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(0); err != nil {
		t.Fatalf("file put back: %v", err)
	}
	if err := os.Truncate(path, 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(0); err == nil {
		t.Error("truncated file passes")
	}
	if err := s.Probe(len(in.Files)); !errors.Is(err, ErrRange) {
		t.Errorf("file out of range: %v", err)
	}
}
