package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateHandler holds up the goroutine that logs msg, once, for up to hold:
// a way to catch a goroutine in the middle of its work.
type gateHandler struct {
	msg  string
	hold time.Duration

	mu                sync.Mutex
	entered, released bool
}

func (h *gateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *gateHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *gateHandler) WithGroup(string) slog.Handler            { return h }

func (h *gateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	h.mu.Lock()
	first := !h.entered
	h.entered = true
	h.mu.Unlock()
	if first {
		time.Sleep(h.hold)
		h.mu.Lock()
		h.released = true
		h.mu.Unlock()
	}
	return nil
}

func (h *gateHandler) state() (entered, released bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.entered, h.released
}

// TestCloseWaitsForTick closes a torrent while a tick of its
// housekeeping is under way. Close must return only once that tick is
// over: what the tick still does (a resume save above all) would
// otherwise race whatever the caller does next, such as closing the
// storage, which is what get does. No tick starts after it either.
func TestCloseWaitsForTick(t *testing.T) {
	const line = "no leaf hashes for failed piece; blame unknown"
	h := &gateHandler{msg: line, hold: 500 * time.Millisecond}
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 100_000}, 64<<10)
	n := startNode(t, m, t.TempDir(), Config{Logger: slog.New(h)}, nil)
	tor := n.t

	// A failed piece whose leaf hashes never came: the next tick logs it,
	// and the handler holds the tick there.
	tor.mu.Lock()
	tor.suspects[0] = &suspect{asked: &peer{}}
	tor.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for entered, _ := h.state(); !entered; entered, _ = h.state() {
		if time.Now().After(deadline) {
			t.Fatal("no tick logged the failed piece after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tor.Close(); err != nil {
		t.Fatal(err)
	}
	if _, released := h.state(); !released {
		t.Error("Close returned with a tick unfinished")
	}
	if k := waitTorrentGoroutines(t, 0, "swarm.(*Torrent).tick("); k != 0 {
		t.Errorf("%d ticks running after Close", k)
	}
}

// TestAddTwiceNamesTheTorrent: the error for a torrent added twice says
// which torrent, for a client that holds many.
func TestAddTwiceNamesTheTorrent(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 1000}, 64<<10)
	n := startNode(t, m, src, Config{}, nil)
	_, err := n.c.Add(m, n.st, n.st.Have())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%x", m.Info.Hash[:])) {
		t.Fatalf("second Add: err = %v, want one naming info-hash %x", err, m.Info.Hash[:])
	}
}

// TestFirstPieceAndRates: FirstPiece closes at the first verified piece,
// well before the download is done, with Stats saying when; and Stats has
// the download rate the peers measured at the last tick. A seeder
// complete when added never closes it.
func TestFirstPieceAndRates(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	// About two and a half seconds: ticks happen while it runs.
	seeder := startNode(t, m, src, Config{MaxUploadRate: 400 << 10}, nil)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	start := time.Now()
	leech.t.AddPeers(seeder.addr())
	select {
	case <-leech.t.FirstPiece():
	case <-time.After(10 * time.Second):
		t.Fatal("no first piece after 10s")
	}
	s := leech.t.Stats()
	if s.FirstPiece.IsZero() || s.FirstPiece.Before(start) || s.PiecesDone == 0 {
		t.Errorf("at FirstPiece: first piece at %v (start %v), %d pieces done", s.FirstPiece, start, s.PiecesDone)
	}
	select {
	case <-leech.t.Done():
		t.Fatal("download done by the time FirstPiece closed: the test proves nothing")
	default:
	}
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	if s := leech.t.Stats(); s.DownRate <= 0 || s.Peers != 1 {
		t.Errorf("mid-download: down rate %v with %d peers, want a positive rate", s.DownRate, s.Peers)
	}
	waitDone(t, leech, 20*time.Second)
	select {
	case <-seeder.t.FirstPiece():
		t.Error("FirstPiece closed for a torrent complete when added")
	default:
	}
}
