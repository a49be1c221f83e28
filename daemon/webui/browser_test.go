package webui

import (
	"maps"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/trsettings"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which scripts/test-deps.sh installs.
const chromiumPath = "/usr/bin/chromium"

// screenshotEnv names a PNG path: when set, the browser test writes the
// desktop view of the list there, and the phone view beside it with
// "-phone" before the extension (docs/webui.png comes from this).
const screenshotEnv = "SHOAL_WEBUI_SCREENSHOT"

// backend is what the UI is tested against: a Transmission RPC endpoint,
// the peer address of the client behind it (the seeder dials it) and the
// folder where it saves downloads.
type backend struct {
	// Name says which client it is, in messages.
	Name string
	RPC  *url.URL
	Peer netip.AddrPort
	Dir  string
	// Log returns what the backend has printed, for failure messages.
	Log func() string
	// UI, when set, is where the backend serves the web UI itself; the
	// test then loads it from there, and Stop and Start stop the backend
	// and start it again on the same state and address. When UI is nil
	// the test serves the UI with a proxy to RPC in front.
	UI          *url.URL
	Stop, Start func()
}

// startBackend starts the client whose RPC the UI drives: `shoal daemon`,
// which serves the UI too.
func startBackend(t *testing.T) backend {
	t.Helper()
	return startShoalDaemon(t, buildShoal(t))
}

// startShoalDaemon runs `shoal daemon` on a session folder of the test's,
// with its RPC and web UI on a free loopback port and no source of peers
// beyond the machine, and returns it as a backend whose Stop and Start
// end it (SIGTERM) and run it again on the same session and port.
func startShoalDaemon(t *testing.T, bin string, extra ...string) backend {
	t.Helper()
	dir := t.TempDir()
	session, down := filepath.Join(dir, "session"), filepath.Join(dir, "downloads")
	out := &lockedBuffer{}
	var pid int
	rpcAddr := "127.0.0.1:0"
	lineRE := regexp.MustCompile(`(?m)^(listening|rpc|web): (\S+)$`)
	var lines map[string]string
	run := func() {
		t.Helper()
		out.Reset()
		cmd := exec.Command(bin, append([]string{"daemon", "--session", session, "--download-dir", down,
			"--listen", "127.0.0.1:0", "--rpc", rpcAddr, "--no-dht", "--no-lsd", "--no-port-map"}, extra...)...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		start(t, cmd)
		pid = cmd.Process.Pid
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			lines = map[string]string{}
			for _, m := range lineRE.FindAllStringSubmatch(out.String(), -1) {
				lines[m[1]] = m[2]
			}
			if lines["web"] != "" {
				break
			}
			if time.Now().After(deadline) || syscall.Kill(pid, 0) != nil {
				t.Fatalf("shoal daemon did not print its web UI's address:\n%s", out)
			}
		}
	}
	run()
	rpcURL, err := url.Parse(lines["rpc"])
	if err != nil {
		t.Fatalf("rpc: %q: %v", lines["rpc"], err)
	}
	ui, err := url.Parse(lines["web"])
	if err != nil || ui.Host != rpcURL.Host {
		t.Fatalf("web: %q, rpc: %q: %v", lines["web"], lines["rpc"], err)
	}
	peer, err := netip.ParseAddrPort(lines["listening"])
	if err != nil {
		t.Fatalf("listening: %q: %v", lines["listening"], err)
	}
	rpcAddr = rpcURL.Host
	return backend{
		Name: "shoal daemon",
		RPC:  rpcURL,
		Peer: peer,
		Dir:  down,
		Log:  out.String,
		UI:   ui,
		Stop: func() {
			syscall.Kill(pid, syscall.SIGTERM)
			for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("shoal daemon still running 5s after SIGTERM:\n%s", out)
				}
			}
		},
		Start: run,
	}
}

