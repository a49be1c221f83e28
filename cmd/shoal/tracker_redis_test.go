package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/redistest"
	"github.com/shoal-p2p/shoal/tracker"
)

// Two `shoal tracker` processes on one redis-server share swarms; killing
// redis-server under a steady load of HTTP and UDP announces to both gets
// failure replies with a retry within the store timeout, /stats reports
// the store down, neither process dies, and both serve again by
// themselves once redis-server is back.
func TestTrackerRedisKilledMidLoad(t *testing.T) {
	rd := redistest.Start(t)
	args := []string{"--store", rd.URL(0), "--store-timeout", "300ms", "--rate-limit", "-1"}
	a, b := startTracker(t, args...), startTracker(t, args...)
	c := tracker.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	h := hash(9)
	if _, err := c.Announce(ctx, a.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(1), Port: 6001, Left: 0}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, b.udpURL(), tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(2), Port: 6002, Left: 1})
	if err != nil || len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 6001 {
		t.Fatalf("UDP at B: %+v %v; want A's peer", r, err)
	}

	var (
		stop               atomic.Bool
		ok, refused, other atomic.Int64
		slowest            atomic.Int64
		mu                 sync.Mutex
		firstOther         error
		wg                 sync.WaitGroup
	)
	urls := []string{a.base + "/announce", b.base + "/announce", a.udpURL(), b.udpURL()}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				req := tracker.AnnounceRequest{InfoHash: hash(byte(10 + i%8)), PeerID: peerID(byte(10 + w)), Port: uint16(7000 + w), Left: 1}
				start := time.Now()
				_, err := c.Announce(ctx, urls[(w+i)%len(urls)], req)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
				var fe *tracker.FailureError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &fe) && strings.Contains(fe.Reason, "store unavailable"):
					refused.Add(1)
				default:
					other.Add(1)
					mu.Lock()
					if firstOther == nil {
						firstOther = err
					}
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	okBefore := ok.Load()
	rd.Kill(t)
	time.Sleep(time.Second)
	refusedDown := refused.Load()
	for _, rt := range []*runningTracker{a, b} {
		if st := trackerStats(t, rt.base+"/announce"); st.Store == nil || st.Store.Up {
			t.Errorf("%s /stats while redis is down: store %+v; want down", rt.base, st.Store)
		}
	}
	rd.Restart(t)
	deadline := time.Now().Add(5 * time.Second)
	for okNow := ok.Load(); ok.Load() < okNow+20; {
		if time.Now().After(deadline) {
			t.Fatalf("announces did not succeed again within 5s of the restart (ok %d, refused %d)", ok.Load(), refused.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("ok %d (before the kill %d), refused with a retry %d (while down %d), other %d, slowest %v",
		ok.Load(), okBefore, refused.Load(), refusedDown, other.Load(), time.Duration(slowest.Load()))
	if okBefore == 0 || refusedDown == 0 {
		t.Fatalf("no load before the kill (%d) or no refusal while redis was down (%d)", okBefore, refusedDown)
	}
	if other.Load() != 0 {
		t.Fatalf("%d announces failed otherwise than with the store's failure reason, first: %v", other.Load(), firstOther)
	}
	if s := time.Duration(slowest.Load()); s > 2*time.Second {
		t.Fatalf("slowest announce took %v; the store timeout is 300ms", s)
	}
	for _, rt := range []*runningTracker{a, b} {
		select {
		case <-rt.done:
			t.Fatalf("%s exited: %s", rt.base, rt.errText())
		default:
		}
		if st := trackerStats(t, rt.base+"/announce"); st.Store == nil || !st.Store.Up {
			t.Errorf("%s /stats after the restart: store %+v; want up", rt.base, st.Store)
		}
	}
	// The restarted Redis is empty; what is announced now meets again.
	if _, err := c.Announce(ctx, b.udpURL(), tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(2), Port: 6002, Left: 1}); err != nil {
		t.Fatal(err)
	}
	r, err = c.Announce(ctx, a.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(1), Port: 6001, Left: 0})
	if err != nil || len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 6002 {
		t.Fatalf("HTTP at A after the restart: %+v %v; want B's peer", r, err)
	}
	for _, rt := range []*runningTracker{a, b} {
		if code := rt.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("%s exit %d: %s", rt.base, code, rt.errText())
		}
	}
}

func TestTrackerStoreBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--store", "mysql://x"},
		{"--store", "redis://127.0.0.1:1/0", "--max-peers", "10"},
		{"--store", "redis://127.0.0.1:1/0", "--store-timeout", "0s"},
		{"--store", "redis://127.0.0.1:1/notadb"},
	} {
		r := shoal(t, t.TempDir(), nil, append([]string{"tracker", "--listen", "127.0.0.1:0"}, args...)...)
		if r.code != 2 {
			t.Errorf("%v: exit %d (stderr %q); want 2", args, r.code, r.stderr)
		}
	}
}
