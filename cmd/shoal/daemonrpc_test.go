package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	return startDaemonEnv(t, nil, session, dl, extra...)
}

// startDaemonEnv is startDaemon with env added to the process's
// environment (SHOAL_LOG_LEVEL, say).
func startDaemonEnv(t *testing.T, env []string, session, dl string, extra ...string) *runningDaemon {
	t.Helper()
	args := append([]string{"daemon", "--session", session, "--download-dir", dl,
		"--no-dht", "--no-lsd", "--no-port-map", "--rpc", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(shoalBin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := startCmd(t, t.TempDir(), cmd)
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

// torrentHash is the hashString the daemon gives the .torrent at path.
func torrentHash(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(shoalBin, "info", path, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"magnet": "([^"]+)"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("info --json:\n%s", out)
	}
	return hashString(t, string(m[1]))
}

// twoSeeders starts what the daemon tests download from: a multi-file
// torrent (share.torrent, announced to a test tracker the torrent names)
// and a single file seeded under a magnet that carries its address.
func twoSeeders(t *testing.T, dir string) (torrent, magnet string) {
	t.Helper()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 700_000, "b.bin": 300_000, "c/d.txt": 5000})
	randomFiles(t, filepath.Join(dir, "one"), map[string]int{"solo.bin": 400_000})
	url := announceURL(t)
	// Not super-seeding: it shows a peer one piece at a time, and a
	// peer that does not want the file of that piece would wait on it.
	s1 := start(t, dir, "seed", "share", "--no-dht", "--no-lsd", "--no-port-map", "-t", url, "--piece-length", "64k", "--save-torrent", "share.torrent", "--super-seed=false")
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
	shareHash := torrentHash(t, torrent)
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

	// A v1 torrent's pieces run across files: an unwanted file gets the
	// bytes of the pieces it shares with wanted ones, and nothing else.
	// b.bin (bytes 100,000-399,999 of the torrent) shares piece 1
	// (65,536-131,071) with a.bin and piece 6 (393,216-458,751) with c.bin.
	randomFiles(t, filepath.Join(dir, "v1"), map[string]int{"a.bin": 100_000, "b.bin": 300_000, "c.bin": 100_000})
	url := announceURL(t)
	start(t, dir, "seed", "v1", "--format", "v1", "--piece-length", "64k", "--no-dht", "--no-lsd", "--no-port-map",
		"-t", url, "--save-torrent", "v1.torrent", "--super-seed=false").field(t, "magnet")
	tr("-a", filepath.Join(dir, "v1.torrent"), "-G", "1")
	v1Hash := torrentHash(t, filepath.Join(dir, "v1.torrent"))
	eventually(t, 10*time.Second, done(v1Hash), list)
	for _, f := range []string{"a.bin", "c.bin"} {
		a, _ := os.ReadFile(filepath.Join(dir, "v1", f))
		b, err := os.ReadFile(filepath.Join(dl, "v1", f))
		if err != nil || string(a) != string(b) {
			t.Errorf("v1/%s: differs from the original (%v)", f, err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(dir, "v1", "b.bin"))
	got, err := os.ReadFile(filepath.Join(dl, "v1", "b.bin"))
	if err != nil {
		t.Fatalf("v1/b.bin, which shares boundary pieces: %v", err)
	}
	const head, tail = 131_072 - 100_000, 393_216 - 100_000
	got = append(got, make([]byte, max(0, len(want)-len(got)))...)
	if len(got) != len(want) || string(got[:head]) != string(want[:head]) || string(got[tail:]) != string(want[tail:]) {
		t.Errorf("v1/b.bin: the boundary pieces' bytes are not the original's")
	}
	for i, c := range got[head:tail] {
		if c != 0 {
			t.Fatalf("v1/b.bin holds data at byte %d, in no piece it shares", head+i)
		}
	}
}

// Debian's python3-transmissionrpc 0.11, a client library, against the
// real daemon behind --rpc-auth: add a .torrent and a magnet, see them
// complete, stop, start, remove one and remove the other with its data.
func TestDaemonPythonTransmissionRPC(t *testing.T) {
	t.Parallel()
	if err := exec.Command("/usr/bin/python3", "-c", "import transmissionrpc").Run(); err != nil {
		t.Fatalf("python3-transmissionrpc not importable (run scripts/test-deps.sh): %v", err)
	}
	dir := t.TempDir()
	torrent, magnet := twoSeeders(t, dir)
	auth := filepath.Join(t.TempDir(), "auth")
	os.WriteFile(auth, []byte("alice:s3cret\n"), 0o600)
	dl := filepath.Join(t.TempDir(), "dl")
	d := startDaemon(t, t.TempDir(), dl, "--rpc-auth", auth)
	_, port, _ := strings.Cut(d.hostPort, ":")
	cmd := exec.Command("/usr/bin/python3", "testdata/daemon_transmissionrpc.py", port, "alice", "s3cret", torrent, magnet)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python transmissionrpc: %v\n%s\ndaemon: %s", err, out, d.errText())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var got struct {
		Added   [][]any
		Done    [][]any
		Files   [][]any
		Stopped []string
		Started []string
		Session []any
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	shareHash, soloHash := torrentHash(t, torrent), hashString(t, magnet)
	want := fmt.Sprint([][]any{{1.0, "share", "seeding", 100.0, shareHash}, {2.0, "solo.bin", "seeding", 100.0, soloHash}})
	if fmt.Sprint(got.Added) != fmt.Sprint([][]any{{1.0, shareHash}, {2.0, soloHash}}) || fmt.Sprint(got.Done) != want {
		t.Errorf("added %v, then %v; want %s", got.Added, got.Done, want)
	}
	if fmt.Sprint(got.Files) != fmt.Sprint([][]any{{"share/a.bin", 700000.0, 700000.0, true}, {"share/b.bin", 300000.0, 300000.0, true}, {"share/c/d.txt", 5000.0, 5000.0, true}}) {
		t.Errorf("files: %v", got.Files)
	}
	if fmt.Sprint(got.Stopped) != "[seeding stopped]" || fmt.Sprint(got.Started) != "[seeding seeding]" {
		t.Errorf("stop, start: %v, %v", got.Stopped, got.Started)
	}
	if fmt.Sprint(got.Session) != fmt.Sprint([]any{dl, 16.0}) {
		t.Errorf("session: %v", got.Session)
	}
	// Removed without its data: the data stays, whole; removed with it:
	// gone.
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dl, "share"))
	if _, err := os.Stat(filepath.Join(dl, "solo.bin")); !os.IsNotExist(err) {
		t.Errorf("solo.bin after remove with data: %v", err)
	}
}

