package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Churn: a third of the downloaders are killed (SIGKILL, so nothing is
// saved on the way out) at random points of their download, and one of
// them is restarted on the same folder. Every downloader still running
// finishes with correct data, and the restarted one resumes from what it
// had verified instead of fetching it again.
func TestChurn(t *testing.T) {
	const (
		downloaders = 6
		size        = 12 << 20
		pieceLen    = 64 << 10
	)
	seedRand := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seedRand, 0))
	t.Logf("random seed %d", seedRand)

	dir := t.TempDir()
	src := filepath.Join(dir, "share")
	randomFiles(t, src, map[string]int{"a.bin": size - 300_000, "b.bin": 300_000})
	tr := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	url := tr.base + "/announce"
	// Everyone is held to 2 MiB/s up: no download can finish before the
	// seeder has sent one whole copy, 6 s, so kills within the first 4 s
	// always land mid-download.
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", url,
		"--save-torrent", "share.torrent", "--piece-length", "64k", "--max-upload-rate", "2M")
	seed.field(t, "listening")

	get := func(i int) *proc {
		return start(t, dir, "get", "share.torrent", "-o", fmt.Sprintf("dl%d", i), "-t", url,
			"--no-dht", "--listen", "127.0.0.1:0", "--max-upload-rate", "2M", "--timeout", "40s")
	}
	began := time.Now()
	gets := make([]*proc, downloaders)
	for i := range gets {
		gets[i] = get(i)
	}

	// Kill a third, each at its own random moment; restart the first of
	// them a moment later.
	victims := rng.Perm(downloaders)[:downloaders/3]
	restarted := victims[0]
	killAt := map[int]time.Duration{}
	for _, v := range victims {
		killAt[v] = 1500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	}
	for len(killAt) > 0 {
		next, at := -1, time.Duration(0)
		for v, d := range killAt {
			if next < 0 || d < at {
				next, at = v, d
			}
		}
		delete(killAt, next)
		time.Sleep(time.Until(began.Add(at)))
		if strings.Contains(gets[next].errText(), "done:") {
			t.Fatalf("downloader %d finished before its kill at %s: the swarm is not bandwidth-bound", next, at)
		}
		gets[next].cmd.Process.Signal(syscall.SIGKILL)
		gets[next].wait(t, 5*time.Second)
		t.Logf("killed downloader %d at %s", next, time.Since(began).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	gets[restarted] = get(restarted)
	t.Logf("restarted downloader %d at %s", restarted, time.Since(began).Round(time.Millisecond))

	for i, g := range gets {
		dead := false
		for _, v := range victims {
			dead = dead || (v == i && v != restarted)
		}
		if dead {
			continue
		}
		name := fmt.Sprintf("downloader %d", i)
		if code := g.wait(t, 45*time.Second); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, g.errText())
		}
		sameFiles(t, src, filepath.Join(dir, fmt.Sprintf("dl%d", i), "share"))
		t.Logf("%s done at %s", name, time.Since(began).Round(time.Millisecond))
	}

	// The restarted one kept what it had verified and fetched only the rest:
	// at most one piece more than was missing for each peer it had, which
	// bounds the duplicates of the endgame.
	r := gets[restarted]
	log := r.errText()
	rm := resumeRE.FindStringSubmatch(log)
	if rm == nil {
		t.Fatalf("restarted downloader %d printed no resuming: line, so it kept nothing:\n%s", restarted, log)
	}
	had, _ := strconv.ParseInt(rm[1], 10, 64)
	total, _ := strconv.ParseInt(rm[2], 10, 64)
	if had <= 0 || had >= total {
		t.Fatalf("restarted downloader %d resumed with %d of %d bytes", restarted, had, total)
	}
	downloaded, wasted := doneFigures(t, "restarted downloader", r)
	missing := total - had
	t.Logf("restarted downloader %d: resumed with %d of %d bytes; fetched %d (%d wasted) for the %d missing",
		restarted, had, total, downloaded, wasted, missing)
	if limit := missing + downloaders*pieceLen; downloaded > limit {
		t.Fatalf("restarted downloader fetched %d bytes for %d missing: it fetched again what it had verified", downloaded, missing)
	}
	if downloaded-wasted > missing {
		t.Fatalf("restarted downloader kept %d bytes it fetched, more than the %d missing", downloaded-wasted, missing)
	}
}
