package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deadAddr returns a loopback HOST:PORT nothing listens on, for now.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// The only peer given is not up yet when get starts, from a .torrent and
// from a bare hash: get keeps dialing it, says meanwhile what it waits
// for, and completes once a seeder comes up on that address.
func TestGetRetriesUntilPeerComesUp(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 700_000, "b.bin": 10})
	r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent", "--piece-length", "64k")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	hash := field(r.stdout, "info-hash")
	for _, what := range []string{"share.torrent", hash} {
		t.Run(what[:5], func(t *testing.T) {
			addr := deadAddr(t)
			out := filepath.Join(t.TempDir(), "out")
			began := time.Now()
			get := start(t, dir, "get", what, "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
			time.Sleep(2 * time.Second)
			select {
			case <-get.done:
				t.Fatalf("get gave up before the peer came up: %s", get.errText())
			default:
			}
			seed := start(t, dir, "seed", "share", "--torrent", "share.torrent", "--listen", addr, "--no-dht")
			if got := seed.field(t, "listening"); got != addr {
				t.Fatalf("seeder listens on %s, want %s", got, addr)
			}
			if code := get.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("get: exit %d: %s", code, get.errText())
			}
			sameFiles(t, filepath.Join(dir, "share"), filepath.Join(out, "share"))
			if d := time.Since(began); d > 10*time.Second {
				t.Errorf("took %v: the redial came late", d)
			}
			want := "waiting for peers: 1 peer address known, last attempt " + addr + ": connect: connection refused; retrying"
			if what == hash {
				want = "waiting for metadata: 1 peer address known, last attempt " + addr + ": connect: connection refused; retrying"
			}
			if !strings.Contains(get.errText(), want+"\n") {
				t.Errorf("stderr does not say what get waits for (%q):\n%s", want, get.errText())
			}
		})
	}
}

// Nothing ever listens: get gives up at --timeout with exit 1, saying it
// was waiting for peers and why none came, not after a few milliseconds.
func TestGetTimesOutSayingWhy(t *testing.T) {
	dir := content(t)
	r := shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	hash := field(r.stdout, "info-hash")
	addr := deadAddr(t)
	for what, want := range map[string]string{
		"data.torrent": "shoal: get: timed out after 2s waiting for peers: 1 peer address known, last attempt " + addr + ": connect: connection refused: data: ",
		hash:           "shoal: get: timed out after 2s waiting for metadata: 1 peer address known, last attempt " + addr + ": connect: connection refused",
	} {
		began := time.Now()
		get := start(t, dir, "get", what, "-o", t.TempDir(), "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "2s")
		code := get.wait(t, 15*time.Second)
		if d := time.Since(began); code != 1 || d < 2*time.Second {
			t.Errorf("%s: exit %d after %v, want 1 at the 2s timeout: %s", what[:5], code, d, get.errText())
		}
		if last := lastLine(get.errText()); !strings.HasPrefix(last, want) {
			t.Errorf("%s: last line\n%q\nwant it to start with\n%q", what[:5], last, want)
		}
	}
}

// A .torrent without trackers, no --peer and no DHT: no peer could ever
// be found, so get refuses at once, as it does for such a magnet, and
// writes nothing.
func TestGetWithoutPeerSourceRefuses(t *testing.T) {
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	r := shoal(t, dir, nil, "get", "data.torrent", "-o", "out", "--no-dht", "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "no way to find peers") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatalf("get wrote its folder before refusing: %v", err)
	}
	r = shoal(t, dir, nil, "get", strings.Repeat("ab", 32), "-o", "out", "--no-dht", "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "no way to find peers") {
		t.Fatalf("hash: exit %d: %s", r.code, r.stderr)
	}
}
