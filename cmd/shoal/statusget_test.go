package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A plain get (no --seed) answers kill -USR1 while it downloads, which is
// when a user asking why it is slow needs the dump: the torrent still
// downloading, the picker with pieces missing, the seeder among the peers.
// The download then finishes as usual, its stdout untouched by the dump.
func TestStatusDumpDuringDownload(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "src"), map[string]int{"big": 4 << 20})
	torrent := filepath.Join(dir, "big.torrent")
	seed := start(t, filepath.Join(dir, "src"), "seed", "big", "--listen", "127.0.0.1:0", "--no-dht",
		"--save-torrent", torrent, "--piece-length", "256k", "--max-upload-rate", "1M")
	addr := seed.field(t, "listening")

	get := start(t, dir, "get", torrent, "-o", filepath.Join(dir, "dl"), "--peer", addr, "--no-dht",
		"--listen", "127.0.0.1:0", "--timeout", "30s")
	waitErr(t, get, `first piece:`, 10*time.Second)
	get.cmd.Process.Signal(syscall.SIGUSR1)
	dump := waitErr(t, get, `(?s)shoal status at .*peers: 1 .*\n    `+regexp.QuoteMeta(addr)+` +SH0100 +out `, 5*time.Second)
	for _, want := range []string{
		`(?m)^torrent "big"$`,
		`(?m)^  state: downloading$`,
		`(?m)^  picker: [1-9]\d* of 16 pieces missing, `,
		`(?m)^  choker: `,
		`(?m)^  address book: `,
	} {
		if !regexp.MustCompile(want).MatchString(dump) {
			t.Errorf("get's dump lacks %s:\n%s", want, dump)
		}
	}
	if code := get.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("get after the dump: exit %d: %s", code, get.errText())
	}
	if strings.Contains(get.outText(), "shoal status") {
		t.Errorf("the dump went to stdout:\n%s", get.outText())
	}
	if _, err := os.Stat(filepath.Join(dir, "dl", "big")); err != nil {
		t.Fatal(err)
	}
}
