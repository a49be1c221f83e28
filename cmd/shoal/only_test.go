package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get --only 'a/*' fetches the files of folder a alone from a shoal
// seeder: the other files are not created, except (v1, whose pieces span
// files) the neighbour that shares a boundary piece with a wanted file,
// which holds only that piece's bytes; about only the wanted bytes come
// over the wire. A plain get then completes the rest without fetching the
// verified pieces again, and verify passes.
func TestGetOnlySelectedFiles(t *testing.T) {
	const pl = 16 << 10
	// a/ holds 70000 bytes: in v1 they end inside piece 4, which b/big.bin
	// shares; c.txt shares nothing with a/.
	sizes := map[string]int{"a/one.bin": 40000, "a/two.bin": 30000, "b/big.bin": 200000, "c.txt": 5000}
	order := []string{"a/one.bin", "a/two.bin", "b/big.bin", "c.txt"}
	const wantBytes, total = 70000, 275000
	for _, format := range []string{"v2", "hybrid", "v1"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			for name, n := range sizes {
				writeFile(t, filepath.Join(dir, "data", name), n)
			}
			// In v1 the wanted pieces are 0..4 (bytes up to 81920), the
			// boundary piece's tail (11920 bytes) landing in b/big.bin.
			fetchLimit := int64(wantBytes)
			allowed := []string{"a/one.bin", "a/two.bin"}
			switch format {
			case "v2":
				if r := shoal(t, dir, nil, "create", "data", "-o", "t.torrent", "--piece-length", strconv.Itoa(pl)); r.code != 0 {
					t.Fatalf("create: %s", r.stderr)
				}
			case "hybrid":
				writeHybridTorrent(t, dir, "t.torrent", pl, order...)
			case "v1":
				writeV1Torrent(t, dir, "t.torrent", pl, false, order...)
				fetchLimit = 5 * pl
				allowed = append(allowed, "b/big.bin")
			}
			seed := start(t, dir, "seed", "data", "--torrent", "t.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--no-lsd", "--super-seed=false")
			addr := seed.field(t, "listening")
			out := filepath.Join(dir, "dl")
			get := []string{"get", "t.torrent", "-o", out, "--peer", addr, "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--timeout", "20s"}

			r := shoal(t, dir, nil, append(get, "--only", "a/*")...)
			if r.code != 0 {
				t.Fatalf("get --only: exit %d: %s", r.code, r.stderr)
			}
			got := downloadedIn(t, r.stderr)
			t.Logf("get --only a/* downloaded %d bytes (a/ holds %d)", got, wantBytes)
			if got < wantBytes || got > fetchLimit+pl {
				t.Errorf("get --only downloaded %d bytes; want the selection, %d to %d", got, wantBytes, fetchLimit+pl)
			}
			if !strings.Contains(r.stderr, "; 2 of 4 files selected (--only)") {
				t.Errorf("get --only: the done line does not say what was selected:\n%s", r.stderr)
			}
			var onDisk []string
			filepath.WalkDir(filepath.Join(out, "data"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(filepath.Join(out, "data"), p)
					onDisk = append(onDisk, filepath.ToSlash(rel))
				}
				return nil
			})
			slices.Sort(onDisk)
			if !slices.Equal(onDisk, allowed) {
				t.Errorf("after get --only 'a/*' the folder holds %v, want %v", onDisk, allowed)
			}
			for _, name := range []string{"a/one.bin", "a/two.bin"} {
				want, _ := os.ReadFile(filepath.Join(dir, "data", name))
				have, err := os.ReadFile(filepath.Join(out, "data", name))
				if err != nil || !slices.Equal(want, have) {
					t.Errorf("%s: not the seeder's bytes (%v)", name, err)
				}
			}

			// A glob that matches nothing is a usage error, not a done.
			for _, bad := range []string{"nope/*", "a/["} {
				if r := shoal(t, dir, nil, append(get, "--only", bad)...); r.code != 2 {
					t.Errorf("get --only %q: exit %d, want 2: %s", bad, r.code, r.stderr)
				}
			}

			r = shoal(t, dir, nil, get...)
			if r.code != 0 {
				t.Fatalf("get of the rest: exit %d: %s", r.code, r.stderr)
			}
			rest := downloadedIn(t, r.stderr)
			t.Logf("get of the rest downloaded %d bytes of %d", rest, total)
			if min := total - fetchLimit; rest < min || rest > min+pl {
				t.Errorf("get of the rest downloaded %d bytes; want %d to %d (no refetch)", rest, min, min+pl)
			}
			sameFiles(t, filepath.Join(dir, "data"), filepath.Join(out, "data"))
			if r := shoal(t, dir, nil, "verify", "t.torrent", "--dir", out); r.code != 0 {
				t.Errorf("verify after both gets: %d %s%s", r.code, r.stdout, r.stderr)
			}
			seed.stop(t, os.Interrupt)
		})
	}
}

