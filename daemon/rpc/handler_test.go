package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/shoal-p2p/shoal/daemon"
)

// serve runs a handler over ctrl on a real loopback listener.
func serve(t *testing.T, ctrl daemon.Controller, opts Options) (*httptest.Server, *Handler) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := NewHandler(ctrl, opts)
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, h
}

// post sends body to the RPC with the given headers, and returns the
// status, headers and body of the answer.
func post(t *testing.T, url, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// call calls method and returns the result string and the arguments.
func callRes(t *testing.T, c *Client, method string, args any) (string, map[string]any) {
	t.Helper()
	var out map[string]any
	err := c.Call(context.Background(), method, args, &out)
	var re *ResultError
	switch {
	case errors.As(err, &re):
		return re.Result, nil
	case err != nil:
		t.Fatalf("%s: %v", method, err)
	}
	return "success", out
}

func mustCall(t *testing.T, c *Client, method string, args any) map[string]any {
	t.Helper()
	res, out := callRes(t, c, method, args)
	if res != "success" {
		t.Fatalf("%s %v: %s", method, args, res)
	}
	return out
}

func setup(t *testing.T) (*testCtrl, *Client, *httptest.Server) {
	t.Helper()
	ctrl := newTestCtrl(t.TempDir())
	srv, _ := serve(t, ctrl, Options{})
	return ctrl, &Client{URL: srv.URL + Path}, srv
}

func TestSessionIDHandshake(t *testing.T) {
	ctrl := newTestCtrl(t.TempDir())
	srv, h := serve(t, ctrl, Options{})
	url := srv.URL + Path
	body := `{"method":"torrent-get","arguments":{"fields":["id"]}}`
	code, hdr, _ := post(t, url, body, nil)
	id := hdr.Get(SessionIDHeader)
	if code != http.StatusConflict || id == "" || id != h.SessionID() {
		t.Fatalf("without a session id: %d, header %q", code, id)
	}
	if code, _, _ := post(t, url, body, map[string]string{SessionIDHeader: id + "x"}); code != http.StatusConflict {
		t.Fatalf("wrong session id: %d", code)
	}
	code, _, resp := post(t, url, body, map[string]string{SessionIDHeader: id})
	if code != http.StatusOK || !strings.Contains(resp, `"result":"success"`) {
		t.Fatalf("with the session id: %d %s", code, resp)
	}
	// A GET with the id is no call.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(SessionIDHeader, id)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp2.StatusCode)
	}
}

func TestBasicAuth(t *testing.T) {
	ctrl := newTestCtrl(t.TempDir())
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("alice:s3cret pass\n"), 0o600)
	hashed := filepath.Join(dir, "hashed")
	os.WriteFile(hashed, []byte("alice:"+string(hash)+"\n"), 0o644)
	for _, file := range []string{plain, hashed} {
		creds, err := LoadAuthFile(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		srv, _ := serve(t, ctrl, Options{Auth: creds})
		url := srv.URL + Path
		code, hdr, _ := post(t, url, `{"method":"session-get"}`, nil)
		if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("%s: no credentials: %d %q", file, code, hdr.Get("WWW-Authenticate"))
		}
		// The 409 handshake comes after auth: no session id for strangers.
		if hdr.Get(SessionIDHeader) != "" {
			t.Fatalf("%s: session id given without credentials", file)
		}
		for _, wrong := range [][2]string{{"alice", "s3cret"}, {"bob", "s3cret pass"}, {"", ""}} {
			c := &Client{URL: url, User: wrong[0], Password: wrong[1]}
			if wrong[0] == "" {
				c.User = ":"
			}
			_, err := c.Session(context.Background())
			if err == nil || !strings.Contains(err.Error(), "refused user") {
				t.Fatalf("%s: wrong credentials %q: %v", file, wrong, err)
			}
		}
		c := &Client{URL: url, User: "alice", Password: "s3cret pass"}
		for range 2 { // the second time through the cache of a good bcrypt check
			if s, err := c.Session(context.Background()); err != nil || s.RPCVersion != rpcVersion {
				t.Fatalf("%s: right credentials: %+v %v", file, s, err)
			}
		}
	}
	// A password in clear that everyone may read is refused.
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("alice:pw\n"), 0o644)
	os.Chmod(open, 0o644)
	if _, err := LoadAuthFile(open); err == nil || !strings.Contains(err.Error(), "everyone may read it") {
		t.Fatalf("world-readable password file: %v", err)
	}
	for _, bad := range []string{"", "alice\n", ":pw\n", "alice:\n"} {
		f := filepath.Join(dir, "bad")
		os.WriteFile(f, []byte(bad), 0o600)
		if _, err := LoadAuthFile(f); err == nil {
			t.Fatalf("auth file %q accepted", bad)
		}
	}
	if _, err := LoadAuthFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing auth file accepted")
	}
}

