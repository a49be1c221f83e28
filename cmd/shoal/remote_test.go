package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/v1test"
)

// remoteTorrent is one entry of `shoal remote list --json`.
type remoteTorrent struct {
	ID          int     `json:"id"`
	Hash        string  `json:"hash"`
	Name        string  `json:"name"`
	Status      string  `json:"status"`
	PercentDone float64 `json:"percent_done"`
	Size        int64   `json:"size"`
	Dir         string  `json:"dir"`
}

// shoal remote against a real transmission-daemon 3.00 with auth: the
// commands speak Transmission's RPC as Transmission itself answers it.
// The shoal daemon's own answers are the RPC package's tests'.
func TestRemoteAgainstTransmissionDaemon(t *testing.T) {
	dir := content(t)
	if r := shoal(t, dir, nil, "create", "data", "--format", "v1", "--piece-length", "16k"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	d := v1test.StartTransmissionDaemon(t, dir, "alice", "pw")
	auth := filepath.Join(t.TempDir(), "auth")
	os.WriteFile(auth, []byte("alice:pw\n"), 0o600)
	remote := func(args ...string) result {
		t.Helper()
		return shoal(t, dir, nil, append([]string{"remote"}, append(args, "--rpc", d.RPC, "--auth", auth)...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		r := remote(args...)
		if r.code != 0 {
			t.Fatalf("remote %v: %d %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	list := func() []remoteTorrent { t.Helper(); return remoteList(t, must) }
	files := func(args ...string) string {
		t.Helper()
		return must(append([]string{"files", "1"}, args...)...)
	}
	matches := func(what, out string, res ...string) {
		t.Helper()
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: no %q in\n%s", what, re, out)
			}
		}
	}

	// Flags after the argument, as everywhere in shoal.
	out := must("add", "data.torrent", "--only", "docs/*", "--paused")
	hash := field(out, "hash")
	if field(out, "id") != "1" || field(out, "name") != "data" || len(hash) != 40 {
		t.Fatalf("add:\n%s", out)
	}
	matches("files after --only", files(),
		`(?m)^0\s+\d+%\s+Normal\s+No\s+.*data/big.bin$`, `(?m)^1\s+\d+%\s+Normal\s+Yes\s+.*data/docs/read me.txt$`)
	matches("--want all", files("--want", "all"), `(?m)^0\s+\d+%\s+Normal\s+Yes\s+.*big.bin$`)
	matches("--skip 0,2", files("--skip", "0,2"), `(?m)^0 .*No .*big.bin$`, `(?m)^1 .*Yes .*read me.txt$`, `(?m)^2 .*No .*empty$`)
	// Transmission checks the data it finds even for a paused torrent:
	// stopped means once that is over.
	ts := list()
	for deadline := time.Now().Add(10 * time.Second); len(ts) == 1 && strings.Contains(ts[0].Status, "erif") && time.Now().Before(deadline); ts = list() {
		time.Sleep(50 * time.Millisecond)
	}
	if len(ts) != 1 || ts[0].Hash != hash || ts[0].Status != "Stopped" || ts[0].Name != "data" {
		t.Fatalf("list: %+v", ts)
	}
	matches("list", must("list"), `(?m)^ID\s+Done\s+Size`, `(?m)^1\s+\d+%\s.*Stopped\s+data$`)

	if out := must("start", hash); strings.TrimSpace(out) != "started 1 data" {
		t.Fatalf("start: %q", out)
	}
	// The data is in the download folder: Transmission checks it and
	// seeds the one file wanted.
	deadline := time.Now().Add(10 * time.Second)
	for ts := list(); ts[0].Status != "Seeding"; ts = list() {
		if time.Now().After(deadline) {
			t.Fatalf("not seeding: %+v", ts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	matches("info", must("info", "1"), `(?m)^id:\s+1$`, `(?m)^hash:\s+`+hash+`$`, `(?m)^status:\s+Seeding$`,
		`(?m)^done:\s+100%`, `(?m)^magnet:\s+magnet:\?xt=urn:btih:`+hash)
	if out := must("stop", "1"); strings.TrimSpace(out) != "stopped 1 data" {
		t.Fatalf("stop: %q", out)
	}
	if out := must("verify", "1"); strings.TrimSpace(out) != "verifying 1 data" {
		t.Fatalf("verify: %q", out)
	}

	magnet := "magnet:?xt=urn:btih:" + strings.Repeat("7e", 20) + "&dn=other"
	other := filepath.Join(dir, "other")
	if out := must("add", magnet, "--paused", "-o", other); field(out, "id") != "2" {
		t.Fatalf("add magnet:\n%s", out)
	}
	if ts := list(); len(ts) != 2 || ts[1].Dir != other || ts[1].Name != "other" {
		t.Fatalf("magnet with -o: %+v", ts)
	}
	r := remote("add", magnet)
	if r.code != 0 || field(r.stdout, "id") != "2" || !strings.Contains(r.stderr, "already has this torrent (id 2)") {
		t.Fatalf("add the magnet again: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// Errors: one line, exit 1 for what failed, 2 for what was mistyped.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"stop", "99"}, 1, "has no torrent 99"},
		{[]string{"start", strings.Repeat("0", 40)}, 1, "has no torrent 0000"},
		{[]string{"stop", "x1"}, 2, "neither a torrent ID"},
		{[]string{"files", "1", "--want", "5"}, 2, "has 3 files"},
		{[]string{"add", magnet, "--only", "*.txt"}, 2, "a magnet does not carry"},
		{[]string{"add", "data.torrent", "--only", "nothing*"}, 2, "matches no file"},
		{[]string{"add", "missing.torrent"}, 2, "missing.torrent"},
		{[]string{"add", "data.torrent", "-o", "rel/dir"}, 2, "absolute folder"},
	} {
		r := remote(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("remote %v: %d %q, want %d %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("alice:nope\n"), 0o600)
	if r := shoal(t, dir, nil, "remote", "list", "--rpc", d.RPC, "--auth", bad); r.code != 1 || !strings.Contains(r.stderr, `refused user "alice"`) {
		t.Errorf("wrong password: %d %q", r.code, r.stderr)
	}
	if r := shoal(t, dir, nil, "remote", "list", "--rpc", d.RPC); r.code != 1 || !strings.Contains(r.stderr, "wants a user name and password") {
		t.Errorf("no auth: %d %q", r.code, r.stderr)
	}

	if out := must("remove", "2"); strings.TrimSpace(out) != "removed 2 other" {
		t.Fatalf("remove: %q", out)
	}
	if out := must("remove", "--delete-data", "1"); strings.TrimSpace(out) != "removed with data 1 data" {
		t.Fatalf("remove --delete-data: %q", out)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(dir, "data", "docs", "read me.txt"))
		if ts := list(); len(ts) == 0 && os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after remove --delete-data: %+v, data: %v", list(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A daemon that is not there is said so, with where it was looked for.
func TestRemoteUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, args := range [][]string{{"list", "--rpc", addr}, {"stop", "1", "--rpc", "http://" + addr + "/transmission/rpc"}} {
		r := shoal(t, t.TempDir(), nil, append([]string{"remote"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "daemon unreachable at http://"+addr+"/transmission/rpc") || !strings.Contains(r.stderr, "connection refused") {
			t.Errorf("remote %v: %d %q", args, r.code, r.stderr)
		}
	}
	if r := shoal(t, t.TempDir(), nil, "remote"); r.code != 2 || !strings.Contains(r.stderr, "missing subcommand") {
		t.Errorf("remote alone: %d %q", r.code, r.stderr)
	}
}

// remoteList is `shoal remote list --json`, run through must, decoded.
func remoteList(t *testing.T, must func(...string) string) []remoteTorrent {
	t.Helper()
	var ts []remoteTorrent
	out := must("list", "--json")
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return ts
}
