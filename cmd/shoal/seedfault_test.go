package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// alarmLines counts a process's WARN and ERROR log lines.
func alarmLines(p *proc) int {
	n := 0
	for _, l := range strings.Split(p.errText(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			n++
		}
	}
	return n
}

// The seeder: its file is cut short under it mid-transfer. It
// logs the cause once (not once per block: 172,000 lines in 6s before),
// tells the downloader, which waits rather than spins, and once the file
// is back the download completes with nothing wasted.
func TestSeederFileTruncatedMidTransfer(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	randomFiles(t, share, map[string]int{"a.bin": 3 << 20, "b.bin": 1 << 20})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent",
		"--piece-length", "64k", "--max-upload-rate", "1M")
	addr := seed.field(t, "listening")
	get := start(t, dir, "get", "share.torrent", "-o", "out", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "40s")

	path := filepath.Join(share, "a.bin")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // under way: 4 MiB at 1 MiB/s
	if err := os.Truncate(path, 1000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	log := seed.errText()
	if n := alarmLines(seed); n != 1 || !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "a.bin") {
		t.Errorf("seeder: want one ERROR line naming a.bin, got %d alarm lines:\n%s", n, log)
	}
	if n := alarmLines(get); n > 0 {
		t.Errorf("downloader: %d alarm lines for the seeder's fault:\n%s", n, get.errText())
	}
	select {
	case <-get.done:
		t.Fatalf("get gave up while the seeder's file was broken: %s", get.errText())
	default:
	}

	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := get.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	sameFiles(t, share, filepath.Join(dir, "out", "share"))
	downloaded, wasted := doneFigures(t, "get", get)
	if wasted != 0 || downloaded != 4<<20 {
		t.Errorf("get downloaded %d bytes, %d wasted; want exactly the content, nothing wasted", downloaded, wasted)
	}
	if n := alarmLines(seed); n != 1 {
		t.Errorf("seeder: %d alarm lines in all:\n%s", n, seed.errText())
	}
}
