package swarm

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece/picker"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// TestSetPrioritiesWhileRunning changes the selection of a running,
// rate-limited download: the file unselected stops, the file selected
// arrives whole, the download completes on the new selection, and the
// torrent's own cap holds it to its rate.
func TestSetPrioritiesWhileRunning(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 400_000, "b.bin": 300_000}, 16<<10)
	seeder := startNode(t, m, src, Config{}, nil)

	dst := t.TempDir()
	st, err := storage.OpenWith(dst, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := Listen(context.Background(), Config{ListenAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Files in tree order: a.bin, b.bin.
	ai, bi := 0, 1
	if m.Info.Files[0].Path[len(m.Info.Files[0].Path)-1] != "a.bin" {
		ai, bi = 1, 0
	}
	files := make([]picker.Priority, 2)
	files[ai] = picker.Normal
	prio, err := PiecePriorities(m.Info, files)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.AddWith(m, st, make([]byte, (m.Info.NumPieces+7)/8), AddOptions{Priority: prio})
	if err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	const limit = 200_000
	tor.SetRateLimits(limit, 0)
	start := time.Now()
	tor.AddPeers(seeder.addr())
	// Let some of a.bin arrive, then want b.bin alone.
	for tor.Stats().BytesDone == 0 && time.Since(start) < 5*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	files[ai], files[bi] = picker.Skip, picker.High
	prio, _ = PiecePriorities(m.Info, files)
	if err := tor.SetPriorities(prio, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tor.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("not done on the new selection: %+v", tor.Stats())
	}
	elapsed := time.Since(start)
	got, err := os.ReadFile(filepath.Join(dst, "data", "b.bin"))
	want, _ := os.ReadFile(filepath.Join(src, "data", "b.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("b.bin differs after the download (%v)", err)
	}
	s := tor.Stats()
	if s.BytesDone >= m.Info.TotalLength {
		t.Fatalf("a.bin came whole although unselected: %d of %d bytes", s.BytesDone, m.Info.TotalLength)
	}
	// The burst lets limit/8 through at once; the rest goes at the rate.
	if min := time.Duration(float64(s.Downloaded-limit/8) / limit * float64(time.Second)); elapsed < min*9/10 {
		t.Fatalf("downloaded %d bytes in %v under a %d B/s cap; want at least %v", s.Downloaded, elapsed, limit, min)
	}
	// Complete: wanting a.bin again is refused, to be added anew.
	if err := tor.SetPriorities(nil, false); !errors.Is(err, ErrComplete) {
		t.Fatalf("SetPriorities on a complete torrent: %v, want ErrComplete", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "data", "a.bin")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// TestTorrentPeerCap caps one torrent below the client's limit: a third
// peer that speaks and wants data is turned away while two hold the
// slots usefully, and lifting the cap lets it in.
func TestTorrentPeerCap(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	seeder.t.SetMaxPeers(2)
	var slots []net.Conn
	for range 2 {
		c := handshakeFrom(t, seeder, "127.0.0.1")
		c.Write(wire.AppendHaveNone(nil))
		c.Write(wire.AppendInterested(nil))
		slots = append(slots, c)
	}
	wantStates(t, "filling the torrent's two slots", connState(slots, 300*time.Millisecond), "admitted", "admitted")
	late := handshakeFrom(t, seeder, "127.0.0.1")
	late.Write(wire.AppendHaveNone(nil))
	wantStates(t, "a third peer over the torrent's cap", connState([]net.Conn{late}, 300*time.Millisecond), "closed")
	seeder.t.SetMaxPeers(0)
	again := handshakeFrom(t, seeder, "127.0.0.1")
	again.Write(wire.AppendHaveNone(nil))
	wantStates(t, "a third peer once the cap is lifted", connState([]net.Conn{again}, 300*time.Millisecond), "admitted")
}

// TestAtRest: a seed with no peer and nothing unsaved needs no tick; an
// address to dial or a peer wakes it, and once the peer leaves its rates
// read zero though no tick comes to sum them.
func TestAtRest(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	if err := seeder.st.Save(); err != nil {
		t.Fatal(err)
	}
	if !seeder.t.atRest() {
		t.Fatal("idle seed with its record saved not at rest")
	}
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	if leech.t.atRest() {
		t.Fatal("torrent with an address to dial at rest")
	}
	waitDone(t, leech, 10*time.Second)
	if seeder.t.atRest() {
		t.Fatal("seed with a peer at rest")
	}
	leech.t.Close()
	deadline := time.Now().Add(5 * time.Second)
	for seeder.t.Stats().Peers > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := seeder.t.Stats(); s.Peers != 0 || s.UpRate != 0 || s.DownRate != 0 {
		t.Fatalf("seed after its peer left: %d peers, rates %v/%v", s.Peers, s.DownRate, s.UpRate)
	}
}

// TestRestingSeedHasNoGoroutine: a seed at rest keeps no goroutine of its
// own; an incoming peer wakes it, it serves the whole torrent and ticks
// while the peer stays (its upload rate is summed by a tick), and once
// the peer leaves it is back to none.
func TestRestingSeedHasNoGoroutine(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	if err := seeder.st.Save(); err != nil {
		t.Fatal(err)
	}
	if n := waitTorrentGoroutines(t, 0, "swarm.(*Torrent).", "swarm.(*peer)."); n != 0 {
		t.Fatalf("a seed at rest keeps %d goroutines", n)
	}
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 10*time.Second)
	sameTree(t, src, dst)
	deadline := time.Now().Add(5 * time.Second)
	for seeder.t.Stats().UpRate == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no tick summed the seed's upload rate while its peer stayed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	leech.t.Close()
	if err := leech.st.Close(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !seeder.t.atRest() {
		if time.Now().After(deadline) {
			t.Fatalf("seed not at rest 5s after its peer left: %+v", seeder.t.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := waitTorrentGoroutines(t, 0, "swarm.(*Torrent).", "swarm.(*peer)."); n != 0 {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("a seed back at rest keeps %d goroutines: %s", n, b.String())
	}
}

// waitTorrentGoroutines waits up to 2s for the goroutines whose stacks
// hold one of frames (a torrent's or a peer's code) to number at most n,
// and returns how many there are.
func waitTorrentGoroutines(t *testing.T, n int, frames ...string) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		var b strings.Builder
		if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, g := range strings.Split(b.String(), "\n\n") {
			for _, f := range frames {
				if strings.Contains(g, f) {
					got++
					break
				}
			}
		}
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTrackersReportAnnounces announces a seed to a tracker on loopback
// and to one that is down: each tier says how its last announce went.
func TestTrackersReportAnnounces(t *testing.T) {
	httpURL, _ := startTracker(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/announce"
	dead.Close()
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	seeder.t.AddTrackers([][]string{{httpURL}, {deadURL}})
	deadline := time.Now().Add(5 * time.Second)
	var trs []TrackerInfo
	for {
		trs = seeder.t.Trackers()
		if len(trs) == 2 && !trs[0].LastAnnounce.IsZero() && !trs[1].LastAnnounce.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trackers after 5s: %+v", trs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ok, bad := trs[0], trs[1]
	if ok.Tier != 0 || ok.URL != httpURL || ok.LastResult != "Success" || ok.Seeders != 1 || !ok.NextAnnounce.After(ok.LastAnnounce) {
		t.Errorf("working tracker: %+v", ok)
	}
	if bad.Tier != 1 || bad.URL != deadURL || bad.LastResult == "Success" || bad.LastResult == "" || bad.Seeders != -1 {
		t.Errorf("dead tracker: %+v", bad)
	}
}

// TestReannounce has a seed announce again long before the tracker's
// interval (a minute) is up, once the minimum spacing has passed.
func TestReannounce(t *testing.T) {
	httpURL, _ := startTracker(t)
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	seeder.t.AddTrackers([][]string{{httpURL}})
	first := waitAnnounce(t, seeder.t, time.Time{})
	seeder.t.Reannounce() // too soon: ignored
	time.Sleep(200 * time.Millisecond)
	if got := seeder.t.Trackers()[0].LastAnnounce; !got.Equal(first) {
		t.Fatalf("announced again %v after the last, under the minimum spacing", got.Sub(first))
	}
	// Pretend the last announce is old enough.
	seeder.t.mu.Lock()
	seeder.t.trackers[0].info.LastAnnounce = first.Add(-minAnnounceInterval)
	seeder.t.mu.Unlock()
	seeder.t.Reannounce()
	waitAnnounce(t, seeder.t, first)
}

// waitAnnounce waits for an announce after since and returns its time.
func waitAnnounce(t *testing.T, tor *Torrent, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if trs := tor.Trackers(); len(trs) > 0 && trs[0].LastAnnounce.After(since) && trs[0].LastResult == "Success" {
			return trs[0].LastAnnounce
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no announce after %v: %+v", since, tor.Trackers())
	return time.Time{}
}
