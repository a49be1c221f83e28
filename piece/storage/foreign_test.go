package storage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

// checked opens dst, runs Check and returns the storage, still open.
func checked(t *testing.T, dst string, m *piece.MetaInfo, opts Options) *Storage {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	s := openT(t, dst, m.Info, opts)
	if _, err := s.Check(context.Background(), m, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// foreignPaths lists the paths Foreign reports.
func foreignPaths(s *Storage) []string {
	var out []string
	for _, f := range s.Foreign() {
		out = append(out, filepath.ToSlash(f.Path))
	}
	return out
}

// bigFile is the index of testFiles' "a/big.bin", several pieces long.
const bigFile = 0

// A user's file of another size at a torrent's path is never written, not
// even resized, until adopted; then it is sized to the torrent's and keeps
// the pieces that verified.
func TestCheckLeavesForeignFileAlone(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 40)
	in := m.Info
	f := in.Files[bigFile]
	dst := t.TempDir()
	path := diskPath(dst, in, bigFile)
	// The torrent's data with a tail of its own: every piece verifies, but
	// the file is not the torrent's.
	good, err := os.ReadFile(diskPath(src, in, bigFile))
	if err != nil {
		t.Fatal(err)
	}
	mine := append(slices.Clone(good), bytes.Repeat([]byte("mine"), 5000)...)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, mine, 0o644); err != nil {
		t.Fatal(err)
	}

	s := checked(t, dst, m, Options{})
	ff := s.Foreign()
	if len(ff) != 1 || ff[0].File != bigFile || ff[0].Size != int64(len(mine)) || ff[0].Length != f.Length || ff[0].Good != f.NumPieces || ff[0].Pieces != f.NumPieces {
		t.Fatalf("Foreign() = %+v, want only file %d of size %d with all %d pieces good", ff, bigFile, len(mine), f.NumPieces)
	}
	if err := s.WriteBlock(f.FirstPiece, 0, good[:100]); !errors.Is(err, ErrForeign) {
		t.Errorf("write to a foreign file: %v, want ErrForeign", err)
	}
	if err := s.Complete(); !errors.Is(err, ErrForeign) {
		t.Errorf("Complete with a foreign file: %v, want ErrForeign", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, mine) {
		t.Fatalf("the foreign file changed: %d bytes", len(got))
	}

	if err := s.Adopt(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, good) {
		t.Fatalf("after Adopt the file has %d bytes, want the torrent's %d", len(got), len(good))
	}
	if s.Foreign() != nil {
		t.Errorf("Foreign() after Adopt = %+v", s.Foreign())
	}
	if err := s.WriteBlock(f.FirstPiece, 0, good[:100]); err != nil {
		t.Errorf("write after Adopt: %v", err)
	}
}

// What an interrupted download looks like when its record is lost (the
// right size, some pieces good, the rest never written) is ours; the same
// with one piece of other data is someone else's.
func TestCheckTellsInterruptedDownloadFromForeignFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 41)
	in := m.Info
	f := in.Files[bigFile]
	good, err := os.ReadFile(diskPath(src, in, bigFile))
	if err != nil {
		t.Fatal(err)
	}
	partial := make([]byte, len(good))
	copy(partial[:2*in.PieceLength], good) // pieces 0 and 1 of the file
	for _, tc := range []struct {
		name    string
		mutate  func([]byte)
		foreign bool
	}{
		{"zeros past the good pieces", func([]byte) {}, false},
		{"other data in one piece", func(b []byte) { b[3*in.PieceLength+5] = 1 }, true},
		{"nothing verifies", func(b []byte) { b[0] ^= 1; b[in.PieceLength] ^= 1; b[len(b)-1] = 9 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			path := diskPath(dst, in, bigFile)
			data := slices.Clone(partial)
			tc.mutate(data)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			s := checked(t, dst, m, Options{})
			if got := len(s.Foreign()) == 1; got != tc.foreign {
				t.Fatalf("Foreign() = %+v, want foreign %v", s.Foreign(), tc.foreign)
			}
			err := s.WriteBlock(f.FirstPiece+2, 0, good[2*in.PieceLength:2*in.PieceLength+100])
			if tc.foreign != errors.Is(err, ErrForeign) {
				t.Fatalf("write: %v, want foreign %v", err, tc.foreign)
			}
			if got, _ := os.ReadFile(path); tc.foreign && !bytes.Equal(got, data) {
				t.Error("the foreign file changed")
			}
		})
	}
}