func TestHostAllowList(t *testing.T) {
	ctrl := newTestCtrl(t.TempDir())
	h := NewHandler(ctrl, Options{Hosts: []string{"seedbox.lan"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// 127.0.0.2: an address of this machine the default list does not
	// hold, so that only the "address it arrived at" rule lets it in.
	l, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	port := l.Addr().(*net.TCPAddr).Port
	for host, ok := range map[string]bool{
		"localhost":                 true,
		"LOCALHOST:9091":            true,
		"127.0.0.1:9091":            true,
		"[::1]:9091":                true,
		"seedbox.lan:9091":          true,
		"127.0.0.2:" + itoa(port):   true,
		"evil.example":              false,
		"localhost.evil.example":    false,
		"127.0.0.3:" + itoa(port):   false,
		"seedbox.lan.evil.example:": false,
	} {
		code, hdr, body := post(t, srv.URL, `{"method":"session-get"}`, map[string]string{"Host": host})
		if ok && code != http.StatusConflict {
			t.Errorf("Host %q refused: %d %s", host, code, body)
		}
		if !ok && (code != http.StatusMisdirectedRequest || hdr.Get(SessionIDHeader) != "" || len(body) > 200) {
			t.Errorf("Host %q: %d %q", host, code, body)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// countingReader gives n bytes of '{' and counts what was read of it.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > r.left {
		n = r.left
	}
	for i := range p[:n] {
		p[i] = ' '
	}
	r.left -= n
	r.read.Add(n)
	return int(n), nil
}

func TestBodyLimit(t *testing.T) {
	ctrl := newTestCtrl(t.TempDir())
	srv, h := serve(t, ctrl, Options{})
	const huge = 100 << 20
	for _, chunked := range []bool{false, true} {
		body := &countingReader{left: huge}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, body)
		req.Header.Set(SessionIDHeader, h.SessionID())
		if !chunked {
			req.ContentLength = huge
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("chunked %v: %v (after %d bytes)", chunked, err, body.read.Load())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked %v: %d", chunked, resp.StatusCode)
		}
		// Refused without reading it all: what the client managed to
		// send is what the kernel's buffers took, or the limit.
		limit := int64(DefaultMaxBody + 8<<20)
		if !chunked {
			// Refused on its Content-Length, before reading any of it.
			limit = 8 << 20
		}
		if n := body.read.Load(); n > limit {
			t.Fatalf("chunked %v: the server took %d bytes of a refused body", chunked, n)
		}
	}
	// A body under the limit but larger than any JSON call still works.
	big := `{"method":"session-stats","arguments":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	code, _, resp := post(t, srv.URL+Path, big, map[string]string{SessionIDHeader: h.SessionID()})
	if code != http.StatusOK || !strings.Contains(resp, "success") {
		t.Fatalf("1 MiB body: %d %.200s", code, resp)
	}
}

func TestMalformedRequests(t *testing.T) {
	ctrl := newTestCtrl(t.TempDir())
	srv, h := serve(t, ctrl, Options{})
	hdr := map[string]string{SessionIDHeader: h.SessionID()}
	for _, body := range []string{``, `{`, `[1,2]`, `{"method":5}`, `{"method":"torrent-get","arguments":[]}`, "\x00\xff"} {
		code, _, resp := post(t, srv.URL+Path, body, hdr)
		var r struct{ Result string }
		if code != http.StatusBadRequest || json.Unmarshal([]byte(resp), &r) != nil || !strings.HasPrefix(r.Result, "malformed JSON request") {
			t.Errorf("body %q: %d %s", body, code, resp)
		}
	}
	// Well-formed JSON with arguments of the wrong type: an error result.
	for body, want := range map[string]string{
		`{"method":"torrent-get","arguments":{"fields":"name"}}`:               `argument \"fields\"`,
		`{"method":"torrent-get","arguments":{"fields":["id"],"ids":{}}}`:      `argument \"ids\"`,
		`{"method":"torrent-get","arguments":{"fields":["id"],"ids":[1.5]}}`:   "not a torrent ID",
		`{"method":"torrent-add","arguments":{"paused":"yes","filename":"x"}}`: "is not a boolean",
		`{"method":"torrent-set","arguments":{"files-wanted":"all"}}`:          "is not a list of numbers",
		`{"method":"torrent-add","arguments":{"metainfo":"%%%"}}`:              "not base64",
		`{"method":"session-set","arguments":{"speed-limit-down":-5}}`:         "below zero",
	} {
		code, _, resp := post(t, srv.URL+Path, body, hdr)
		if code != http.StatusOK || !strings.Contains(resp, want) || strings.Contains(resp, `"success"`) {
			t.Errorf("%s: %d %s", body, code, resp)
		}
	}
}

func TestUnknownMethodsAndFields(t *testing.T) {
	ctrl, c, srv := setup(t)
	ctrl.addSample("alpha")
	if res, _ := callRes(t, c, "torrent-frobnicate", nil); res != "method name not recognized" {
		t.Fatalf("unknown method: %q", res)
	}
	for _, m := range []string{"torrent-set-location", "torrent-rename-path", "queue-move-top", "queue-move-bottom", "blocklist-update", "group-get"} {
		if res, _ := callRes(t, c, m, map[string]any{"ids": []int{1}}); res != m+" is not supported by shoal" {
			t.Errorf("%s: %q", m, res)
		}
	}
	out := mustCall(t, c, "torrent-get", map[string]any{"fields": []string{"id", "fooBar", "name"}, "someFutureArg": true})
	tor := out["torrents"].([]any)[0].(map[string]any)
	if !reflect.DeepEqual(tor, map[string]any{"id": 1.0, "name": "alpha"}) {
		t.Fatalf("unknown field: %v", tor)
	}
	// The tag comes back as it was sent.
	for _, tag := range []string{`7`, `"abc"`, `-1.5`} {
		code, _, resp := post(t, c.URL, `{"method":"session-stats","tag":`+tag+`}`, map[string]string{SessionIDHeader: c.sessionID})
		if code != 200 || !strings.HasSuffix(resp, `"tag":`+tag+`}`) {
			t.Errorf("tag %s: %s", tag, resp)
		}
	}
	_ = srv
}

// get asks torrent-get for fields of torrent ids and returns the torrents.
func get(t *testing.T, c *Client, ids any, fields ...string) []map[string]any {
	t.Helper()
	args := map[string]any{"fields": fields}
	if ids != nil {
		args["ids"] = ids
	}
	out := mustCall(t, c, "torrent-get", args)
	var ts []map[string]any
	for _, x := range out["torrents"].([]any) {
		ts = append(ts, x.(map[string]any))
	}
	return ts
}

func TestTorrentGetMapping(t *testing.T) {
	ctrl, c, _ := setup(t)
	a := ctrl.addSample("alpha")
	tor := get(t, c, 1, "id", "name", "hashString", "status", "error", "errorString", "eta",
		"percentDone", "sizeWhenDone", "leftUntilDone", "haveValid", "haveUnchecked", "totalSize",
		"uploadRatio", "addedDate", "dateCreated", "doneDate", "downloadLimit", "downloadLimited",
		"uploadLimit", "uploadLimited", "rateDownload", "corruptEver", "pieceCount", "peer-limit",
		"metadataPercentComplete", "isPrivate")[0]
	want := map[string]any{
		"id": 1.0, "name": "alpha", "hashString": a.Hash, "status": 4.0, "error": 0.0,
		"errorString": "", "eta": 20.0, "percentDone": 0.5, "sizeWhenDone": 200000.0,
		"leftUntilDone": 100000.0, "haveValid": 100000.0, "haveUnchecked": 0.0,
		"totalSize": 200000.0, "uploadRatio": 0.5, "addedDate": float64(a.Added.Unix()),
		"dateCreated": 1700000000.0, "doneDate": 0.0, "downloadLimit": 0.0,
		"downloadLimited": false, "uploadLimit": 50.0, "uploadLimited": true,
		"rateDownload": 5000.0, "corruptEver": 16384.0, "pieceCount": 4.0, "peer-limit": 50.0,
		"metadataPercentComplete": 1.0, "isPrivate": false,
	}
	if !reflect.DeepEqual(tor, want) {
		t.Fatalf("torrent-get:\n got %v\nwant %v", tor, want)
	}
	// error and errorString read the trackers' last answers; nothing else
	// here needs more than the plain status.
	if w := ctrl.lastWant(); w != daemon.WantTrackers {
		t.Fatalf("plain fields and error asked for Want %b", w)
	}

	tor = get(t, c, []any{1}, "files", "fileStats", "priorities", "wanted", "pieces", "peers", "peersFrom", "trackers", "trackerStats")[0]
	if w := ctrl.lastWant(); w != daemon.WantFiles|daemon.WantPeers|daemon.WantTrackers|daemon.WantPieces {
		t.Fatalf("Want %b", w)
	}
	js, _ := json.Marshal(tor)
	for _, s := range []string{
		`"files":[{"bytesCompleted":65536,"length":150000,"name":"alpha/a.bin"},{"bytesCompleted":34464,"length":50000,"name":"alpha/b.txt"}]`,
		`"fileStats":[{"bytesCompleted":65536,"priority":0,"wanted":true},{"bytesCompleted":34464,"priority":1,"wanted":true}]`,
		`"priorities":[0,1]`, `"wanted":[1,1]`, `"pieces":"oA=="`,
		`"address":"127.0.0.1"`, `"port":6881`, `"clientName":"shoal 1.0"`, `"flagStr":"D?E"`, `"rateToClient":5000`,
		`"fromIncoming":0`,
		`"trackers":[{"announce":"http://127.0.0.1:6969/announce","id":0,"scrape":"http://127.0.0.1:6969/scrape","sitename":"127.0.0.1","tier":0}]`,
		`"lastAnnounceSucceeded":true`, `"seederCount":3`, `"leecherCount":2`, `"lastAnnouncePeerCount":4`, `"lastAnnounceTime":1700000100`, `"nextAnnounceTime":1700001900`,
	} {
		if !strings.Contains(string(js), s) {
			t.Errorf("want %s in\n%s", s, js)
		}
	}
	if w := get(t, c, 1, "fileCount")[0]["fileCount"]; w != 2.0 {
		t.Errorf("fileCount %v", w)
	}

	// The codes Transmission gives for what is not there.
	b := ctrl.addSample("beta")
	b.State, b.ETA, b.Error, b.Downloaded, b.Verified, b.Uploaded = daemon.Stopped, daemon.ETAUnknown, "disk full", 0, 0, 0
	c2 := ctrl.addSample("gamma")
	c2.ETA, c2.Downloaded, c2.Verified, c2.Uploaded = daemon.ETAUnknown, 0, 0, 10
	d := ctrl.addSample("delta")
	d.HasMetadata, d.WantedSize, d.Left, d.Done = false, 0, 0, time.Unix(1700000500, 0)
	ts := get(t, c, []any{2, 3, 4}, "eta", "error", "errorString", "uploadRatio", "percentDone", "doneDate", "metadataPercentComplete")
	if ts[0]["eta"] != -1.0 || ts[0]["error"] != 3.0 || ts[0]["errorString"] != "disk full" || ts[0]["uploadRatio"] != -1.0 {
		t.Errorf("stopped on an error: %v", ts[0])
	}
	if ts[1]["eta"] != -2.0 || ts[1]["uploadRatio"] != -2.0 {
		t.Errorf("downloading without a rate: %v", ts[1])
	}
	if ts[2]["percentDone"] != 0.0 || ts[2]["metadataPercentComplete"] != 0.0 || ts[2]["doneDate"] != 1700000500.0 {
		t.Errorf("magnet without metadata: %v", ts[2])
	}
}

func TestTorrentGetTable(t *testing.T) {
	ctrl, c, _ := setup(t)
	ctrl.addSample("alpha")
	ctrl.addSample("beta")
	out := mustCall(t, c, "torrent-get", map[string]any{"fields": []string{"id", "name"}, "format": "table"})
	if got, _ := json.Marshal(out["torrents"]); string(got) != `[["id","name"],[1,"alpha"],[2,"beta"]]` {
		t.Fatalf("table: %s", got)
	}
}

func TestSnakeCaseNames(t *testing.T) {
	ctrl, c, _ := setup(t)
	a := ctrl.addSample("alpha")
	out := mustCall(t, c, "torrent_get", map[string]any{"fields": []string{"hash_string", "peers_connected", "download_dir", "file_stats", "percent_done"}, "ids": []int{1}})
	tor := out["torrents"].([]any)[0].(map[string]any)
	js, _ := json.Marshal(tor)
	want := `{"download_dir":"` + a.Dir + `","file_stats":[{"bytes_completed":65536,"priority":0,"wanted":true},{"bytes_completed":34464,"priority":1,"wanted":true}],"hash_string":"` + a.Hash + `","peers_connected":1,"percent_done":0.5}`
	if string(js) != want {
		t.Fatalf("snake_case torrent-get:\n got %s\nwant %s", js, want)
	}
	s := mustCall(t, c, "session_get", map[string]any{"fields": []string{"download_dir", "rpc_version", "speed_limit_down_enabled"}})
	if !reflect.DeepEqual(s, map[string]any{"download_dir": ctrl.dir, "rpc_version": 16.0, "speed_limit_down_enabled": false}) {
		t.Fatalf("snake_case session-get: %v", s)
	}
	mustCall(t, c, "session_set", map[string]any{"speed_limit_down": 30, "speed_limit_down_enabled": true})
	if ctrl.Settings().DownLimit != 30000 {
		t.Fatalf("snake_case session-set: %+v", ctrl.Settings())
	}
	mustCall(t, c, "torrent_set", map[string]any{"ids": []int{1}, "files_unwanted": []int{1}, "download_limit": 7, "download_limited": true})
	if ch := ctrl.lastChange(); !reflect.DeepEqual(ch.Unwanted, []int{1}) || *ch.DownLimit != 7000 {
		t.Fatalf("snake_case torrent-set: %+v", ch)
	}
	added := mustCall(t, c, "torrent_add", map[string]any{"filename": "magnet:?xt=urn:btih:" + strings.Repeat("ab", 20) + "&dn=m", "download_dir": ctrl.dir})
	if ta, ok := added["torrent_added"].(map[string]any); !ok || ta["hash_string"] == nil {
		t.Fatalf("snake_case torrent-add: %v", added)
	}
	// Legacy names keep legacy answers.
	legacy := mustCall(t, c, "session-get", map[string]any{"fields": []string{"download-dir", "downloadDir"}})
	if !reflect.DeepEqual(legacy, map[string]any{"download-dir": ctrl.dir, "downloadDir": ctrl.dir}) {
		t.Fatalf("session-get fields: %v", legacy)
	}
}

func TestTorrentIDs(t *testing.T) {
	ctrl, c, _ := setup(t)
	a := ctrl.addSample("alpha")
	b := ctrl.addSample("beta")
	b.V2Hash = strings.Repeat("cd", 32)
	ctrl.addSample("gamma")
	ids := func(ids any) []float64 {
		var out []float64
		for _, tor := range get(t, c, ids, "id") {
			out = append(out, tor["id"].(float64))
		}
		return out
	}
	for _, tc := range []struct {
		ids  any
		want []float64
	}{
		{nil, []float64{1, 2, 3}},
		{2, []float64{2}},
		{[]any{3, 1}, []float64{1, 3}},
		{[]any{strings.ToUpper(a.Hash), 3}, []float64{1, 3}},
		{b.V2Hash, []float64{2}},
		{[]any{strings.Repeat("00", 20), 99}, nil},
		{[]any{}, nil},
	} {
		if got := ids(tc.ids); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ids %v: %v, want %v", tc.ids, got, tc.want)
		}
	}
	// recently-active: running torrents, those the RPC just changed, and
	// the IDs of those removed.
	for _, st := range ctrl.torrents {
		st.State = daemon.Stopped
	}
	ctrl.torrents[2].State = daemon.Seeding
	mustCall(t, c, "torrent-stop", map[string]any{"ids": []int{2}})
	mustCall(t, c, "torrent-remove", map[string]any{"ids": []int{1}})
	out := mustCall(t, c, "torrent-get", map[string]any{"ids": "recently-active", "fields": []string{"id"}})
	got, _ := json.Marshal(out)
	if string(got) != `{"removed":[1],"torrents":[{"id":2},{"id":3}]}` {
		t.Fatalf("recently-active: %s", got)
	}
	if res, _ := callRes(t, c, "torrent-start", map[string]any{"ids": "recently-active"}); !strings.Contains(res, "torrent-get only") {
		t.Fatalf("recently-active to torrent-start: %s", res)
	}
}

func TestTorrentAdd(t *testing.T) {
	ctrl, c, _ := setup(t)
	hash := strings.Repeat("ab", 20)
	added := func(args map[string]any) (string, map[string]any) {
		res, out := callRes(t, c, "torrent-add", args)
		if res != "success" {
			return res, nil
		}
		for k, v := range out {
			return k, v.(map[string]any)
		}
		t.Fatalf("torrent-add %v: empty answer", args)
		return "", nil
	}
	kind, tor := added(map[string]any{
		"filename": "magnet:?xt=urn:btih:" + hash + "&dn=mag", "paused": true,
		"download-dir": ctrl.dir + "/sub", "files-unwanted": []int{1}, "priority-high": []int{0},
		"priority-low": []int{2}, "peer-limit": 9, "cookies": "ignored",
	})
	if kind != "torrent-added" || tor["name"] != "mag" || tor["id"] != 1.0 || len(tor["hashString"].(string)) != 40 {
		t.Fatalf("magnet: %s %v", kind, tor)
	}
	req := ctrl.addRequests()[0]
	if !req.Paused || req.Dir != ctrl.dir+"/sub" || !reflect.DeepEqual(req.Unwanted, []int{1}) ||
		!reflect.DeepEqual(req.PriorityHigh, []int{0}) || !reflect.DeepEqual(req.PriorityLow, []int{2}) || req.PeerLimit != 9 ||
		req.Link == "" || req.Path != "" || req.Metainfo != nil {
		t.Fatalf("magnet AddRequest: %+v", req)
	}
	if ctrl.torrents[0].State != daemon.Stopped {
		t.Fatal("paused ignored")
	}
	if kind, _ = added(map[string]any{"filename": "magnet:?xt=urn:btih:" + hash + "&dn=mag"}); kind != "torrent-duplicate" {
		t.Fatalf("the same magnet again: %s", kind)
	}
	if added(map[string]any{"filename": hash}); ctrl.addRequests()[len(ctrl.addRequests())-1].Link != hash {
		t.Fatalf("bare hash: %+v", ctrl.addRequests()[len(ctrl.addRequests())-1])
	}
	if kind, tor = added(map[string]any{"metainfo": "ZDQ6aW5mb2Vl"}); kind != "torrent-added" || tor["name"] != "meta-d4:infoee" {
		t.Fatalf("metainfo: %s %v", kind, tor)
	}
	os.WriteFile(filepath.Join(ctrl.dir, "x.torrent"), []byte("local"), 0o644)
	if kind, tor = added(map[string]any{"filename": filepath.Join(ctrl.dir, "x.torrent")}); kind != "torrent-added" || tor["name"] != "file-local" {
		t.Fatalf("path: %s %v", kind, tor)
	}
	outside := filepath.Join(t.TempDir(), "y.torrent")
	os.WriteFile(outside, []byte("secret"), 0o644)
	for args, want := range map[string]string{
		outside:                        "path outside the daemon's folders",
		"http://example.com/t.torrent": "does not fetch",
	} {
		if res, _ := added(map[string]any{"filename": args}); !strings.Contains(res, want) {
			t.Errorf("filename %s: %q", args, res)
		}
	}
	if res, _ := added(map[string]any{}); !strings.Contains(res, "no \"filename\" nor \"metainfo\"") {
		t.Errorf("nothing: %q", res)
	}
	if kind, tor = added(map[string]any{"filename": "/nowhere/x.torrent", "metainfo": "eA=="}); kind != "torrent-added" || tor["name"] != "meta-x" {
		t.Errorf("filename and metainfo: %s %v", kind, tor)
	}
}

func TestTorrentActions(t *testing.T) {
	ctrl, c, _ := setup(t)
	a := ctrl.addSample("alpha")
	ctrl.addSample("beta")
	for _, tc := range []struct {
		method string
		args   map[string]any
		want   string
	}{
		{"torrent-stop", map[string]any{"ids": []int{1}}, "stop [1]"},
		{"torrent-start", map[string]any{"ids": a.Hash}, "start [1]"},
		{"torrent-start-now", map[string]any{"ids": 2}, "start [2]"},
		{"torrent-stop", nil, "stop [1 2]"},
		{"torrent-verify", map[string]any{"ids": []int{2}}, "verify [2]"},
		{"torrent-reannounce", map[string]any{"ids": []int{1}}, "reannounce [1]"},
		{"torrent-remove", map[string]any{"ids": []int{1}}, "remove(delete=false) [1]"},
		{"torrent-remove", map[string]any{"ids": []int{2}, "delete-local-data": true}, "remove(delete=true) [2]"},
	} {
		mustCall(t, c, tc.method, tc.args)
		if got := ctrl.lastCall(); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.method, tc.args, got, tc.want)
		}
	}
	ctrl.addSample("gamma")
	if res, _ := callRes(t, c, "torrent-stop", map[string]any{"ids": []int{99, 3}}); !strings.Contains(res, "no such torrent") {
		// Unknown IDs reach the session, which says which.
		t.Errorf("unknown id: %q", res)
	}
}

