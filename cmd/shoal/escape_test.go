package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// evilName drives a terminal if printed raw: a colour change, a window
// title (OSC … BEL), a right-to-left override and a newline that starts a
// line of output shoal never wrote.
const evilName = "evil\x1b[31m\x1b]0;pwned\x07\u202ename\nforged line"

// rawControl reports the first terminal-unsafe rune in out, or "".
func rawControl(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "forged line") {
			return "an injected line: " + l
		}
	}
	for _, r := range out {
		if (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
			return fmt.Sprintf("the control character %U", r)
		}
	}
	return ""
}

// outText is everything p printed on stdout so far.
func (p *proc) outText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// noRaw fails the test if any output of a command carries a raw control
// character or an injected line.
func noRaw(t *testing.T, what string, outs ...string) {
	t.Helper()
	for _, out := range outs {
		if bad := rawControl(out); bad != "" {
			t.Errorf("%s printed %s:\n%q", what, bad, out)
		}
	}
}

// A torrent whose names carry terminal escapes and a newline: every
// command that shows them (info, verify, seed, get from the .torrent and
// from a peer's metadata, their errors and debug logs) prints them
// escaped, never raw.
func TestNamesAreEscaped(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, evilName)
	randomFiles(t, share, map[string]int{"in\x1b[2Jner\u009b.bin": 300_000, "ok.txt": 10})
	r := shoal(t, dir, nil, "create", evilName, "-o", "evil.torrent", "--piece-length", "64k", "--comment", "c\x1b[5m\nforged line")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	noRaw(t, "create", r.stdout, r.stderr)
	hash := field(r.stdout, "info-hash")

	r = shoal(t, dir, nil, "info", "evil.torrent")
	noRaw(t, "info", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, `evil\x1b[31m\x1b]0;pwned\a\u202ename\nforged line`) {
		t.Fatalf("info: %d\n%s", r.code, r.stdout)
	}
	r = shoal(t, dir, nil, "info", "--json", "evil.torrent")
	noRaw(t, "info --json", r.stdout, r.stderr)
	var js struct {
		Name    string `json:"name"`
		Comment string `json:"comment"`
		Files   []struct {
			Path []string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || js.Name != evilName || js.Comment != "c\x1b[5m\nforged line" ||
		js.Files[0].Path[0] != "in\x1b[2Jner\u009b.bin" {
		t.Fatalf("info --json no longer gives the exact name back: %v %+v", err, js)
	}

	r = shoal(t, dir, nil, "verify", "evil.torrent")
	noRaw(t, "verify", r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("verify: %d %s", r.code, r.stderr)
	}
	big := filepath.Join(share, "in\x1b[2Jner\u009b.bin")
	data, _ := os.ReadFile(big)
	data[1000] ^= 1
	os.WriteFile(big, data, 0o644)
	r = shoal(t, dir, nil, "verify", "evil.torrent")
	noRaw(t, "verify, bad piece", r.stdout, r.stderr)
	if r.code != 1 || !strings.Contains(r.stdout, `BAD evil\x1b[31m`) {
		t.Fatalf("verify with a bad piece: %d\n%s", r.code, r.stdout)
	}
	data[1000] ^= 1
	os.WriteFile(big, data, 0o644)

	seed := start(t, dir, "seed", evilName, "--torrent", "evil.torrent", "--listen", "127.0.0.1:0", "--no-dht")
	addr := seed.field(t, "listening")
	for _, what := range []string{"evil.torrent", hash} {
		get := start(t, dir, "--log-level", "debug", "get", what, "-o", t.TempDir(), "--peer", addr, "--no-dht",
			"--listen", "127.0.0.1:0", "--timeout", "20s")
		if code := get.wait(t, 25*time.Second); code != 0 {
			t.Fatalf("get %s: exit %d: %s", what, code, get.errText())
		}
		if !strings.Contains(get.errText(), `done: evil\x1b[31m`) {
			t.Errorf("get %s: no escaped done line:\n%s", what, get.errText())
		}
		noRaw(t, "get "+what, get.outText(), get.errText())
	}

	// An error naming a file of the torrent: the data's folder is a file.
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, evilName), nil, 0o644)
	get := start(t, dir, "get", "evil.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "10s")
	if code := get.wait(t, 15*time.Second); code == 0 {
		t.Fatalf("get into a folder that is a file succeeded: %s", get.errText())
	}
	noRaw(t, "get error", get.errText())
	if !strings.Contains(get.errText(), `evil\x1b[31m`) {
		t.Errorf("the error does not name the file: %s", get.errText())
	}

	// The status dump names the torrent too: noRaw below checks it.
	seed.cmd.Process.Signal(syscall.SIGUSR1)
	waitErr(t, seed, `(?m)^torrent "evil\\\\x1b\[31m`, 5*time.Second)

	seed.stop(t, os.Interrupt)
	noRaw(t, "seed", seed.outText(), seed.errText())
}