// A download that shoal began in the folder (its resume record is there)
// owns its files even when a piece was half written when it was killed,
// which no record describes.
func TestCheckTrustsOwnRecordForHalfWrittenPiece(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 42)
	in := m.Info
	f := in.Files[bigFile]
	dst := t.TempDir()
	s := checked(t, dst, m, Options{}) // nothing there yet
	if err := s.Save(); err != nil {   // what get does before the first write
		t.Fatal(err)
	}
	good, err := os.ReadFile(diskPath(src, in, bigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(f.FirstPiece, 0, good[:in.PieceLength]); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(f.FirstPiece+1, 0, good[in.PieceLength:in.PieceLength+1000]); err != nil {
		t.Fatal(err)
	}
	s.Close() // killed: nothing saved since

	s = checked(t, dst, m, Options{})
	if ff := s.Foreign(); ff != nil {
		t.Fatalf("Foreign() = %+v for our own interrupted download", ff)
	}
	if rec, _ := os.ReadFile(s.ResumePath()); len(rec) == 0 {
		t.Fatal("no resume record")
	}
	if err := s.WriteBlock(f.FirstPiece+1, 0, good[in.PieceLength:in.PieceLength+1000]); err != nil {
		t.Fatalf("resuming the write: %v", err)
	}
}

// An empty file of the torrent's is never truncated over a user's file
// with content; Complete refuses until adopted, then empties it.
func TestEmptyTorrentFileOverUserFile(t *testing.T) {
	m, _ := makeTorrent(t, testFiles, 32<<10, 43)
	in := m.Info
	empty := slices.IndexFunc(in.Files, func(f piece.File) bool { return f.Length == 0 })
	dst := t.TempDir()
	path := diskPath(dst, in, empty)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := checked(t, dst, m, Options{})
	if got := foreignPaths(s); len(got) != 1 || got[0] != filepath.ToSlash(filepath.Join(in.DiskPath(empty)...)) {
		t.Fatalf("Foreign() paths %v", got)
	}
	if err := s.Complete(); err == nil {
		t.Error("Complete emptied a foreign file")
	}
	if got, _ := os.ReadFile(path); string(got) != "notes" {
		t.Fatalf("file now %q", got)
	}
	if err := s.Adopt(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("adopted empty file: %v, %v", st, err)
	}
}

// Complete leaves every file at the torrent's size, making a missing empty
// one, and names a data file that is gone.
func TestCompleteSizesEveryFile(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 44)
	in := m.Info
	s, dst := completeDownload(t, m, src, Options{})
	empty := slices.IndexFunc(in.Files, func(f piece.File) bool { return f.Length == 0 })
	if err := os.Remove(diskPath(dst, in, empty)); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	for i, f := range in.Files {
		if st, err := os.Stat(diskPath(dst, in, i)); err != nil || st.Size() != f.Length {
			t.Errorf("file %d: %v, %v; want size %d", i, st, err, f.Length)
		}
	}
	if problems, err := piece.Verify(context.Background(), m, dst, nil); err != nil || len(problems) != 0 {
		t.Errorf("verify after Complete: %v %v", problems, err)
	}
	if err := os.Remove(diskPath(dst, in, bigFile)); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(); err == nil {
		t.Error("Complete passed with a data file gone")
	}
}

// With TopName, the torrent's top-level entry is read from another name:
// a single file saved as "renamed", a folder saved as "copy".
func TestTopNameServesDataUnderAnotherName(t *testing.T) {
	single, ssrc := makeTorrent(t, []srcFile{{"one.bin", 100000}}, 32<<10, 45)
	multi, msrc := makeTorrent(t, testFiles, 32<<10, 46)
	if !single.Info.SingleFile() || multi.Info.SingleFile() {
		t.Fatal("test torrents have the wrong shape")
	}
	for _, tc := range []struct {
		m   *piece.MetaInfo
		src string
		top string
	}{
		{single, filepath.Join(ssrc, "tor", "one.bin"), "renamed"},
		{multi, filepath.Join(msrc, "tor"), "copy"},
	} {
		dst := t.TempDir()
		if err := os.Rename(tc.src, filepath.Join(dst, tc.top)); err != nil {
			t.Fatal(err)
		}
		s := checked(t, dst, tc.m, Options{TopName: tc.top})
		if !bytes.Equal(s.Have(), allHave(tc.m.Info.NumPieces)) || s.Foreign() != nil {
			t.Errorf("%s: have %x, foreign %+v; want every piece from the renamed data", tc.top, s.Have(), s.Foreign())
		}
		if _, err := os.Stat(filepath.Join(dst, tc.m.Info.DiskPath(0)[0])); err == nil {
			t.Errorf("%s: something was made under the torrent's own name", tc.top)
		}
	}
	if _, err := Open(t.TempDir(), single.Info); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWith(t.TempDir(), single.Info, Options{TopName: "../x"}); err == nil {
		t.Error("OpenWith accepted a TopName with a separator")
	}
}

// Without the piece layers, a file with no record is still judged by its
// bytes: zeros are a download not yet begun, anything else is foreign.
func TestCheckJudgesUnknownRootsByZeros(t *testing.T) {
	m, src := makeTorrent(t, testFiles, 32<<10, 47)
	in := m.Info
	noLayers := *m
	noLayers.Layers = nil
	for _, zero := range []bool{true, false} {
		dst := t.TempDir()
		path := diskPath(dst, in, bigFile)
		data, err := os.ReadFile(diskPath(src, in, bigFile))
		if err != nil {
			t.Fatal(err)
		}
		if zero {
			clear(data)
		}
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := checked(t, dst, &noLayers, Options{})
		if got := s.Foreign() != nil; got == zero {
			t.Errorf("zeros %v: Foreign() = %+v", zero, s.Foreign())
		}
	}
}
