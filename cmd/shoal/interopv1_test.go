package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
	"github.com/shoal-p2p/shoal/internal/v1test"
)

// Interop with v1 and hybrid torrents (issue 12): libtorrent 2.0 in both
// directions, Debian's v1-only clients (transmission-cli 3.00, aria2c 1.36)
// in both directions, and a hybrid swarm of a v1-only peer, a v2-only peer
// and shoal. Every case runs its own processes on loopback with no DHT.

// interopV1Files is multi-file data whose files are not multiples of any piece
// length: laid end to end (plain v1), pieces cross every file boundary;
// aligned (hybrid, or v1 with BEP 47 pads), pad files follow every file.
var interopV1Files = map[string]int{
	"movie.bin":      300_001,
	"extras/a.txt":   12_345,
	"extras/b/c.dat": 70_000,
	"extras/empty":   0,
	"z.bin":          1,
}

// interopPieceLength is small enough for many pieces and many crossings.
const interopPieceLength = 32 << 10

// noPadFolder fails the test if a BEP 47 pad file reached the disk under
// root: pads are never written (issue 12), whoever downloads.
func noPadFolder(t *testing.T, who, root string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == ".pad" {
			t.Errorf("%s wrote a pad folder: %s", who, p)
		}
		return nil
	})
}

// ltHashes returns the v1 and v2 info-hashes libtorrent reads from torrent
// ("" where it has none).
func ltHashes(t *testing.T, torrent string) (v1, v2 string) {
	t.Helper()
	out := lttest.Run(t, "lt_torrent.py", "hashes", torrent)
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("lt_torrent.py hashes %s: %q", torrent, out)
	}
	v2, v1 = f[0], f[1]
	if v1 == "-" {
		v1 = ""
	}
	if v2 == "-" {
		v2 = ""
	}
	return v1, v2
}

// fetch is one download started by a test: what it is, and the process.
type fetch struct {
	name string
	out  string
	p    *proc
}

// waitFetches waits for every download and checks its result: exit 0, the
// data byte for byte, no pad folder.
func waitFetches(t *testing.T, src string, fs []fetch, peerLog func() string) {
	t.Helper()
	for _, f := range fs {
		if code := f.p.wait(t, 60*time.Second); code != 0 {
			t.Errorf("%s: exit %d: %s\npeer: %s", f.name, code, f.p.errText(), peerLog())
			continue
		}
		sameFiles(t, src, filepath.Join(f.out, "pack"))
		noPadFolder(t, f.name, f.out)
	}
}

// shoal downloads v1 and hybrid torrents that libtorrent made and seeds:
// by .torrent, by v1 magnet, by bare v1 hash, and for hybrids by v2 magnet
// and by the magnet with both hashes. One seeder per format; the downloads
// run at once.
func TestShoalGetsV1AndHybridFromLibtorrent(t *testing.T) {
	lttest.Require(t)
	for _, kind := range []string{"v1", "v1pad", "hybrid"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "pack")
			randomFiles(t, src, interopV1Files)
			torrent := filepath.Join(dir, "pack.torrent")
			lttest.Run(t, "lt_torrent.py", "create", src, fmt.Sprint(interopPieceLength), torrent, kind)
			lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "seed", torrent, dir))
			addr := lt.field(t, "listening")
			v1 := lt.field(t, "info-hash-v1")
			both := lt.field(t, "magnet")
			lt.field(t, "seeding")
			if len(v1) != 40 {
				t.Fatalf("libtorrent's v1 hash: %q", v1)
			}
			ways := map[string][]string{
				"torrent":      {torrent, "--peer", addr},
				"v1 magnet":    {"magnet:?xt=urn:btih:" + v1 + "&x.pe=" + addr},
				"bare v1 hash": {v1, "--peer", addr},
			}
			if kind == "hybrid" {
				v2 := lt.field(t, "info-hash")
				ways["v2 magnet"] = []string{"magnet:?xt=urn:btmh:1220" + v2 + "&x.pe=" + addr}
				ways["magnet with both"] = []string{both}
			}
			var fs []fetch
			for name, args := range ways {
				out := filepath.Join(dir, "out-"+strings.ReplaceAll(name, " ", "-"))
				args = append(args, "-o", out, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "40s")
				fs = append(fs, fetch{kind + " by " + name, out, start(t, dir, append([]string{"get"}, args...)...)})
			}
			waitFetches(t, src, fs, lt.errText)
		})
	}
}

