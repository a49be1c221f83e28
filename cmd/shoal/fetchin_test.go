package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// get by bare info-hash, given no peer and no DHT, takes the metadata
// from a seeder that dials it (seed --peer), as one that heard its
// announce would: nothing else could connect them, as the seeder runs no
// local discovery and get knows no address. get runs where LSD can, so
// that it has a source to wait on rather than refusing to start.
func TestGetByHashFromSeederThatDialsIn(t *testing.T) {
	in := lsdNetns(t)
	run := func(dir string, args ...string) *proc {
		return startCmd(t, dir, exec.Command(in[0], append(in[1:], args...)...))
	}
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.dat": 300_000, "sub/b.dat": 70_001})
	r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent", "--piece-length", "32k")
	hash := field(r.stdout, "info-hash")
	if r.code != 0 || hash == "" {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	// The namespace is the test's own: its ports are all free.
	const getAddr = "127.0.0.1:6990"
	get := run(dir, "get", hash, "-o", "dl", "--no-dht", "--listen", getAddr, "--timeout", "20s")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(get.errText(), "fetching metadata from peers"); {
		if time.Now().After(deadline) {
			t.Fatalf("get by hash never started fetching: %s", get.errText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	seed := run(dir, "seed", "share", "--torrent", "share.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--no-lsd", "--peer", getAddr)
	seed.field(t, "listening")
	if code := get.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("get by hash: exit %d: %s\nseed: %s", code, get.errText(), seed.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "dl", "share"))
	seed.stop(t, syscall.SIGTERM)
}
