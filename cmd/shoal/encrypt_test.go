package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
	"github.com/shoal-p2p/shoal/internal/v1test"
)

// shoal seeds and shoal gets under each pair of --encryption policies that
// tells something apart: encrypted both ways, the fallback of prefer to a
// peer that has it off, and require against off failing with a clear
// message rather than a plaintext connection.
func TestEncryptionPolicyPairs(t *testing.T) {
	cases := []struct {
		seed, get string // "" leaves the flag out: the default
		enc       int    // encrypted peers on the done: line; -1: get fails
	}{
		{"", "", 1},
		{"require", "require", 1},
		{"off", "", 0}, // prefer falls back
		{"", "off", 0},
		{"off", "require", -1},
		{"require", "off", -1},
	}
	for _, tc := range cases {
		name := "seed_" + or(tc.seed, "default") + "_get_" + or(tc.get, "default")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := content(t)
			args := []string{"seed", "data", "--listen", "127.0.0.1:0", "--no-dht", "--piece-length", "64k"}
			if tc.seed != "" {
				args = append(args, "--encryption", tc.seed)
			}
			seed := start(t, dir, args...)
			addr := seed.field(t, "listening")
			magnet := seed.field(t, "magnet")
			out := t.TempDir()
			args = []string{"get", magnet, "--no-dht", "--listen", "127.0.0.1:0", "-o", out, "--timeout", "4s"}
			if tc.get != "" {
				args = append(args, "--encryption", tc.get)
			}
			// Started, not run: a failing get prints its waiting lines too.
			get := start(t, out, args...)
			code := get.wait(t, 20*time.Second)
			r := result{code: code, stderr: get.errText()}
			if tc.enc < 0 {
				// The magnet's metadata is what get waits for: it names
				// the peer and why it failed, in one line.
				if r.code != 1 || !strings.Contains(r.stderr, addr) || strings.Contains(r.stderr, "done:") {
					t.Fatalf("exit %d, want 1 naming %s:\n%s", r.code, addr, r.stderr)
				}
				if tc.get == "require" && !strings.Contains(r.stderr, "MSE") {
					t.Errorf("the failure does not say that MSE was refused:\n%s", r.stderr)
				}
				// The seeder saw a connection its policy refused: plaintext
				// when it requires MSE; MSE, no plaintext handshake, when
				// it has encryption off.
				want := "against the encryption policy"
				if tc.seed == "off" {
					want = "bad handshake"
				}
				seed.cmd.Process.Signal(syscall.SIGUSR1)
				waitErr(t, seed, `(?m)^  refused connections: .*`+want+` [1-9]`, 5*time.Second)
				return
			}
			if r.code != 0 {
				t.Fatalf("get: exit %d:\n%s", r.code, r.stderr)
			}
			sameFiles(t, filepath.Join(dir, "data"), filepath.Join(out, "data"))
			want := regexp.MustCompile(`(?m)^done: .*; (\d+) peers, (\d+) encrypted`)
			m := want.FindStringSubmatch(r.stderr)
			if m == nil || m[2] != string(rune('0'+tc.enc)) || m[1] == "0" {
				t.Errorf("done: line: want %d encrypted peers:\n%s", tc.enc, r.stderr)
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// The progress line, the status dump and the done: line count encrypted
// peers, as they happen.
func TestEncryptedPeersShown(t *testing.T) {
	dir := content(t)
	seed := start(t, dir, "seed", "data", "--listen", "127.0.0.1:0", "--no-dht", "--piece-length", "16k")
	magnet := seed.field(t, "magnet")
	out := t.TempDir()
	// Slowed so that a progress line (every 5 s off a terminal) comes out
	// before the end.
	get := start(t, out, "get", magnet, "--no-dht", "--listen", "127.0.0.1:0", "--max-download-rate", "32k", "--timeout", "30s")
	waitErr(t, get, `(?m)^progress: .*, 1 peers \(1 encrypted\), ETA`, 15*time.Second)
	seed.cmd.Process.Signal(syscall.SIGUSR1)
	dump := waitErr(t, seed, `(?m)^  peers: 1 \(1 encrypted; `, 5*time.Second)
	if !regexp.MustCompile(`(?m)^    127\.0\.0\.1:\d+ +SH0100 +in .* [a-zA-Z1]*E[a-zA-Z1]* +\d+s$`).MatchString(dump) {
		t.Errorf("the dump's peer line has no E flag:\n%s", dump)
	}
	if !strings.Contains(dump, "encryption: prefer") {
		t.Errorf("the dump does not name the policy:\n%s", dump)
	}
	if code := get.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	if !regexp.MustCompile(`(?m)^done: .*; 1 peers, 1 encrypted`).MatchString(get.errText()) {
		t.Errorf("done: line:\n%s", get.errText())
	}
}

// A policy that is not one is a usage error, from the flag or from the
// environment, before anything is hashed or fetched.
func TestEncryptionFlagBad(t *testing.T) {
	dir := content(t)
	r := shoal(t, dir, nil, "seed", "data", "--listen", "127.0.0.1:0", "--no-dht", "--encryption", "maybe")
	if r.code != 2 || !strings.Contains(r.stderr, "--encryption") || strings.Contains(r.stdout, "info-hash") {
		t.Fatalf("exit %d, want 2 naming --encryption:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = shoal(t, dir, []string{"SHOAL_ENCRYPTION=rc4"}, "get", "0123456789abcdef0123456789abcdef01234567", "--no-dht", "--peer", "127.0.0.1:9")
	if r.code != 2 || !strings.Contains(r.stderr, "--encryption") || strings.Contains(r.stderr, "fetching") {
		t.Fatalf("exit %d, want 2 naming --encryption:\n%s", r.code, r.stderr)
	}
}

// libtorrent 2.0 with encryption forced both ways (out_enc_policy and
// in_enc_policy pe_forced, RC4 only) downloads from a shoal that requires
// it, and shoal from it: neither side could have spoken plaintext.
func TestLibtorrentForcedEncryption(t *testing.T) {
	lttest.Require(t)
	t.Run("libtorrent gets", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
		seed := start(t, dir, "seed", "pack", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "pack.torrent", "--piece-length", "64k", "--encryption", "require")
		addr := seed.field(t, "listening")
		out := filepath.Join(dir, "lt-out")
		lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "--encryption", "forced", "get", "pack.torrent", out, "--peer", addr, "--timeout", "60"))
		if code := lt.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("libtorrent get: exit %d: %s\nshoal: %s", code, lt.errText(), seed.errText())
		}
		sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(out, "pack"))
	})
	t.Run("shoal gets", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		randomFiles(t, filepath.Join(dir, "pack"), interopFiles)
		if r := shoal(t, dir, nil, "create", "pack", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
			t.Fatal(r.stderr)
		}
		lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "--encryption", "forced", "seed", "pack.torrent", dir))
		addr := lt.field(t, "listening")
		lt.field(t, "seeding")
		out := filepath.Join(dir, "shoal-out")
		get := start(t, dir, "get", "pack.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s", "--encryption", "require")
		if code := get.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("shoal get: exit %d: %s\nlibtorrent: %s", code, get.errText(), lt.errText())
		}
		sameFiles(t, filepath.Join(dir, "pack"), filepath.Join(out, "pack"))
		if !regexp.MustCompile(`(?m)^done: .*; 1 peers, 1 encrypted`).MatchString(get.errText()) {
			t.Errorf("done: line does not count libtorrent as encrypted:\n%s", get.errText())
		}
	})
	// Forced against off: no plaintext slips through either way.
	t.Run("shoal off gets nothing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		randomFiles(t, filepath.Join(dir, "pack"), map[string]int{"a.bin": 100_000, "b.txt": 10})
		if r := shoal(t, dir, nil, "create", "pack", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
			t.Fatal(r.stderr)
		}
		lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "--encryption", "forced", "seed", "pack.torrent", dir))
		addr := lt.field(t, "listening")
		lt.field(t, "seeding")
		get := start(t, dir, "get", "pack.torrent", "-o", filepath.Join(dir, "out"), "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "4s", "--encryption", "off")
		r := result{code: get.wait(t, 20*time.Second), stderr: get.errText()}
		if r.code != 1 || strings.Contains(r.stderr, "done:") {
			t.Fatalf("exit %d, want 1 (libtorrent refuses plaintext):\n%s", r.code, r.stderr)
		}
	})
}

