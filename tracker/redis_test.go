package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/redistest"
)

// newRedisStore returns a store on url closed when the test ends.
func newRedisStore(t *testing.T, url string, ttl time.Duration) *RedisStore {
	t.Helper()
	rs, err := NewRedisStore(RedisStoreConfig{URL: url, PeerTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

// Two instances on one Redis serve one swarm: a peer announced over HTTP
// at A is handed out over UDP and HTTP at B, and scrapes at B (HTTP and
// UDP) count what A recorded, completions included.
func TestRedisPeersAcrossInstances(t *testing.T) {
	rd := redistest.Start(t)
	srvA, baseA, udpA := startUDPServer(t, Config{Store: newRedisStore(t, rd.URL(0), 0)}, "127.0.0.1")
	srvB, baseB, udpB := startUDPServer(t, Config{Store: newRedisStore(t, rd.URL(0), 0)}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	h := ih(40)
	if _, err := c.Announce(ctx, baseA+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 0, Event: EventStarted}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, udpB, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 7002, Left: 5, Event: EventStarted})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 7001 || r.Complete != 1 || r.Incomplete != 1 {
		t.Fatalf("UDP at B: %+v; want A's seeder and counts 1/1", r)
	}
	r, err = c.Announce(ctx, baseB+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 7003, Left: 5, NonCompact: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ports(r.Peers); len(r.Peers) != 2 || !got[7001] || !got[7002] {
		t.Fatalf("HTTP at B: peers %+v; want 7001 and 7002", r.Peers)
	}
	// A seeder is given leechers only.
	r, err = c.Announce(ctx, udpA, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := ports(r.Peers); len(r.Peers) != 2 || !got[7002] || !got[7003] {
		t.Fatalf("seeder at A over UDP: %+v; want the two leechers", r.Peers)
	}
	// The leecher from UDP completes at A.
	if _, err := c.Announce(ctx, baseA+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 7002, Left: 0, Event: EventCompleted}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{baseB + "/announce", udpB} {
		sc, err := c.Scrape(ctx, u, h, ih(41))
		if err != nil {
			t.Fatalf("scrape %s: %v", u, err)
		}
		if got, want := sc[h], (Swarm{Complete: 2, Incomplete: 1, Downloaded: 1}); got != want {
			t.Fatalf("scrape at B (%s): %+v; want %+v", u, got, want)
		}
		if got := sc[ih(41)]; got != (Swarm{}) {
			t.Fatalf("unknown torrent scraped as %+v", got)
		}
	}
	// BEP 7: pid 1 registered a key at A; at B, from another address
	// and without that key, it cannot take the entry over, with it it can.
	if _, err := c.Announce(ctx, baseA+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7001, Left: 0, Key: 7}); err != nil {
		t.Fatal(err)
	}
	moved := AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7101, Left: 0, Key: 8, IP: netip.MustParseAddr("127.0.0.9")}
	if _, err := c.Announce(ctx, baseB+"/announce", moved); !strings.Contains(failureOf(err), "peer_id in use") {
		t.Fatalf("peer id taken over at B without its key: %v", err)
	}
	moved.Key = 7
	if _, err := c.Announce(ctx, baseB+"/announce", moved); err != nil {
		t.Fatalf("peer moving with its key: %v", err)
	}
	r, err = c.Announce(ctx, udpA, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 7003, Left: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := ports(r.Peers); len(r.Peers) != 2 || !got[7101] || got[7001] {
		t.Fatalf("after the move: %+v; want the seeder at its new port only", r.Peers)
	}
	// A stop at B removes A's peer for everybody.
	if _, err := c.Announce(ctx, baseB+"/announce", AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 7101, Left: 0, Key: 7, Event: EventStopped}); err != nil {
		t.Fatal(err)
	}
	st := srvA.Stats()
	if st.Torrents != 1 || st.Peers != 2 || st.Seeders != 1 || st.Leechers != 1 || st.Store == nil || !st.Store.Up {
		t.Fatalf("stats at A: %+v store %+v", st.StoreStats, st.Store)
	}
	if st := srvB.Stats(); st.Peers != 2 {
		t.Fatalf("stats at B: %+v", st.StoreStats)
	}
}

// Peers past the TTL are neither handed out nor counted, and Sweep drops
// their torrents and the store-wide counts.
func TestRedisExpiredPeersDisappear(t *testing.T) {
	rd := redistest.Start(t)
	clk := newFakeClock()
	cfg := func() Config {
		return Config{Store: newRedisStore(t, rd.URL(0), 2*time.Minute), Now: clk.Now, Interval: time.Minute}
	}
	srvA, baseA := startServer(t, cfg())
	srvB, baseB := startServer(t, cfg())
	h, h2 := ih(50), ih(51)
	announceOK(t, baseA, AnnounceRequest{InfoHash: h, PeerID: pid(1), Port: 8001, Left: 0})
	announceOK(t, baseA, AnnounceRequest{InfoHash: h2, PeerID: pid(1), Port: 8001, Left: 3})
	clk.Advance(time.Minute)
	announceOK(t, baseA, AnnounceRequest{InfoHash: h, PeerID: pid(2), Port: 8002, Left: 3})
	clk.Advance(61 * time.Second) // pid 1 is past its 2 minutes, pid 2 is not
	r := announceOK(t, baseB, AnnounceRequest{InfoHash: h, PeerID: pid(3), Port: 8003, Left: 3})
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 8002 || r.Complete != 0 || r.Incomplete != 2 {
		t.Fatalf("after pid 1 expired: %+v", r)
	}
	srvB.store.Sweep(clk.Now()) // h2 is idle: dropped
	st := srvA.Stats()
	if st.Torrents != 1 || st.Peers != 2 || st.Seeders != 0 || st.ExpiredPeers != 2 {
		t.Fatalf("stats after sweep: %+v", st.StoreStats)
	}
	clk.Advance(3 * time.Minute)
	srvA.store.Sweep(clk.Now())
	if st := srvB.Stats(); st.Torrents != 0 || st.Peers != 0 || st.Seeders != 0 || st.ExpiredPeers != 4 {
		t.Fatalf("stats after every peer expired: %+v", st.StoreStats)
	}
	if n, err := rd.Command("DBSIZE"); err != nil || n != "2" { // stats and lists are all that is left
		keys, _ := rd.Command("KEYS", "*")
		t.Fatalf("DBSIZE %q %v after sweeping everything; keys %q", n, err, keys)
	}
}

// A passkey revoked at A (its file edited and reloaded) is refused at B
// over HTTP and UDP, though B's own file still lists it; an allow-list set
// at A applies at B.
func TestRedisPasskeyRevokedAcrossInstances(t *testing.T) {
	rd := redistest.Start(t)
	dir := t.TempDir()
	keysA, keysB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(keysA, []byte("alpha\nbeta\n"), 0o644)
	os.WriteFile(keysB, []byte("alpha\nbeta\n"), 0o644)
	srvA, _, _ := startUDPServer(t, Config{Store: newRedisStore(t, rd.URL(2), 0), Private: true, KeysFile: keysA}, "127.0.0.1")
	_, baseB, udpB := startUDPServer(t, Config{Store: newRedisStore(t, rd.URL(2), 0), Private: true, KeysFile: keysB}, "127.0.0.1")
	var c Client
	ctx := context.Background()
	req := AnnounceRequest{InfoHash: ih(60), PeerID: pid(1), Port: 9001, Left: 1}
	ann := func(u, key string) error {
		_, err := c.Announce(ctx, u+"/"+key, req)
		return err
	}
	if err := ann(baseB+"/announce", "beta"); err != nil {
		t.Fatalf("beta at B before revocation: %v", err)
	}
	os.WriteFile(keysA, []byte("alpha\n"), 0o644)
	if err := srvA.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * listPollInterval)
	for {
		err := ann(baseB+"/announce", "beta")
		if err != nil && strings.Contains(err.Error(), "invalid passkey") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("beta still answered at B %v after its revocation at A: %v", 3*listPollInterval, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ann(udpB, "beta"); err == nil || !strings.Contains(err.Error(), "invalid passkey") {
		t.Fatalf("beta over UDP at B: %v; want refused", err)
	}
	if err := ann(udpB, "alpha"); err != nil {
		t.Fatalf("alpha over UDP at B: %v", err)
	}
	srvA.SetAllowHashes([]InfoHash{ih(61)})
	deadline = time.Now().Add(3 * listPollInterval)
	for ann(baseB+"/announce", "alpha") == nil {
		if time.Now().After(deadline) {
			t.Fatal("allow-list set at A not applied at B")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ann(baseB+"/announce", "alpha"); err == nil || !strings.Contains(err.Error(), "unregistered") {
		t.Fatalf("torrent off the allow-list at B: %v", err)
	}
}

// A stalled Redis (SIGSTOP) and a dead one both get announces a failure
// reason with a retry within the store's timeout, /stats says the store is
// down, and the instance serves again by itself once Redis is back, even
// empty after a restart.
func TestRedisDownAnswersRetryAndRecovers(t *testing.T) {
	rd := redistest.Start(t)
	rs, err := NewRedisStore(RedisStoreConfig{URL: rd.URL(3), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	srv, base, udp := startUDPServer(t, Config{Store: rs}, "127.0.0.1")
	c := Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	req := AnnounceRequest{InfoHash: ih(70), PeerID: pid(1), Port: 9100, Left: 1}
	if _, err := c.Announce(ctx, base+"/announce", req); err != nil {
		t.Fatal(err)
	}
	refused := func(what string) {
		t.Helper()
		for _, u := range []string{base + "/announce", udp} {
			start := time.Now()
			_, err := c.Announce(ctx, u, req)
			took := time.Since(start)
			var fe *FailureError
			if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "store unavailable") {
				t.Fatalf("%s: announce at %s: %v; want a store failure", what, u, err)
			}
			if strings.HasPrefix(u, "http") && fe.RetryIn != time.Minute {
				t.Fatalf("%s: retry in %v; want 1m", what, fe.RetryIn)
			}
			if took > 2*time.Second {
				t.Fatalf("%s: refusal took %v; the store timeout is 300ms", what, took)
			}
		}
		_, body := get(t, base+"/stats")
		var st Stats
		if err := json.Unmarshal(body, &st); err != nil || st.Store == nil || st.Store.Up || st.Store.LastError == "" {
			t.Fatalf("%s: /stats %s; want the store reported down", what, body)
		}
	}
	rd.Pause()
	refused("paused redis")
	rd.Resume()
	waitServing := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := c.Announce(ctx, base+"/announce", req)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not serving 5s after Redis came back: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st := srv.Stats(); st.Store == nil || !st.Store.Up || st.Peers != 1 {
			t.Fatalf("%s: stats %+v store %+v", what, st.StoreStats, st.Store)
		}
	}
	waitServing("resumed redis")
	rd.Kill(t)
	refused("killed redis")
	rd.Restart(t)
	waitServing("restarted redis")
	if _, err := c.Announce(ctx, udp, req); err != nil {
		t.Fatalf("UDP after restart: %v", err)
	}
}

// A store URL with a password, over a Unix socket and with a database
// number, reaches Redis; a wrong password is refused with the store's
// failure reason, not a hang.
func TestRedisUnixSocketAndPassword(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redistest.StartWith(t, "--unixsocket", sock, "--unixsocketperm", "700", "--requirepass", "s3cret")
	_, base := startServer(t, Config{Store: newRedisStore(t, "unix://:s3cret@"+sock+"?db=4", 0)})
	announceOK(t, base, AnnounceRequest{InfoHash: ih(80), PeerID: pid(1), Port: 9201, Left: 1})
	r := announceOK(t, base, AnnounceRequest{InfoHash: ih(80), PeerID: pid(2), Port: 9202, Left: 1})
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 9201 {
		t.Fatalf("over the socket: %+v", r.Peers)
	}
	_, bad := startServer(t, Config{Store: newRedisStore(t, "unix://:wrong@"+sock+"?db=4", 0)})
	var c Client
	_, err := c.Announce(context.Background(), bad+"/announce", AnnounceRequest{InfoHash: ih(80), PeerID: pid(3), Port: 9203, Left: 1})
	if !strings.Contains(failureOf(err), "store unavailable") {
		t.Fatalf("wrong password: %v; want the store's failure reason", err)
	}
}