// shoal remote, the Go client (daemon/rpc.Client) behind it, against the
// real daemon: add with --only, list, files, stop, start, remove with
// data.
func TestDaemonShoalRemote(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	torrent, magnet := twoSeeders(t, dir)
	dl := filepath.Join(t.TempDir(), "dl")
	d := startDaemon(t, t.TempDir(), dl)
	must := func(args ...string) string {
		t.Helper()
		r := shoal(t, dir, nil, append(append([]string{"remote"}, args...), "--rpc", d.hostPort)...)
		if r.code != 0 {
			t.Fatalf("remote %v: %d %s\ndaemon: %s", args, r.code, r.stderr, d.errText())
		}
		return r.stdout
	}
	list := func() []remoteTorrent { t.Helper(); return remoteList(t, must) }
	out := must("add", torrent, "--only", "a.bin", "--only", "c")
	shareHash := torrentHash(t, torrent)
	if field(out, "id") != "1" || field(out, "name") != "share" || field(out, "hash") != shareHash {
		t.Fatalf("add:\n%s", out)
	}
	if out := must("add", magnet); field(out, "id") != "2" {
		t.Fatalf("add magnet:\n%s", out)
	}
	eventually(t, 15*time.Second, func() bool {
		ts := list()
		return len(ts) == 2 && ts[0].PercentDone == 1 && ts[1].PercentDone == 1
	}, func() string { return must("list") + d.errText() })
	sameFiles(t, filepath.Join(dir, "one"), dl)
	if _, err := os.Stat(filepath.Join(dl, "share", "b.bin")); !os.IsNotExist(err) {
		t.Errorf("b.bin, not in --only, exists: %v", err)
	}
	matches(t, "files", must("files", "1"), `(?m)^1\s+0%\s+Normal\s+No\s+.*share/b.bin$`, `(?m)^2\s+100%\s+Normal\s+Yes\s+.*share/c/d.txt$`)
	if out := must("stop", "2"); strings.TrimSpace(out) != "stopped 2 solo.bin" {
		t.Fatalf("stop: %q", out)
	}
	if ts := list(); ts[1].Status != "Stopped" {
		t.Fatalf("after stop: %+v", ts)
	}
	must("start", "2")
	eventually(t, 5*time.Second, func() bool { return list()[1].Status == "Seeding" }, func() string { return must("list") })
	must("files", "1", "--want", "all")
	eventually(t, 10*time.Second, func() bool { return filesEqual(filepath.Join(dir, "share"), filepath.Join(dl, "share")) },
		func() string { return must("files", "1") })
	matches(t, "info", must("info", "1"), `(?m)^hash:\s+`+shareHash+`$`, `(?m)^status:\s+Seeding$`, `(?m)^done:\s+100%`)
	if out := must("remove", "--delete-data", "1", "2"); !strings.Contains(out, "removed with data 1 share") {
		t.Fatalf("remove: %q", out)
	}
	eventually(t, 5*time.Second, func() bool {
		ents, _ := os.ReadDir(dl)
		return len(list()) == 0 && len(ents) == 0
	}, func() string { return must("list") })
}

