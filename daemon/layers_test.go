package daemon

import (
	"runtime"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// A v2 torrent whose piece layers are missing waits for them as a magnet
// waits for its metadata (downloading, no error), and its fetch ends with
// whatever ends the torrent: a stop, a remove, the session's close, none
// leaving a goroutine behind.
func TestLayersFetchEndsWithTheTorrent(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "bare", twoFiles, 16<<10, piece.FormatV2)
	m.Layers = nil
	if len(m.MissingLayers()) != 2 {
		t.Fatalf("%d layers missing, want 2", len(m.MissingLayers()))
	}
	before := runtime.NumGoroutine()
	s, err := Open(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	waiting := func(st Status) bool {
		return st.State == Downloading && st.Error == "" && st.HasMetadata && st.Verified == 0
	}
	for range 5 {
		if st := status(t, s, st.ID, 0); !waiting(st) {
			t.Fatalf("while the layers are missing: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	began := time.Now()
	if err := s.Stop([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("stop took %v", d)
	}
	if st := status(t, s, st.ID, 0); st.State != Stopped || st.Error != "" {
		t.Fatalf("after stop: %+v", st)
	}
	if err := s.Start([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, st.ID, time.Second, "waiting for its layers again", waiting)
	if err := s.Remove([]ID{st.ID}, true); err != nil {
		t.Fatal(err)
	}
	// A second one is left fetching for Close to end.
	if _, _, err := s.Add(AddRequest{Metainfo: marshal(t, m)}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("close took %v", d)
	}
	// Goroutines of the runtime and of other packages' timers may take a
	// moment to go.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
