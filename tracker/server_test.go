package tracker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

func TestAnnounceCompactAndCounts(t *testing.T) {
	_, base := startServer(t, Config{Interval: 100 * time.Second, MinInterval: 40 * time.Second})
	h := ih(1)
	r1 := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 1001, Left: 10, Event: EventStarted})
	if len(r1.Peers) != 0 {
		t.Fatalf("first peer got peers %v; want none (never the asker)", r1.Peers)
	}
	if r1.Interval != 100*time.Second || r1.MinInterval != 40*time.Second {
		t.Fatalf("interval %v min %v; want 100s 40s", r1.Interval, r1.MinInterval)
	}
	if r1.Incomplete != 1 || r1.Complete != 0 {
		t.Fatalf("counts after 1 leecher: complete %d incomplete %d", r1.Complete, r1.Incomplete)
	}
	r2 := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 1002, Left: 0, Event: EventStarted})
	if r2.Complete != 1 || r2.Incomplete != 1 {
		t.Fatalf("counts: complete %d incomplete %d; want 1 1", r2.Complete, r2.Incomplete)
	}
	if len(r2.Peers) != 1 || r2.Peers[0].Addr != netip.AddrPortFrom(loop4, 1001) {
		t.Fatalf("peers %v; want 127.0.0.1:1001", r2.Peers)
	}
	// Raw check: compact peers is a 6-byte string, peers6 absent.
	raw := getRaw(t, announceURL(base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 1003, Left: 5}, ""))
	var compact []byte
	if err := bencode.Unmarshal(raw.Peers, &compact); err != nil {
		t.Fatalf("compact peers not a string: %q", raw.Peers)
	}
	if len(compact) != 12 {
		t.Fatalf("compact peers %d bytes; want 12 (two IPv4 peers)", len(compact))
	}
	if len(raw.Peers6) != 0 {
		t.Fatalf("unexpected peers6 %q", raw.Peers6)
	}
	for i := 0; i < len(compact); i += 6 {
		port := int(compact[i+4])<<8 | int(compact[i+5])
		if port == 1003 {
			t.Fatalf("asker returned to itself")
		}
		if string(compact[i:i+4]) != "\x7f\x00\x00\x01" {
			t.Fatalf("peer ip %v; want 127.0.0.1", compact[i:i+4])
		}
	}
	// Re-announce by the same peer_id updates rather than adds.
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 1003, Left: 0})
	if r.Complete != 2 || r.Incomplete != 1 {
		t.Fatalf("after peer 3 became seeder: complete %d incomplete %d; want 2 1", r.Complete, r.Incomplete)
	}
}

func TestNeverReturnsAskerAndRandomOrder(t *testing.T) {
	_, base := startServer(t, Config{})
	h := ih(2)
	for i := range 40 {
		announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(i), Port: uint16(2000 + i), Left: 1})
	}
	seen := map[string]bool{}
	for range 10 {
		r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(0), Port: 2000, Left: 1, NumWant: 5})
		if len(r.Peers) != 5 {
			t.Fatalf("got %d peers; want 5", len(r.Peers))
		}
		var sig []string
		for _, p := range r.Peers {
			if p.Addr.Port() == 2000 {
				t.Fatalf("asker returned to itself")
			}
			sig = append(sig, p.Addr.String())
		}
		seen[strings.Join(sig, ",")] = true
	}
	// 10 draws of 5 from 39 in random order: identical draws are
	// astronomically unlikely, a fixed order gives one distinct result.
	if len(seen) < 5 {
		t.Fatalf("only %d distinct peer lists in 10 announces; selection is not random", len(seen))
	}
	// With numwant above the swarm, everyone else comes back exactly once.
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(0), Port: 2000, Left: 1, NumWant: 100})
	if got := ports(r.Peers); len(got) != 39 || len(r.Peers) != 39 || got[2000] {
		t.Fatalf("numwant 100 over 40 peers: got %d peers (%d distinct)", len(r.Peers), len(got))
	}
}