// restartState is the part of torrent-get the restart test compares.
type restartState struct {
	ID                      int     `json:"id"`
	Name                    string  `json:"name"`
	HashString              string  `json:"hashString"`
	Status                  int     `json:"status"`
	PercentDone             float64 `json:"percentDone"`
	HaveValid               int64   `json:"haveValid"`
	DownloadedEver          int64   `json:"downloadedEver"`
	TotalSize               int64   `json:"totalSize"`
	PieceSize               int64   `json:"pieceSize"`
	MetadataPercentComplete float64 `json:"metadataPercentComplete"`
	Wanted                  []int   `json:"wanted"`
	ErrorString             string  `json:"errorString"`
}

// states is every torrent's restartState, by hash.
func (d *runningDaemon) states(t *testing.T) map[string]restartState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reply struct{ Torrents []restartState }
	err := d.client.Call(ctx, "torrent-get", map[string]any{"fields": []string{"id", "name", "hashString", "status", "percentDone",
		"haveValid", "downloadedEver", "totalSize", "pieceSize", "metadataPercentComplete", "wanted", "errorString"}}, &reply)
	if err != nil {
		t.Fatalf("torrent-get: %v: %s", err, d.errText())
	}
	m := map[string]restartState{}
	for _, x := range reply.Torrents {
		m[x.HashString] = x
	}
	return m
}

// Transmission's torrent status codes.
const (
	trStopped     = 0
	trChecking    = 2
	trDownloading = 4
	trSeeding     = 6
)