// libtorrent downloads v1 and hybrid torrents that shoal made and seeds:
// by .torrent, by v1 magnet, by the magnet shoal prints, and for hybrids
// by v2 magnet. The hashes in shoal's magnet must be the ones libtorrent
// computes from shoal's .torrent.
func TestLibtorrentGetsV1AndHybridFromShoal(t *testing.T) {
	lttest.Require(t)
	for _, format := range []string{"v1", "hybrid"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "pack")
			randomFiles(t, src, interopV1Files)
			seed := start(t, dir, "seed", "pack", "--format", format, "--listen", "127.0.0.1:0", "--no-dht",
				"--save-torrent", "pack.torrent", "--piece-length", "32k")
			addr := seed.field(t, "listening")
			magnet := seed.field(t, "magnet")
			v1, v2 := ltHashes(t, filepath.Join(dir, "pack.torrent"))
			if v1 == "" || (format == "hybrid") != (v2 != "") {
				t.Fatalf("libtorrent reads shoal's %s torrent as v1 %q, v2 %q", format, v1, v2)
			}
			if !strings.Contains(magnet, "urn:btih:"+v1) || (v2 != "" && !strings.Contains(magnet, "urn:btmh:1220"+v2)) {
				t.Errorf("shoal's magnet %s does not carry libtorrent's hashes v1 %s v2 %s", magnet, v1, v2)
			}
			ways := map[string]string{
				"torrent":   filepath.Join(dir, "pack.torrent"),
				"v1 magnet": "magnet:?xt=urn:btih:" + v1 + "&x.pe=" + addr,
				// Every hash the torrent has, and x.pe.
				"shoal's magnet": magnet,
			}
			if format == "hybrid" {
				ways["v2 magnet"] = "magnet:?xt=urn:btmh:1220" + v2 + "&x.pe=" + addr
			}
			var fs []fetch
			for name, source := range ways {
				out := filepath.Join(dir, "lt-"+strings.NewReplacer(" ", "-", "'", "").Replace(name))
				fs = append(fs, fetch{"libtorrent, " + format + " by " + name, out,
					startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", source, out, "--peer", addr, "--timeout", "40"))})
			}
			waitFetches(t, src, fs, seed.errText)
			noPadFolder(t, "shoal seed", src)
		})
	}
}

// interopClientFiles is interopV1Files without the empty file, whose fate on disk is
// up to each client, not shoal.
var interopClientFiles = map[string]int{
	"movie.bin":      300_001,
	"extras/a.txt":   12_345,
	"extras/b/c.dat": 70_000,
	"z.bin":          1,
}

// noViolations fails the test if shoal (run with --log-level info) dropped
// the client for breaking the protocol: what a mainstream client sends is
// the protocol in practice, and each drop costs a reconnect, or the swarm.
func noViolations(t *testing.T, client string, p *proc) {
	t.Helper()
	for _, l := range strings.Split(p.errText(), "\n") {
		if strings.Contains(l, "dropping peer") && strings.Contains(l, "protocol violation") {
			t.Errorf("shoal dropped %s: %s", client, l)
		}
	}
}

// transmission-cli 3.00 and aria2c 1.36 download a plain v1 torrent that
// shoal made and seeds, and shoal downloads from each of them a v1 torrent
// it did not make (Transmission's own transmission-create, libtorrent's for
// aria2, which cannot create one). Neither client takes a peer on its
// command line, so shoal dials them.
func TestV1ClientsInterop(t *testing.T) {
	starts := map[string]func(testing.TB, string, string, bool) *v1test.Client{
		"transmission": v1test.StartTransmission,
		"aria2":        v1test.StartAria2,
	}
	for name, startClient := range starts {
		t.Run(name+" gets from shoal", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "pack")
			randomFiles(t, src, interopClientFiles)
			if r := shoal(t, dir, nil, "create", "pack", "--format", "v1", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
				t.Fatalf("create --format v1: exit %d: %s", r.code, r.stderr)
			}
			c := startClient(t, filepath.Join(dir, "pack.torrent"), filepath.Join(dir, name), false)
			c.WaitReady(t, 15*time.Second)
			seed := start(t, dir, "--log-level", "info", "seed", "pack", "--torrent", "pack.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--peer", c.Addr.String())
			if err := c.WaitDone(40 * time.Second); err != nil {
				t.Fatalf("%v\nshoal seed: %s", err, seed.errText())
			}
			sameFiles(t, src, filepath.Join(c.Dir, "pack"))
			noViolations(t, name, seed)
		})
		t.Run("shoal gets from "+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "pack")
			randomFiles(t, src, interopClientFiles)
			torrent := filepath.Join(dir, "pack.torrent")
			if name == "transmission" {
				if out, err := exec.Command("transmission-create", "-o", torrent, "-s", "32", src).CombinedOutput(); err != nil {
					t.Fatalf("transmission-create: %v\n%s", err, out)
				}
			} else {
				lttest.Require(t)
				lttest.Run(t, "lt_torrent.py", "create", src, fmt.Sprint(interopPieceLength), torrent, "v1")
			}
			c := startClient(t, torrent, dir, true)
			c.WaitReady(t, 15*time.Second)
			out := filepath.Join(dir, "shoal-out")
			get := start(t, dir, "--log-level", "info", "get", torrent, "-o", out, "--peer", c.Addr.String(), "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "40s")
			if code := get.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("shoal get from %s: exit %d: %s\n%s: %s", name, code, get.errText(), name, c.Log())
			}
			sameFiles(t, src, filepath.Join(out, "pack"))
			noViolations(t, name, get)
		})
	}
}

