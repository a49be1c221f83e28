package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

var lsdNetnsSeq int

// lsdNetns creates a network namespace whose loopback can multicast,
// removed when the test ends, and returns the command prefix that runs a
// process in it. The host's own loopback stays as it is.
func lsdNetns(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace with a multicast loopback (CI runs as root)")
	}
	lsdNetnsSeq++
	name := fmt.Sprintf("shoal-cli-lsd-%d-%d", os.Getpid(), lsdNetnsSeq)
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up", "multicast", "on"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		if args[0] == "netns" {
			t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		}
	}
	return []string{"ip", "netns", "exec", name, shoalBin}
}

// A seeder and two downloaders with no tracker, no DHT and no --peer find
// each other through local service discovery alone, on a loopback that
// can multicast. One downloader waits, by bare info-hash, before the
// seeder starts: it hears the seeder's first announce and fetches the
// metadata from it. The other starts after the seeder: the seeder hears
// its announce and connects to it.
func TestLSDFindsPeersWithoutTrackerOrDHT(t *testing.T) {
	in := lsdNetns(t)
	run := func(dir string, args ...string) *proc {
		return startCmd(t, dir, exec.Command(in[0], append(in[1:], args...)...))
	}
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.dat": 700_000, "sub/b.dat": 123_457})
	r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent", "--piece-length", "64k")
	hash := field(r.stdout, "info-hash")
	if r.code != 0 || hash == "" {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}

	// With LSD off nothing could find the seeder: refused up front.
	off := run(dir, "get", "share.torrent", "-o", "off", "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0")
	if code := off.wait(t, 10*time.Second); code != 2 || !strings.Contains(off.errText(), "no way to find peers") {
		t.Fatalf("--no-lsd: exit %d: %s", code, off.errText())
	}

	byHash := run(dir, "get", hash, "-o", "dl0", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	// The seeder starts once the downloader looks for peers: its first
	// announce is what the downloader must hear.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(byHash.errText(), "fetching metadata from peers"); {
		if time.Now().After(deadline) {
			t.Fatalf("get by hash never started fetching: %s", byHash.errText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	seed := run(dir, "seed", "share", "--torrent", "share.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	seed.field(t, "listening")
	if code := byHash.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("download by hash: exit %d: %s", code, byHash.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "dl0", "share"))
	// Only the seeder is left to download from, and only its hearing the
	// newcomer's announce can connect them.
	byFile := run(dir, "get", "share.torrent", "-o", "dl1", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	if code := byFile.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("download by .torrent: exit %d: %s", code, byFile.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "dl1", "share"))

	// The seeder's status dump counts what LSD heard, and its address
	// book names LSD as the downloaders' source.
	seed.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(seed.errText(), "dropped: out of scope") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	dump := seed.errText()
	if m := regexp.MustCompile(`received \d+ datagrams: (\d+) named our torrents`).FindStringSubmatch(dump); m == nil || m[1] == "0" ||
		!strings.Contains(dump, "lsd: on lo (ipv4)") || !regexp.MustCompile(`sources: .*lsd \d`).MatchString(dump) {
		t.Errorf("seeder's status dump:\n%s", dump)
	}
	seed.cmd.Process.Signal(syscall.SIGTERM)
	if code := seed.wait(t, 10*time.Second); code != 0 {
		t.Errorf("seed after SIGTERM: exit %d: %s", code, seed.errText())
	}
}

// A private torrent (BEP 27) is never announced on the local network nor
// looked for there, even where LSD could run: get finds no way to reach
// peers, and seed runs no LSD at all.
func TestLSDOffForPrivateTorrents(t *testing.T) {
	in := lsdNetns(t)
	run := func(dir string, args ...string) *proc {
		return startCmd(t, dir, exec.Command(in[0], append(in[1:], args...)...))
	}
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "--private", "-o", "private.torrent")
	get := run(dir, "get", "private.torrent", "-o", "out", "--no-dht", "--listen", "127.0.0.1:0")
	if code := get.wait(t, 10*time.Second); code != 2 || !strings.Contains(get.errText(), "no way to find peers") {
		t.Fatalf("get of a private torrent: exit %d: %s", code, get.errText())
	}
	seed := run(dir, "seed", "data", "--torrent", "private.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	seed.field(t, "listening")
	seed.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(seed.errText(), "torrents: 1") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if dump := seed.errText(); !strings.Contains(dump, "torrents: 1") || strings.Contains(dump, "lsd:") {
		t.Errorf("private seed's status dump should have no lsd section:\n%s", dump)
	}
}

// LSD's scope follows the addresses the listeners are bound to, each in
// its family: a dual-stack default covers both, and an address keeps to
// its own.
func TestLSDListenAddress(t *testing.T) {
	tcp := func(ss ...string) []net.Addr {
		var out []net.Addr
		for _, s := range ss {
			out = append(out, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)))
		}
		return out
	}
	for _, c := range []struct {
		requested string
		bound     []net.Addr
		want      string
	}{
		{"0.0.0.0:6881", tcp("0.0.0.0:6881"), "[0.0.0.0]"},
		{":6881", tcp("0.0.0.0:6881", "[::]:6881"), "[0.0.0.0 ::]"},
		{":6881", nil, "[0.0.0.0 ::]"},
		{"[::]:0", tcp("[::]:40000"), "[::]"},
		{"127.0.0.1:0", tcp("127.0.0.1:40000"), "[127.0.0.1]"},
		{"[::1]:0", tcp("[::1]:40000"), "[::1]"},
		{"127.0.0.1:6881", nil, "[127.0.0.1]"},
	} {
		if got := fmt.Sprint(lsdListen(c.requested, c.bound)); got != c.want {
			t.Errorf("--listen %s bound at %v: %s, want %s", c.requested, c.bound, got, c.want)
		}
	}
}

// Local service discovery between shoal and libtorrent 2.0, both ways, in
// a namespace whose loopback can multicast, with no peer named: each
// parses the other's announces, and the one that hears a newcomer
// connects to it. The torrent is a hybrid, announced under both hashes.
func TestLSDWithLibtorrent(t *testing.T) {
	lttest.Require(t)
	in := lsdNetns(t)
	run := func(dir string, args ...string) *proc {
		return startCmd(t, dir, exec.Command(in[0], append(in[1:], args...)...))
	}
	ltRun := func(dir string, args ...string) *proc {
		return startCmd(t, dir, exec.Command(in[0], append([]string{in[1], in[2], in[3], lttest.Python, lttest.Script("lt_peer.py")}, args...)...))
	}
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
	if r := shoal(t, dir, nil, "create", "pack", "-o", "pack.torrent", "--format", "hybrid", "--piece-length", "32k"); r.code != 0 {
		t.Fatal(r.stderr)
	}

	// shoal seeds; libtorrent, started after, announces and shoal dials it.
	seed := run(dir, "seed", "pack", "--torrent", "pack.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	seed.field(t, "listening")
	lt := ltRun(dir, "get", "pack.torrent", "lt-out", "--lsd", "--timeout", "30")
	if code := lt.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("libtorrent get by LSD: exit %d: %s\nshoal: %s", code, lt.errText(), seed.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "lt-out", "pack"))
	seed.cmd.Process.Signal(syscall.SIGTERM)
	seed.wait(t, 10*time.Second)

	// libtorrent seeds; shoal, started after, announces and libtorrent
	// dials it.
	ltSeed := ltRun(dir, "seed", "pack.torrent", dir, "--lsd")
	ltSeed.field(t, "seeding")
	get := run(dir, "get", "pack.torrent", "-o", "shoal-out", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := get.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("shoal get by LSD from libtorrent: exit %d: %s\nlibtorrent: %s", code, get.errText(), ltSeed.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "shoal-out", "pack"))
}