// Five torrents in five states — downloading from a rate-capped seeder,
// seeding, paused, partially selected, and a magnet whose metadata no
// peer has — then kill -9 and a daemon started again on the same session
// folder: each comes back as it was, the download goes on, and what was
// verified before the kill is not fetched again.
func TestDaemonRestartKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "slow"), map[string]int{"slow.bin": 1_500_000})
	randomFiles(t, filepath.Join(dir, "done"), map[string]int{"done.bin": 200_000})
	randomFiles(t, filepath.Join(dir, "paused"), map[string]int{"paused.bin": 300_000})
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 200_000, "b.bin": 300_000, "c.txt": 5000})
	url := announceURL(t)
	seed := func(path string, extra ...string) string {
		p := start(t, dir, append([]string{"seed", path, "--no-dht", "--no-lsd", "--no-port-map", "--piece-length", "32k"}, extra...)...)
		return p.field(t, "magnet")
	}
	const rate = 200_000
	slow := seed(filepath.Join("slow", "slow.bin"), "--max-upload-rate", "200k", "--super-seed=false")
	done := seed(filepath.Join("done", "done.bin"))
	paused := seed(filepath.Join("paused", "paused.bin"))
	seed("share", "-t", url, "--save-torrent", "share.torrent", "--super-seed=false")
	nometa := "magnet:?xt=urn:btih:" + strings.Repeat("5a", 20) + "&dn=nobody"
	h := map[string]string{"slow": hashString(t, slow), "done": hashString(t, done), "paused": hashString(t, paused),
		"share": torrentHash(t, filepath.Join(dir, "share.torrent")), "nometa": strings.Repeat("5a", 20)}

	session := t.TempDir()
	dl := filepath.Join(t.TempDir(), "dl")
	d := startDaemon(t, session, dl)
	ctx := context.Background()
	meta, _ := os.ReadFile(filepath.Join(dir, "share.torrent"))
	for _, a := range []rpc.AddArgs{
		{Filename: slow}, {Filename: done}, {Filename: paused, Paused: true},
		{Metainfo: meta, FilesUnwanted: []int{1}}, {Filename: nometa},
	} {
		if _, err := d.client.Add(ctx, a); err != nil {
			t.Fatalf("add %+v: %v", a, err)
		}
	}
	var before map[string]restartState
	eventually(t, 10*time.Second, func() bool {
		before = d.states(t)
		s := before[h["slow"]]
		return before[h["done"]].Status == trSeeding && before[h["share"]].Status == trSeeding &&
			s.HaveValid >= s.TotalSize/4 && s.HaveValid <= s.TotalSize*3/4
	}, func() string {
		out, _ := exec.Command("transmission-remote", d.hostPort, "-t", "4", "-it").CombinedOutput()
		return fmt.Sprintf("%+v\n%s\n%s", before, out, d.errText())
	})
	if code := d.stop(t, syscall.SIGKILL); code != -1 {
		t.Fatalf("kill -9: exit %d", code)
	}
	atKill := before[h["slow"]]
	t.Logf("killed with %d of %d bytes verified", atKill.HaveValid, atKill.TotalSize)

	d = startDaemon(t, session, dl)
	var after map[string]restartState
	eventually(t, 5*time.Second, func() bool {
		after = d.states(t)
		return len(after) == 5 && after[h["slow"]].Status != trChecking && after[h["share"]].Status != trChecking && after[h["done"]].Status != trChecking
	}, func() string { return fmt.Sprintf("%+v", after) })
	s0 := after[h["slow"]]
	if s0.Status != trDownloading || s0.HaveValid < atKill.HaveValid-rate {
		t.Errorf("the download after the restart: %+v; before the kill: %+v", s0, atKill)
	}
	if x := after[h["done"]]; x.Status != trSeeding || x.PercentDone != 1 {
		t.Errorf("the seed after the restart: %+v", x)
	}
	if x := after[h["share"]]; x.Status != trSeeding || fmt.Sprint(x.Wanted) != "[1 0 1]" {
		t.Errorf("the partial torrent after the restart: %+v", x)
	}
	if x := after[h["nometa"]]; x.Status != trDownloading || x.MetadataPercentComplete != 0 || x.Name != "nobody" {
		t.Errorf("the magnet without metadata after the restart: %+v", x)
	}
	// Paused, it stays so, with its seeder there to download from.
	time.Sleep(time.Second)
	if x := d.states(t)[h["paused"]]; x.Status != trStopped || x.HaveValid != 0 {
		t.Errorf("the paused torrent after the restart: %+v", x)
	}
	if _, err := os.Stat(filepath.Join(dl, "paused.bin")); !os.IsNotExist(err) {
		t.Errorf("the paused torrent's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dl, "share", "b.bin")); !os.IsNotExist(err) {
		t.Errorf("the unwanted file: %v", err)
	}

	var s1 restartState
	eventually(t, 10*time.Second, func() bool { s1 = d.states(t)[h["slow"]]; return s1.Status == trSeeding },
		func() string { return fmt.Sprintf("%+v %s", s1, d.errText()) })
	sameFiles(t, filepath.Join(dir, "slow"), dl)
	// Fetched after the restart: what was missing then, and the pieces
	// in flight as it was read (a few, at most a second's worth).
	fetched, missing := s1.DownloadedEver-s0.DownloadedEver, s0.TotalSize-s0.HaveValid
	t.Logf("after the restart: %d bytes fetched, %d were missing", fetched, missing)
	if fetched > missing+4*s0.PieceSize {
		t.Errorf("fetched %d bytes after the restart, with %d missing: verified pieces fetched again", fetched, missing)
	}
}

