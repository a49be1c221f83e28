package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/tracker"
)

// The dual-stack peers below listen on ":0", the default's form: one
// socket per family on all interfaces. Nothing they do leaves the
// machine: local discovery and port mapping are off (they would run on
// every interface), the DHT bootstraps from a node on [::1] or is off,
// and every tracker and peer they learn of is on loopback.
var dualStack = []string{"--listen", ":0", "--no-lsd", "--no-port-map"}

// listenLines returns the addresses a seeder printed on its "listening:"
// lines, waiting for the magnet line that follows them.
func listenLines(t *testing.T, p *proc) []netip.AddrPort {
	t.Helper()
	p.field(t, "magnet")
	p.mu.Lock()
	lines := append([]string(nil), p.lines...)
	p.mu.Unlock()
	var out []netip.AddrPort
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "listening: "); ok {
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				t.Fatalf("listening: %q: %v", v, err)
			}
			out = append(out, ap)
		}
	}
	return out
}

// A seeder on the default dual-stack listener prints one "listening:"
// line per family, on one port, and an IPv6-only downloader, given only
// the hash and a DHT node on [::1], finds it through its IPv6 DHT node
// (BEP 32) and downloads over [::1].
func TestDualStackDownloadOverIPv6DHT(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "pack"), map[string]int{"a.bin": 1_500_000, "b/c.txt": 5000})
	boot := start(t, dir, "dht", "--listen", "[::1]:0", "--bootstrap", "none", "--state", filepath.Join(dir, "boot.state"))
	bootAddr := boot.field(t, "listening")
	if ap, err := netip.ParseAddrPort(bootAddr); err != nil || !ap.Addr().Is6() {
		t.Fatalf("dht node listening on %q, want an IPv6 address", bootAddr)
	}
	seed := start(t, dir, append([]string{"seed", "pack", "--bootstrap", bootAddr, "--piece-length", "64k"}, dualStack...)...)
	hash := seed.field(t, "info-hash")
	addrs := listenLines(t, seed)
	if len(addrs) != 2 || !addrs[0].Addr().Is4() || !addrs[1].Addr().Is6() || addrs[0].Port() != addrs[1].Port() ||
		!addrs[0].Addr().IsUnspecified() || !addrs[1].Addr().IsUnspecified() {
		t.Fatalf("dual-stack seeder printed listening %v, want 0.0.0.0:P then [::]:P", addrs)
	}

	// IPv6 only, so every peer it takes, and the DHT, is on [::1]; no
	// tracker, no --peer, no LSD: the DHT is the one way to the seeder.
	get := start(t, dir, "get", hash, "-o", "out", "--listen", "[::1]:0", "--bootstrap", bootAddr, "--no-lsd", "--timeout", "12s")
	if code := get.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("get by hash over the IPv6 DHT: exit %d: %s", code, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(dir, "out", "pack"))
}

// An IPv4-only and an IPv6-only downloader, which cannot reach each
// other, both get every piece from a dual-stack seeder. Each family has
// its tracker, on its loopback address: the downloaders learn of the
// seeder only from their own family's tracker, so the seeder must have
// announced to each over that family, and every address a tracker lists
// must be one its peer listens on (announcing over the other family would
// list an address nobody answers at).
func TestDualStackMixedSwarm(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 2_000_000, "b/c.txt": 3000})
	listen := []string{"127.0.0.1:0", "[::1]:0"}
	var urls []string
	for _, l := range listen {
		tr := start(t, t.TempDir(), "tracker", "--listen", l, "--interval", "2s", "--rate-limit", "-1")
		urls = append(urls, "http://"+tr.field(t, "listening")+"/announce")
	}
	seed := start(t, dir, append([]string{"seed", "share", "--no-dht", "-t", urls[0], "-t", urls[1],
		"--save-torrent", "share.torrent", "--piece-length", "64k"}, dualStack...)...)
	if addrs := listenLines(t, seed); len(addrs) != 2 {
		t.Fatalf("dual-stack seeder listening on %v, want one address per family", addrs)
	}
	// --seed keeps them in the swarm, and at their trackers, once done.
	var gets []*proc
	for i, l := range listen {
		gets = append(gets, start(t, dir, "get", "share.torrent", "-o", fmt.Sprint("dl", i),
			"--no-dht", "--listen", l, "--timeout", "12s", "--seed"))
	}
	deadline := time.Now().Add(12 * time.Second)
	for i, g := range gets {
		for !strings.Contains(g.errText(), "since start)") {
			select {
			case <-g.done:
				t.Fatalf("downloader on %s exited before it was done: %s", listen[i], g.errText())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("downloader on %s not done in time: %s", listen[i], g.errText())
			}
			time.Sleep(50 * time.Millisecond)
		}
		sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, fmt.Sprint("dl", i), "share"))
	}

	data, err := os.ReadFile(filepath.Join(dir, "share.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := piece.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		fam := 4 + 2*i
		cl := &tracker.Client{Family: fam}
		var pid tracker.PeerID
		copy(pid[:], "-TT0001-dualstacktst")
		resp, err := cl.Announce(context.Background(), u, tracker.AnnounceRequest{
			InfoHash: tracker.InfoHash(m.Info.SwarmHashes()[0]), PeerID: pid, Port: 9, Left: 1, Event: tracker.EventStarted})
		if err != nil {
			t.Fatalf("announce to %s: %v", u, err)
		}
		var listed []string
		for _, p := range resp.Peers {
			if p.Addr.Port() == 9 {
				continue // the test itself
			}
			listed = append(listed, p.Addr.String())
			if p.Addr.Addr().Is4() != (fam == 4) {
				t.Errorf("tracker %s lists %s, of the other family", u, p.Addr)
			}
			c, err := net.DialTimeout("tcp", p.Addr.String(), time.Second)
			if err != nil {
				t.Errorf("tracker %s lists %s, where no peer listens: %v", u, p.Addr, err)
				continue
			}
			c.Close()
		}
		// The seeder and that family's downloader.
		if len(listed) != 2 {
			t.Errorf("tracker %s lists %v, want the seeder and one downloader", u, listed)
		}
	}
}