// A hybrid swarm: a v1-only peer seeds, shoal downloads from it and serves
// a v2-only peer (libtorrent given only the v2 magnet, so it handshakes with
// the v2 hash) and a second v1-only peer (handshake with the v1 hash and no
// upgrade bit; it asks for pad bytes too, as pre-BEP 47 clients do). Every
// byte the v2-only peer gets crossed from v1 to v2 through shoal: one swarm,
// one set of pieces, and all three finish.
//
// The v1-only peer is testdata/interop/v1_peer.py: transmission-cli 3.00
// refuses hybrid metadata and aria2c 1.36 computes a wrong v1 hash for it,
// so no Debian v1-only client can join a hybrid swarm.
func TestHybridSwarmV1OnlyV2OnlyShoal(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "pack")
	randomFiles(t, src, interopV1Files)
	torrent := filepath.Join(dir, "pack.torrent")
	v2 := lttest.Run(t, "lt_torrent.py", "create", src, fmt.Sprint(interopPieceLength), torrent, "hybrid")

	v1seed := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("v1_peer.py"), "seed", torrent, dir))
	v1addr := v1seed.field(t, "listening")
	v1seed.field(t, "seeding")

	shoalAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	shoalOut := filepath.Join(dir, "shoal-out")
	get := start(t, dir, "get", torrent, "-o", shoalOut, "--peer", v1addr, "--no-dht", "--listen", shoalAddr, "--seed", "--timeout", "40s")

	ltOut := filepath.Join(dir, "v2-only")
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get",
		"magnet:?xt=urn:btmh:1220"+v2+"&dn=pack&x.pe="+shoalAddr, ltOut, "--timeout", "40"))
	v1Out := filepath.Join(dir, "v1-only")
	v1get := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("v1_peer.py"), "get", torrent, v1Out, "--peer", shoalAddr, "--timeout", "40"))

	waitErr(t, get, `(?m)^done: `, 50*time.Second)
	sameFiles(t, src, filepath.Join(shoalOut, "pack"))
	noPadFolder(t, "shoal", shoalOut)
	if code := lt.wait(t, 50*time.Second); code != 0 {
		t.Errorf("v2-only libtorrent: exit %d: %s\nshoal: %s", code, lt.errText(), get.errText())
	} else {
		sameFiles(t, src, filepath.Join(ltOut, "pack"))
		noPadFolder(t, "libtorrent", ltOut)
	}
	if code := v1get.wait(t, 50*time.Second); code != 0 {
		t.Errorf("v1-only peer: exit %d: %s\nshoal: %s", code, v1get.errText(), get.errText())
	} else {
		sameFiles(t, src, filepath.Join(v1Out, "pack"))
	}
	// Only shoal fetched from the v1-only seeder (no other peer learnt of it
	// by PEX and went round shoal): what the others have came through it.
	served := 0
	for _, l := range strings.Split(v1seed.errText(), "\n") {
		if !strings.Contains(l, " connected") {
			continue
		}
		served++
		if !strings.Contains(l, "peer -SH") {
			t.Errorf("the v1-only seeder served a peer other than shoal: %s", l)
		}
	}
	if served == 0 {
		t.Errorf("the v1-only seeder served nobody: %s", v1seed.errText())
	}
}