// rawRPC sends body to the daemon's RPC as it is, with the given session
// id, Host and credentials ("" for none), and returns the status and
// the answer.
func rawRPC(t *testing.T, d *runningDaemon, body io.Reader, size int64, sid, host, user, pass string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.rpcURL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	if sid != "" {
		req.Header.Set(rpc.SessionIDHeader, sid)
	}
	if host != "" {
		req.Host = host
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("RPC request: %v: %s", err, d.errText())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b)
}

// zeros is an endless body of '0's.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = '0'
	}
	return len(b), nil
}

// Bad input against the real daemon: each answered with its status or an
// error result, the daemon answers on after it, and no file appears
// outside the folders it owns.
func TestDaemonRPCBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 100_000})
	if r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	meta, _ := os.ReadFile(filepath.Join(dir, "share.torrent"))
	auth := filepath.Join(t.TempDir(), "auth")
	os.WriteFile(auth, []byte("alice:s3cret\n"), 0o600)
	root := t.TempDir()
	session, dl, outside := filepath.Join(root, "session"), filepath.Join(root, "dl"), filepath.Join(root, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "x.torrent"), meta, 0o644)
	d := startDaemon(t, session, dl, "--rpc-auth", auth, "--rpc-host", "shoal.example")
	d.client.User, d.client.Password = "alice", "s3cret"
	call := func(body, sid, host, user, pass string) (int, http.Header, string) {
		t.Helper()
		return rawRPC(t, d, strings.NewReader(body), int64(len(body)), sid, host, user, pass)
	}
	const get = `{"method":"session-get"}`

	// Credentials come first: without them nothing, not even the
	// session id, is given away.
	if code, _, _ := call(get, "", "", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _, _ := call(get, "", "", "alice", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, _, _ := call(get, "", "", "mallory", "s3cret"); code != http.StatusUnauthorized {
		t.Errorf("wrong user: %d, want 401", code)
	}
	code, hdr, _ := call(get, "", "", "alice", "s3cret")
	sid := hdr.Get(rpc.SessionIDHeader)
	if code != http.StatusConflict || sid == "" {
		t.Fatalf("no session id: %d %q, want 409 and the id", code, sid)
	}
	if code, _, _ := call(get, "stale", "", "alice", "s3cret"); code != http.StatusConflict {
		t.Errorf("wrong session id: %d, want 409", code)
	}
	ok := func(body string) string {
		t.Helper()
		code, _, out := call(body, sid, "", "alice", "s3cret")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, code, out)
		}
		return out
	}
	if out := ok(get); !strings.Contains(out, `"result":"success"`) {
		t.Fatalf("session-get: %s", out)
	}
	// DNS rebinding: a name that resolves here but is not ours.
	for _, host := range []string{"evil.example", "evil.example:" + strings.Split(d.hostPort, ":")[1]} {
		if code, _, _ := call(get, sid, host, "alice", "s3cret"); code != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", host, code)
		}
	}
	for _, host := range []string{"shoal.example", "localhost:1", d.hostPort} {
		if code, _, out := call(get, sid, host, "alice", "s3cret"); code != http.StatusOK {
			t.Errorf("Host %s (allowed): %d %s", host, code, out)
		}
	}

	// Malformed, unknown.
	if code, _, out := call(`{"method":"session-get",`, sid, "", "alice", "s3cret"); code != http.StatusBadRequest || !strings.Contains(out, "malformed JSON") {
		t.Errorf("malformed JSON: %d %s", code, out)
	}
	if out := ok(`{"method":"rm-rf","arguments":{}}`); !strings.Contains(out, `"result":"method name not recognized"`) {
		t.Errorf("unknown method: %s", out)
	}
	if out := ok(`{"method":"torrent-get","arguments":{"fields":["id","noSuchField"]}}`); !strings.Contains(out, `"result":"success"`) {
		t.Errorf("unknown field (left out, as Transmission does): %s", out)
	}
	if out := ok(`{"method":"torrent-start","arguments":{"ids":{"not":"ids"}}}`); strings.Contains(out, `"result":"success"`) {
		t.Errorf("ids of the wrong type: %s", out)
	}

	// 100 MB, declared and chunked: refused, and the daemon answers on.
	code, _, out := rawRPC(t, d, io.LimitReader(zeros{}, 100<<20), 100<<20, sid, "", "alice", "s3cret")
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("100 MB body: %d %.100s", code, out)
	}
	code, _, out = rawRPC(t, d, io.LimitReader(zeros{}, 100<<20), -1, sid, "", "alice", "s3cret")
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("100 MB chunked body: %d %.100s", code, out)
	}
	if out := ok(get); !strings.Contains(out, `"result":"success"`) {
		t.Fatalf("after the big bodies: %s", out)
	}

	// Paths outside the daemon's folders: by name, through "..", through
	// a link inside the download folder, and as a download folder.
	os.MkdirAll(dl, 0o755)
	os.Symlink(outside, filepath.Join(dl, "link"))
	add := func(args map[string]any) string {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"method": "torrent-add", "arguments": args})
		return ok(string(b))
	}
	for _, args := range []map[string]any{
		{"filename": filepath.Join(outside, "x.torrent")},
		{"filename": filepath.Join(dl, "..", "outside", "x.torrent")},
		{"filename": filepath.Join(dl, "link", "x.torrent")},
		{"filename": "/etc/passwd"},
		{"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": outside},
		{"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": filepath.Join(dl, "link", "sub")},
		{"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": "relative/dir"},
		{"metainfo": "not base64!"},
		{"metainfo": base64.StdEncoding.EncodeToString([]byte("d4:infoi1ee"))},
		{"filename": "http://127.0.0.1:1/x.torrent"},
		{},
	} {
		if out := add(args); strings.Contains(out, `"result":"success"`) {
			t.Errorf("torrent-add %v: %s", args, out)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("the folder outside holds %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dl, "relative")); !os.IsNotExist(err) {
		t.Errorf("a relative download-dir made %v", err)
	}
	if ts := d.torrents(t); len(ts) != 0 {
		t.Fatalf("torrents after refused adds: %+v", ts)
	}

	// A .torrent inside the download folder is fine; the same torrent
	// again is a duplicate, by path, by bytes and by its magnet.
	os.WriteFile(filepath.Join(dl, "share.torrent"), meta, 0o644)
	first := add(map[string]any{"filename": filepath.Join(dl, "share.torrent"), "paused": true})
	if !strings.Contains(first, `"torrent-added"`) {
		t.Fatalf("add inside the download folder: %s", first)
	}
	h := torrentHash(t, filepath.Join(dir, "share.torrent"))
	for _, args := range []map[string]any{
		{"filename": filepath.Join(dl, "share.torrent")},
		{"metainfo": base64.StdEncoding.EncodeToString(meta)},
		{"filename": "magnet:?xt=urn:btih:" + h},
	} {
		if out := add(args); !strings.Contains(out, `"torrent-duplicate":{`) || !strings.Contains(out, `"id":1`) {
			t.Errorf("add again %v: %s", args, out)
		}
	}
	if ts := d.torrents(t); len(ts) != 1 {
		t.Errorf("torrents after the duplicates: %+v", ts)
	}
}