// startTransmission starts transmission-daemon 3.00 as the backend, for
// the UI to be held to what Transmission itself answers.
func startTransmission(t *testing.T) backend {
	t.Helper()
	if _, err := exec.LookPath("transmission-daemon"); err != nil {
		t.Fatalf("transmission-daemon not found (run scripts/test-deps.sh): %v", err)
	}
	dir := t.TempDir()
	cfg, down := filepath.Join(dir, "config"), filepath.Join(dir, "downloads")
	for _, d := range []string{cfg, down} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rpcPort, peerPort := freePort(t), freePort(t)
	settings := trsettings.Quiet(int(peerPort))
	maps.Copy(settings, map[string]any{
		"download-dir":        down,
		"ratio-limit-enabled": false,
		"message-level":       2,
	})
	// The proxy forwards the UI server's Host: LoopbackRPC has the host
	// allow-list off.
	maps.Copy(settings, trsettings.LoopbackRPC(int(rpcPort)))
	js, err := json.MarshalIndent(settings, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command("transmission-daemon", "--foreground", "--config-dir", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	start(t, cmd)

	rpcURL := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(rpcPort))), Path: "/transmission/rpc"}
	// Ready once the RPC answers the session-id handshake.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Post(rpcURL.String(), "application/json", strings.NewReader(`{"method":"session-get"}`))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusConflict {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission-daemon's RPC not up at %s after 10s (%v):\n%s", rpcURL, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return backend{
		Name: "transmission-daemon",
		RPC:  rpcURL,
		Peer: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peerPort),
		Dir:  down,
		Log:  out.String,
	}
}

// startUI serves the UI as the daemon does, for a backend that does not
// (Transmission): webui.Handler at / and the RPC at /transmission/rpc,
// here a reverse proxy to the backend's. While down is set the RPC
// answers 502, as the proxy does when the backend has died.
func startUI(t *testing.T, rpc *url.URL) (srv *httptest.Server, down *atomic.Bool) {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: rpc.Scheme, Host: rpc.Host})
	down = &atomic.Bool{}
	mux := http.NewServeMux()
	mux.Handle("/transmission/rpc", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "the backend is down", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	mux.Handle("/", Handler())
	var h http.Handler = mux
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, down
}

// browser is a started Chromium tab and what its page wrote to the console.
type browser struct {
	ctx     context.Context
	console *consoleLog
	err     error
}