func TestTorrentSet(t *testing.T) {
	ctrl, c, _ := setup(t)
	ctrl.addSample("alpha")
	mustCall(t, c, "torrent-set", map[string]any{
		"ids": []int{1}, "files-wanted": []int{0}, "files-unwanted": []int{1},
		"priority-high": []int{0}, "priority-normal": []int{1}, "priority-low": []int{},
		"downloadLimit": 100, "downloadLimited": true, "uploadLimited": false,
		"trackerAdd": []string{"udp://127.0.0.1:6969"}, "peer-limit": 20, "honorsSessionLimits": true,
	})
	ch := ctrl.lastChange()
	if !reflect.DeepEqual(ch.Wanted, []int{0}) || !reflect.DeepEqual(ch.Unwanted, []int{1}) ||
		!reflect.DeepEqual(ch.PriorityHigh, []int{0}) || !reflect.DeepEqual(ch.PriorityNormal, []int{1}) ||
		*ch.DownLimit != 100000 || *ch.UpLimit != 0 || *ch.PeerLimit != 20 ||
		!reflect.DeepEqual(ch.AddTrackers, []string{"udp://127.0.0.1:6969"}) {
		t.Fatalf("torrent-set: %+v", ch)
	}
	tor := get(t, c, 1, "downloadLimit", "downloadLimited", "uploadLimited", "fileStats")[0]
	if tor["downloadLimit"] != 100.0 || tor["downloadLimited"] != true || tor["uploadLimited"] != false {
		t.Fatalf("after torrent-set: %v", tor)
	}
	// A tracker is removed by the id torrent-get gives it.
	mustCall(t, c, "torrent-set", map[string]any{"ids": []int{1}, "trackerRemove": []int{0}})
	ch = ctrl.lastChange()
	if !reflect.DeepEqual(ch.RemoveTrackers, []string{"http://127.0.0.1:6969/announce"}) || ch.DownLimit != nil {
		t.Fatalf("trackerRemove: %+v", ch)
	}
	// Transmission 4's trackerList: the whole list as text.
	st := ctrl.find(1)
	st.Trackers = append(st.Trackers, daemon.TrackerStatus{URL: "udp://b:1", Tier: 2}, daemon.TrackerStatus{URL: "udp://c:1", Tier: 2})
	if tl := get(t, c, 1, "tracker_list")[0]["tracker_list"]; tl != "udp://127.0.0.1:6969\n\nudp://b:1\nudp://c:1" {
		t.Fatalf("trackerList: %q", tl)
	}
	mustCall(t, c, "torrent-set", map[string]any{"ids": []int{1}, "trackerList": "udp://c:1\n\nhttp://d/announce\n"})
	ch = ctrl.lastChange()
	if !reflect.DeepEqual(ch.RemoveTrackers, []string{"udp://127.0.0.1:6969", "udp://b:1"}) || !reflect.DeepEqual(ch.AddTrackers, []string{"http://d/announce"}) {
		t.Fatalf("trackerList set: %+v", ch)
	}
	if res, _ := callRes(t, c, "torrent-set", map[string]any{"ids": 1, "location": "/x"}); !strings.Contains(res, "not supported by shoal") {
		t.Fatalf("location: %q", res)
	}
}

