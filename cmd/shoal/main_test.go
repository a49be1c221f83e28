package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shoalBin is the binary under test, built once: the CLI is tested as the
// real process users run, exit codes included.
var shoalBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-cli-test")
	if err != nil {
		panic(err)
	}
	shoalBin = filepath.Join(dir, "shoal")
	// Built before XDG_CACHE_HOME moves: the go command keeps its build
	// cache there too, and an empty one would rebuild everything each run.
	if out, err := exec.Command("go", "build", "-o", shoalBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	// Resume records of seed and DHT tables go to the user cache: keep the
	// test processes' in a folder of their own.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	// Every shoal the tests start listens on loopback unless a test says
	// otherwise: the default, 0.0.0.0, would let port mapping and local
	// discovery reach the machine's real network.
	os.Setenv("SHOAL_LISTEN", "127.0.0.1:0")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// shoal runs the binary in dir with args and the given extra environment.
func shoal(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(shoalBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r := result{code, out.String(), errb.String()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("shoal %v crashed:\n%s", args, r.stderr)
	}
	if code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 && !strings.Contains(strings.Join(args, " "), "--log-level") {
		t.Errorf("shoal %v: a failure should print one line, got:\n%s", args, r.stderr)
	}
	return r
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + size)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// content makes a folder "data" with a multi-piece file, a small file and
// an empty one.
func content(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "big.bin"), 300000)
	writeFile(t, filepath.Join(dir, "data", "docs", "read me.txt"), 1000)
	writeFile(t, filepath.Join(dir, "data", "empty"), 0)
	return dir
}

func field(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			return v
		}
	}
	return ""
}

