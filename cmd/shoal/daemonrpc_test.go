package main

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/daemon/rpc"
)

// runningDaemon is a `shoal daemon` process with its RPC on a free
// loopback port.
type runningDaemon struct {
	*proc
	// rpcURL is the RPC's URL as the daemon printed it; hostPort its
	// address, as transmission-remote takes it.
	rpcURL, hostPort string
	session, dl      string
	client           *rpc.Client
}

// startDaemon runs `shoal daemon` on session, downloading into dl, with
// its RPC on a free loopback port, local sources only, and extra flags.
func startDaemon(t *testing.T, session, dl string, extra ...string) *runningDaemon {
	t.Helper()
	args := append([]string{"daemon", "--session", session, "--download-dir", dl,
		"--no-dht", "--no-lsd", "--no-port-map", "--rpc", "127.0.0.1:0"}, extra...)
	p := start(t, t.TempDir(), args...)
	u := p.field(t, "rpc")
	pu, err := url.Parse(u)
	if err != nil || pu.Path != rpc.Path || pu.Port() == "" || pu.Port() == "0" {
		t.Fatalf("rpc line %q: want the bound port and %s", u, rpc.Path)
	}
	return &runningDaemon{proc: p, rpcURL: u, hostPort: pu.Host, session: session, dl: dl, client: &rpc.Client{URL: u}}
}

// torrents is torrent-get of the given fields (rpc.TorrentFields and the
// files if none), failing the test on an error.
func (d *runningDaemon) torrents(t *testing.T, fields ...string) []rpc.Torrent {
	t.Helper()
	if len(fields) == 0 {
		fields = append(append([]string{}, rpc.TorrentFields...), "files", "fileStats")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := d.client.Torrents(ctx, nil, fields...)
	if err != nil {
		t.Fatalf("torrent-get: %v: %s", err, d.errText())
	}
	return ts
}

// torrent is the torrent with hash h, or nil.
func (d *runningDaemon) torrent(t *testing.T, h string) *rpc.Torrent {
	t.Helper()
	for _, x := range d.torrents(t) {
		if x.HashString == h {
			return &x
		}
	}
	return nil
}

// eventually polls cond for up to d, failing with what() when it never
// holds.
func eventually(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// matches fails the test for each pattern not found in out.
func matches(t *testing.T, what, out string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("%s: no %q in\n%s", what, re, out)
		}
	}
}

// hashString is the 40-hex hashString the daemon gives a torrent whose
// magnet is mg: the v1 hash, or the v2 one truncated to 20 bytes.
func hashString(t *testing.T, mg string) string {
	t.Helper()
	if i := strings.Index(mg, "urn:btih:"); i >= 0 {
		return strings.ToLower(mg[i+9 : i+49])
	}
	if i := strings.Index(mg, "urn:btmh:1220"); i >= 0 {
		return strings.ToLower(mg[i+13 : i+53])
	}
	t.Fatalf("no hash in %q", mg)
	return ""
}

// twoSeeders starts what the daemon tests download from: a multi-file
// torrent (share.torrent, announced to a test tracker the torrent names)
// and a single file seeded under a magnet that carries its address.
func twoSeeders(t *testing.T, dir string) (torrent, magnet string) {
	t.Helper()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 700_000, "b.bin": 300_000, "c/d.txt": 5000})
	randomFiles(t, filepath.Join(dir, "one"), map[string]int{"solo.bin": 400_000})
	url := announceURL(t)
	s1 := start(t, dir, "seed", "share", "--no-dht", "--no-lsd", "--no-port-map", "-t", url, "--piece-length", "64k", "--save-torrent", "share.torrent")
	s1.field(t, "magnet")
	s2 := start(t, dir, "seed", filepath.Join("one", "solo.bin"), "--no-dht", "--no-lsd", "--no-port-map")
	return filepath.Join(dir, "share.torrent"), s2.field(t, "magnet")
}