func TestSeederGetsOnlyLeechers(t *testing.T) {
	_, base := startServer(t, Config{})
	h := ih(3)
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 3001, Left: 0})
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 3002, Left: 9})
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 3003, Left: 0})
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 3002 {
		t.Fatalf("seeder got %v; want only the leecher on 3002", r.Peers)
	}
	r = announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(4), Port: 3004, Left: 9})
	if len(r.Peers) != 3 {
		t.Fatalf("leecher got %d peers; want 3", len(r.Peers))
	}
}

func TestNonCompactAndNoPeerID(t *testing.T) {
	_, base := startServer(t, Config{})
	h := ih(4)
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 4001, Left: 1})
	// The list form never carries "peer id", asked for or not: the store
	// keeps only a hash of it.
	for _, noPeerID := range []bool{false, true} {
		_, body := get(t, announceURL(base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 4002, Left: 1, NonCompact: true, NoPeerID: noPeerID}, ""))
		var r struct {
			Peers []map[string]any `bencode:"peers"`
		}
		if err := bencode.Unmarshal(body, &r); err != nil {
			t.Fatalf("non-compact response %q: %v", body, err)
		}
		if len(r.Peers) != 1 || len(r.Peers[0]) != 2 || r.Peers[0]["ip"] != "127.0.0.1" || fmt.Sprint(r.Peers[0]["port"]) != "4001" {
			t.Fatalf("no_peer_id=%v: non-compact peers %+v; want only ip and port of peer 1", noPeerID, r.Peers)
		}
		if strings.Contains(string(body), "peer id") {
			t.Fatalf("no_peer_id=%v: response has peer ids: %q", noPeerID, body)
		}
	}
	// The client parses the list form too, with zero IDs.
	cr := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 4003, Left: 1, NonCompact: true})
	if len(cr.Peers) != 2 {
		t.Fatalf("client non-compact parse: %+v", cr.Peers)
	}
	for _, p := range cr.Peers {
		if p.ID != (PeerID{}) || p.Addr.Addr() != netip.MustParseAddr("127.0.0.1") || (p.Addr.Port() != 4001 && p.Addr.Port() != 4002) {
			t.Fatalf("client non-compact parse: %+v", cr.Peers)
		}
	}
}

func TestPeers6ViaIPParamFromLoopback(t *testing.T) {
	_, base := startServer(t, Config{})
	h := ih(5)
	v6 := netip.MustParseAddr("2001:db8::7")
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 5001, Left: 1, IP: v6})
	raw := getRaw(t, announceURL(base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 5002, Left: 1}, ""))
	var p6 []byte
	if err := bencode.Unmarshal(raw.Peers6, &p6); err != nil || len(p6) != 18 {
		t.Fatalf("peers6 = %q (err %v); want one 18-byte entry", raw.Peers6, err)
	}
	if got := netip.AddrFrom16([16]byte(p6[:16])); got != v6 || int(p6[16])<<8|int(p6[17]) != 5001 {
		t.Fatalf("peers6 entry %v; want [%v]:5001", p6, v6)
	}
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 5003, Left: 1})
	if got := ports(r.Peers); !got[5001] || !got[5002] {
		t.Fatalf("client parsed %v; want both the v6 and the v4 peer", r.Peers)
	}
}

func TestPeers6OverIPv6Listener(t *testing.T) {
	// Falls back to the ip parameter test above where IPv6 loopback is
	// unavailable, so this test fails only if [::1] works and the tracker
	// mishandles it.
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback (%v); IPv6 peers covered by TestPeers6ViaIPParamFromLoopback", err)
		return
	}
	ln.Close()
	_, base := startServerOn(t, Config{}, "tcp6", "[::1]:0")
	h := ih(6)
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 6001, Left: 1})
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 6002, Left: 1})
	if len(r.Peers) != 1 || r.Peers[0].Addr != netip.MustParseAddrPort("[::1]:6001") {
		t.Fatalf("peers %v; want [::1]:6001", r.Peers)
	}
}

