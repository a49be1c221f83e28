package tracker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// fakeTracker answers every request with body, recording the last query.
func fakeTracker(t *testing.T, body string) (*httptest.Server, *string) {
	var last string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last = r.URL.RawQuery
		w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts, &last
}

func TestClientParsesForeignResponses(t *testing.T) {
	list := bencode.MustMarshal(map[string]any{
		"interval": 900, "min interval": 60, "complete": 4, "incomplete": 5,
		"warning message": "be nice", "tracker id": "tid",
		"peers": []map[string]any{
			{"peer id": strings.Repeat("p", 20), "ip": "192.0.2.1", "port": 6881},
			{"ip": "tracker.example", "port": 1}, // names are not resolved
			{"ip": "2001:db8::1", "port": 70000}, // bad port skipped
			{"ip": "2001:db8::2", "port": 51413},
		},
		"peers6": string(append(netip.MustParseAddr("2001:db8::3").AsSlice(), 0x1a, 0xe1)),
	})
	ts, last := fakeTracker(t, string(list))
	var c Client
	r, err := c.Announce(context.Background(), ts.URL+"/announce?passkey=x", AnnounceRequest{
		InfoHash: ih(40), PeerID: pid(1), Port: 6881, Left: 7, Event: EventStarted, NumWant: 30, Key: 0xab, IP: netip.MustParseAddr("10.1.2.3"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 900*time.Second || r.MinInterval != time.Minute || r.Complete != 4 || r.Incomplete != 5 || r.Warning != "be nice" || r.TrackerID != "tid" {
		t.Fatalf("response %+v", r)
	}
	want := []string{"192.0.2.1:6881", "[2001:db8::2]:51413", "[2001:db8::3]:6881"}
	if len(r.Peers) != len(want) {
		t.Fatalf("peers %v; want %v", r.Peers, want)
	}
	for i, p := range r.Peers {
		if p.Addr.String() != want[i] {
			t.Fatalf("peer %d = %v; want %s", i, p.Addr, want[i])
		}
	}
	if string(r.Peers[0].ID[:]) != strings.Repeat("p", 20) {
		t.Fatalf("peer id lost: %q", r.Peers[0].ID)
	}
	for _, p := range []string{"passkey=x&info_hash=", "&port=6881", "&left=7", "&event=started", "&numwant=30", "&key=000000ab", "&ip=10.1.2.3", "&compact=1"} {
		if !strings.Contains(*last, p) {
			t.Errorf("query %q lacks %q", *last, p)
		}
	}
	// The query the client sends parses back to the request on our server.
	var q announceQuery
	if err := parseAnnounce(*last, &q, 100); err != nil || q.InfoHash != ih(40) || q.PeerID != pid(1) || q.Left != 7 {
		t.Fatalf("client query does not round-trip: %+v %v", q, err)
	}
}

func TestClientErrors(t *testing.T) {
	var c Client
	ctx := context.Background()
	req := AnnounceRequest{InfoHash: ih(41), PeerID: pid(1), Port: 1}

	ts, _ := fakeTracker(t, "d14:failure reason7:go away8:retry ini5ee")
	_, err := c.Announce(ctx, ts.URL+"/announce", req)
	var fe *FailureError
	if !errors.As(err, &fe) || fe.Reason != "go away" || fe.RetryIn != 5*time.Minute || !strings.Contains(err.Error(), ts.URL+"/announce") {
		t.Fatalf("failure: %v", err)
	}
	ts, _ = fakeTracker(t, "d8:intervali60e5:peers7:abcdefge")
	if _, err := c.Announce(ctx, ts.URL+"/announce", req); err == nil || !strings.Contains(err.Error(), "multiple of 6") {
		t.Fatalf("bad compact length: %v", err)
	}
	ts, _ = fakeTracker(t, "not bencode")
	if _, err := c.Announce(ctx, ts.URL+"/announce", req); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Fatalf("garbage: %v", err)
	}
	ts, _ = fakeTracker(t, "d5:peers0:e")
	if _, err := c.Announce(ctx, ts.URL+"/announce", req); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Fatalf("no interval: %v", err)
	}
	big := "d8:intervali60e5:peers" + "2000000:" + strings.Repeat("x", 2_000_000) + "e"
	ts, _ = fakeTracker(t, big)
	if _, err := c.Announce(ctx, ts.URL+"/announce", req); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized body: %v", err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	quick := Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := quick.Announce(ctx, slow.URL+"/announce", req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow tracker: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("timeout not applied")
	}
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if _, err := c.Announce(ctx, notFound.URL+"/announce", req); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	if _, err := c.Announce(ctx, "udp://127.0.0.1:1/announce", req); err == nil || !strings.Contains(err.Error(), "udp") {
		t.Fatalf("udp: %v", err)
	}
	if _, err := c.Scrape(ctx, "http://127.0.0.1:1/nothing", ih(1)); err == nil {
		t.Fatal("scrape without announce path accepted")
	}
}

func TestScrapeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://t.example/announce":             "http://t.example/scrape",
		"http://t.example/x/announce.php?k=1":   "http://t.example/x/scrape.php?k=1",
		"http://t.example/announce/abc123":      "http://t.example/scrape/abc123",
		"https://t.example:8443/announce?a=b&c": "https://t.example:8443/scrape?a=b&c",
	} {
		got, err := ScrapeURL(in)
		if err != nil || got != want {
			t.Errorf("ScrapeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://t.example/a", "http://t.example/announce/a/b", "http://t.example/"} {
		if got, err := ScrapeURL(bad); err == nil {
			t.Errorf("ScrapeURL(%q) = %q; want error", bad, got)
		}
	}
}

func TestTiers(t *testing.T) {
	tiers := NewTiers([][]string{{"a1", "a2", "a3", ""}, {}, {"b1"}}, "ignored")
	got := tiers.Tiers()
	if len(got) != 2 || len(got[0]) != 3 || got[1][0] != "b1" {
		t.Fatalf("tiers %v", got)
	}
	// Shuffling within a tier: across many builds the first URL varies.
	firsts := map[string]bool{}
	for range 50 {
		firsts[NewTiers([][]string{{"a1", "a2", "a3"}}, "").URLs()[0]] = true
	}
	if len(firsts) < 2 {
		t.Fatalf("tier never shuffled: %v", firsts)
	}
	u := tiers.URLs()
	tiers.Promote(u[2])
	if after := tiers.URLs(); after[0] != u[2] || after[1] != u[0] || after[2] != u[1] || after[3] != "b1" {
		t.Fatalf("promote %q: %v -> %v", u[2], u, after)
	}
	if one := NewTiers(nil, "only").URLs(); len(one) != 1 || one[0] != "only" {
		t.Fatalf("fallback to announce: %v", one)
	}
}

func TestClientAnnounceTiers(t *testing.T) {
	_, base := startServer(t, Config{})
	dead := "http://127.0.0.1:1/announce" // nothing listens on port 1
	tiers := NewTiers([][]string{{dead}, {"http://127.0.0.1:1/other/announce", base + "/announce"}}, "")
	var c Client
	resp, used, err := c.AnnounceTiers(context.Background(), tiers, AnnounceRequest{InfoHash: ih(42), PeerID: pid(1), Port: 1})
	if err != nil || used != base+"/announce" || resp.Interval != DefaultInterval {
		t.Fatalf("AnnounceTiers: %v %q %v", resp, used, err)
	}
	if got := tiers.Tiers(); got[1][0] != base+"/announce" {
		t.Fatalf("working tracker not promoted: %v", got)
	}
	_, _, err = c.AnnounceTiers(context.Background(), NewTiers([][]string{{dead}}, ""), AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("all dead: %v", err)
	}
}
