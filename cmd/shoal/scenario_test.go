package main

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// --seed-ratio: the seeder stops by itself once it has uploaded one full
// copy, and the downloader it served has all of it.
func TestSeedRatioStopsSeeder(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 3_000_000, "b.bin": 10})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent", "--seed-ratio", "1")
	addr := seed.field(t, "listening")
	get := start(t, dir, "get", "share.torrent", "-o", "out", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := get.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	if code := seed.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("seeder with --seed-ratio 1: exit %d: %s", code, seed.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "out", "share"))
}

// The tracker dies mid-download: peers that met through it keep finding
// each other through the DHT and PEX, and finish.
func TestTrackerDiesMidDownload(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 8_000_000, "b.bin": 1000})
	tr := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	url := tr.base + "/announce"
	boot := start(t, dir, "dht", "--listen", "127.0.0.1:0", "--bootstrap", "none", "--state", filepath.Join(dir, "boot.state"))
	bootAddr := boot.field(t, "listening")
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "-t", url,
		"--save-torrent", "share.torrent", "--max-upload-rate", "2M")
	seed.field(t, "magnet")
	var gets []*proc
	for i := range 3 {
		gets = append(gets, start(t, dir, "get", "share.torrent", "-o", fmt.Sprintf("dl%d", i),
			"--bootstrap", bootAddr, "--listen", "127.0.0.1:0", "--seed", "--timeout", "90s"))
	}
	time.Sleep(1500 * time.Millisecond) // well before 8 MB at 2 MiB/s
	tr.cmd.Process.Signal(syscall.SIGKILL)
	for i := range gets {
		out := filepath.Join(dir, fmt.Sprintf("dl%d", i), "share")
		deadline := time.Now().Add(90 * time.Second)
		for !filesEqual(filepath.Join(dir, "share"), out) {
			if time.Now().After(deadline) {
				t.Fatalf("downloader %d did not finish after the tracker died: %s", i, gets[i].errText())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// The seeder leaves once it has uploaded one full copy in total; the
// downloaders still finish from each other ("zero downtime"). This holds
// only if the seeder sent every piece once before any piece twice, which
// super-seeding (the default for `seed`) sees to.
func TestSeederLeavesAfterOneCopy(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 6_000_000, "b.bin": 70_000})
	tr := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	url := tr.base + "/announce"
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url,
		"--save-torrent", "share.torrent", "--max-upload-rate", "2M", "--seed-ratio", "1", "--piece-length", "64KiB")
	seed.field(t, "magnet")
	var gets []*proc
	for i := range 4 {
		gets = append(gets, start(t, dir, "get", "share.torrent", "-o", fmt.Sprintf("dl%d", i), "-t", url,
			"--no-dht", "--listen", "127.0.0.1:0", "--seed", "--max-upload-rate", "2M", "--timeout", "60s"))
	}
	if code := seed.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("seeder: exit %d: %s", code, seed.errText())
	}
	left := time.Now()
	for i, g := range gets {
		out := filepath.Join(dir, fmt.Sprintf("dl%d", i), "share")
		for !filesEqual(filepath.Join(dir, "share"), out) {
			if time.Since(left) > 30*time.Second {
				t.Fatalf("downloader %d did not finish after the seeder left: %s", i, g.errText())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