// Debian's transmission-remote 3.00 drives a real `shoal daemon`, which
// downloads from real shoal seeders found through a tracker and a
// magnet's peer address: add a .torrent with a file unselected and a
// magnet, list, details, files, peers, trackers, stop, start, select the
// file again, remove, and remove with data.
func TestDaemonTransmissionRemote(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("transmission-remote"); err != nil {
		t.Fatal("transmission-remote not found: run scripts/test-deps.sh")
	}
	dir := t.TempDir()
	torrent, magnet := twoSeeders(t, dir)
	dl := filepath.Join(t.TempDir(), "dl")
	d := startDaemon(t, t.TempDir(), dl)
	tr := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("transmission-remote", append([]string{d.hostPort}, args...)...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "Error:") {
			t.Fatalf("transmission-remote %v: %v\n%s\ndaemon: %s", args, err, out, d.errText())
		}
		return string(out)
	}
	shareHash := ""
	if out, err := exec.Command(shoalBin, "info", torrent, "--json").Output(); err != nil {
		t.Fatal(err)
	} else if m := regexp.MustCompile(`"magnet": "([^"]+)"`).FindSubmatch(out); m != nil {
		shareHash = hashString(t, string(m[1]))
	} else {
		t.Fatalf("info --json:\n%s", out)
	}
	soloHash := hashString(t, magnet)

	// The .torrent with its second file (b.bin) not wanted: -G applies
	// to the add, as transmission-remote sends it in torrent-add.
	matches(t, "-a torrent", tr("-a", torrent, "-G", "1"), `success`)
	matches(t, "-a magnet", tr("-a", magnet), `success`)
	done := func(h string) func() bool {
		return func() bool { x := d.torrent(t, h); return x != nil && x.PercentDone == 1 && x.LeftUntilDone == 0 }
	}
	list := func() string { return tr("-l") }
	eventually(t, 15*time.Second, func() bool { return done(shareHash)() && done(soloHash)() }, list)
	matches(t, "-l", list(), `(?m)^\s+1\s+100%.*\s+share$`, `(?m)^\s+2\s+100%.*\s+solo\.bin$`, `(?m)^Sum:`)
	sameFiles(t, filepath.Join(dir, "one"), dl)
	for _, f := range []string{"a.bin", "c/d.txt"} {
		a, _ := os.ReadFile(filepath.Join(dir, "share", f))
		b, err := os.ReadFile(filepath.Join(dl, "share", f))
		if err != nil || string(a) != string(b) {
			t.Errorf("share/%s: differs from the original (%v)", f, err)
		}
	}
	// A v2 torrent's files start on piece boundaries: an unwanted file
	// shares no piece and is not created at all.
	if _, err := os.Stat(filepath.Join(dl, "share", "b.bin")); !os.IsNotExist(err) {
		t.Errorf("unwanted share/b.bin exists: %v", err)
	}

	matches(t, "-i", tr("-t", "1", "-i"), `Name: share`, `Hash: `+shareHash, `State: (Seeding|Idle)`,
		`Percent Done: 100%`, `Total size: 1.00 MB \(705.0 kB wanted\)`, `Location: `+regexp.QuoteMeta(dl))
	matches(t, "-if", tr("-t", "1", "-if"), `share \(3 files\)`,
		`0:\s+100% Normal\s+Yes\s+700.0 kB\s+share/a.bin`,
		`1:\s+0% Normal\s+No\s+300.0 kB\s+share/b.bin`,
		`2:\s+100% Normal\s+Yes\s+5.00 kB\s+share/c/d.txt`)
	matches(t, "-it", tr("-t", "1", "-it"), `Tracker 0: http://127\.0\.0\.1:\d+`)
	// The magnet's seeder, connected to fetch the data, is still there.
	matches(t, "-ip", tr("-t", "2", "-ip"), `(?m)^127\.0\.0\.1\s+`)
	matches(t, "-si", tr("-si"), `Daemon version: shoal `, `RPC version: 16`, `Download directory: `+regexp.QuoteMeta(dl))

	// Stop, start.
	tr("-t", "2", "-S")
	eventually(t, 5*time.Second, func() bool { return regexp.MustCompile(`(?m)^\s+2\s+100%.*Stopped\s+solo\.bin$`).MatchString(list()) }, list)
	tr("-t", soloHash, "-s")
	eventually(t, 5*time.Second, func() bool {
		return regexp.MustCompile(`(?m)^\s+2\s+100%.*(Seeding|Idle)\s+solo\.bin$`).MatchString(list())
	}, list)

	// Wanted again: b.bin arrives, and the torrent is whole.
	tr("-t", "1", "-g", "1")
	eventually(t, 10*time.Second, func() bool {
		return filesEqual(filepath.Join(dir, "share"), filepath.Join(dl, "share"))
	}, func() string { return tr("-t", "1", "-if") + d.errText() })
	matches(t, "-if after -g", tr("-t", "1", "-if"), `1:\s+100% Normal\s+Yes\s+300.0 kB\s+share/b.bin`)
	// And unwanted once more, now on a running torrent (torrent-set).
	tr("-t", "1", "-G", "2")
	matches(t, "-if after -G", tr("-t", "1", "-if"), `2:\s+100% Normal\s+No\s+5.00 kB\s+share/c/d.txt`)

	// Remove keeps the data; remove-and-delete takes the torrent's own
	// files and nothing else in the folder.
	other := filepath.Join(dl, "not-a-torrent.txt")
	os.WriteFile(other, []byte("keep me"), 0o644)
	tr("-t", "2", "-r")
	tr("-t", "1", "--remove-and-delete")
	eventually(t, 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dl, "share"))
		return len(d.torrents(t)) == 0 && os.IsNotExist(err)
	}, func() string { return list() + d.errText() })
	sameFiles(t, filepath.Join(dir, "one"), dl)
	if b, err := os.ReadFile(other); err != nil || string(b) != "keep me" {
		t.Errorf("a file beside the torrent's: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(dl); len(ents) != 2 {
		t.Errorf("download folder after the removals: %v", ents)
	}
}