// --sequential downloads the whole torrent, correct, from a shoal seeder.
func TestGetSequential(t *testing.T) {
	dir := content(t)
	if r := shoal(t, dir, nil, "create", "data", "-o", "t.torrent", "--piece-length", "16384"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	seed := start(t, dir, "seed", "data", "--torrent", "t.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--no-lsd", "--super-seed=false")
	addr := seed.field(t, "listening")
	out := filepath.Join(dir, "dl")
	g := start(t, dir, "get", "t.torrent", "-o", out, "--peer", addr, "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--timeout", "20s", "--sequential")
	if code := g.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("get --sequential: exit %d: %s", code, g.errText())
	}
	sameFiles(t, filepath.Join(dir, "data"), filepath.Join(out, "data"))
	seed.stop(t, os.Interrupt)
}

func downloadedIn(t *testing.T, stderr string) int64 {
	t.Helper()
	m := doneRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no done line in:\n%s", stderr)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// A glob selects a file by its path inside the torrent or by a folder
// above it; * does not cross a slash.
func TestOnlyMatches(t *testing.T) {
	for _, c := range []struct {
		globs []string
		path  string
		want  bool
	}{
		{[]string{"a/*"}, "a/one.bin", true},
		{[]string{"a/*"}, "a/sub/x", true}, // a/sub matches, and is a folder above
		{[]string{"a"}, "a/sub/x", true},
		{[]string{"*.txt"}, "c.txt", true},
		{[]string{"*.txt"}, "docs/c.txt", false},
		{[]string{"b/*", "*.txt"}, "c.txt", true},
		{[]string{"a/*"}, "ab/one.bin", false},
		{[]string{"a/*"}, "b/a/one.bin", false},
	} {
		if got := matchesAny(c.globs, strings.Split(c.path, "/")); got != c.want {
			t.Errorf("matchesAny(%q, %q) = %v, want %v", c.globs, c.path, got, c.want)
		}
	}
}

// get --only fetches its files from a seeder that super-seeds (the
// default) in moments: shown a piece of a file it did not select, the
// downloader stays not interested, and the seeder then shows it every
// piece rather than one unwanted piece after another, each kept from it
// for 20 s.
func TestGetOnlyFromSuperSeeder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "a", "one.bin"), 40000)
	writeFile(t, filepath.Join(dir, "data", "b", "big.bin"), 2<<20)
	if r := shoal(t, dir, nil, "create", "data", "-o", "t.torrent", "--piece-length", "16384"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	seed := start(t, dir, "seed", "data", "--torrent", "t.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--no-lsd")
	addr := seed.field(t, "listening")
	out := filepath.Join(dir, "dl")
	began := time.Now()
	r := shoal(t, dir, nil, "get", "t.torrent", "-o", out, "--peer", addr, "--no-dht", "--no-lsd", "--listen", "127.0.0.1:0", "--timeout", "60s", "--only", "a/*")
	took := time.Since(began)
	if r.code != 0 {
		t.Fatalf("get --only: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("get --only from a super-seeder took %v", took.Round(time.Millisecond))
	// One lapsed offer (2 s) and the transfer; a downloader held to
	// unwanted offers waits 20 s for each.
	if took > 12*time.Second {
		t.Errorf("get --only from a super-seeder took %v", took)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "data", "a", "one.bin"))
	have, err := os.ReadFile(filepath.Join(out, "data", "a", "one.bin"))
	if err != nil || !slices.Equal(want, have) {
		t.Errorf("a/one.bin: not the seeder's bytes (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(out, "data", "b", "big.bin")); err == nil {
		t.Errorf("b/big.bin was created though not selected")
	}
	seed.stop(t, os.Interrupt)
}
