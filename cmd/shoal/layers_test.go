package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// A .torrent whose piece layers were stripped (libtorrent opens such a
// file and fetches them) downloads like the full one: the layers come from
// the seeder as for a magnet link, and are kept for the next run. Seeded
// from the bare torrent, the data supplies them.
func TestGetTorrentWithoutPieceLayers(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"big.bin": 1_000_000, "sub/odd.dat": 300_001, "small": 10})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	stripped := stripLayers(t, filepath.Join(dir, "share.torrent"))
	// A trailing newline too, as a file passed through an editor has.
	if err := os.WriteFile(filepath.Join(dir, "bare.torrent"), append(stripped, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dl")
	get := start(t, dir, "get", "bare.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := get.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	if !strings.Contains(get.errText(), "lacks the piece layers of 2 file(s)") {
		t.Errorf("no word of fetching the layers: %s", get.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(out, "share"))

	// A seeder given the bare torrent derives the layers from its data,
	// and serves them to a downloader that has only the bare torrent too.
	bareSeed := start(t, dir, "seed", "share", "--torrent", "bare.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	bareAddr := bareSeed.field(t, "listening")
	out2 := filepath.Join(dir, "dl2")
	get2 := start(t, dir, "get", "bare.torrent", "-o", out2, "--peer", bareAddr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := get2.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("get from the bare seeder: exit %d: %s\nseed: %s", code, get2.errText(), bareSeed.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(out2, "share"))

	// The next run finds the layers it saved and asks no peer for them.
	again := start(t, dir, "get", "bare.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := again.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("second get: exit %d: %s", code, again.errText())
	}
	if strings.Contains(again.errText(), "lacks the piece layers") {
		t.Errorf("layers fetched again: %s", again.errText())
	}
}

// stripLayers returns the .torrent at path without its piece layers, as a
// v2 torrent from a site that drops them is.
func stripLayers(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := bencode.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if _, ok := top["piece layers"]; !ok {
		t.Fatalf("%s has no piece layers to strip", path)
	}
	delete(top, "piece layers")
	stripped, err := bencode.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return stripped
}
