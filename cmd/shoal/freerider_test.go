package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/rogue"
)

// partialCopy copies the pieces of src for which keep is true into dst, a
// sparse file of the same size: a download that got that far.
func partialCopy(t *testing.T, src, dst string, pieceLen int64, keep func(int) bool) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, pieceLen)
	for p := 0; int64(p)*pieceLen < fi.Size(); p++ {
		if !keep(p) {
			continue
		}
		n, err := in.ReadAt(buf, int64(p)*pieceLen)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if _, err := out.WriteAt(buf[:n], int64(p)*pieceLen); err != nil {
			t.Fatal(err)
		}
	}
}

// A free-rider, a peer that never unchokes anyone, is owed only the
// optimistic slot by each contributor once it has taken a piece from it
// without giving back (swarm/choker's rule), so it finishes later than the
// contributors. Regular slots go by what peers give between rechokes
// (RechokeInterval, 10 s); the optimistic slot rotates every 30 s, and
// with 12 contributors against 4 regular slots and one optimistic, the
// free-rider wins few optimistic draws. The seeder is slow (64 KiB/s, a
// third of a contributor) so that its slots, ranked by upload rate and
// blind to free-riding, matter little. Contributors keep seeding when
// done, as seeds serve anyone: the free-rider's lag comes from
// tit-for-tat alone, not from being left alone with the seeder.
func TestFreeRiderFinishesLast(t *testing.T) {
	const (
		contributors = 12
		size         = 6 << 20
		pieceLen     = 64 << 10
		upRate       = 192 << 10
		seedRate     = 64 << 10
		havePercent  = 25
	)
	seedRand := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seedRand, 0))
	t.Logf("random seed %d", seedRand)

	dir := t.TempDir()
	src := filepath.Join(dir, "share")
	randomFiles(t, src, map[string]int{"a.bin": size})
	tr := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	url := tr.base + "/announce"
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url,
		"--save-torrent", "share.torrent", "--piece-length", "64k", "--max-upload-rate", strconv.Itoa(seedRate))
	seedAddr := seed.field(t, "listening")
	m := readMeta(t, filepath.Join(dir, "share.torrent"))
	// A single file in a folder makes a single-file torrent: -o DIR holds a.bin.
	name := filepath.Join(m.Info.DiskPath(0)...)

	// The contributors start with their own random quarter of the data, as
	// peers do once the first copy is out: they have pieces to trade from
	// the first second, which is when tit-for-tat ranks peers by what they
	// give. Every piece is with some contributor, so none waits on the slow
	// seeder alone. The free-rider starts empty, as a newcomer would.
	keep := make([]map[int]bool, contributors)
	for i := range keep {
		keep[i] = map[int]bool{}
		for _, p := range rng.Perm(m.Info.NumPieces)[:m.Info.NumPieces*havePercent/100] {
			keep[i][p] = true
		}
	}
	for p := range m.Info.NumPieces {
		held := false
		for i := range keep {
			held = held || keep[i][p]
		}
		if !held {
			keep[rng.IntN(contributors)][p] = true
		}
	}
	for i := range contributors {
		partialCopy(t, filepath.Join(src, "a.bin"), filepath.Join(dir, fmt.Sprintf("dl%d", i), name), pieceLen, func(p int) bool { return keep[i][p] })
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gets []*proc
	var starts []time.Time
	for i := range contributors {
		starts = append(starts, time.Now())
		args := []string{"get", "share.torrent", "-o", fmt.Sprintf("dl%d", i), "-t", url,
			"--peer", seedAddr, "--no-dht", "--listen", "127.0.0.1:0", "--max-upload-rate", strconv.Itoa(upRate),
			"--timeout", "45s", "--seed"}
		gets = append(gets, start(t, dir, args...))
	}
	frStart := time.Now()
	fr, err := rogue.StartFreeRider(ctx, m, filepath.Join(dir, "free"), rogue.Options{
		Peers: []netip.AddrPort{netip.MustParseAddrPort(seedAddr)}, Trackers: []string{url}, MaxUploadRate: upRate,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	frHad := fr.Stats().BytesDone

	finished := make([]time.Duration, contributors)
	var frDone time.Duration
	var frAtMedian float64 = -1
	deadline := time.Now().Add(45 * time.Second)
	for {
		n := 0
		for i, g := range gets {
			if finished[i] == 0 && strings.Contains(g.errText(), "done:") {
				finished[i] = time.Since(starts[i])
			}
			if finished[i] != 0 {
				n++
			}
		}
		if frDone == 0 {
			select {
			case <-fr.Done():
				frDone = time.Since(frStart)
			default:
			}
		}
		if frAtMedian < 0 && n >= (contributors+1)/2 {
			s := fr.Stats()
			frAtMedian = float64(s.BytesDone-frHad) / float64(s.BytesTotal-frHad)
		}
		if n == contributors && frDone != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 45s: %d of %d contributors done, free-rider done: %v, %+v", n, contributors, frDone != 0, fr.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range gets {
		sameFiles(t, src, filepath.Join(dir, fmt.Sprintf("dl%d", i)))
	}
	sameFiles(t, src, filepath.Join(dir, "free"))
	var mean time.Duration
	for _, d := range finished {
		mean += d / time.Duration(contributors)
	}
	sorted := slices.Clone(finished)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	var r []string
	for _, d := range sorted {
		r = append(r, d.Round(100*time.Millisecond).String())
	}
	t.Logf("contributors finished at %s (mean %s, median %s); free-rider at %s (%.2fx mean, %+.1fs), had %.0f%% of its missing part when half the contributors were done; free-rider uploaded %d",
		strings.Join(r, " "), mean.Round(100*time.Millisecond), median.Round(100*time.Millisecond), frDone.Round(100*time.Millisecond),
		frDone.Seconds()/mean.Seconds(), (frDone - mean).Seconds(), 100*frAtMedian, fr.Stats().Uploaded)
	if up := fr.Stats().Uploaded; up != 0 {
		t.Errorf("the free-rider uploaded %d bytes", up)
	}
	if frDone <= mean {
		t.Fatalf("the free-rider finished at %s, no later than the contributors' mean %s", frDone, mean)
	}
}
