package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mustRead returns path's bytes.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unchanged fails the test unless path still holds want.
func unchanged(t *testing.T, what, path string, want []byte) {
	t.Helper()
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %s changed (%d bytes, want %d; %v)", what, path, len(got), len(want), err)
	}
}

// create never writes its torrent over the data it describes, and over
// another existing file only with --force.
func TestCreateNeverOverwritesData(t *testing.T) {
	dir := content(t)
	writeFile(t, filepath.Join(dir, "data.bin"), 100_000)
	writeFile(t, filepath.Join(dir, "notes.txt"), 3000)
	data := mustRead(t, filepath.Join(dir, "data.bin"))
	notes := mustRead(t, filepath.Join(dir, "notes.txt"))
	big := mustRead(t, filepath.Join(dir, "data", "big.bin"))
	if err := os.Link(filepath.Join(dir, "data.bin"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name string
		args []string
		file string
		want []byte
	}{
		{"onto the source", []string{"create", "data.bin", "-o", "data.bin"}, "data.bin", data},
		{"onto the source, forced", []string{"create", "data.bin", "-o", "data.bin", "--force"}, "data.bin", data},
		{"onto another link to the source, forced", []string{"create", "data.bin", "-o", "hardlink", "--force"}, "data.bin", data},
		{"onto a file of the source folder, forced", []string{"create", "data", "-o", "data/big.bin", "--force"}, "data/big.bin", big},
		{"through a symlink into the source folder, forced", []string{"create", "data", "-o", "link/big.bin", "--force"}, "data/big.bin", big},
		{"onto an existing file", []string{"create", "data.bin", "-o", "notes.txt"}, "notes.txt", notes},
	}
	for _, tc := range refused {
		r := shoal(t, dir, nil, tc.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: create: ") {
			t.Errorf("%s: exit %d, %q; want 2 and one line", tc.name, r.code, r.stderr)
		}
		unchanged(t, tc.name, filepath.Join(dir, tc.file), tc.want)
	}
	if r := shoal(t, dir, nil, "create", "data", "-o", "data/new.torrent"); r.code != 2 || !strings.Contains(r.stderr, "lies inside data") {
		t.Errorf("a new file inside the source folder: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "new.torrent")); err == nil {
		t.Error("a refused output was written")
	}

	// --force replaces a file that is not the data.
	r := shoal(t, dir, nil, "create", "data.bin", "-o", "notes.txt", "--force")
	if r.code != 0 {
		t.Fatalf("create --force: exit %d: %s", r.code, r.stderr)
	}
	if info := shoal(t, dir, nil, "info", "notes.txt"); info.code != 0 || !strings.Contains(info.stdout, field(r.stdout, "info-hash")) {
		t.Fatalf("the replaced file is not the torrent: %d %s", info.code, info.stderr)
	}
	unchanged(t, "create --force", filepath.Join(dir, "data.bin"), data)

	// The default output: made once; made again over a torrent of the same
	// content; refused over anything else unless forced.
	for i, want := range []int{0, 0} {
		if r := shoal(t, dir, nil, "create", "data.bin"); r.code != want {
			t.Fatalf("create data.bin, run %d: exit %d: %s", i+1, r.code, r.stderr)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "data.bin.torrent"), []byte("my draft"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := shoal(t, dir, nil, "create", "data.bin"); r.code != 2 || !strings.Contains(r.stderr, "data.bin.torrent already exists; pass --force") {
		t.Fatalf("default output over another file: exit %d, %q", r.code, r.stderr)
	}
	unchanged(t, "default output", filepath.Join(dir, "data.bin.torrent"), []byte("my draft"))
	if r := shoal(t, dir, nil, "create", "data.bin", "--force"); r.code != 0 {
		t.Fatalf("default output --force: exit %d: %s", r.code, r.stderr)
	}
	if r := shoal(t, dir, nil, "create", "data", "-o", "data.bin.torrent"); r.code != 2 {
		t.Fatalf("over a torrent of other content: exit %d, want 2", r.code)
	}
}

// seed --save-torrent never writes over the data being seeded, or over
// another file unless forced; it does replace its own torrent, so a seed
// restarts with the command that started it.
func TestSeedSaveTorrentNeverOverwritesData(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, dir, map[string]int{"s.bin": 200_000, "share/a.bin": 150_000, "notes.txt": 999})
	s := mustRead(t, filepath.Join(dir, "s.bin"))
	a := mustRead(t, filepath.Join(dir, "share", "a.bin"))
	notes := mustRead(t, filepath.Join(dir, "notes.txt"))
	for _, tc := range []struct {
		name string
		args []string
		file string
		want []byte
	}{
		{"onto the seeded file", []string{"s.bin", "--save-torrent", "s.bin", "--force"}, "s.bin", s},
		{"onto a file of the seeded folder", []string{"share", "--save-torrent", "share/a.bin", "--force"}, "share/a.bin", a},
		{"onto an existing file", []string{"s.bin", "--save-torrent", "notes.txt"}, "notes.txt", notes},
	} {
		args := append([]string{"seed", "--no-dht", "--listen", "127.0.0.1:0"}, tc.args...)
		r := shoal(t, dir, nil, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: seed: --save-torrent ") {
			t.Errorf("%s: exit %d, %q; want 2 and one line", tc.name, r.code, r.stderr)
		}
		unchanged(t, tc.name, filepath.Join(dir, tc.file), tc.want)
	}
	for run := range 2 {
		p := start(t, dir, "seed", "s.bin", "--no-dht", "--listen", "127.0.0.1:0", "--save-torrent", "s.torrent")
		p.field(t, "listening")
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("seed run %d: exit %d: %s", run+1, code, p.errText())
		}
	}
	readMeta(t, filepath.Join(dir, "s.torrent"))
	unchanged(t, "seeding twice", filepath.Join(dir, "s.bin"), s)
}

// get into a folder that holds another file under the torrent's name
// stops, leaving it alone and saying what to do; with --overwrite it
// takes the file over, keeps the pieces of it that match, and ends with
// the torrent's exact file, as verify confirms.
func TestGetStopsAtForeignFile(t *testing.T) {
	dir := t.TempDir()
	const size = 1_000_000
	randomFiles(t, dir, map[string]int{"f50": size})
	src := mustRead(t, filepath.Join(dir, "f50"))
	seed := start(t, dir, "seed", "f50", "--no-dht", "--listen", "127.0.0.1:0", "--save-torrent", "f50.torrent", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	get := func(out string, extra ...string) result {
		args := append([]string{"get", "f50.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s"}, extra...)
		return shoal(t, dir, nil, args...)
	}

	// An unrelated larger file, and the case: the torrent's data
	// with a tail of the user's, every piece matching but not the size.
	randomFiles(t, filepath.Join(dir, "other"), map[string]int{"f50": size * 3 / 2})
	tail := append(append([]byte(nil), src...), bytes.Repeat([]byte("user data "), 10_000)...)
	os.MkdirAll(filepath.Join(dir, "longer"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "longer", "f50"), tail, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"other", "longer"} {
		path := filepath.Join(dir, out, "f50")
		before := mustRead(t, path)
		r := get(out)
		if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(out, "f50")+" is not this torrent's data") ||
			!strings.Contains(r.stderr, "the torrent's file 976.6 KiB") || !strings.Contains(r.stderr, "--overwrite") {
			t.Fatalf("get into %s: exit %d, %q; want 1 naming the file, its size and --overwrite", out, r.code, r.stderr)
		}
		unchanged(t, "get into "+out, path, before)
		if ents, _ := os.ReadDir(filepath.Join(dir, out, ".shoal")); len(ents) != 0 {
			t.Errorf("get into %s left state behind: %v", out, ents)
		}

		r = get(out, "--overwrite")
		if r.code != 0 || !strings.Contains(r.stderr, "replacing (--overwrite): ") {
			t.Fatalf("get --overwrite into %s: exit %d: %s", out, r.code, r.stderr)
		}
		unchanged(t, "get --overwrite into "+out+" (compared with the source)", path, src)
		if v := shoal(t, dir, nil, "verify", "f50.torrent", "--dir", out); v.code != 0 {
			t.Fatalf("verify after get --overwrite into %s: exit %d: %s%s", out, v.code, v.stdout, v.stderr)
		}
		if out == "longer" {
			// Every piece was there: taking the file over fetched nothing.
			if m := summaryRE.FindStringSubmatch(r.stderr); m == nil || m[1] != "0" {
				t.Errorf("get --overwrite into longer downloaded %v bytes, want 0: %s", m, r.stderr)
			}
		}
	}
}

// get still resumes what is its own: a copy of some pieces with the rest
// never written (an interrupted download whose record was lost), and a
// download killed within its first seconds, before any periodic save.
func TestGetResumesOwnDownload(t *testing.T) {
	dir := t.TempDir()
	const size, pieceLen = 4 << 20, 64 << 10
	randomFiles(t, dir, map[string]int{"f": size})
	seed := start(t, dir, "seed", "f", "--no-dht", "--listen", "127.0.0.1:0", "--save-torrent", "f.torrent",
		"--piece-length", "64k", "--max-upload-rate", "2M")
	addr := seed.field(t, "listening")
	args := func(out string) []string {
		return []string{"get", "f.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s"}
	}

	partialCopy(t, filepath.Join(dir, "f"), filepath.Join(dir, "half", "f"), pieceLen, func(p int) bool { return p%2 == 0 })
	r := shoal(t, dir, nil, args("half")...)
	if r.code != 0 {
		t.Fatalf("get over a half copy: exit %d: %s", r.code, r.stderr)
	}
	if m := resumeRE.FindStringSubmatch(r.stderr); m == nil || m[1] != strconv.Itoa(size/2) {
		t.Errorf("get over a half copy resumed with %v, want %d bytes: %s", m, size/2, r.stderr)
	}
	unchanged(t, "get over a half copy (compared with the source)", filepath.Join(dir, "half", "f"), mustRead(t, filepath.Join(dir, "f")))

	first := start(t, dir, args("killed")...)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(first.errText(), "first piece:") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // more pieces, one of them half written
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.wait(t, 5*time.Second)
	if strings.Contains(first.errText(), "done:") {
		t.Fatal("the first run finished before its kill")
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "killed", ".shoal", "*.resume")); len(ents) != 1 {
		t.Fatalf("no resume record after a kill in the first seconds: %v", ents)
	}
	r = shoal(t, dir, nil, args("killed")...)
	if r.code != 0 {
		t.Fatalf("get after a kill: exit %d: %s", r.code, r.stderr)
	}
	if m := resumeRE.FindStringSubmatch(r.stderr); m == nil || m[1] == "0" {
		t.Errorf("get after a kill kept nothing: %s", r.stderr)
	}
	unchanged(t, "get after a kill (compared with the source)", filepath.Join(dir, "killed", "f"), mustRead(t, filepath.Join(dir, "f")))
}

// seed PATH --torrent T serves PATH even when T names its data otherwise,
// and says so; a file of the torrent's name beside it is not touched.
// PATH that is not T's data is refused by name.
func TestSeedServesPathUnderTorrentsName(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, dir, map[string]int{"f50": 500_000, "share/a.bin": 300_000, "share/b/c": 1000})
	if r := shoal(t, dir, nil, "create", "f50", "-o", "f50.torrent", "--piece-length", "64k"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent", "--piece-length", "64k"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	want := mustRead(t, filepath.Join(dir, "f50"))
	if err := os.Rename(filepath.Join(dir, "f50"), filepath.Join(dir, "big64")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "share"), filepath.Join(dir, "copy")); err != nil {
		t.Fatal(err)
	}
	// A decoy under the torrent's name, as big as the real data.
	decoy := bytes.Repeat([]byte{0xd5}, len(want))
	if err := os.WriteFile(filepath.Join(dir, "f50"), decoy, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ path, torrent, name string }{
		{"big64", "f50.torrent", "f50"},
		{"copy", "share.torrent", "share"},
	} {
		seed := start(t, dir, "seed", tc.path, "--torrent", tc.torrent, "--no-dht", "--listen", "127.0.0.1:0")
		addr := seed.field(t, "listening")
		if note := "seeding " + tc.path + " as " + tc.name + " (the torrent's name)"; !strings.Contains(seed.errText(), note) {
			t.Errorf("seed %s: no %q on stderr: %s", tc.path, note, seed.errText())
		}
		out := "dl-" + tc.name
		r := shoal(t, dir, nil, "get", tc.torrent, "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
		if r.code != 0 {
			t.Fatalf("get %s from the seed of %s: exit %d: %s", tc.torrent, tc.path, r.code, r.stderr)
		}
		sameFiles(t, filepath.Join(dir, tc.path), filepath.Join(dir, out, tc.name))
		seed.stop(t, syscall.SIGTERM)
	}
	unchanged(t, "seeding big64", filepath.Join(dir, "f50"), decoy)

	r := shoal(t, dir, nil, "seed", "f50", "--torrent", "share.torrent", "--no-dht", "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "describes a folder") {
		t.Errorf("seed a file with a folder's torrent: exit %d, %q", r.code, r.stderr)
	}
	r = shoal(t, dir, nil, "seed", "f50", "--torrent", "f50.torrent", "--no-dht", "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "no piece of f50 matches f50.torrent") {
		t.Errorf("seed the decoy: exit %d, %q; want 1 naming it", r.code, r.stderr)
	}
}
