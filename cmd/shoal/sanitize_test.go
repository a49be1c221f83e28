package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// A torrent whose names hold a backslash and invalid UTF-8 is repaired,
// not refused: seeder and downloader store the files under the same
// sanitized names, and as the info-hash covers the original bytes they
// meet in one swarm and agree on every piece.
func TestGetTorrentWithSanitizedNames(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	randomFiles(t, share, map[string]int{"a_b": 100_000, "c\uFFFD": 5000, "plain": 10})
	shoal(t, dir, nil, "create", "share", "-o", "clean.torrent", "--piece-length", "16k")
	data, err := os.ReadFile(filepath.Join(dir, "clean.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := bencode.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	tree := top["info"].(map[string]any)["file tree"].(map[string]any)
	// The pieces roots depend on the data alone, so renaming the keys
	// makes a valid torrent with the names a careless creator would write.
	tree[`a\b`], tree["c\xff"] = tree["a_b"], tree["c\uFFFD"]
	delete(tree, "a_b")
	delete(tree, "c\uFFFD")
	raw, err := bencode.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "odd.torrent"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	seed := start(t, dir, "seed", "share", "--torrent", "odd.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	addr := seed.field(t, "listening")
	out := filepath.Join(dir, "dl")
	get := start(t, dir, "get", "odd.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := get.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s\nseed: %s", code, get.errText(), seed.errText())
	}
	sameFiles(t, share, filepath.Join(out, "share"))
}