func TestSessionMethods(t *testing.T) {
	ctrl, c, _ := setup(t)
	ctrl.addSample("alpha")
	s := mustCall(t, c, "session-get", nil)
	for k, v := range map[string]any{"rpc-version": 16.0, "download-dir": ctrl.dir, "version": "shoal test",
		"peer-port": 51413.0, "encryption": "preferred", "dht-enabled": true, "download-dir-free-space": 123456789.0,
		"seedRatioLimit": 2.0, "speed-limit-down-enabled": false} {
		if !reflect.DeepEqual(s[k], v) {
			t.Errorf("session-get %s: %v, want %v", k, s[k], v)
		}
	}
	if s := mustCall(t, c, "session-get", map[string]any{"fields": []string{"version"}}); len(s) != 1 {
		t.Errorf("session-get fields: %v", s)
	}
	mustCall(t, c, "session-set", map[string]any{
		"speed-limit-up": 40, "speed-limit-up-enabled": true, "speed-limit-down": 10,
		"download-dir": ctrl.dir + "/new", "peer-limit-per-torrent": 7, "seedRatioLimit": 1.5, "seedRatioLimited": true,
	})
	if st := ctrl.Settings(); st.UpLimit != 40000 || st.DownLimit != 10000 || st.DownloadDir != ctrl.dir+"/new" ||
		st.PeerLimit != 7 || st.SeedRatioLimit != 1.5 || !st.SeedRatioOn {
		t.Fatalf("session-set: %+v", st)
	}
	mustCall(t, c, "session-set", map[string]any{"speed-limit-up-enabled": false})
	if st := ctrl.Settings(); st.UpLimit != 0 || st.DownLimit != 10000 {
		t.Fatalf("speed-limit-up-enabled false: %+v", st)
	}
	if res, _ := callRes(t, c, "session-set", map[string]any{"dht-enabled": false}); !strings.Contains(res, `cannot change "dht-enabled"`) {
		t.Fatalf("dht-enabled: %q", res)
	}
	// A tool that sends every preference, unchanged ones too.
	mustCall(t, c, "session-set", map[string]any{"dht-enabled": true, "peer-port": 51413, "encryption": "preferred", "utp-enabled": 0, "speed-limit-down": 10})
	if res, _ := callRes(t, c, "session-set", map[string]any{"download-dir": "relative"}); !strings.Contains(res, "not absolute") {
		t.Fatalf("session's refusal: %q", res)
	}

	st := mustCall(t, c, "session-stats", nil)
	js, _ := json.Marshal(st)
	for _, s := range []string{`"torrentCount":1`, `"activeTorrentCount":1`, `"downloadSpeed":5000`,
		`"cumulative-stats":{"downloadedBytes":5000`, `"current-stats":{"downloadedBytes":1000`, `"secondsActive":60`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("session-stats: want %s in %s", s, js)
		}
	}

	if fs := mustCall(t, c, "free-space", map[string]any{"path": ctrl.dir}); fs["size-bytes"] != 123456789.0 || fs["path"] != ctrl.dir {
		t.Fatalf("free-space: %v", fs)
	}
	if res, _ := callRes(t, c, "free-space", map[string]any{"path": "/etc"}); !strings.Contains(res, "outside") {
		t.Fatalf("free-space outside: %q", res)
	}

	if res, _ := callRes(t, c, "port-test", nil); !strings.Contains(res, "cannot test its port") {
		t.Fatalf("port-test unknown: %q", res)
	}
	for _, open := range []bool{true, false} {
		ctrl.portOpen = &open
		if pt := mustCall(t, c, "port-test", nil); pt["port-is-open"] != open {
			t.Fatalf("port-test %v: %v", open, pt)
		}
	}
}

