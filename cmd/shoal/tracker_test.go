package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/tracker"
)

// runningTracker is a `shoal tracker` process and its base URL.
type runningTracker struct {
	*proc
	base string // http://HOST:PORT
}

// startTracker runs `shoal tracker --listen 127.0.0.1:0 args...` and waits
// for its listening line.
func startTracker(t *testing.T, args ...string) *runningTracker {
	t.Helper()
	p := start(t, t.TempDir(), append([]string{"tracker", "--listen", "127.0.0.1:0"}, args...)...)
	addr := p.field(t, "listening")
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("listening on %q: want the bound port", addr)
	}
	return &runningTracker{proc: p, base: "http://" + addr}
}

func hash(b byte) tracker.InfoHash {
	var h tracker.InfoHash
	for i := range h {
		h[i] = b ^ byte(i)
	}
	return h
}

func peerID(n byte) tracker.PeerID {
	var p tracker.PeerID
	copy(p[:], "-TT0001-xxxxxxxxxxx")
	p[19] = n
	return p
}

func TestTrackerAnnounceScrapeStatsAndStop(t *testing.T) {
	rt := startTracker(t, "--interval", "10m")
	var c tracker.Client
	ctx := context.Background()
	h := hash(1)
	if _, err := c.Announce(ctx, rt.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(1), Port: 6881, Left: 0}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, rt.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(2), Port: 6882, Left: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 10*time.Minute || len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 6881 || r.Complete != 1 || r.Incomplete != 1 {
		t.Fatalf("announce answer %+v", r)
	}
	sc, err := c.Scrape(ctx, rt.base+"/announce", h)
	if err != nil || sc[h].Complete != 1 || sc[h].Incomplete != 1 {
		t.Fatalf("scrape %v %v", sc, err)
	}
	resp, err := http.Get(rt.base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st tracker.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Peers != 2 || st.Announces != 2 || st.Scrapes != 1 || st.IntervalSeconds != 600 {
		t.Fatalf("stats %+v %v", st, err)
	}
	start := time.Now()
	if code := rt.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d; want 0", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopping took %v", d)
	}
}

func TestTrackerSIGINTExitsZero(t *testing.T) {
	rt := startTracker(t)
	if code := rt.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("SIGINT: exit %d; want 0", code)
	}
}

func TestTrackerPrivateKeysReloadOnHUP(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("alpha\n"), 0o644)
	rt := startTracker(t, "--private", "--keys", keys)
	var c tracker.Client
	req := tracker.AnnounceRequest{InfoHash: hash(2), PeerID: peerID(1), Port: 1}
	announce := func(key string) error {
		_, err := c.Announce(context.Background(), rt.base+"/announce/"+key, req)
		return err
	}
	if err := announce("alpha"); err != nil {
		t.Fatalf("known key: %v", err)
	}
	if err := announce("beta"); err == nil || !strings.Contains(err.Error(), "invalid passkey") {
		t.Fatalf("unknown key: %v", err)
	}
	os.WriteFile(keys, []byte("alpha\nbeta\n"), 0o644)
	rt.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for announce("beta") != nil {
		if time.Now().After(deadline) {
			t.Fatal("new key not accepted 5s after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A broken file keeps the old keys.
	os.WriteFile(keys, []byte("bad key with spaces\n"), 0o644)
	rt.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if err := announce("beta"); err != nil {
		t.Fatalf("keys lost after a bad reload: %v", err)
	}
	if code := rt.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestTrackerAllowList(t *testing.T) {
	allowed := hash(3)
	listed := hash(4)
	file := filepath.Join(t.TempDir(), "allow")
	os.WriteFile(file, []byte(listed.String()+"\n"), 0o644)
	rt := startTracker(t, "--allow-hash", allowed.String(), "--allow-file", file)
	var c tracker.Client
	for _, h := range []tracker.InfoHash{allowed, listed} {
		if _, err := c.Announce(context.Background(), rt.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(1), Port: 1}); err != nil {
			t.Fatalf("%v: %v", h, err)
		}
	}
	other := hash(5)
	_, err := c.Announce(context.Background(), rt.base+"/announce", tracker.AnnounceRequest{InfoHash: other, PeerID: peerID(1), Port: 1})
	if err == nil || !strings.Contains(err.Error(), "unregistered torrent") {
		t.Fatalf("unlisted torrent: %v", err)
	}
	// SIGHUP re-reads the file.
	os.WriteFile(file, []byte(listed.String()+"\n"+other.String()+"\n"), 0o644)
	rt.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Announce(context.Background(), rt.base+"/announce", tracker.AnnounceRequest{InfoHash: other, PeerID: peerID(1), Port: 1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("allow-file not reloaded: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTrackerBadUsage(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte("k\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	cases := map[string][]string{
		"stray argument":        {"tracker", "extra"},
		"stray argument after":  {"tracker", "--listen", "127.0.0.1:0", "extra"},
		"malformed listen":      {"tracker", "--listen", "nope"},
		"port out of range":     {"tracker", "--listen", "127.0.0.1:99999"},
		"host name":             {"tracker", "--listen", "tracker.example:6969"},
		"zero interval":         {"tracker", "--interval", "0s"},
		"bad interval":          {"tracker", "--interval", "soon"},
		"negative max peers":    {"tracker", "--max-peers", "-1"},
		"negative max torrents": {"tracker", "--max-torrents", "-5"},
		"bad rate limit":        {"tracker", "--rate-limit", "-2"},
		"bad allow hash":        {"tracker", "--allow-hash", "zz"},
		"missing allow file":    {"tracker", "--allow-file", filepath.Join(dir, "none")},
		"empty allow file":      {"tracker", "--allow-file", empty},
		"private without keys":  {"tracker", "--private"},
		"keys without private":  {"tracker", "--keys", keys},
		"missing keys file":     {"tracker", "--private", "--keys", filepath.Join(dir, "none")},
		"unknown flag":          {"tracker", "--bogus"},
	}
	for name, args := range cases {
		r := shoal(t, dir, nil, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: ") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line", name, r.code, r.stderr)
		}
	}
	// A port in use is a failure, not bad usage.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if r := shoal(t, dir, nil, "tracker", "--listen", ln.Addr().String()); r.code != 1 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("port in use: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
}

func TestTrackerHelp(t *testing.T) {
	r := shoal(t, t.TempDir(), nil, "tracker", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "shoal tracker") || !strings.Contains(r.stdout, "--listen") {
		t.Fatalf("tracker --help: %d %q", r.code, r.stdout)
	}
}

func TestTrackerFlagsFromEnvironment(t *testing.T) {
	cmd := exec.Command(shoalBin, "tracker")
	cmd.Env = append(os.Environ(), "SHOAL_LISTEN=127.0.0.1:0", "SHOAL_INTERVAL=2m")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening: 127.0.0.1:")
	if !ok || addr == "0" {
		t.Fatalf("SHOAL_LISTEN ignored: %q", line)
	}
	var c tracker.Client
	r, err := c.Announce(context.Background(), "http://127.0.0.1:"+addr+"/announce", tracker.AnnounceRequest{InfoHash: hash(6), PeerID: peerID(1), Port: 1})
	if err != nil || r.Interval != 2*time.Minute {
		t.Fatalf("SHOAL_INTERVAL ignored: %+v %v", r, err)
	}
}
