package main

import (
	"encoding/base32"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seed prints every hash a torrent has and a magnet that carries them
// all; get fetches a v1 or hybrid torrent from another shoal process by
// its .torrent, by btih magnet (hex and base32), by bare v1 hash and
// (hybrid) by btmh magnet, and writes no pad file. The v1 torrent without
// pad files has pieces that span files; the padded one has pad files to
// skip.
func TestGetV1AndHybridEndToEnd(t *testing.T) {
	const pl = 16 << 10
	order := []string{"big.bin", "docs/read me.txt", "empty"}
	for _, format := range []string{"hybrid", "v1", "v1pad"} {
		t.Run(format, func(t *testing.T) {
			dir := content(t)
			var h handTorrent
			switch format {
			case "hybrid":
				h = writeHybridTorrent(t, dir, "t.torrent", pl, order...)
			case "v1":
				h = writeV1Torrent(t, dir, "t.torrent", pl, false, order...)
			case "v1pad":
				h = writeV1Torrent(t, dir, "t.torrent", pl, true, order...)
			}
			seed := start(t, dir, "seed", "data", "--torrent", "t.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--super-seed=false")
			addr := seed.field(t, "listening")
			id, v1 := h.v2, ""
			if id == "" {
				id = h.v1
			} else {
				v1 = h.v1
			}
			if got := seed.field(t, "info-hash"); got != id {
				t.Fatalf("seed: info-hash %s, want %s", got, id)
			}
			if v1 != "" {
				if got := seed.field(t, "info-hash v1"); got != v1 {
					t.Fatalf("seed: info-hash v1 %s, want %s", got, v1)
				}
			}
			mg := seed.field(t, "magnet")
			if !strings.Contains(mg, "xt=urn:btih:"+h.v1) || (h.v2 != "") != strings.Contains(mg, "xt=urn:btmh:1220"+h.v2) {
				t.Fatalf("seed: magnet %s does not carry every hash", mg)
			}
			v1raw, err := hex.DecodeString(h.v1)
			if err != nil {
				t.Fatal(err)
			}
			ways := map[string]string{
				"torrent":   "t.torrent",
				"btih":      "magnet:?xt=urn:btih:" + h.v1 + "&dn=data",
				"bare-hash": h.v1,
				"btih-b32":  "magnet:?xt=urn:btih:" + base32.StdEncoding.EncodeToString(v1raw),
			}
			if h.v2 != "" {
				ways["btmh"] = "magnet:?xt=urn:btmh:1220" + h.v2
				ways["magnet"] = mg
			}
			var gets []*proc
			var names []string
			for name, arg := range ways {
				out := filepath.Join(dir, "dl-"+name)
				gets = append(gets, start(t, dir, "get", arg, "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s"))
				names = append(names, name)
			}
			for i, g := range gets {
				out := filepath.Join(dir, "dl-"+names[i])
				if code := g.wait(t, 40*time.Second); code != 0 {
					t.Errorf("get by %s: exit %d: %s", names[i], code, g.errText())
					continue
				}
				sameFiles(t, filepath.Join(dir, "data"), filepath.Join(out, "data"))
				if _, err := os.Stat(filepath.Join(out, "data", ".pad")); err == nil {
					t.Errorf("get by %s wrote a .pad folder", names[i])
				}
				if r := shoal(t, dir, nil, "verify", "t.torrent", "--dir", out); r.code != 0 {
					t.Errorf("verify after get by %s: %d %s%s", names[i], r.code, r.stdout, r.stderr)
				}
			}
			// Run again with the seeder gone: a btih link finds its
			// metadata saved under the v1 hash and its data verified.
			seed.stop(t, os.Interrupt)
			out := filepath.Join(dir, "dl-btih")
			if _, err := os.Stat(filepath.Join(out, ".shoal", h.v1+".torrent")); err != nil {
				t.Errorf("metadata of the btih link not saved under its hash: %v", err)
			}
			r := shoal(t, dir, nil, "get", ways["btih"], "-o", out, "--peer", deadAddr(t), "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "10s")
			if r.code != 0 || strings.Contains(r.stderr, "fetching metadata") || !strings.Contains(r.stderr, "resuming: 301000 of 301000 bytes") {
				t.Errorf("get by btih again, the seeder gone: exit %d:\n%s", r.code, r.stderr)
			}
		})
	}
}
