package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// TestDiskFullStopsTorrent fills the download folder's file system (a
// tmpfs the test mounts) during a download: the torrent stops with the
// error in its status, as issue 10 has a daemon do, and the session runs
// on.
func TestDiskFullStopsTorrent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	src := t.TempDir()
	m := makeContent(t, src, "full", map[string]int{"big.bin": 1_000_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	dl := t.TempDir()
	if err := syscall.Mount("tmpfs", dl, "tmpfs", 0, "size=1600k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dl, syscall.MNT_DETACH) })
	cfg := testConfig(t, t.TempDir())
	cfg.DownloadDir = dl
	s := openSession(t, cfg)
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), DownLimit: 400_000})
	if err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	waitFor(t, s, st.ID, 5*time.Second, "started", func(st Status) bool { return st.Verified > 0 })
	// Take the rest of the space.
	f, err := os.Create(filepath.Join(dl, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	stopped := waitFor(t, s, st.ID, 10*time.Second, "stopped by the full disk", func(st Status) bool { return st.State == Stopped })
	if stopped.Error == "" || stopped.Verified == 0 {
		t.Fatalf("status after the disk filled: %+v", stopped)
	}
	// Room again, and a start clears the error and completes it.
	os.Remove(filepath.Join(dl, "filler"))
	if err := s.Start([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	done := waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	if done.Error != "" {
		t.Fatalf("error kept after a successful start: %q", done.Error)
	}
	sameFile(t, filepath.Join(src, "full", "big.bin"), filepath.Join(dl, "full", "big.bin"))
}
