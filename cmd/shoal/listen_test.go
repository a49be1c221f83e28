package main

import (
	"net"
	"strings"
	"testing"
)

// A port given with --listen is used exactly or not at all: taken, seed
// and get fail with a line saying so, and --help says it up front.
func TestListenTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	want := "shoal: --listen " + addr + ": port " + port + " is taken (by another shoal?); give another port, or 0 for any free one\n"
	for _, args := range [][]string{
		{"seed", "data", "--listen", addr, "--no-dht"},
		{"get", "data.torrent", "-o", "out", "--peer", "127.0.0.1:1", "--listen", addr, "--no-dht"},
	} {
		if r := shoal(t, dir, nil, args...); r.code != 1 || r.stderr != want {
			t.Errorf("%s on a taken port: exit %d, stderr %q; want 1 and %q", args[0], r.code, r.stderr, want)
		}
	}
	r := shoal(t, dir, nil, "seed", "--help")
	if help := strings.Join(strings.Fields(r.stdout), " "); !strings.Contains(help, "The default port moves on to the next free one if taken; a port given here must be free") {
		t.Errorf("seed --help does not say how --listen treats a taken port:\n%s", r.stdout)
	}
}
