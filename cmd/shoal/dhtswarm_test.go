package main

import (
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// A local DHT of 20 shoal nodes on loopback: 18 `shoal dht` nodes, a
// seeder and a downloader. The downloader is given only the 64-hex hash
// and the bootstrap node; it finds the seeder through the DHT, fetches the
// metadata and the data, and verifies it. The times it logs are the
// figures in README (go test ./cmd/shoal -run DHTSwarm -v).
func TestDHTSwarmHashOnly(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), map[string]int{"a.bin": 16_000_000, "b/c.txt": 70_000})
	boot := start(t, dir, "dht", "--listen", "127.0.0.1:0", "--bootstrap", "none", "--state", filepath.Join(dir, "boot.state"))
	bootAddr := boot.field(t, "listening")
	for i := range 17 {
		n := start(t, dir, "dht", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--state", filepath.Join(dir, "n"+string(rune('a'+i))+".state"))
		n.field(t, "listening")
	}
	// The seeder's upload is capped so "complete" measures a transfer, not
	// a memory copy: 16 MB at 16 MiB/s is about a second.
	seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--piece-length", "64k", "--max-upload-rate", "16M")
	hash := seed.field(t, "info-hash")

	get := start(t, dir, "get", hash, "-o", "out", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--timeout", "90s")
	if code := get.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("get by hash over the DHT: exit %d: %s", code, get.errText())
	}
	log := get.errText()
	first := firstRE.FindStringSubmatch(log)
	total := totalRE.FindStringSubmatch(log)
	if first == nil || total == nil {
		t.Fatalf("no first-piece or done line:\n%s", log)
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "out", "pack"))
	t.Logf("20-node local DHT, get by hash: first piece after %s, complete after %s (16 MB at 16 MiB/s)", first[1], total[1])
}

var (
	firstRE = regexp.MustCompile(`first piece: (\S+)`)
	totalRE = regexp.MustCompile(`\((\S+) since start\)`)
)
