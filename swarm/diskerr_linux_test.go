package swarm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The disk fills up mid-download (a small tmpfs): the torrent stops with
// ENOSPC, keeps what it verified, on disk and in the resume record that
// lives on the same full disk, and goes on serving it: paused, not dead.
func TestDiskFullPausesAndServes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill up needs root")
	}
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 4 << 20}, 64<<10)
	// One file in a folder makes a single-file torrent: the file itself.
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{MaxUploadRate: 4 << 20}, nil)
	dst := t.TempDir()
	if err := syscall.Mount("tmpfs", dst, "tmpfs", 0, "size=2m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	var leech *node
	t.Cleanup(func() {
		if leech != nil {
			leech.t.Close()
			leech.st.Close()
		}
		syscall.Unmount(dst, 0)
	})
	var logs logBuffer
	resume := filepath.Join(dst, ".shoal", "resume")
	leech = stoppingLeech(t, m, dst, resume, 0, &logs, seeder)

	err := waitFailed(t, leech, 10*time.Second)
	var de *DiskError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) || de.Path != filepath.Join(dst, "a.bin") {
		t.Fatalf("Err() = %v; want ENOSPC writing %s", err, filepath.Join(dst, "a.bin"))
	}
	if want := "writing " + de.Path + ": no space left on device"; err.Error() != want {
		t.Errorf("Err() says %q, want %q", err, want)
	}
	n := checkStopped(t, m, leech, seeder, 0)
	if n == 0 {
		t.Fatal("nothing verified before the disk filled up")
	}
	rec, err := leech.st.LoadResume()
	if err != nil {
		t.Fatalf("resume record on the full disk: %v", err)
	}
	if !bytes.Equal(rec.Have, leech.st.Have()) {
		t.Errorf("resume record holds %x, storage has %x", rec.Have, leech.st.Have())
	}

	other := startNode(t, m, t.TempDir(), Config{}, nil)
	other.t.AddPeers(leech.addr())
	deadline := time.Now().Add(10 * time.Second)
	for other.t.Stats().PiecesDone < n {
		if time.Now().After(deadline) {
			t.Fatalf("a peer of the stopped torrent got %d of its %d pieces in 10s", other.t.Stats().PiecesDone, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if up := leech.t.Stats().Uploaded; up < int64(n)*m.Info.PieceLength {
		t.Errorf("the stopped torrent uploaded %d bytes for %d pieces", up, n)
	}
	leech.t.Close()
	if n := errorLines(logs.String()); n != 1 {
		t.Errorf("%d ERROR lines; want the failure logged once:\n%s", n, logs.String())
	}
}