// startBrowser starts headless Chromium at a desktop window size, on
// another goroutine so that it overlaps the rest of the set-up (it takes
// seconds); receive from the channel for its tab. It is gone when the
// test ends.
func startBrowser(t *testing.T) <-chan browser {
	t.Helper()
	ch := make(chan browser, 1)
	if _, err := os.Stat(chromiumPath); err != nil {
		ch <- browser{err: fmt.Errorf("chromium not found (run scripts/test-deps.sh): %w", err)}
		return ch
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		// Tests run as root, where Chromium's sandbox refuses to start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		// Nothing leaves the machine: no proxy, and every name but
		// loopback's fails to resolve (the UI needs none).
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	go func() {
		defer close(done)
		console := &consoleLog{}
		// Listen starts the browser and opens the tab.
		if err := chromedp.Listen(ctx, console.record); err != nil {
			ch <- browser{err: fmt.Errorf("starting chromium: %w", err)}
			return
		}
		ch <- browser{ctx: ctx, console: console}
	}()
	return ch
}

// consoleLog keeps what the page wrote to the console that says something
// is wrong: uncaught exceptions, console.error, and the browser's own
// errors (a CSP refusal, a failed load).
type consoleLog struct {
	mu   sync.Mutex
	msgs []string
}

func (c *consoleLog) record(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		msg = "console.error: " + strings.Join(parts, " ")
	case *cdplog.EventEntryAdded:
		if e.Entry.Level != cdplog.EntryLevelError {
			return
		}
		// The 409 of the session-id handshake is the protocol working.
		if e.Entry.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Entry.Text, "409") {
			return
		}
		msg = fmt.Sprintf("%s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// The whole life of a torrent through the UI, against a real client: add a
// two-file .torrent by upload and a magnet by text, both "Start paused";
// resume the upload and watch it complete from a shoal seeder while its
// tracker's refusal shows under its name; resume and pause the magnet,
// whose name is markup and must stay text; check the phone layout;
// unselect a file and change a priority; see the peers and the tracker;
// remove with data; lose the RPC and get it back. Each step is checked
// on the RPC side too, and the page must log no error.
//
// Against `shoal daemon`, which serves the page itself; losing the RPC is
// stopping the daemon, and getting it back is starting it again on its
// session, where the magnet must still be.
func TestBrowserDrivesShoalDaemon(t *testing.T) {
	t.Parallel()
	driveUI(t, startBackend)
}

// The same against transmission-daemon 3.00, behind a proxy that serves
// the UI: what the UI expects of the RPC is what Transmission answers.
func TestBrowserDrivesTransmissionRPC(t *testing.T) {
	// Parallel with the other browser tests, which fit in the seconds
	// this one waits on Transmission.
	t.Parallel()
	driveUI(t, startTransmission)
}

// driveUI is the browser tests' body, against the backend startBE starts.
func driveUI(t *testing.T, startBE func(*testing.T) backend) {
	t0 := time.Now()
	started := startBrowser(t)
	shoal := buildShoal(t)
	t.Logf("building shoal: %v", time.Since(t0).Round(time.Millisecond))
	work := t.TempDir()
	src := filepath.Join(work, "shoal-webui-demo")
	files := map[string]int{"alpha.bin": 192 << 10, "beta.bin": 320 << 10}
	writeFiles(t, src, files)
	// A tracker that refuses every announce: its error is what the UI
	// must show, under the name and in the trackers tab.
	const refusal = "this tracker refuses everyone"
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "d14:failure reason%d:%se", len(refusal), refusal)
	}))
	t.Cleanup(tracker.Close)
	announce := tracker.URL + "/announce"
	torrent := filepath.Join(work, "demo.torrent")
	run(t, work, shoal, "create", src, "--format", "v1", "--piece-length", "32k", "-t", announce, "-o", torrent)

	be := startBE(t)
	t.Logf("starting %s: %v", be.Name, time.Since(t0).Round(time.Millisecond))
	// The page: from the backend, or from the test with a proxy to the
	// backend's RPC. Losing the RPC: stopping the backend, or the proxy
	// answering 502.
	var uiURL string
	var rpcDown, rpcUp func()
	if be.UI != nil {
		uiURL, rpcDown, rpcUp = be.UI.String(), be.Stop, be.Start
	} else {
		ui, down := startUI(t, be.RPC)
		uiURL, rpcDown, rpcUp = ui.URL, func() { down.Store(true) }, func() { down.Store(false) }
	}
	rpc := &rpcClient{url: be.RPC.String()}
	br := <-started
	if br.err != nil {
		t.Fatal(br.err)
	}
	ctx, console := br.ctx, br.console
	// docs/webui.png shows shoal's own daemon.
	shot := func(suffix string) {
		t.Helper()
		if be.UI != nil {
			screenshot(t, ctx, suffix)
		}
	}
	t.Logf("and chromium: %v", time.Since(t0).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("%s:\n%s", be.Name, be.Log())
		}
	}()

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\nconsole: %q", what, err, console.errors())
		}
		t.Logf("%s: %v", what, time.Since(t0).Round(time.Millisecond))
	}
	// until polls a JavaScript condition in the page.
	until := func(what, cond string) {
		t.Helper()
		step(what, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(18*time.Second))(ctx, tg)
			return err
		}))
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}

	step("loading the UI", chromedp.Navigate(uiURL), chromedp.WaitVisible(chromedp.CSS("#empty")))

	// A magnet whose name is markup and long enough to need wrapping on a
	// phone: it must show as text, and nothing may be parsed from it.
	evilName := `Big <b>Buck</b> Bunny & "friends" <img src=x> — big_buck_bunny_1080p_surround_with_a_file_name_too_long_for_a_phone.avi`
	magnetHash := fmt.Sprintf("%016x%016x%08x", rand.Uint64(), rand.Uint64(), rand.Uint32())
	magnet := "magnet:?xt=urn:btih:" + magnetHash + "&dn=" + strings.ReplaceAll(url.QueryEscape(evilName), "+", "%20")
	step("adding a .torrent file and a magnet through the form, paused",
		chromedp.Click(chromedp.CSS("#add-open")),
		chromedp.WaitVisible(chromedp.CSS("#add-dialog")),
		chromedp.SetUploadFiles(chromedp.CSS("#add-files"), []string{torrent}),
		chromedp.SetValue(chromedp.CSS("#add-links"), magnet),
		chromedp.Click(chromedp.CSS("#add-paused")),
		chromedp.Click(chromedp.CSS("#add-submit")),
	)
	until("the add dialog to close", `!document.getElementById('add-dialog').open`)
	until("two torrents in the list", `document.querySelectorAll('#torrents li.torrent').length === 2`)

	var list struct {
		Torrents []struct {
			ID         int    `json:"id"`
			Name       string `json:"name"`
			HashString string `json:"hashString"`
		} `json:"torrents"`
	}
	rpc.call(t, "torrent-get", map[string]any{"fields": []string{"id", "name", "hashString"}}, &list)
	demoID, magnetID := -1, -1
	for _, tr := range list.Torrents {
		switch {
		case tr.Name == "shoal-webui-demo":
			demoID = tr.ID
		case tr.HashString == magnetHash:
			magnetID = tr.ID
		}
	}
	if demoID < 0 || magnetID < 0 {
		t.Fatalf("the RPC lists %+v; want the upload and the magnet %s", list.Torrents, magnetHash)
	}
	row := func(id int) string { return fmt.Sprintf(`document.querySelector('#torrents li[data-id="%d"]')`, id) }
	if got := eval(row(magnetID) + `.querySelector('.name').textContent`); got != evilName {
		t.Errorf("the magnet's name shows as %q, want %q", got, evilName)
	}
	if n := eval(`String(document.querySelectorAll('#torrents b, #torrents img').length)`); n != "0" {
		t.Errorf("%s elements made from a torrent's name", n)
	}

	status := func(id int) int {
		var got struct {
			Torrents []struct {
				Status int `json:"status"`
			} `json:"torrents"`
		}
		rpc.call(t, "torrent-get", map[string]any{"ids": []int{id}, "fields": []string{"status"}}, &got)
		if len(got.Torrents) != 1 {
			t.Fatalf("torrent %d: the RPC lists %d torrents", id, len(got.Torrents))
		}
		return got.Torrents[0].Status
	}
	toggle := func(id int) string {
		return fmt.Sprintf(`#torrents li[data-id="%d"] button[data-action=toggle]`, id)
	}
	// "Start paused" was ticked: both wait, and say so. (Transmission
	// checks the upload's data first, paused or not: status 1 or 2.)
	for _, id := range []int{demoID, magnetID} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			s := status(id)
			if s == 0 {
				break
			}
			if (s != 1 && s != 2) || time.Now().After(deadline) {
				t.Fatalf("torrent %d added with Start paused: the RPC says status %d, want 0 (stopped)", id, s)
			}
		}
	}
	until("both rows to show Paused", `[...document.querySelectorAll('#torrents li.torrent')].every(li =>
		li.querySelector('.c-state').textContent === 'Paused' && li.querySelector('button[data-action=toggle]').textContent === 'Resume')`)
	step("resuming the upload", chromedp.Click(chromedp.CSS(toggle(demoID))))
	until("the upload to run", row(demoID)+`.querySelector('button[data-action=toggle]').textContent === 'Pause'`)
	if s := status(demoID); s == 0 {
		t.Errorf("after Resume the RPC still says the upload is stopped")
	}

	// The seeder dials the backend (Transmission drops loopback peers a
	// tracker hands it; see internal/v1test). Transmission 3.00 then
	// waits about 11 s before it asks the new peer for a piece (as much
	// with libtorrent seeding): most of its test's time.
	seed := startProc(t, work, shoal, "seed", src, "--torrent", torrent, "--listen", "127.0.0.1:0",
		"--no-dht", "--no-lsd", "--no-port-map", "--super-seed=false", "--peer", be.Peer.String())
	t0 = time.Now()
	sctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	_, err := chromedp.Run(sctx, chromedp.Poll[chromedp.Void](
		row(demoID)+`.querySelector('.pct').textContent === '100%' && `+row(demoID)+`.querySelector('.c-state').textContent === 'Seeding'`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(24*time.Second)))
	cancel()
	if err != nil {
		t.Fatalf("the upload did not show 100%% and Seeding (shows %q, %q): %v\nshoal seed:\n%s",
			eval(row(demoID)+`.querySelector('.pct').textContent`), eval(row(demoID)+`.querySelector('.c-state').textContent`),
			err, seed.String())
	}
	t.Logf("the upload complete in the list: %v", time.Since(t0).Round(time.Millisecond))
	for name := range files {
		same(t, filepath.Join(src, name), filepath.Join(be.Dir, "shoal-webui-demo", name))
	}
	shot("")

	// The tracker's refusal, under the upload's name.
	until("the tracker's error in the list", row(demoID)+`.querySelector('.err').textContent.includes('`+refusal+`') && !`+
		row(demoID)+`.querySelector('.err').hidden`)

	// Resume and pause the magnet from its row.
	step("resuming the magnet", chromedp.Click(chromedp.CSS(toggle(magnetID))))
	until("the magnet to run", row(magnetID)+`.querySelector('button[data-action=toggle]').textContent === 'Pause' && `+
		row(magnetID)+`.querySelector('.c-state').textContent !== 'Paused'`)
	if s := status(magnetID); s == 0 {
		t.Errorf("after Resume the RPC still says the magnet is stopped")
	}
	step("pausing the magnet", chromedp.Click(chromedp.CSS(toggle(magnetID))))
	until("the magnet to show Paused", row(magnetID)+`.querySelector('.c-state').textContent === 'Paused' && `+
		row(magnetID)+`.querySelector('button[data-action=toggle]').textContent === 'Resume'`)
	if s := status(magnetID); s != 0 {
		t.Errorf("after Pause the RPC says status %d, want 0 (stopped)", s)
	}

	// A phone: 390×844 CSS pixels, as an iPhone 12–15.
	step("switching to a phone's screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	until("the phone layout", `window.innerWidth === 390`)
	noOverflow(t, eval, "the list at 390px")
	shot("-phone")

	// The files of the upload, still on the phone's screen.
	step("opening the details", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#torrents li[data-id="%d"] button.name`, demoID))))
	until("its two files", `document.getElementById('details').open && document.querySelectorAll('#files li.file').length === 2`)
	noOverflow(t, eval, "the details at 390px")
	var fl struct {
		Torrents []struct {
			Files []struct {
				Name string `json:"name"`
			} `json:"files"`
			FileStats []struct {
				Wanted   bool `json:"wanted"`
				Priority int  `json:"priority"`
			} `json:"fileStats"`
		} `json:"torrents"`
	}
	fileStats := func() {
		rpc.call(t, "torrent-get", map[string]any{"ids": []int{demoID}, "fields": []string{"files", "fileStats"}}, &fl)
		if len(fl.Torrents) != 1 || len(fl.Torrents[0].Files) != 2 || len(fl.Torrents[0].FileStats) != 2 {
			t.Fatalf("torrent-get files: %+v", fl)
		}
	}
	fileStats()
	beta, alpha := 0, 1
	if strings.HasSuffix(fl.Torrents[0].Files[0].Name, "alpha.bin") {
		beta, alpha = 1, 0
	}
	fileSel := func(i int) string { return fmt.Sprintf(`#files li[data-index="%d"]`, i) }
	if got := eval(fmt.Sprintf(`document.querySelector('%s .f-name').textContent`, fileSel(beta))); got != fl.Torrents[0].Files[beta].Name {
		t.Errorf("file %d shows as %q, the RPC names it %q", beta, got, fl.Torrents[0].Files[beta].Name)
	}
	until("both files wanted", `[...document.querySelectorAll('#files input[type=checkbox]')].every(b => b.checked)`)
	step("unselecting beta.bin", chromedp.Click(chromedp.CSS(fileSel(beta)+` input[type=checkbox]`)))
	eval(fmt.Sprintf(`(() => { const s = document.querySelector('%s select'); s.value = '1'; s.dispatchEvent(new Event('change')); return ''; })()`, fileSel(alpha)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		fileStats()
		st := fl.Torrents[0].FileStats
		if !st[beta].Wanted && st[alpha].Wanted && st[alpha].Priority == 1 && st[beta].Priority == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after unselecting beta.bin and raising alpha.bin the RPC says %+v (beta is %d)", st, beta)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The UI reads them back and keeps them.
	time.Sleep(2 * time.Second)
	if got := eval(fmt.Sprintf(`String(document.querySelector('%s input').checked) + ' ' + document.querySelector('%s select').value`, fileSel(beta), fileSel(alpha))); got != "false 1" {
		t.Errorf("after two polls beta's box and alpha's priority show %q, want \"false 1\"", got)
	}
	shot("-details")
	step("the peers tab", chromedp.Click(chromedp.CSS(`.tabs [data-tab=peers]`)))
	until("the peers list", `!document.getElementById('tab-peers').hidden && document.querySelectorAll('#peers li').length > 0`)
	step("the trackers tab", chromedp.Click(chromedp.CSS(`.tabs [data-tab=trackers]`)))
	until("the tracker and its refusal", `[...document.querySelectorAll('#trackers li')].some(li =>
		li.querySelector('.r-main')?.textContent === '`+announce+`' && li.textContent.includes('`+refusal+`'))`)
	step("closing the details", chromedp.Click(chromedp.CSS("#details-close")))
	until("the details to close", `!document.getElementById('details').open`)
	step("back to a desktop screen", chromedp.EmulateReset())

	// Remove the upload with its data.
	step("removing the upload",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#torrents li[data-id="%d"] button[data-action=remove]`, demoID))),
		chromedp.WaitVisible(chromedp.CSS("#remove-dialog")),
	)
	if got := eval(`document.getElementById('remove-name').textContent`); got != "shoal-webui-demo" {
		t.Errorf("the remove dialog names %q", got)
	}
	step("confirming with its data",
		chromedp.Click(chromedp.CSS("#remove-data")),
		chromedp.Click(chromedp.CSS("#remove-confirm")),
	)
	until("the upload gone from the list", row(demoID)+` === null && document.querySelectorAll('#torrents li.torrent').length === 1`)
	var left struct {
		Torrents []struct {
			ID int `json:"id"`
		} `json:"torrents"`
	}
	rpc.call(t, "torrent-get", map[string]any{"fields": []string{"id"}}, &left)
	if len(left.Torrents) != 1 || left.Torrents[0].ID != magnetID {
		t.Errorf("after removing the upload the RPC lists %+v, want only the magnet %d", left.Torrents, magnetID)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(be.Dir, "shoal-webui-demo")); errors.Is(err, os.ErrNotExist) {
			break
		} else if time.Now().After(deadline) {
			t.Errorf("removed with its data, yet %s is still there (%v)", filepath.Join(be.Dir, "shoal-webui-demo"), err)
			break
		}
	}
	if msgs := console.errors(); len(msgs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(msgs, "\n"))
	}
	if shown := eval(`document.getElementById('conn-error').hidden ? '' : document.getElementById('conn-error').textContent`); shown != "" {
		t.Errorf("the UI shows an error: %s", shown)
	}

	// The RPC goes away and comes back: the UI says so, then recovers.
	rpcDown()
	until("the UI to say the RPC is down", `!document.getElementById('conn-error').hidden &&
		document.getElementById('conn-error').textContent !== ''`)
	t.Logf("the UI says: %s", eval(`document.getElementById('conn-error').textContent`))
	rpcUp()
	until("the UI to recover", `document.getElementById('conn-error').hidden && document.querySelectorAll('#torrents li.torrent').length === 1`)
}

// noOverflow fails the test if anything in the page is wider than the
// viewport: on a phone that is a page scrolling sideways.
func noOverflow(t *testing.T, eval func(string) string, where string) {
	t.Helper()
	got := eval(`(() => {
		const w = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth > w) return 'the page is ' + document.documentElement.scrollWidth + 'px wide in ' + w;
		for (const e of document.querySelectorAll('body *')) {
			const r = e.getBoundingClientRect();
			if (r.width > 0 && (r.right > w + 0.5 || r.left < -0.5)) return (e.id || e.className || e.tagName) + ' spans ' + r.left + '..' + r.right + ' in ' + w;
		}
		return '';
	})()`)
	if got != "" {
		t.Errorf("%s: %s", where, got)
	}
}

// screenshot writes the viewport as a PNG to $SHOAL_WEBUI_SCREENSHOT (with
// suffix before the extension), when it is set.
func screenshot(t *testing.T, ctx context.Context, suffix string) {
	t.Helper()
	path := os.Getenv(screenshotEnv)
	if path == "" {
		return
	}
	ext := filepath.Ext(path)
	path = strings.TrimSuffix(path, ext) + suffix + ext
	// Let the last poll land and the progress bars settle.
	time.Sleep(2 * time.Second)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("wrote %s", path)
}

// rpcClient is a minimal Transmission RPC client, for the test to check
// what the UI did from the server's side.
type rpcClient struct {
	url        string
	user, pass string // Basic auth, when user is set
	sid        string
}

func (c *rpcClient) call(t *testing.T, method string, args, out any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequest("POST", c.url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Transmission-Session-Id", c.sid)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if res.StatusCode == http.StatusConflict {
			res.Body.Close()
			c.sid = res.Header.Get("X-Transmission-Session-Id")
			continue
		}
		var reply struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		err = json.NewDecoder(res.Body).Decode(&reply)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || reply.Result != "success" {
			t.Fatalf("%s: %s, result %q, %v", method, res.Status, reply.Result, err)
		}
		if out != nil {
			if err := json.Unmarshal(reply.Arguments, out); err != nil {
				t.Fatalf("%s: decoding %s: %v", method, reply.Arguments, err)
			}
		}
		return
	}
	t.Fatalf("%s: 409 twice", method)
}

