package rpc

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-p2p/shoal/daemon"
	"github.com/shoal-p2p/shoal/internal/v1test"
)

// fieldLog records the torrent-get fields a tool asks for.
type fieldLog struct {
	mu     sync.Mutex
	fields map[string]bool
}

// serveLogged serves the handler on a loopback listener, recording the
// fields of every torrent-get that reaches it.
func serveLogged(t *testing.T, ctrl daemon.Controller, opts Options) (*httptest.Server, *fieldLog) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewHandler(ctrl, opts)
	fl := &fieldLog{fields: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, DefaultMaxBody))
		var req struct {
			Method    string
			Arguments struct{ Fields []string }
		}
		if json.Unmarshal(body, &req) == nil && strings.HasPrefix(req.Method, "torrent") {
			fl.mu.Lock()
			for _, f := range req.Arguments.Fields {
				fl.fields[f] = true
			}
			fl.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, fl
}

// checkKnown fails the test for each field a tool asked that torrent-get
// does not answer, and logs the list.
func (fl *fieldLog) checkKnown(t *testing.T, tool string) {
	t.Helper()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var all []string
	for f := range fl.fields {
		all = append(all, f)
		if fields[norm(f)] == nil {
			t.Errorf("%s asked for torrent-get field %q, which shoal does not answer", tool, f)
		}
	}
	sort.Strings(all)
	t.Logf("%s asked for %d fields: %s", tool, len(all), strings.Join(all, " "))
}

// Debian's transmission-remote 3.00, the tool users have, against the
// handler: its listing, details, files, peers and trackers show what the
// session holds, and its commands reach the session.
func TestTransmissionRemote(t *testing.T) {
	v1test.Require(t, "transmission-remote")
	ctrl := newTestCtrl(t.TempDir())
	a := ctrl.addSample("alpha")
	ctrl.addSample("beta")
	srv, fl := serveLogged(t, ctrl, Options{Auth: NewCredentials("alice", "pw")})
	host := srv.Listener.Addr().String()
	remote := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("transmission-remote", append([]string{host, "-n", "alice:pw"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("transmission-remote %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	matches := func(what, out string, res ...string) {
		t.Helper()
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: no %q in\n%s", what, re, out)
			}
		}
	}

	// Wrong credentials: refused, and it says so.
	out, err := exec.Command("transmission-remote", host, "-n", "alice:nope", "-l").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}

	matches("-l", remote("-l"), `(?m)^\s+1\s+50%\s+100.0 kB\s+20 sec\s+1.0\s+5.0\s+0.5\s+Downloading\s+alpha$`, `(?m)^\s+2 .*beta$`, `Sum:`)
	matches("-i", remote("-t", "1", "-i"),
		`Hash: `+a.Hash, `State: Downloading`, `Percent Done: 50.0%`, `ETA: 20 seconds`,
		`Have: 100.0 kB \(100.0 kB verified\)`, `Total size: 200.0 kB \(200.0 kB wanted\)`,
		`Ratio: 0.5`, `Corrupt DL: 16.38 kB`, `Peers: connected to 1, uploading to 0, downloading from 1`,
		`Comment: a comment`, `Piece Count: 4`, `Upload Limit: 50 kB/s`, `Download Limit: Unlimited`)
	matches("-if", remote("-t", "1", "-if"), `alpha \(2 files\)`, `0:\s+43% Normal\s+Yes\s+150.0 kB\s+alpha/a.bin`, `1:\s+68% High\s+Yes\s+50.00 kB\s+alpha/b.txt`)
	matches("-ip", remote("-t", "1", "-ip"), `127.0.0.1\s+D\?E\s+50.0\s+5.0\s+0.0\s+shoal 1.0`)
	matches("-it", remote("-t", "1", "-it"), `Tracker 0: http://127.0.0.1:6969`)
	matches("-si", remote("-si"), `Daemon version: shoal test`, `RPC version: 16`, `Download directory: `+regexp.QuoteMeta(ctrl.dir), `Listenport: 51413`)
	matches("-st", remote("-st"), `Downloaded: 1.00 kB`, `Uploaded:\s+2.50 kB`)

	// Files: -G/-g reach the session as unwanted/wanted indexes.
	remote("-t", "1", "-G", "1")
	matches("-G 1", remote("-t", "1", "-if"), `1:\s+68% High\s+No\s+50.00 kB`)
	remote("-t", "1", "-g", "1", "-pl", "0")
	if ch := ctrl.lastChange(); !reflect.DeepEqual(ch.Wanted, []int{1}) || !reflect.DeepEqual(ch.PriorityLow, []int{0}) {
		t.Errorf("-g 1 -pl 0: %+v", ch)
	}
	remote("-t", "1", "-d", "300")
	if ch := ctrl.lastChange(); ch.DownLimit == nil || *ch.DownLimit != 300000 {
		t.Errorf("-d 300: %+v", ch)
	}

	// Stop, start, remove, by ID and by hash.
	remote("-t", "1", "-S")
	if got := ctrl.lastCall(); got != "stop [1]" {
		t.Errorf("-S: %s", got)
	}
	matches("-l stopped", remote("-l"), `(?m)^\s+1\s+50%.*Stopped\s+alpha$`)
	remote("-t", a.Hash, "-s")
	if got := ctrl.lastCall(); got != "start [1]" {
		t.Errorf("-s by hash: %s", got)
	}
	remote("-t", "1", "-v")
	if got := ctrl.lastCall(); got != "verify [1]" {
		t.Errorf("-v: %s", got)
	}

	// Adding: a magnet, and a .torrent the tool reads and sends as
	// metainfo.
	hash := strings.Repeat("c3", 20)
	matches("-a magnet", remote("-a", "magnet:?xt=urn:btih:"+hash+"&dn=mag"), `success`)
	torrent := filepath.Join(t.TempDir(), "x.torrent")
	meta, _ := v1Torrent("x.bin", testData(1000))
	os.WriteFile(torrent, meta, 0o644)
	// --start-paused is a session setting (start-added-torrents) that
	// the next add follows.
	matches("-a file", remote("--start-paused", "-a", torrent), `success`)
	if adds := ctrl.addRequests(); len(adds) != 2 || adds[0].Link == "" || !bytes.Equal(adds[1].Metainfo, meta) || !adds[1].Paused {
		t.Fatalf("adds: %+v", adds)
	}
	// transmission-remote 3.00 says "success" to a duplicate too; the
	// session must not have a second copy.
	n := ctrl.count()
	remote("-a", "magnet:?xt=urn:btih:"+hash+"&dn=mag")
	if ctrl.count() != n {
		t.Errorf("duplicate magnet added again: %d torrents, had %d", ctrl.count(), n)
	}
	matches("--start-paused", remote("-si"), `Autostart added torrents: No`)
	remote("--no-start-paused")
	matches("--no-start-paused", remote("-si"), `Autostart added torrents: Yes`)

	remote("-t", "2", "-r")
	if got := ctrl.lastCall(); got != "remove(delete=false) [2]" {
		t.Errorf("-r: %s", got)
	}
	remote("-t", "1", "--remove-and-delete")
	if got := ctrl.lastCall(); got != "remove(delete=true) [1]" {
		t.Errorf("--remove-and-delete: %s", got)
	}
	matches("-l after", remote("-l"), `(?m)^\s+3 .*mag$`)
	if out := remote("-l"); strings.Contains(out, "alpha") {
		t.Errorf("removed torrent listed:\n%s", out)
	}
	fl.checkKnown(t, "transmission-remote")
}

