package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

var interopFiles = map[string]int{
	"movie.bin":      5_000_000,
	"extras/a.txt":   12_345,
	"extras/b/c.dat": 700_000,
	"extras/empty":   0,
}

// libtorrent downloads a v2 torrent from a shoal seeder.
func TestLibtorrentDownloadsFromShoal(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "pack.torrent", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	out := filepath.Join(dir, "lt-out")
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", "pack.torrent", out, "--peer", addr, "--timeout", "60"))
	if code := lt.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("libtorrent get: exit %d: %s", code, lt.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(out, "pack"))
}

// shoal downloads a v2 torrent from a libtorrent seeder.
func TestShoalDownloadsFromLibtorrent(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	if r := shoal(t, dir, nil, "create", "pack", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "seed", "pack.torrent", dir))
	addr := lt.field(t, "listening")
	lt.field(t, "seeding")
	out := filepath.Join(dir, "shoal-out")
	get := start(t, dir, "get", "pack.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s")
	if code := get.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("shoal get: exit %d: %s\nlibtorrent: %s", code, get.errText(), lt.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(out, "pack"))
	if !strings.Contains(get.errText(), "done:") {
		t.Errorf("no summary: %s", get.errText())
	}
}

// shoal downloads from a libtorrent seeder given only the magnet with
// x.pe: metadata and piece layers come from libtorrent.
func TestShoalMagnetFromLibtorrent(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "seed-magnet", "pack", "--piece-length", "32768"))
	addr := lt.field(t, "listening")
	magnet := lt.field(t, "magnet") + "&x.pe=" + addr
	lt.field(t, "seeding")
	get := start(t, dir, "get", magnet, "-o", "out", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s")
	if code := get.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("shoal get magnet: exit %d: %s\nlibtorrent: %s", code, get.errText(), lt.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "out", "pack"))
}

// libtorrent downloads from a shoal seeder given only shoal's magnet.
func TestLibtorrentMagnetFromShoal(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--no-dht", "--piece-length", "32k")
	magnet := seed.field(t, "magnet")
	if !strings.Contains(magnet, "x.pe=") {
		t.Fatalf("shoal's magnet names no peer: %s", magnet)
	}
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", magnet, "lt-out", "--timeout", "60"))
	if code := lt.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("libtorrent get magnet: exit %d: %s", code, lt.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "lt-out", "pack"))
}

// shoal to shoal by magnet: the downloader knows only the link.
func TestShoalMagnetFromShoal(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--no-dht", "--piece-length", "16k")
	magnet := seed.field(t, "magnet")
	get := start(t, dir, "get", "-o", "out", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s", magnet)
	if code := get.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("shoal get magnet: exit %d: %s", code, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "out", "pack"))
}

// A libtorrent seeder that unchokes nobody still names five allowed-fast
// pieces (BEP 6): shoal downloads those, and only those, while choked.
func TestShoalGetsAllowedFastFromLibtorrent(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	const pieceLen = 32 << 10
	if r := shoal(t, dir, nil, "create", "pack", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "seed", "pack.torrent", dir, "--unchoke-slots", "0"))
	addr := lt.field(t, "listening")
	lt.field(t, "seeding")
	get := start(t, dir, "get", "pack.torrent", "-o", filepath.Join(dir, "out"), "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "4s")
	if code := get.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("shoal get from a seeder that never unchokes: exit %d, want 1 (timeout): %s", code, get.errText())
	}
	m := regexp.MustCompile(`verified; downloaded (\d+) bytes`).FindStringSubmatch(get.errText())
	if m == nil {
		t.Fatalf("no summary: %s", get.errText())
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 || n > 5*pieceLen {
		t.Fatalf("downloaded %d bytes while choked, want some and at most the 5 allowed pieces (%d bytes)\nlibtorrent: %s", n, 5*pieceLen, lt.errText())
	}
}