var (
	shoalOnce sync.Once
	shoalBin  string
	shoalErr  error
)

// buildShoal builds the shoal binary once per test binary run.
func buildShoal(t *testing.T) string {
	t.Helper()
	shoalOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-webui-test")
		if err != nil {
			shoalErr = err
			return
		}
		shoalBin = filepath.Join(dir, "shoal")
		// By import path: the go command finds the module from here.
		if out, err := exec.Command("go", "build", "-o", shoalBin, "github.com/shoal-p2p/shoal/cmd/shoal").CombinedOutput(); err != nil {
			shoalErr = fmt.Errorf("go build ./cmd/shoal: %w\n%s", err, out)
		}
	})
	if shoalErr != nil {
		t.Fatalf("building shoal: %v", shoalErr)
	}
	return shoalBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shoalBin != "" {
		os.RemoveAll(filepath.Dir(shoalBin))
	}
	os.Exit(code)
}

// run runs a shoal command to completion in dir, failing the test if it
// fails.
func run(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startProc starts a shoal command that runs until the test ends, and
// returns its output.
func startProc(t *testing.T, dir, bin string, args ...string) *lockedBuffer {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// Its resume records go to the user cache: keep them in the test's.
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"))
	cmd.Stdout, cmd.Stderr = out, out
	start(t, cmd)
	return out
}

// start starts cmd in its own process group, killed with the test (and by
// the kernel if the test binary dies first).
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Reset empties the buffer.
func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("picking a port: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func writeFiles(t *testing.T, dir string, files map[string]int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range files {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func same(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("the downloaded copy: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s", got, want)
	}
}