func TestIPParamIgnoredFromPublicAddress(t *testing.T) {
	srv, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := ih(7)
	do := func(remote string, req AnnounceRequest) rawResp {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", announceURL("", req, ""), nil)
		r.RemoteAddr = remote
		srv.ServeHTTP(rec, r)
		var out rawResp
		if err := bencode.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("bad response %q", rec.Body.Bytes())
		}
		return out
	}
	do("203.0.113.9:5555", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 1, IP: netip.MustParseAddr("198.51.100.1")})
	out := do("203.0.113.10:5555", AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 7002, Left: 1})
	var b []byte
	bencode.Unmarshal(out.Peers, &b)
	if string(b) != "\xcb\x00\x71\x09\x1b\x59" {
		t.Fatalf("peer recorded as %v; want the connection address 203.0.113.9:7001", b)
	}
	// From a private address the claim is honoured.
	do("10.0.0.2:5555", AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 7003, Left: 1, IP: netip.MustParseAddr("198.51.100.1")})
	out = do("203.0.113.10:5555", AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 7002, Left: 1})
	bencode.Unmarshal(out.Peers, &b)
	if !strings.Contains(string(b), "\xc6\x33\x64\x01\x1b\x5b") {
		t.Fatalf("ip param from private source not honoured: %v", b)
	}
}

func TestEvents(t *testing.T) {
	_, base := startServer(t, Config{})
	h := ih(8)
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 5, Event: EventStarted})
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 8002, Left: 5, Event: EventStarted})
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 0, Event: EventCompleted})
	if r.Complete != 1 || r.Incomplete != 1 || r.Downloaded != 1 {
		t.Fatalf("after completed: %d/%d/%d; want 1/1/1", r.Complete, r.Incomplete, r.Downloaded)
	}
	// A repeated completed from a seeder is not counted twice.
	r = announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 0, Event: EventCompleted})
	if r.Downloaded != 1 {
		t.Fatalf("downloaded %d after duplicate completed; want 1", r.Downloaded)
	}
	// stopped removes at once and gets no peers back.
	r = announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 0, Event: EventStopped})
	if r.Complete != 0 || r.Incomplete != 1 || len(r.Peers) != 0 {
		t.Fatalf("after stopped: complete %d incomplete %d peers %v; want 0 1 none", r.Complete, r.Incomplete, r.Peers)
	}
	r = announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 8002, Left: 5})
	if len(r.Peers) != 0 {
		t.Fatalf("stopped peer still returned: %v", r.Peers)
	}
	// stopped for an unknown torrent does not create it.
	var c Client
	sc, err := c.Scrape(context.Background(), base+"/announce", ih(99))
	if err != nil {
		t.Fatal(err)
	}
	announceOK(t, base, AnnounceRequest{InfoHash: ih(99), PeerID: pid(1), Port: 8001, Event: EventStopped})
	if sc[ih(99)] != (Swarm{}) {
		t.Fatalf("unknown torrent scrape %+v", sc[ih(99)])
	}
}

func TestExpiryWithInjectedClock(t *testing.T) {
	clk := newFakeClock()
	srv, base := startServer(t, Config{Interval: 60 * time.Second, Now: clk.Now})
	h := ih(9)
	announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 9001, Left: 1})
	clk.Advance(90 * time.Second) // within two intervals: still there
	r := announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 9002, Left: 1})
	if len(r.Peers) != 1 {
		t.Fatalf("peer expired too early: %v", r.Peers)
	}
	clk.Advance(31 * time.Second) // peer 1 silent for 121s > 2×60s
	r = announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 9003, Left: 1})
	if got := ports(r.Peers); got[9001] || !got[9002] || r.Incomplete != 2 {
		t.Fatalf("after expiry peers %v incomplete %d; want only 9002 and 2", r.Peers, r.Incomplete)
	}
	// Idle torrents are swept entirely.
	clk.Advance(10 * time.Minute)
	srv.store.Sweep(clk.Now())
	if st := srv.Stats(); st.Torrents != 0 || st.Peers != 0 || st.ExpiredPeers != 3 {
		t.Fatalf("after sweep: %+v; want 0 torrents, 0 peers, 3 expired", st.StoreStats)
	}
}

