package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitErr waits until p's stderr matches re and returns it.
func waitErr(t *testing.T, p *proc, re string, d time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for {
		s := p.errText()
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no %s on stderr after %v:\n%s", p.cmd.Args[1:], re, d, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill -USR1 makes a running seed, and get --seed, print the swarm's status
// dump on stderr, as often as asked, and they still stop cleanly after.
func TestStatusDumpOnSIGUSR1(t *testing.T) {
	dir := content(t)
	seed := start(t, dir, "seed", "data", "--listen", "127.0.0.1:0", "--no-dht", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	magnet := seed.field(t, "magnet")

	// Something that is not BitTorrent knocks first, for the dump to count.
	// Not plaintext BitTorrent, it is taken for MSE (encryption is
	// preferred), which gives up once its padding limit is past.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("x", 1000) + "\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()

	out := t.TempDir()
	get := start(t, out, "get", magnet, "--no-dht", "--listen", "127.0.0.1:0", "--seed")
	waitErr(t, get, `(?m)^done: `, 15*time.Second)
	if _, err := os.Stat(filepath.Join(out, "data", "big.bin")); err != nil {
		t.Fatal(err)
	}

	seed.cmd.Process.Signal(syscall.SIGUSR1)
	dump := waitErr(t, seed, `(?s)shoal status at .*peers: 1 .*\n    127\.0\.0\.1:\d+ +SH0100 +in .*\n`, 5*time.Second)
	for _, want := range []string{
		`(?m)^client: listening on ` + regexp.QuoteMeta(addr) + `, peer id [0-9a-f]{40} \(SH0100\)$`,
		`(?m)^  refused connections: bad handshake 1$`,
		`(?m)^torrent "data"$`,
		`(?m)^  picker: all \d+ pieces verified; `,
		`(?m)^  choker: `,
		`(?m)^  address book: `,
	} {
		if !regexp.MustCompile(want).MatchString(dump) {
			t.Errorf("seed's dump lacks %s", want)
		}
	}
	seed.cmd.Process.Signal(syscall.SIGUSR1)
	waitErr(t, seed, `(?s)(shoal status at .*){2}`, 5*time.Second)

	// get, seeding now, shows the seeder as the peer it dialed.
	get.cmd.Process.Signal(syscall.SIGUSR1)
	waitErr(t, get, `(?m)^    `+regexp.QuoteMeta(addr)+` +SH0100 +out `, 5*time.Second)

	if t.Failed() {
		t.Logf("seed's stderr:\n%s", seed.errText())
	}
	for _, p := range []*proc{get, seed} {
		if code := p.stop(t, os.Interrupt); code != 0 {
			t.Errorf("%v exited %d after the dumps: %s", p.cmd.Args[1:], code, p.errText())
		}
	}
	if strings.Count(seed.errText(), "shoal status at") != 2 {
		t.Errorf("seed printed %d dumps for 2 signals", strings.Count(seed.errText(), "shoal status at"))
	}
}

// The dump is documented where users look for it.
func TestStatusDumpDocumented(t *testing.T) {
	for _, cmd := range []string{"seed", "get"} {
		if r := shoal(t, t.TempDir(), nil, cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "kill -USR1 PID prints a status dump") {
			t.Errorf("%s --help: %d %q", cmd, r.code, r.stdout)
		}
	}
}