// The fast path of torrent-get's values writes what encoding/json writes.
func TestAppendValueIsJSON(t *testing.T) {
	for _, v := range []any{0, -1, int64(1) << 62, daemon.ID(7), daemon.Seeding, true, false,
		0.0, 0.5, -2.0, 1e-7, 123456789.125, 1e21, 3e20, "", "plain", "quote\"back\\slash", "tab\there",
		"ünïcode", "bad \xff utf-8", "</script>", []int{1}} {
		got := string(appendValue(nil, v))
		want, _ := json.Marshal(v)
		var a, b any
		if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%#v: %s, encoding/json says %s", v, got, want)
		}
	}
}

// A swarm no tracker takes shows as Transmission shows it: a refusal is a
// tracker error, an unreachable tracker a warning; one tracker answering
// is no error, and the torrent's own error comes first.
func TestTorrentErrorFromTrackers(t *testing.T) {
	now := time.Now()
	refused := daemon.TrackerStatus{URL: "http://a/announce", LastAnnounce: now, LastResult: "announce to 1 trackers failed: tracker failure: go away"}
	down := daemon.TrackerStatus{URL: "http://b/announce", LastAnnounce: now.Add(-time.Second), LastResult: "dial tcp: connection refused"}
	ok := daemon.TrackerStatus{URL: "http://c/announce", LastAnnounce: now.Add(-time.Minute), LastResult: "Success"}
	never := daemon.TrackerStatus{URL: "http://d/announce"}
	for _, tc := range []struct {
		st   daemon.Status
		code int
		msg  string
	}{
		{daemon.Status{}, errNone, ""},
		{daemon.Status{Trackers: []daemon.TrackerStatus{never}}, errNone, ""},
		{daemon.Status{Trackers: []daemon.TrackerStatus{down, refused}}, errTrackerError, "go away"},
		{daemon.Status{Trackers: []daemon.TrackerStatus{never, down}}, errTrackerWarning, "connection refused"},
		{daemon.Status{Trackers: []daemon.TrackerStatus{refused, ok}}, errNone, ""},
		{daemon.Status{Error: "disk full", Trackers: []daemon.TrackerStatus{refused}}, errLocal, "disk full"},
	} {
		code, msg := torrentError(&tc.st)
		if code == errTrackerError && msg != "Tracker gave an error: go away" {
			t.Errorf("a refusal reads %q, want the tracker's words alone", msg)
		}
		if code != tc.code || !strings.Contains(msg, tc.msg) || (tc.msg == "") != (msg == "") {
			t.Errorf("%+v: %d %q, want %d %q", tc.st, code, msg, tc.code, tc.msg)
		}
	}
}