func TestSweeperRunsUnderServe(t *testing.T) {
	clk := newFakeClock()
	srv, base := startServer(t, Config{Interval: 10 * time.Second, SweepInterval: 10 * time.Millisecond, Now: clk.Now})
	announceOK(t, base, AnnounceRequest{InfoHash: ih(10), PeerID: pid(1), Port: 1, Left: 1})
	clk.Advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Peers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper did not expire the idle peer: %+v", srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNumWantClamp(t *testing.T) {
	_, base := startServer(t, Config{MaxNumWant: 5, DefaultNumWant: 3})
	h := ih(11)
	for i := range 12 {
		announceOK(t, base, AnnounceRequest{InfoHash: h, PeerID: pid(i), Port: uint16(1100 + i), Left: 1})
	}
	for _, tc := range []struct {
		extra string
		want  int
	}{
		{"numwant=99999999999999999999999999999999999999", 5},
		{"numwant=2", 2},
		{"numwant=0", 0},
		{"", 3},
	} {
		raw := getRaw(t, announceURL(base, AnnounceRequest{InfoHash: h, PeerID: pid(0), Port: 1100, Left: 1}, tc.extra))
		var b []byte
		bencode.Unmarshal(raw.Peers, &b)
		if raw.Failure != "" || len(b) != 6*tc.want {
			t.Errorf("%q: failure %q, %d peers; want %d", tc.extra, raw.Failure, len(b)/6, tc.want)
		}
	}
}

func TestScrape(t *testing.T) {
	_, base := startServer(t, Config{})
	a, b, unknown := ih(12), ih(13), ih(14)
	announceOK(t, base, AnnounceRequest{InfoHash: a, PeerID: pid(1), Port: 1, Left: 0})
	announceOK(t, base, AnnounceRequest{InfoHash: a, PeerID: pid(2), Port: 2, Left: 1})
	announceOK(t, base, AnnounceRequest{InfoHash: b, PeerID: pid(3), Port: 3, Left: 1, Event: EventStarted})
	announceOK(t, base, AnnounceRequest{InfoHash: b, PeerID: pid(3), Port: 3, Left: 0, Event: EventCompleted})
	var c Client
	one, err := c.Scrape(context.Background(), base+"/announce", a)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[a] != (Swarm{Complete: 1, Incomplete: 1}) {
		t.Fatalf("single scrape %+v", one)
	}
	many, err := c.Scrape(context.Background(), base+"/announce", a, b, unknown)
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 3 || many[b] != (Swarm{Complete: 1, Downloaded: 1}) || many[unknown] != (Swarm{}) {
		t.Fatalf("multi scrape %+v", many)
	}
	// Raw wire form: files dict keyed by the 20 raw bytes.
	_, body := get(t, base+"/scrape?info_hash="+string(appendEscaped(nil, a[:])))
	if !strings.HasPrefix(string(body), "d5:filesd20:"+string(a[:])+"d8:completei1e10:downloadedi0e10:incompletei1eeee") {
		t.Fatalf("scrape body %q", body)
	}
	// No hash (full scrape), a bad hash and too many hashes are refused.
	if r := getRaw(t, base+"/scrape"); r.Failure != string(errFullScrape) {
		t.Fatalf("full scrape: %q", r.Failure)
	}
	if r := getRaw(t, base+"/scrape?info_hash=abc"); r.Failure != string(errBadInfoHash) {
		t.Fatalf("bad hash scrape: %q", r.Failure)
	}
	var q []string
	for i := range 40 {
		h := ih(byte(100 + i))
		q = append(q, "info_hash="+string(appendEscaped(nil, h[:])))
	}
	if r := getRaw(t, base+"/scrape?"+strings.Join(q, "&")); r.Failure != string(errTooManyHashes) {
		t.Fatalf("40-hash scrape: %q", r.Failure)
	}
}

