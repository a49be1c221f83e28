package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
	"github.com/shoal-p2p/shoal/tracker"
)

// announceURL starts a tracker with a short interval, so peers that join
// later are found quickly, and returns its announce URL.
func announceURL(t *testing.T) string {
	return startTracker(t, "--interval", "2s", "--rate-limit", "-1").base + "/announce"
}

// trackerStats reads a tracker's /stats.
func trackerStats(t *testing.T, announce string) tracker.Stats {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(announce, "/announce") + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st tracker.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A seeder and two downloaders that know nothing of each other but the
// tracker (no DHT, no --peer) find each other there and finish.
func TestPeersMeetThroughTracker(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 2_000_000, "b/c.txt": 3000, "b/empty": 0})
	url := announceURL(t)
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url, "--save-torrent", "share.torrent")
	seed.field(t, "magnet")
	var gets []*proc
	for i := range 2 {
		gets = append(gets, start(t, dir, "get", "share.torrent", "-o", fmt.Sprintf("dl%d", i),
			"--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s"))
	}
	for i, g := range gets {
		if code := g.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("download %d: exit %d: %s", i, code, g.errText())
		}
		sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, fmt.Sprintf("dl%d", i), "share"))
	}
	// Both downloaders said 'stopped' as they left: only the seeder remains.
	st := trackerStats(t, url)
	if st.Seeders != 1 || st.Leechers != 0 {
		t.Errorf("after the downloads exited the tracker holds %d seeders, %d leechers; want 1, 0", st.Seeders, st.Leechers)
	}
}

// A tracker that cannot be reached never holds up a download.
func TestUnreachableTrackerDoesNotStopDownload(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 500_000, "b.bin": 10})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent")
	addr := seed.field(t, "listening")
	get := start(t, dir, "get", "share.torrent", "-o", "out", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0",
		"-t", "http://127.0.0.1:1/announce", "--timeout", "30s")
	if code := get.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "out", "share"))
}

// libtorrent announces to shoal's tracker and learns the shoal seeder's
// address from it: it is given no peer, only the tracker.
func TestLibtorrentFindsShoalThroughShoalTracker(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 1_500_000})
	url := announceURL(t)
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url, "--save-torrent", "share.torrent")
	seed.field(t, "magnet")
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", "share.torrent", "lt-out",
		"--tracker", url, "--timeout", "60"))
	if code := lt.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("libtorrent: exit %d: %s", code, lt.errText())
	}
	// A folder holding one file makes a single-file torrent (BEP 52, and
	// libtorrent's reading): the file lands as lt-out/a.bin.
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "lt-out"))
	if lt.field(t, "done") == "" {
		t.Fatal("libtorrent did not report done")
	}
}
