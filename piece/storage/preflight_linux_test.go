package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

// mountTmpfs mounts a tmpfs of size bytes on a new folder, read-only if
// asked once files are in place (see remountRO), and unmounts it at the
// end of the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// remountRO makes a tmpfs from mountTmpfs read-only: not even root can
// write there then, which is what a folder the user may not write to is.
func remountRO(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

// preflight opens dst for m, checks it, and returns Preflight's verdict.
func preflight(t *testing.T, dst string, m *piece.MetaInfo) error {
	t.Helper()
	s := openT(t, dst, m.Info, Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if _, err := s.Check(context.Background(), m, nil); err != nil {
		t.Fatal(err)
	}
	return s.Preflight()
}

// Something other than a regular file where a file goes, or other than a
// folder where a folder goes, is refused by name; an absent path or a
// regular file (whatever it holds) is not.
func TestPreflightRefusesWhatStandsInTheWay(t *testing.T) {
	m, _ := makeTorrent(t, testFiles, 32<<10, 41)
	in := m.Info
	var small, deep int
	for i := range in.Files {
		switch strings.Join(in.Files[i].Path, "/") {
		case "small.txt":
			small = i
		case "z/deep/x.bin":
			deep = i
		}
	}
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		plant func(dst string)
		path  func(dst string) string // "" means no refusal
		what  string
	}{
		{"nothing there", func(string) {}, nil, ""},
		{"a regular file of other content", func(dst string) {
			os.MkdirAll(filepath.Dir(diskPath(dst, in, small)), 0o755)
			os.WriteFile(diskPath(dst, in, small), []byte("mine"), 0o644)
		}, nil, ""},
		{"a folder at a file's name", func(dst string) {
			os.MkdirAll(diskPath(dst, in, small), 0o755)
		}, func(dst string) string { return diskPath(dst, in, small) }, "a folder stands where the torrent's file goes"},
		{"a symbolic link at a file's name", func(dst string) {
			mustSymlink(t, outside, diskPath(dst, in, small))
		}, func(dst string) string { return diskPath(dst, in, small) }, "a symbolic link stands where the torrent's file goes"},
		{"a file at a folder's name", func(dst string) {
			os.MkdirAll(filepath.Join(dst, "tor", "z"), 0o755)
			os.WriteFile(filepath.Join(dst, "tor", "z", "deep"), nil, 0o644)
		}, func(dst string) string { return filepath.Join(dst, "tor", "z", "deep") }, "a file stands where the torrent's folder goes"},
		{"a symbolic link at a folder's name", func(dst string) {
			mustSymlink(t, t.TempDir(), filepath.Dir(diskPath(dst, in, deep)))
		}, func(dst string) string { return filepath.Dir(diskPath(dst, in, deep)) }, "a symbolic link stands where the torrent's folder goes"},
		{"a named pipe at a file's name", func(dst string) {
			os.MkdirAll(filepath.Dir(diskPath(dst, in, small)), 0o755)
			if err := syscall.Mkfifo(diskPath(dst, in, small), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(dst string) string { return diskPath(dst, in, small) }, "a named pipe stands where the torrent's file goes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			tc.plant(dst)
			s := openT(t, dst, in, Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
			lerr := s.CheckLayout()
			if _, err := s.Check(context.Background(), m, nil); err != nil {
				t.Fatal(err)
			}
			perr := s.Preflight()
			if tc.path == nil {
				if lerr != nil || perr != nil {
					t.Fatalf("refused: %v / %v", lerr, perr)
				}
				return
			}
			want := tc.path(dst) + ": " + tc.what
			for name, err := range map[string]error{"CheckLayout": lerr, "Preflight": perr} {
				var le *LayoutError
				if !errors.Is(err, ErrInTheWay) || !errors.As(err, &le) || err.Error() != want {
					t.Errorf("%s: %v; want %q", name, err, want)
				}
			}
		})
	}
	if data, err := os.ReadFile(outside); err != nil || string(data) != "keep me" {
		t.Errorf("the link's target changed: %q, %v", data, err)
	}
}

// Files are created lazily, so a read-only folder would only show at the
// first block: Preflight tries it at once, for folders where files are
// still to be made and for existing files still to be written. Root is no
// exception on a read-only mount. A complete copy needs no writing.
func TestPreflightRefusesReadOnlyFolder(t *testing.T) {
	m, src := makeTorrent(t, []srcFile{{"a.bin", 100000}, {"sub/b.bin", 50000}}, 32<<10, 43)
	ro := mountTmpfs(t, "4m")
	os.MkdirAll(filepath.Join(ro, "empty"), 0o755)
	os.MkdirAll(filepath.Join(ro, "partial", "tor"), 0o755)
	os.WriteFile(filepath.Join(ro, "partial", "tor", "a.bin"), make([]byte, 100000), 0o644)
	os.MkdirAll(filepath.Join(ro, "complete"), 0o755)
	if err := os.CopyFS(filepath.Join(ro, "complete"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	remountRO(t, ro)

	err := preflight(t, filepath.Join(ro, "empty"), m)
	if want := "cannot write in " + filepath.Join(ro, "empty") + ": read-only file system"; err == nil || err.Error() != want || !errors.Is(err, syscall.EROFS) {
		t.Errorf("empty read-only folder: %v; want %q", err, want)
	}
	err = preflight(t, filepath.Join(ro, "partial"), m)
	if want := "cannot write " + filepath.Join(ro, "partial", "tor", "a.bin") + ": read-only file system"; err == nil || err.Error() != want {
		t.Errorf("read-only file with pieces missing: %v; want %q", err, want)
	}
	if err := preflight(t, filepath.Join(ro, "complete"), m); err != nil {
		t.Errorf("complete copy on a read-only mount: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(ro, "empty")); len(ents) != 0 {
		t.Errorf("preflight left %d entries in the folder", len(ents))
	}
}

// The space check counts what is still missing against what the file
// system has free, and does not count twice the space an existing file
// already holds: a preallocated or earlier-written file fills its own
// blocks.
func TestPreflightChecksFreeSpace(t *testing.T) {
	m, _ := makeTorrent(t, []srcFile{{"a.bin", 2 << 20}}, 64<<10, 45)
	dir := mountTmpfs(t, "3m")

	err := preflight(t, filepath.Join(dir, "fits"), m)
	if err != nil {
		t.Fatalf("2 MiB into 3 MiB: %v", err)
	}
	// Fill the disk but for 1 MiB: 2 MiB no longer fit...
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	err = preflight(t, filepath.Join(dir, "full"), m)
	var se *SpaceError
	if !errors.As(err, &se) || !errors.Is(err, ErrNoSpace) || se.Need != 2<<20 || se.Free > 1<<20 || se.Free < 1<<19 {
		t.Fatalf("2 MiB into 1 MiB: %v (%+v)", err, se)
	}
	if !strings.HasPrefix(err.Error(), "not enough space in "+filepath.Join(dir, "full")+": ") || !strings.HasSuffix(err.Error(), "free, 2.0 MiB still to download") {
		t.Errorf("message %q", err)
	}
	// ...but a file that already holds its 2 MiB (of other data) needs no
	// more room to be written over.
	os.Remove(filler)
	if err := os.MkdirAll(filepath.Join(dir, "held"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "held", "a.bin"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := preflight(t, filepath.Join(dir, "held"), m); err != nil {
		t.Errorf("file already holding its space: %v", err)
	}
	// A sparse file of the full size holds nothing yet.
	os.Remove(filepath.Join(dir, "held", "a.bin"))
	if err := os.Truncate(filler, 2<<20); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "held", "a.bin"))
	f.Truncate(2 << 20)
	f.Close()
	if err := preflight(t, filepath.Join(dir, "held"), m); !errors.Is(err, ErrNoSpace) {
		t.Errorf("sparse file: %v; want not enough space", err)
	}
}

// A full disk fails the atomic save (its temporary file needs room): the
// record, whose blocks are already there, is rewritten in place instead,
// so the pieces verified before the disk filled up are still remembered.
func TestSaveOnFullDisk(t *testing.T) {
	m, src := makeTorrent(t, []srcFile{{"a.bin", 1 << 20}}, 64<<10, 47)
	dir := mountTmpfs(t, "2m")
	dst := filepath.Join(dir, "dl")
	s := openT(t, dst, m.Info, Options{})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(src, "tor", "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(0, 0, data[:m.Info.PieceLength]); err != nil {
		t.Fatal(err)
	}
	s.MarkVerified(0)
	// Fill the disk to the last byte.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "probe"), chunk, 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("disk not full: %v", err)
	}
	if err := s.Save(); err != nil {
		t.Fatalf("save on a full disk: %v", err)
	}
	rec := loadRecord(t, dst, m.Info)
	if !rec.have.Has(0) || rec.have.Count() != 1 {
		t.Errorf("record after saving on a full disk: %x", rec.Have)
	}
	ents, _ := os.ReadDir(filepath.Join(dst, StateDirName))
	if len(ents) != 1 {
		t.Errorf("state folder holds %d entries, want the record alone", len(ents))
	}
}