func TestPrivateMode(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("# users\nalice-key_1\n\n  bob.key  # bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, base := startServer(t, Config{Private: true, KeysFile: keys})
	var c Client
	req := AnnounceRequest{InfoHash: ih(15), PeerID: pid(1), Port: 1, Left: 1}
	if _, err := c.Announce(context.Background(), base+"/announce/alice-key_1", req); err != nil {
		t.Fatalf("good key: %v", err)
	}
	if _, err := c.Announce(context.Background(), base+"/announce/bob.key", req); err != nil {
		t.Fatalf("good key with comment: %v", err)
	}
	if _, err := c.Announce(context.Background(), base+"/announce/mallory", req); failureOf(err) != string(errBadPasskey) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := c.Announce(context.Background(), base+"/announce", req); failureOf(err) != string(errMissingPasskey) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := c.Scrape(context.Background(), base+"/announce/alice-key_1", ih(15)); err != nil {
		t.Fatalf("scrape with good key: %v", err)
	}
	if _, err := c.Scrape(context.Background(), base+"/announce/nope", ih(15)); failureOf(err) != string(errBadPasskey) {
		t.Fatalf("scrape with bad key: %v", err)
	}
	// Reload: alice removed, carol added.
	if err := os.WriteFile(keys, []byte("carol\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Announce(context.Background(), base+"/announce/carol", req); err != nil {
		t.Fatalf("reloaded key: %v", err)
	}
	if _, err := c.Announce(context.Background(), base+"/announce/alice-key_1", req); failureOf(err) != string(errBadPasskey) {
		t.Fatalf("removed key still accepted: %v", err)
	}
	// A broken file keeps the old keys.
	os.WriteFile(keys, []byte("bad key with spaces\n"), 0o600)
	if err := srv.ReloadKeys(); err == nil || !strings.Contains(err.Error(), keys+":1") {
		t.Fatalf("reload of bad file: %v; want error naming %s:1", err, keys)
	}
	if _, err := c.Announce(context.Background(), base+"/announce/carol", req); err != nil {
		t.Fatalf("old keys lost after failed reload: %v", err)
	}
	if _, err := NewServer(Config{Private: true}); err == nil {
		t.Fatal("Private without KeysFile accepted")
	}
}

func TestPublicModeRejectsKeyPath(t *testing.T) {
	_, base := startServer(t, Config{})
	if code, _ := get(t, base+"/announce/somekey?x=1"); code != 404 {
		t.Fatalf("status %d; want 404", code)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Fatalf("status %d; want 404", code)
	}
	resp, err := httpc.Post(base+"/announce", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status %d", resp.StatusCode)
	}
}

func TestAllowList(t *testing.T) {
	okHash := ih(16)
	srv, base := startServer(t, Config{AllowHashes: []InfoHash{okHash}})
	var c Client
	if _, err := c.Announce(context.Background(), base+"/announce", AnnounceRequest{InfoHash: okHash, PeerID: pid(1), Port: 1}); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	_, err := c.Announce(context.Background(), base+"/announce", AnnounceRequest{InfoHash: ih(17), PeerID: pid(1), Port: 1})
	if failureOf(err) != string(errUnregistered) {
		t.Fatalf("not allowed: %v", err)
	}
	if st := srv.Stats(); st.Torrents != 1 || st.AllowListed != 1 {
		t.Fatalf("refused torrent stored or allow list miscounted: %+v", st)
	}
	srv.SetAllowHashes(nil)
	if _, err := c.Announce(context.Background(), base+"/announce", AnnounceRequest{InfoHash: ih(17), PeerID: pid(1), Port: 1}); err != nil {
		t.Fatalf("after clearing allow list: %v", err)
	}
}

func TestLoadAllowList(t *testing.T) {
	v1 := strings.Repeat("ab", 20)
	v2 := strings.Repeat("0123456789abcdef", 4)
	path := filepath.Join(t.TempDir(), "allow")
	os.WriteFile(path, []byte("# allowed\n"+v1+"\n\n"+strings.ToUpper(v2)+"  # full v2\n"), 0o600)
	hs, err := LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].String() != v1 || hs[1].String() != v2[:40] {
		t.Fatalf("loaded %v", hs)
	}
	for _, bad := range []string{"abc\n", v1 + "0\n", strings.Repeat("zz", 20) + "\n"} {
		os.WriteFile(path, []byte("# c\n"+bad), 0o600)
		if _, err := LoadAllowList(path); err == nil || !strings.Contains(err.Error(), path+":2") {
			t.Errorf("line %q: err %v; want error naming %s:2", bad, err, path)
		}
	}
	if _, err := LoadAllowList(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestHostileQueries(t *testing.T) {
	srv, base := startServer(t, Config{})
	good := AnnounceRequest{InfoHash: ih(18), PeerID: pid(1), Port: 1801, Left: 1}
	q := string(good.query(nil))
	esc := func(s string) string { return string(appendEscaped(nil, []byte(s))) }
	replace := func(old, new string) string {
		if !strings.Contains(q, old) {
			t.Fatalf("query %q lacks %q", q, old)
		}
		return strings.Replace(q, old, new, 1)
	}
	ihParam := "info_hash=" + esc(string(good.InfoHash[:]))
	for _, tc := range []struct {
		name, query string
		want        failure
	}{
		{"info_hash 19 bytes", replace(ihParam, "info_hash="+esc(strings.Repeat("a", 19))), errBadInfoHash},
		{"info_hash 21 bytes", replace(ihParam, "info_hash="+esc(strings.Repeat("a", 21))), errBadInfoHash},
		{"info_hash 32 bytes (full v2)", replace(ihParam, "info_hash="+esc(strings.Repeat("a", 32))), errBadInfoHash},
		{"info_hash huge", replace(ihParam, "info_hash="+strings.Repeat("a", 3000)), errBadInfoHash},
		{"info_hash bad escape", replace(ihParam, "info_hash=%zz"+strings.Repeat("a", 18)), errBadInfoHash},
		{"info_hash missing", replace(ihParam, "x=1"), errMissingInfoHash},
		{"info_hash twice", q + "&" + ihParam, errDuplicate},
		{"peer_id short", replace("peer_id=", "peer_id=ab&x="), errBadPeerID},
		{"port missing", replace("port=1801", "x=1"), errMissingPort},
		{"port zero", replace("port=1801", "port=0"), errBadPort},
		{"port too big", replace("port=1801", "port=65536"), errBadPort},
		{"port non-numeric", replace("port=1801", "port=abc"), errBadPort},
		{"port negative", replace("port=1801", "port=-1"), errBadPort},
		{"port empty", replace("port=1801", "port="), errBadPort},
		{"uploaded non-numeric", replace("uploaded=0", "uploaded=1e9"), errBadUploaded},
		{"downloaded overflow", replace("downloaded=0", "downloaded=99999999999999999999999"), errBadDownloaded},
		{"left negative", replace("left=1", "left=-1"), errBadLeft},
		{"event bogus", q + "&event=exploded", errBadEvent},
		{"numwant negative", q + "&numwant=-5", errBadNumWant},
		{"compact bogus", replace("compact=1", "compact=yes"), errBadCompact},
		{"no_peer_id bogus", q + "&no_peer_id=2", errBadNoPeerID},
		{"key too long", q + "&key=" + strings.Repeat("k", 100), errBadKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := getRaw(t, base+"/announce?"+tc.query)
			if r.Failure != string(tc.want) {
				t.Fatalf("failure %q; want %q", r.Failure, tc.want)
			}
		})
	}
	if st := srv.Stats(); st.Torrents != 0 || st.Announces != 0 {
		t.Fatalf("hostile queries stored state: %+v", st)
	}
	// Unknown parameters and an unparsable ip are ignored, not refused.
	if r := getRaw(t, base+"/announce?"+q+"&supportcrypto=1&ip=not.an.ip&corrupt=0"); r.Failure != "" {
		t.Fatalf("extension parameters refused: %q", r.Failure)
	}
}

func TestOversizedRequests(t *testing.T) {
	_, base := startServer(t, Config{MaxQueryBytes: 1000, MaxHeaderBytes: 4096})
	// Query over MaxQueryBytes but within the header cap: 414.
	if code, _ := get(t, base+"/announce?x="+strings.Repeat("a", 2000)); code != http.StatusRequestURITooLong {
		t.Fatalf("long query: status %d; want 414", code)
	}
	if code, _ := get(t, base+"/scrape?x="+strings.Repeat("a", 2000)); code != http.StatusRequestURITooLong {
		t.Fatalf("long scrape query: status %d; want 414", code)
	}
	// Request line or headers past MaxHeaderBytes (net/http adds 4 KiB of
	// slack): 431 from net/http, or a cut connection.
	for name, extra := range map[string]string{
		"request line": "",
		"header":       "X-Junk: " + strings.Repeat("j", 64<<10) + "\r\n",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		path := "/announce"
		if extra == "" {
			path += "?x=" + strings.Repeat("a", 64<<10)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, extra)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong {
				t.Errorf("%s: status %d; want 431 or 414", name, resp.StatusCode)
			}
			resp.Body.Close()
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: no answer and no cut: %v", name, err)
		}
		conn.Close()
	}
}

func TestRateLimitPerIP(t *testing.T) {
	srv, base := startServer(t, Config{RateLimit: 0.001, RateBurst: 3})
	req := AnnounceRequest{InfoHash: ih(19), PeerID: pid(1), Port: 1, Left: 1}
	for i := range 3 {
		if r := getRaw(t, announceURL(base, req, "")); r.Failure != "" {
			t.Fatalf("request %d within burst refused: %q", i, r.Failure)
		}
	}
	r := getRaw(t, announceURL(base, req, ""))
	if r.Failure != string(errRateLimited) || r.RetryIn != 1 {
		t.Fatalf("over budget: failure %q retry in %d", r.Failure, r.RetryIn)
	}
	if code, _ := get(t, base+"/stats"); code != http.StatusTooManyRequests {
		t.Fatalf("stats over budget: status %d; want 429", code)
	}
	var c Client
	if _, err := c.Announce(context.Background(), base+"/announce", req); failureOf(err) != string(errRateLimited) {
		t.Fatalf("client sees %v", err)
	}
	if st := srv.Stats(); st.RateLimited != 3 || st.Announces != 3 {
		t.Fatalf("stats %+v; want 3 rate limited, 3 announces", st)
	}
	// Another address has its own budget.
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest("GET", announceURL("", req, ""), nil)
	hr.RemoteAddr = "192.0.2.1:1000"
	srv.ServeHTTP(rec, hr)
	if strings.Contains(rec.Body.String(), "failure") {
		t.Fatalf("other address limited: %q", rec.Body.String())
	}
}

func TestRateLimiterRefillAndV6Prefix(t *testing.T) {
	l := newIPLimiter(1, 2, 1000)
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2::ffff") // same /64
	if !l.allow(a, now) || !l.allow(b, now) || l.allow(a, now) {
		t.Fatal("a /64 should share one bucket of 2")
	}
	if !l.allow(netip.MustParseAddr("2001:db8:1:3::1"), now) {
		t.Fatal("another /64 was limited")
	}
	if !l.allow(a, now.Add(1100*time.Millisecond)) || l.allow(a, now.Add(1100*time.Millisecond)) {
		t.Fatal("refill of 1 token per second wrong")
	}
	// Address table stays bounded.
	small := newIPLimiter(1, 1, 16)
	for i := range 1000 {
		small.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	total := 0
	for i := range small.shards {
		total += len(small.shards[i].m)
	}
	if total > 16 {
		t.Fatalf("limiter tracks %d addresses; cap 16", total)
	}
}

func TestSlowClientTimedOut(t *testing.T) {
	_, base := startServer(t, Config{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /announce?info_hash="); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn) // returns when the server closes
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("server kept a slow client for 5s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow client cut after %v", d)
	}
}

func TestStatsJSON(t *testing.T) {
	_, base := startServer(t, Config{Interval: time.Minute})
	announceOK(t, base, AnnounceRequest{InfoHash: ih(20), PeerID: pid(1), Port: 1, Left: 0})
	announceOK(t, base, AnnounceRequest{InfoHash: ih(20), PeerID: pid(2), Port: 2, Left: 1})
	announceOK(t, base, AnnounceRequest{InfoHash: ih(21), PeerID: pid(2), Port: 2, Left: 1})
	get(t, base+"/announce?port=1")
	var c Client
	c.Scrape(context.Background(), base+"/announce", ih(20))
	code, body := get(t, base+"/stats")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats %q: %v", body, err)
	}
	want := map[string]float64{"torrents": 2, "peers": 3, "seeders": 1, "leechers": 2, "announces": 3, "scrapes": 1, "refused": 1, "interval_seconds": 60}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("stats[%q] = %v; want %v (%s)", k, st[k], v, body)
		}
	}
}

