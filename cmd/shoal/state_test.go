package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DIR/.shoal linked to a folder outside DIR: get refuses before any work,
// from a .torrent and from a hash, and nothing is written out there (nor
// any data into DIR).
func TestGetRefusesStateFolderLinkedOutside(t *testing.T) {
	dir := content(t)
	r := shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	hash := field(r.stdout, "info-hash")
	out, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(out, ".shoal")); err != nil {
		t.Fatal(err)
	}
	want := "shoal: get: " + filepath.Join(out, ".shoal") + " is a symbolic link leading out of " + out
	for _, what := range []string{"data.torrent", hash} {
		r := shoal(t, dir, nil, "get", what, "-o", out, "--peer", deadAddr(t), "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "5s")
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("get %s: exit %d, stderr %q; want 1 and %q…", what[:4], r.code, r.stderr, want)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside the download folder: %v", ents)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Fatalf("the download folder holds %v, want only the link", ents)
	}
}