// python3-transmissionrpc 0.11, Debian's Python client, which asks
// torrent-get for every field of the RPC version it is told.
func TestPythonTransmissionRPC(t *testing.T) {
	v1test.Require(t, "/usr/bin/python3")
	if err := exec.Command("/usr/bin/python3", "-c", "import transmissionrpc").Run(); err != nil {
		t.Fatalf("python3-transmissionrpc not importable (run scripts/test-deps.sh): %v", err)
	}
	ctrl := newTestCtrl(t.TempDir())
	a := ctrl.addSample("alpha")
	srv, fl := serveLogged(t, ctrl, Options{Auth: NewCredentials("alice", "pw")})
	port := srv.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	meta, _ := v1Torrent("x.bin", testData(1000))
	torrent := filepath.Join(t.TempDir(), "x.torrent")
	os.WriteFile(torrent, meta, 0o644)
	cmd := exec.Command("/usr/bin/python3", "testdata/transmissionrpc_client.py", port, "alice", "pw", torrent)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python transmissionrpc: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:], &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	if adds := ctrl.addRequests(); ctrl.hashOf(3) == "" || len(adds) < 2 || !bytes.Equal(adds[1].Metainfo, meta) || !adds[1].Paused {
		t.Fatalf("add_torrent with data: %+v", adds)
	}
	want := map[string]any{
		"torrents":    []any{[]any{1.0, "alpha", "downloading", 50.0, a.Hash, 0.5, 20.0}},
		"files":       []any{[]any{"alpha/a.bin", 150000.0, 65536.0, true, "normal"}, []any{"alpha/b.txt", 50000.0, 34464.0, true, "high"}},
		"peers":       1.0,
		"trackers":    []any{"http://127.0.0.1:6969/announce"},
		"session":     []any{ctrl.dir, "shoal test", 16.0},
		"stopped":     "stopped",
		"magnet":      []any{2.0, "mag"},
		"metainfo":    []any{3.0, ctrl.hashOf(3)},
		"unwanted":    []any{true, false},
		"uploadLimit": 100.0,
		"left":        []any{1.0, 3.0},
		"free":        123456789.0,
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if !ctrl.hasCall("remove(delete=true) [2]") {
		t.Errorf("remove with delete_data not received")
	}
	fl.checkKnown(t, "python3-transmissionrpc")
}

// Transmission 3.00's web UI names the fields it asks for in its
// torrent.js; each of them must be answered.
func TestTransmissionWebUIFields(t *testing.T) {
	const js = "/usr/share/transmission/web/javascript/torrent.js"
	v1test.Require(t, "transmission-daemon")
	src, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("Transmission's web UI (package transmission-common): %v", err)
	}
	lists := regexp.MustCompile(`(?s)Torrent\.Fields\.\w+ = \[(.*?)\];`).FindAllSubmatch(src, -1)
	if len(lists) < 4 {
		t.Fatalf("%s: found %d field lists, the file changed?", js, len(lists))
	}
	fl := &fieldLog{fields: map[string]bool{}}
	for _, l := range lists {
		for _, m := range regexp.MustCompile(`'(\w[\w-]*)'`).FindAllSubmatch(l[1], -1) {
			fl.fields[string(m[1])] = true
		}
	}
	fl.checkKnown(t, "Transmission 3.00's web UI")
}