func TestServeStopsCleanly(t *testing.T) {
	before := countGoroutines()
	srv, err := NewServer(Config{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	tr := &http.Transport{}
	c := Client{HTTP: &http.Client{Transport: tr}}
	if _, err := c.Announce(ctx, base+"/announce", AnnounceRequest{InfoHash: ih(22), PeerID: pid(1), Port: 1}); err != nil {
		t.Fatal(err)
	}
	// An idle keep-alive connection must not hold Serve open.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for countGoroutines() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after Serve returned", before, countGoroutines())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still open after Serve returned")
	}
}

func TestServeListenerError(t *testing.T) {
	srv, _ := NewServer(Config{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	err := srv.Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Serve on closed listener: %v; want error naming the address", err)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := NewServer(Config{Interval: time.Minute, MinInterval: time.Hour}); err == nil {
		t.Fatal("MinInterval > Interval accepted")
	}
	if _, err := NewServer(Config{Private: true, KeysFile: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Fatal("missing keys file accepted")
	}
}

func TestPeerIDInUseWithKey(t *testing.T) {
	srv, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(remote string, req AnnounceRequest) string {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", announceURL("", req, ""), nil)
		r.RemoteAddr = remote
		srv.ServeHTTP(rec, r)
		var out rawResp
		bencode.Unmarshal(rec.Body.Bytes(), &out)
		return out.Failure
	}
	req := AnnounceRequest{InfoHash: ih(23), PeerID: pid(1), Port: 1, Key: 0xdeadbeef}
	if f := do("192.0.2.1:1", req); f != "" {
		t.Fatal(f)
	}
	hijack := req
	hijack.Key = 0
	hijack.Event = EventStopped
	if f := do("192.0.2.2:1", hijack); f != string(errPeerIDInUse) {
		t.Fatalf("stop from other address without key: %q", f)
	}
	// The rightful owner may move address with its key.
	if f := do("192.0.2.3:1", req); f != "" {
		t.Fatalf("owner moving address: %q", f)
	}
	if sw := srv.store.Scrape(time.Now(), ih(23)); sw.Complete != 1 || sw.Incomplete != 0 {
		t.Fatalf("swarm %+v", sw)
	}
}

func countGoroutines() int {
	return len(strings.Split(strings.TrimSpace(goroutineDump()), "\n\n"))
}
