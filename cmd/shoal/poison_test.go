package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/rogue"
	"github.com/shoal-p2p/shoal/piece"
)

// bannedRE finds the ban in the summary `get` prints on success.
var bannedRE = regexp.MustCompile(`(?m)^done: .*; banned 1 peer\(s\) for bad data`)

var doneRE = regexp.MustCompile(`(?m)^done: .*downloaded (\d+) bytes \((\d+) wasted\) in `)

// doneFigures returns the downloaded and wasted bytes of p's done: line.
func doneFigures(t *testing.T, name string, p *proc) (downloaded, wasted int64) {
	t.Helper()
	m := doneRE.FindStringSubmatch(p.errText())
	if m == nil {
		t.Fatalf("%s: no done: line:\n%s", name, p.errText())
	}
	downloaded, _ = strconv.ParseInt(m[1], 10, 64)
	wasted, _ = strconv.ParseInt(m[2], 10, 64)
	return downloaded, wasted
}

// readMeta parses a .torrent written by `shoal seed --save-torrent`.
func readMeta(t *testing.T, path string) *piece.MetaInfo {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := piece.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// One peer serves corrupted blocks to everyone: every downloader catches
// it through the merkle tree, bans it, reports the bytes it wasted on it,
// and finishes with correct data from the honest seeder and each other.
func TestPoisonAtScale(t *testing.T) {
	const downloaders = 4
	dir := t.TempDir()
	src := filepath.Join(dir, "share")
	randomFiles(t, src, map[string]int{"a.bin": 6 << 20, "b.bin": 2<<20 + 12345})
	tr := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	url := tr.base + "/announce"
	// The honest seeder is slow next to the poisoner, so every downloader
	// is offered plenty of poison before it could do without it.
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url,
		"--save-torrent", "share.torrent", "--piece-length", "64k", "--max-upload-rate", "2M")
	seedAddr := seed.field(t, "listening")
	m := readMeta(t, filepath.Join(dir, "share.torrent"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := rogue.Options{Trackers: []string{url}, MaxUploadRate: 16 << 20}
	poisoner, err := rogue.StartPoisoner(ctx, m, src, filepath.Join(dir, "poison"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer poisoner.Close()

	began := time.Now()
	var gets []*proc
	for i := range downloaders {
		gets = append(gets, start(t, dir, "get", "share.torrent", "-o", fmt.Sprintf("dl%d", i),
			"--peer", poisoner.Addr().String(), "--peer", seedAddr, "-t", url,
			"--no-dht", "--listen", "127.0.0.1:0", "--max-upload-rate", "2M",
			"--timeout", "40s"))
	}
	var totalWasted int64
	for i, g := range gets {
		name := fmt.Sprintf("downloader %d", i)
		if code := g.wait(t, 45*time.Second); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, g.errText())
		}
		sameFiles(t, src, filepath.Join(dir, fmt.Sprintf("dl%d", i), "share"))
		log := g.errText()
		// The only liar in the swarm: exactly one ban, of the poisoner.
		if !bannedRE.MatchString(log) {
			t.Errorf("%s does not report banning the poisoner:\n%s", name, log)
		}
		downloaded, wasted := doneFigures(t, name, g)
		if wasted == 0 {
			t.Errorf("%s reports no wasted bytes though it was offered poison:\n%s", name, log)
		}
		if downloaded-wasted < m.Info.TotalLength {
			t.Errorf("%s: downloaded %d bytes, %d wasted: less than the %d it holds", name, downloaded, wasted, m.Info.TotalLength)
		}
		t.Logf("%s: downloaded %d bytes, %d wasted (%.1f%%)", name, downloaded, wasted, 100*float64(wasted)/float64(downloaded))
		totalWasted += wasted
	}
	ps := poisoner.Stats()
	t.Logf("all done in %s; poisoner served %d bytes, downloaders wasted %d", time.Since(began).Round(time.Millisecond), ps.Uploaded, totalWasted)
	if ps.Uploaded == 0 {
		t.Fatal("the poisoner served nothing: the test proved nothing")
	}
}