// Behind Basic auth: `shoal daemon --rpc-auth` serving the page. It is
// opened with credentials in its URL, and the UI's RPC calls must go
// through with the browser's credentials (fetch refuses a URL that holds
// any, so the UI must not build the RPC's from the page's).
func TestBrowserBehindBasicAuth(t *testing.T) {
	t.Parallel()
	started := startBrowser(t)
	const user, pass = "shoal", "s3cret:with colon"
	auth := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(auth, []byte(user+":"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	be := startShoalDaemon(t, buildShoal(t), "--rpc-auth", auth)
	br := <-started
	if br.err != nil {
		t.Fatal(br.err)
	}
	u := *be.UI
	u.User = url.UserPassword(user, pass)
	hash := fmt.Sprintf("%016x%016x%08x", rand.Uint64(), rand.Uint64(), rand.Uint32())
	ctx, cancel := context.WithTimeout(br.ctx, 20*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(u.String()),
		chromedp.WaitVisible(chromedp.CSS("#empty")),
		chromedp.Click(chromedp.CSS("#add-open")),
		// A bare info-hash: the UI makes it a magnet.
		chromedp.SetValue(chromedp.CSS("#add-links"), hash),
		chromedp.Click(chromedp.CSS("#add-submit")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[chromedp.Void](`document.querySelectorAll('#torrents li.torrent').length === 1`,
				chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
			return err
		}),
	)
	if err != nil {
		shown, _ := chromedp.Run(br.ctx, chromedp.Evaluate[string](`document.getElementById('conn-error').textContent`))
		t.Fatalf("the UI behind Basic auth: %v (it shows %q; console %q)", err, shown, br.console.errors())
	}
	rpc := &rpcClient{url: be.RPC.String(), user: user, pass: pass}
	var list struct {
		Torrents []struct {
			HashString string `json:"hashString"`
		} `json:"torrents"`
	}
	rpc.call(t, "torrent-get", map[string]any{"fields": []string{"hashString"}}, &list)
	if len(list.Torrents) != 1 || list.Torrents[0].HashString != hash {
		t.Errorf("added the bare hash %s, the RPC lists %+v", hash, list.Torrents)
	}
	// Unauthenticated requests are refused: the page and the RPC.
	res, err := http.Get(be.UI.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / without credentials: %s, want 401", res.Status)
	}
	res, err = http.Post(be.RPC.String(), "application/json", strings.NewReader(`{"method":"session-get"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the RPC without credentials: %s, want 401", res.Status)
	}
	for _, m := range br.console.errors() {
		t.Errorf("the page reported: %s", m)
	}
}
