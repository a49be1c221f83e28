package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

// create --format makes each kind of torrent, prints the hash that names
// it and a magnet with every hash it has, and verify checks data against
// it; v2 is the default.
func TestCreateFormats(t *testing.T) {
	dir := content(t)
	def := shoal(t, dir, nil, "create", "data", "--piece-length", "16k", "-o", "default.torrent")
	if def.code != 0 {
		t.Fatalf("create: %d %s", def.code, def.stderr)
	}
	for _, c := range []struct {
		format  string
		hashLen int
		xts     []string
	}{
		{"v2", 64, []string{"urn:btmh:1220"}},
		{"hybrid", 64, []string{"urn:btmh:1220", "urn:btih:"}},
		{"v1", 40, []string{"urn:btih:"}},
	} {
		out := c.format + ".torrent"
		r := shoal(t, dir, nil, "create", "data", "--format", c.format, "--piece-length", "16k", "-o", out)
		if r.code != 0 {
			t.Fatalf("create --format %s: %d %s", c.format, r.code, r.stderr)
		}
		hash, magnet := field(r.stdout, "info-hash"), field(r.stdout, "magnet")
		if len(hash) != c.hashLen || !strings.Contains(magnet, hash) || strings.Count(magnet, "xt=") != len(c.xts) {
			t.Fatalf("create --format %s printed:\n%s", c.format, r.stdout)
		}
		for _, xt := range c.xts {
			if !strings.Contains(magnet, "xt="+xt) {
				t.Errorf("--format %s: magnet %s has no %s", c.format, magnet, xt)
			}
		}
		m := readMeta(t, filepath.Join(dir, out))
		if m.Info.Format.String() != c.format || m.Info.ID() != hash {
			t.Fatalf("--format %s wrote a %v torrent named %s, printed %s", c.format, m.Info.Format, m.Info.ID(), hash)
		}
		if c.format == "v2" && hash != field(def.stdout, "info-hash") {
			t.Errorf("--format v2 made %s, no --format %s", hash, field(def.stdout, "info-hash"))
		}
		if r := shoal(t, dir, nil, "verify", out); r.code != 0 || !strings.HasPrefix(r.stdout, "OK data: 3 files") {
			t.Fatalf("verify %s: %d %q %q", out, r.code, r.stdout, r.stderr)
		}
	}

	// Creating the same torrent again needs no --force; another one over
	// it does.
	if r := shoal(t, dir, nil, "create", "data", "--format", "v1", "--piece-length", "16k", "-o", "v1.torrent"); r.code != 0 {
		t.Fatalf("the same v1 torrent again: %d %s", r.code, r.stderr)
	}
	if r := shoal(t, dir, nil, "create", "data", "--format", "v1", "--piece-length", "32k", "-o", "v1.torrent"); r.code != 2 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("another v1 torrent over v1.torrent: %d %s", r.code, r.stderr)
	}

	// In v1 the last piece of big.bin (300000 bytes, 16 KiB pieces) also
	// holds "read me.txt": a flipped byte there fails it in both files.
	readme := filepath.Join(dir, "data", "docs", "read me.txt")
	data, _ := os.ReadFile(readme)
	data[500] ^= 1
	os.WriteFile(readme, data, 0o644)
	r := shoal(t, dir, nil, "verify", "v1.torrent")
	if r.code != 1 || !strings.Contains(r.stdout, "BAD data/big.bin: piece 18 (bytes 294912-299999) does not match") ||
		!strings.Contains(r.stdout, "BAD data/docs/read me.txt: piece 0 (bytes 0-999) does not match") {
		t.Fatalf("verify v1, flipped byte in a piece two files share: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := shoal(t, dir, nil, "verify", "hybrid.torrent"); r.code != 1 || !strings.Contains(r.stdout, "BAD data/docs/read me.txt: piece 0 (bytes 0-999)") || strings.Contains(r.stdout, "big.bin") {
		t.Fatalf("verify hybrid, flipped byte: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// --format comes from SHOAL_FORMAT too, and a value shoal does not know is
// bad usage for create and seed alike.
func TestFormatFlagUsage(t *testing.T) {
	dir := content(t)
	if r := shoal(t, dir, []string{"SHOAL_FORMAT=hybrid"}, "create", "data", "-o", "env.torrent"); r.code != 0 {
		t.Fatalf("create with SHOAL_FORMAT: %d %s", r.code, r.stderr)
	}
	if m := readMeta(t, filepath.Join(dir, "env.torrent")); m.Info.Format != piece.FormatHybrid {
		t.Fatalf("SHOAL_FORMAT=hybrid made a %v torrent", m.Info.Format)
	}
	for _, args := range [][]string{
		{"create", "data", "--format", "v3"},
		{"create", "data", "--format", "V1"},
		{"create", "data", "--format", ""},
		{"seed", "data", "--format", "hybrid2", "--no-dht", "--listen", "127.0.0.1:0"},
	} {
		r := shoal(t, dir, nil, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: --format") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a line about --format", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data.torrent")); err == nil {
		t.Error("a refused --format still wrote a torrent")
	}
}

// seed --format hashes PATH into that kind of torrent: it prints the hash
// that names it and a magnet with every hash, and saves it.
func TestSeedFormats(t *testing.T) {
	dir := content(t)
	for _, c := range []struct {
		format  string
		hashLen int
		want    piece.Format
	}{{"hybrid", 64, piece.FormatHybrid}, {"v1", 40, piece.FormatV1}} {
		saved := filepath.Join(dir, c.format+"-seed.torrent")
		seed := start(t, dir, "seed", "data", "--format", c.format, "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", saved, "--piece-length", "16k")
		hash := seed.field(t, "info-hash")
		mg := seed.field(t, "magnet")
		m := readMeta(t, saved)
		if len(hash) != c.hashLen || m.Info.Format != c.want || m.Info.ID() != hash {
			t.Fatalf("seed --format %s: info-hash %s, saved a %v torrent named %s", c.format, hash, m.Info.Format, m.Info.ID())
		}
		if !strings.Contains(mg, "xt=urn:btih:"+m.Info.V1Hash.String()) || (m.Info.HasV2() != strings.Contains(mg, "xt=urn:btmh:1220"+m.Info.HexHash())) {
			t.Fatalf("seed --format %s: magnet %s does not carry the torrent's hashes", c.format, mg)
		}
		if code := seed.stop(t, os.Interrupt); code != 0 {
			t.Errorf("seed --format %s after SIGINT: exit %d: %s", c.format, code, seed.errText())
		}
	}
}