func TestCreateInfoVerify(t *testing.T) {
	dir := content(t)
	r := shoal(t, dir, nil, "create", "data", "-t", "http://127.0.0.1:6969/announce", "--piece-length", "64k", "--comment", "hello")
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	hash := field(r.stdout, "info-hash")
	magnet := field(r.stdout, "magnet")
	if len(hash) != 64 || magnet != "magnet:?xt=urn:btmh:1220"+hash+"&dn=data&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce" {
		t.Fatalf("create printed:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "data.torrent")); err != nil {
		t.Fatalf("default output: %v", err)
	}

	r = shoal(t, dir, nil, "info", "data.torrent", "--json")
	var info struct {
		Name        string   `json:"name"`
		InfoHash    string   `json:"info_hash"`
		PieceLength int64    `json:"piece_length"`
		TotalSize   int64    `json:"total_size"`
		Trackers    []string `json:"trackers"`
		Private     bool     `json:"private"`
		Magnet      string   `json:"magnet"`
		Files       []struct {
			Path []string `json:"path"`
			Size int64    `json:"size"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("info --json: %v\n%s", err, r.stdout)
	}
	if info.Name != "data" || info.InfoHash != hash || info.PieceLength != 64<<10 || info.TotalSize != 301000 ||
		len(info.Files) != 3 || strings.Join(info.Files[1].Path, "/") != "docs/read me.txt" || info.Files[1].Size != 1000 ||
		len(info.Trackers) != 1 || info.Private || info.Magnet != magnet {
		t.Fatalf("info --json: %+v", info)
	}
	r = shoal(t, dir, nil, "info", "data.torrent")
	if r.code != 0 || !strings.Contains(r.stdout, hash) || !strings.Contains(r.stdout, "docs/read me.txt") {
		t.Fatalf("info: %d\n%s", r.code, r.stdout)
	}

	if r = shoal(t, dir, nil, "verify", "data.torrent"); r.code != 0 || !strings.HasPrefix(r.stdout, "OK data") {
		t.Fatalf("verify intact: %d %q %q", r.code, r.stdout, r.stderr)
	}

	big := filepath.Join(dir, "data", "big.bin")
	data, _ := os.ReadFile(big)
	data[200000] ^= 1 // piece 3 at 64 KiB pieces
	os.WriteFile(big, data, 0o644)
	r = shoal(t, t.TempDir(), nil, "verify", filepath.Join(dir, "data.torrent"), "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "data/big.bin: piece 3 (bytes 196608-262143) does not match") {
		t.Fatalf("verify flipped byte: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data[200000] ^= 1
	os.WriteFile(big, data[:100000], 0o644)
	r = shoal(t, dir, nil, "verify", "data.torrent")
	if r.code != 1 || !strings.Contains(r.stdout, "data/big.bin: size 100000, want 300000") {
		t.Fatalf("verify truncated: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.Remove(filepath.Join(dir, "data", "empty"))
	r = shoal(t, dir, nil, "verify", "data.torrent")
	if r.code != 1 || !strings.Contains(r.stdout, "data/empty: missing") {
		t.Fatalf("verify missing: %d\n%s", r.code, r.stdout)
	}
}

// Flags may follow the arguments, as users of git and go expect, and mean
// the same as before them.
func TestFlagsInAnyOrder(t *testing.T) {
	dir := content(t)
	a := shoal(t, dir, nil, "create", "-o", "a.torrent", "--piece-length", "16k", "--private", "data")
	b := shoal(t, dir, nil, "create", "data", "--private", "-o", "b.torrent", "--piece-length=16k")
	if a.code != 0 || b.code != 0 || a.stdout == "" {
		t.Fatalf("create: %v %v", a, b)
	}
	if field(a.stdout, "info-hash") != field(b.stdout, "info-hash") {
		t.Fatalf("flag order changed the torrent:\n%s\n%s", a.stdout, b.stdout)
	}
	for _, f := range []string{"a.torrent", "b.torrent"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("-o ignored: %v", err)
		}
	}
	r := shoal(t, dir, nil, "info", "--json", "a.torrent")
	r2 := shoal(t, dir, nil, "info", "a.torrent", "--json")
	if r.stdout != r2.stdout || !strings.Contains(r.stdout, `"private": true`) {
		t.Fatalf("info flag order:\n%s\n%s", r.stdout, r2.stdout)
	}
}

func TestEnvironmentFlags(t *testing.T) {
	dir := content(t)
	r := shoal(t, dir, []string{"SHOAL_OUTPUT=env.torrent", "SHOAL_PIECE_LENGTH=32k"}, "create", "data")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "env.torrent")); err != nil {
		t.Fatal("SHOAL_OUTPUT ignored")
	}
	if r := shoal(t, dir, nil, "info", "--json", "env.torrent"); !strings.Contains(r.stdout, `"piece_length": 32768`) {
		t.Fatalf("SHOAL_PIECE_LENGTH ignored:\n%s", r.stdout)
	}
}

func TestMagnetAndHashInfo(t *testing.T) {
	const h = "c2519e86248b9da3c237a3d527ea7bef57b2d46b72f3cab924ba9bb567840a38"
	for _, arg := range []string{h, "urn:btmh:1220" + h, "magnet:?xt=urn:btmh:1220" + h + "&dn=x&x.pe=127.0.0.1:6881"} {
		r := shoal(t, t.TempDir(), nil, "info", "--json", arg)
		var out map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out["info_hash"] != h || out["files"] != nil {
			t.Fatalf("info %s: %d %s %s", arg, r.code, r.stdout, r.stderr)
		}
	}
}

func TestBadUsageExitsTwo(t *testing.T) {
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	os.WriteFile(filepath.Join(dir, "garbage.torrent"), []byte("d4:infoi1ee"), 0o644)
	os.WriteFile(filepath.Join(dir, "truncated.torrent"), []byte("d4:info"), 0o644)
	cases := map[string][]string{
		"no args":              {"create"},
		"stray argument":       {"create", "data", "extra"},
		"stray argument info":  {"info", "data.torrent", "extra"},
		"missing path":         {"create", "nope"},
		"bad piece length":     {"create", "data", "--piece-length", "3000"},
		"unparsable size":      {"create", "data", "--piece-length", "lots"},
		"unknown flag":         {"create", "data", "--bogus"},
		"unknown command":      {"frobnicate"},
		"bad magnet":           {"info", "magnet:?xt=urn:btmh:1114abcd"},
		"bad hash":             {"info", strings.Repeat("z", 64)},
		"missing torrent":      {"info", "missing.torrent"},
		"garbage torrent":      {"info", "garbage.torrent"},
		"truncated torrent":    {"verify", "truncated.torrent"},
		"verify not a folder":  {"verify", "data.torrent", "--dir", "data.torrent"},
		"path traversal fixes": {"info", "../../testdata/torrents/evil-traversal.torrent"},
		"bad log level":        {"--log-level", "loud", "info", "data.torrent"},
	}
	for name, args := range cases {
		if name == "path traversal fixes" {
			wd, _ := os.Getwd()
			args = []string{"info", filepath.Join(wd, "..", "..", "testdata", "torrents", "evil-traversal.torrent")}
		}
		r := shoal(t, dir, nil, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: ") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line", name, r.code, r.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"create", "info", "verify"} {
		r := shoal(t, t.TempDir(), nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "shoal "+cmd) {
			t.Errorf("%s --help: %d %q", cmd, r.code, r.stdout)
		}
	}
	if r := shoal(t, t.TempDir(), nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "verify") {
		t.Errorf("--help: %d %q", r.code, r.stdout)
	}
}
