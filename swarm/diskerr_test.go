package swarm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/storage"
)

// logBuffer collects a client's log lines so a test can count them.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stoppingLeech downloads m into dst from seeder, with its log in logs and
// its resume record at resume, keeping at most maxOpen files open.
func stoppingLeech(t *testing.T, m *piece.MetaInfo, dst, resume string, maxOpen int, logs *logBuffer, seeder *node) *node {
	t.Helper()
	st, err := storage.OpenWith(dst, m.Info, storage.Options{ResumePath: resume, MaxOpenFiles: maxOpen})
	if err != nil {
		t.Fatal(err)
	}
	// As `shoal get` does: a record exists before the disk can fill up.
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	c, err := Listen(context.Background(), Config{ListenAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.Add(m, st, bitfield.New(m.Info.NumPieces).Bytes())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close(); c.Close(); st.Close() })
	tor.AddPeers(seeder.addr())
	return &node{c: c, t: tor, st: st}
}

// waitFailed waits for n's download to stop on an error and returns it.
func waitFailed(t *testing.T, n *node, d time.Duration) error {
	t.Helper()
	select {
	case <-n.t.Failed():
	case <-n.t.Done():
		t.Fatal("the download completed despite the disk fault")
	case <-time.After(d):
		t.Fatalf("no failure %v after the disk fault; stats %+v", d, n.t.Stats())
	}
	return n.t.Err()
}

// checkStopped checks what a stopped download must show: nothing asked of
// the seeder any more, every byte received verified or counted as wasted,
// less received than the torrent holds, and the verified pieces of file fi
// good on disk. It returns how many pieces of fi were verified.
func checkStopped(t *testing.T, m *piece.MetaInfo, leech, seeder *node, fi int) int {
	t.Helper()
	at := leech.t.Stats().Downloaded
	time.Sleep(1500 * time.Millisecond)
	if late := leech.t.Stats().Downloaded - at; late > 1<<20 {
		t.Errorf("%d bytes arrived in the 1.5s after the failure: still requesting", late)
	}
	up := seeder.t.Stats().Uploaded
	time.Sleep(time.Second)
	if more := seeder.t.Stats().Uploaded - up; more != 0 {
		t.Errorf("the seeder still sent %d bytes 1.5s after the failure", more)
	}
	s := leech.t.Stats()
	if s.Downloaded != s.BytesDone+s.Wasted {
		t.Errorf("downloaded %d = verified %d + wasted %d + %d unaccounted", s.Downloaded, s.BytesDone, s.Wasted, s.Downloaded-s.BytesDone-s.Wasted)
	}
	if s.Downloaded >= m.Info.TotalLength {
		t.Errorf("downloaded %d bytes of a %d-byte torrent before stopping", s.Downloaded, m.Info.TotalLength)
	}
	bf, _ := bitfield.FromBytes(leech.st.Have(), m.Info.NumPieces)
	f := m.Info.Files[fi]
	n := 0
	for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
		if !bf.Has(p) {
			continue
		}
		n++
		want, _ := m.ExpectedRoot(p)
		if ok, err := leech.st.VerifyPiece(p, want, 0, nil); !ok {
			t.Errorf("verified piece %d does not check out on disk: %v", p, err)
		}
	}
	t.Logf("stopped after %d bytes (%d wasted, %d verified)", s.Downloaded, s.Wasted, s.BytesDone)
	return n
}

// errorLines counts the ERROR lines in a log.
func errorLines(log string) int { return strings.Count(log, "level=ERROR") }

// A file of the download replaced by a folder mid-download: every later
// write to it would fail. The torrent stops asking for blocks at the first
// failure, says which file and why, counts what it drops as wasted, keeps
// its verified pieces of the other file on disk and in the resume record,
// with one error in the log rather than one per block.
func TestWriteErrorStopsDownload(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 2 << 20, "b.bin": 2 << 20}, 64<<10)
	seeder := startNode(t, m, src, Config{MaxUploadRate: 1 << 20}, nil)
	if got := strings.Join(m.Info.DiskPath(0), "/"); got != "data/a.bin" {
		t.Fatalf("file 0 is %s", got)
	}
	dst := t.TempDir()
	var logs logBuffer
	// One open file at a time: every switch between the two files opens
	// again, and so looks at what now stands at the path.
	leech := stoppingLeech(t, m, dst, filepath.Join(t.TempDir(), "resume"), 1, &logs, seeder)

	fa, fb := m.Info.Files[0], m.Info.Files[1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		bf, _ := bitfield.FromBytes(leech.st.Have(), m.Info.NumPieces)
		if p := bf.NextSet(fa.FirstPiece); p >= 0 && p < fa.FirstPiece+fa.NumPieces {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no piece of a.bin verified in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	bPath := filepath.Join(dst, "data", "b.bin")
	if err := os.RemoveAll(bPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bPath, 0o755); err != nil {
		t.Fatal(err)
	}

	err := waitFailed(t, leech, 10*time.Second)
	var de *DiskError
	if !errors.As(err, &de) || de.Path != bPath || de.Op != "writing" || !errors.Is(err, storage.ErrInTheWay) {
		t.Fatalf("Err() = %v (%#v); want a DiskError writing %s, matching ErrInTheWay", err, err, bPath)
	}
	if want := "writing " + bPath + ": a folder stands where the torrent's file goes"; err.Error() != want {
		t.Errorf("Err() says %q, want %q", err, want)
	}
	if nA := checkStopped(t, m, leech, seeder, 0); nA == 0 {
		t.Error("no verified piece of a.bin kept")
	}

	// The record keeps a.bin's pieces; b.bin's went with the file.
	rec, err := leech.st.LoadResume()
	if err != nil {
		t.Fatalf("resume record after the failure: %v", err)
	}
	want, _ := bitfield.FromBytes(leech.st.Have(), m.Info.NumPieces)
	for p := fb.FirstPiece; p < fb.FirstPiece+fb.NumPieces; p++ {
		want.Clear(p)
	}
	if !bytes.Equal(rec.Have, want.Bytes()) {
		t.Errorf("resume record holds %x, want %x", rec.Have, want.Bytes())
	}
	leech.t.Close()
	if n := errorLines(logs.String()); n != 1 {
		t.Errorf("%d ERROR lines; want the failure logged once:\n%s", n, logs.String())
	}
}
