package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// TestDaemonRunsSession prepares a session folder holding a magnet (added
// through the library, as the RPC is not wired yet), runs `shoal daemon`
// on it against a real `shoal seed`, and stops it with SIGTERM: the data
// arrives, the daemon exits 0, and the session says the torrent is done.
func TestDaemonRunsSession(t *testing.T) {
	dir := content(t)
	seed := start(t, dir, "seed", "data", "--no-dht", "--no-lsd", "--no-port-map")
	mg := seed.field(t, "magnet")
	sessionDir := t.TempDir()
	dl := filepath.Join(t.TempDir(), "dl")
	s, err := daemon.Open(context.Background(), daemon.Config{SessionDir: sessionDir, DownloadDir: dl, ListenAddr: "127.0.0.1:0", NoDHT: true, NoLSD: true, NoPortMap: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Add(daemon.AddRequest{Link: mg, Paused: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start([]daemon.ID{1}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	d := start(t, t.TempDir(), "daemon", "--session", sessionDir, "--no-dht", "--no-lsd", "--no-port-map")
	if d.field(t, "listening") == "" {
		t.Fatal("no listen address")
	}
	want, _ := os.ReadFile(filepath.Join(dir, "data", "big.bin"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := os.ReadFile(filepath.Join(dl, "data", "big.bin"))
		if bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data not downloaded by the daemon: %s", d.errText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM: %s", code, d.errText())
	}
	s, err = daemon.Open(context.Background(), daemon.Config{SessionDir: sessionDir, ListenAddr: "127.0.0.1:0", NoDHT: true, NoLSD: true, NoPortMap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Torrents(nil, 0)
	if len(st) != 1 || !st[0].HasMetadata || st[0].Done.IsZero() || st[0].Name != "data" || st[0].Dir != dl {
		t.Fatalf("session after the daemon ran: %+v", st)
	}
}

func TestDaemonBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"daemon", "extra"},
		{"daemon", "--listen", "nope"},
		{"daemon", "--encryption", "maybe"},
		{"daemon", "--max-upload-rate", "lots"},
	} {
		if r := shoal(t, t.TempDir(), nil, append(args, "--session", t.TempDir())...); r.code != 2 {
			t.Errorf("shoal %v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
}