// transmission-cli 3.00 with "encryption": 2 (required: it refuses any
// peer that does not speak MSE) downloads a v1 torrent from shoal, which
// dials it (Transmission drops loopback peers a tracker hands it), with
// shoal's default policy: prefer. With shoal's encryption off it gets
// nothing, which shows the setting holds.
func TestTransmissionRequiredEncryption(t *testing.T) {
	for _, enc := range []string{"prefer", "off"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "pack")
			randomFiles(t, src, map[string]int{"movie.bin": 700_000, "extras/a.txt": 12_345})
			if r := shoal(t, dir, nil, "create", "pack", "--format", "v1", "-o", "pack.torrent", "--piece-length", "32k"); r.code != 0 {
				t.Fatalf("create --format v1: exit %d: %s", r.code, r.stderr)
			}
			c := v1test.StartTransmissionWith(t, filepath.Join(dir, "pack.torrent"), filepath.Join(dir, "transmission"), false, map[string]any{"encryption": 2})
			c.WaitReady(t, 15*time.Second)
			args := []string{"seed", "pack", "--torrent", "pack.torrent", "--listen", "127.0.0.1:0", "--no-dht", "--peer", c.Addr.String()}
			if enc != "prefer" {
				args = append(args, "--encryption", enc)
			}
			seed := start(t, dir, args...)
			if enc == "off" {
				if err := c.WaitDone(8 * time.Second); err == nil {
					t.Fatalf("transmission requiring encryption got the data from shoal with encryption off:\n%s", seed.errText())
				}
				return
			}
			if err := c.WaitDone(40 * time.Second); err != nil {
				t.Fatalf("%v\nshoal seed: %s", err, seed.errText())
			}
			sameFiles(t, src, filepath.Join(c.Dir, "pack"))
		})
	}
}
