package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/tracker"
)

// startTracker runs an HTTP tracker on loopback for the test's lifetime.
func startTracker(t *testing.T) string {
	t.Helper()
	srv, err := tracker.NewServer(tracker.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return fmt.Sprintf("http://%s/announce", ln.Addr())
}

// TestExtraTrackerFindsSeeder adds a torrent with a tracker of the
// request's: the session announces to it, finds the seeder through it,
// downloads, and reports the tracker's answer.
func TestExtraTrackerFindsSeeder(t *testing.T) {
	url := startTracker(t)
	src := t.TempDir()
	m := makeContent(t, src, "tr", map[string]int{"t.bin": 100_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	sd.t.AddTrackers([][]string{{url}})
	s := openSession(t, testConfig(t, t.TempDir()))
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), ExtraTrackers: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	done := waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	sameFile(t, filepath.Join(src, "tr", "t.bin"), filepath.Join(done.Dir, "tr", "t.bin"))
	trs := status(t, s, st.ID, WantTrackers).Trackers
	if len(trs) != 1 || trs[0].URL != url || trs[0].LastResult != "Success" || trs[0].LastAnnounce.IsZero() || trs[0].Seeders < 1 {
		t.Fatalf("trackers: %+v", trs)
	}
}
