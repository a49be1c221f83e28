package main

import (
	"path/filepath"
	"strings"
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
	randomFiles(t, filepath.Join(dir, "pack"), map[string]int{"a.bin": 4_000_000, "b/c.txt": 70_000})
	boot := start(t, dir, "dht", "--listen", "127.0.0.1:0", "--bootstrap", "none", "--state", filepath.Join(dir, "boot.state"))
	bootAddr := boot.field(t, "listening")
	for i := range 17 {
		n := start(t, dir, "dht", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--state", filepath.Join(dir, "n"+string(rune('a'+i))+".state"))
		n.field(t, "listening")
	}
	seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--piece-length", "64k")
	hash := seed.field(t, "info-hash")

	began := time.Now()
	get := start(t, dir, "get", hash, "-o", "out", "--listen", "127.0.0.1:0", "--bootstrap", bootAddr, "--timeout", "90s")
	var first time.Duration
	for first == 0 {
		if strings.Contains(get.errText(), "first piece:") {
			first = time.Since(began)
			break
		}
		select {
		case <-get.done:
			first = time.Since(began)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if code := get.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("get by hash over the DHT: exit %d: %s", code, get.errText())
	}
	total := time.Since(began)
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "out", "pack"))
	t.Logf("20-node local DHT, get by hash: first piece after %v, complete after %v (4 MiB)", first.Round(time.Millisecond), total.Round(time.Millisecond))
}
