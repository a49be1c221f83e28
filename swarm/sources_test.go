package swarm

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests drive the fan-in with fake finders: no socket is opened, so
// they pass in a network namespace without loopback.

// oneHash is the swarm hashes of a v2 torrent the fan-in tests ask for.
var oneHash = [][20]byte{{1}}

// finderFunc makes a function a PeerFinder.
type finderFunc func(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error

func (f finderFunc) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	return f(ctx, ih, found)
}

// collector records what a fan-in passes on, in order.
type collector struct {
	mu    sync.Mutex
	got   []netip.AddrPort
	kinds []PeerSource
	more  chan struct{} // signalled on every call
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1000)} }

func (c *collector) found(kind PeerSource, _ [20]byte, addrs []netip.AddrPort) {
	c.mu.Lock()
	c.got = append(c.got, addrs...)
	for range addrs {
		c.kinds = append(c.kinds, kind)
	}
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() ([]netip.AddrPort, []PeerSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), slices.Clone(c.kinds)
}

// waitFor waits until n addresses arrived, failing after a second.
func (c *collector) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(time.Second)
	for {
		if got, _ := c.snapshot(); len(got) >= n {
			return
		}
		select {
		case <-c.more:
		case <-deadline:
			got, _ := c.snapshot()
			t.Fatalf("%d addresses passed on within a second, want %d: %v", len(got), n, got)
		}
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// noWait is a fan-in sleep that returns at once, unless ctx has ended.
func noWait(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }

func TestSourcesDedupe(t *testing.T) {
	c := newCollector()
	f := newFanIn(oneHash, quietLog(), c.found)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rounds atomic.Int32
	fifth := make(chan struct{})
	// Five rounds at once, then wait for the end.
	f.sleep = func(ctx context.Context, _ time.Duration) bool {
		if rounds.Load() < 5 {
			return true
		}
		close(fifth)
		<-ctx.Done()
		return false
	}
	lookup := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		// The same answer every round, with a repeat inside it, the
		// IPv4-mapped form of an address already given, and two that
		// cannot be dialled.
		found([]netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.1:1")})
		found([]netip.AddrPort{ap("[::ffff:10.0.0.2]:2"), ap("10.0.0.3:0"), {}})
		rounds.Add(1)
		return nil
	})
	fixed := FixedPeers(ap("10.0.0.2:2"), ap("10.0.0.4:4"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, []Source{{Kind: SourceDHT, Finder: lookup, Backoff: Backoff{First: time.Second, Max: time.Second}}, fixed})
	}()
	c.waitFor(t, 3)
	<-fifth
	cancel()
	<-done
	got, _ := c.snapshot()
	slices.SortFunc(got, netip.AddrPort.Compare)
	// Once per hash it was found under: 10.0.0.2:2 the DHT found under
	// the torrent's hash, and the user named under none.
	want := []netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.2:2"), ap("10.0.0.4:4")}
	if !slices.Equal(got, want) {
		t.Fatalf("passed on %v; want %v", got, want)
	}
	if rounds.Load() != 5 {
		t.Fatalf("%d rounds; want 5", rounds.Load())
	}
}

func TestSourcesBackoffPace(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"dht lookup", dhtLookupBackoff, []time.Duration{250e6, 500e6, 1e9, 2e9, 4e9, 5e9, 5e9}},
		{"tracker lookup", trackerLookupBackoff, []time.Duration{2e9, 4e9, 8e9, 16e9, 30e9, 30e9, 30e9}},
		{"max below first", Backoff{First: 3e9, Max: 1e9}, []time.Duration{3e9, 3e9, 3e9, 3e9, 3e9, 3e9, 3e9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFanIn(oneHash, quietLog(), func(PeerSource, [20]byte, []netip.AddrPort) {})
			var waits []time.Duration
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.sleep = func(ctx context.Context, d time.Duration) bool {
				waits = append(waits, d) // one source: no other goroutine sleeps
				if len(waits) == len(tc.want) {
					cancel()
				}
				return ctx.Err() == nil
			}
			rounds := 0
			lookup := finderFunc(func(context.Context, [20]byte, func([]netip.AddrPort)) error {
				rounds++
				return nil
			})
			f.run(ctx, []Source{{Kind: SourceDHT, Finder: lookup, Backoff: tc.b}})
			if !slices.Equal(waits, tc.want) {
				t.Fatalf("waits %v; want %v", waits, tc.want)
			}
			if rounds != len(tc.want) {
				t.Fatalf("%d rounds; want one before each wait, %d", rounds, len(tc.want))
			}
		})
	}
}

func TestSourcesBackoffRealTimer(t *testing.T) {
	// The real sleep: three rounds 20 ms then 40 ms apart.
	f := newFanIn(oneHash, quietLog(), func(PeerSource, [20]byte, []netip.AddrPort) {})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var at []time.Time
	lookup := finderFunc(func(context.Context, [20]byte, func([]netip.AddrPort)) error {
		if at = append(at, time.Now()); len(at) == 3 {
			cancel()
		}
		return nil
	})
	f.run(ctx, []Source{{Kind: SourceDHT, Finder: lookup, Backoff: Backoff{First: 20 * time.Millisecond, Max: time.Second}}})
	if len(at) != 3 {
		t.Fatalf("%d rounds", len(at))
	}
	if d := at[1].Sub(at[0]); d < 20*time.Millisecond {
		t.Fatalf("second round %v after the first; want 20ms", d)
	}
	if d := at[2].Sub(at[1]); d < 40*time.Millisecond {
		t.Fatalf("third round %v after the second; want 40ms", d)
	}
}

func TestSourcesOnceAndDone(t *testing.T) {
	// Sources with no Backoff are asked once; run then returns by itself.
	c := newCollector()
	f := newFanIn(oneHash, quietLog(), c.found)
	calls := 0
	failing := finderFunc(func(context.Context, [20]byte, func([]netip.AddrPort)) error {
		calls++
		return errors.New("no answer")
	})
	// A finder that breaks its contract and calls found after returning:
	// the fan-in must drop what comes once run has returned.
	var late sync.WaitGroup
	release := make(chan struct{})
	rogue := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		late.Add(1)
		go func() {
			defer late.Done()
			<-release
			found([]netip.AddrPort{ap("10.0.0.3:3")})
		}()
		return nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(context.Background(), []Source{FixedPeers(ap("10.0.0.1:1")), {Kind: SourceTracker, Finder: failing}, FixedPeers(), {Kind: SourceMagnet}, {Kind: SourcePEX, Finder: rogue}})
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("run did not return with every source done")
	}
	close(release)
	late.Wait()
	got, kinds := c.snapshot()
	if !slices.Equal(got, []netip.AddrPort{ap("10.0.0.1:1")}) || kinds[0] != SourceFixed || calls != 1 {
		t.Fatalf("passed on %v from %v; failing source asked %d times", got, kinds, calls)
	}
}

func TestSourcesFailingSourceDoesNotStopOthers(t *testing.T) {
	c := newCollector()
	f := newFanIn(oneHash, quietLog(), c.found)
	f.sleep = noWait
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var failures atomic.Int32
	thirdFailure := make(chan struct{})
	broken := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		if failures.Add(1) == 3 {
			close(thirdFailure)
		}
		return errors.New("tracker unreachable")
	})
	slow := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		// Answers only after the broken source has failed three times.
		select {
		case <-thirdFailure:
		case <-ctx.Done():
			return ctx.Err()
		}
		found([]netip.AddrPort{ap("10.0.0.9:9")})
		<-ctx.Done()
		return ctx.Err()
	})
	onceBroken := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		return errors.New("once and broken")
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, []Source{
			{Kind: SourceTracker, Finder: broken, Backoff: Backoff{First: time.Second, Max: time.Second}},
			{Kind: SourceTracker, Finder: onceBroken},
			{Kind: SourceLSD, Finder: slow},
		})
	}()
	c.waitFor(t, 1)
	cancel()
	<-done
	got, kinds := c.snapshot()
	if !slices.Equal(got, []netip.AddrPort{ap("10.0.0.9:9")}) || kinds[0] != SourceLSD {
		t.Fatalf("passed on %v from %v", got, kinds)
	}
	if n := failures.Load(); n < 3 {
		t.Fatalf("failing source asked %d times; want it asked again after failing", n)
	}
}

// settleGoroutines waits up to a second for the goroutine count to drop to
// at most n: an exiting goroutine may still be counted for a moment after
// it signalled its WaitGroup.
func settleGoroutines(n int) int {
	deadline := time.Now().Add(time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSourcesCancelStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newCollector()
	f := newFanIn(oneHash, quietLog(), c.found)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 2)
	// An announcer: runs until ctx ends.
	announcer := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		found([]netip.AddrPort{ap("10.0.0.1:1")})
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	// A lookup on a slow pace: cancel must cut its wait short.
	lookup := finderFunc(func(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
		found([]netip.AddrPort{ap("10.0.0.2:2")})
		started <- struct{}{}
		return nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, []Source{
			{Kind: SourceDHT, Finder: announcer},
			{Kind: SourceDHT, Finder: lookup, Backoff: Backoff{First: time.Hour, Max: time.Hour}},
		})
	}()
	for range 2 {
		<-started
	}
	c.waitFor(t, 2)
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("run still running a second after its context ended")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("run took %v to stop", d)
	}
	if got, _ := c.snapshot(); len(got) != 2 {
		t.Fatalf("passed on %v", got)
	}
	if n := settleGoroutines(before); n > before {
		t.Fatalf("%d goroutines after stopping, %d before", n, before)
	}
}

// lateFinder is a lookup that finds addr from its third round on, as a
// DHT finds a seeder that announced after we started; it counts rounds.
type lateFinder struct {
	addr   netip.AddrPort
	rounds atomic.Int32
}

func (l *lateFinder) FindPeers(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
	if l.rounds.Add(1) >= 3 {
		found([]netip.AddrPort{l.addr})
	}
	return nil
}

func TestFetchInfoFromFinders(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	late := &lateFinder{addr: seeder.addr()}
	broken := finderFunc(func(context.Context, [20]byte, func([]netip.AddrPort)) error {
		return errors.New("tracker unreachable")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := fetcher(t).FetchInfoFrom(ctx, m.Magnet(), []Source{
		FixedPeers(freePort(t)),
		{Kind: SourceTracker, Finder: broken, Backoff: Backoff{First: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
		{Kind: SourceDHT, Finder: late, Backoff: Backoff{First: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Info.Hash != m.Info.Hash {
		t.Fatalf("fetched %x", got.Info.Hash)
	}
	// Every source has stopped once the fetch returned.
	n := late.rounds.Load()
	time.Sleep(150 * time.Millisecond)
	if late.rounds.Load() != n {
		t.Fatalf("a source was asked again after the fetch returned")
	}
}

func TestTorrentAddSources(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	late := &lateFinder{addr: seeder.addr()}
	ended := make(chan error, 1)
	announcer := finderFunc(func(ctx context.Context, _ [20]byte, _ func([]netip.AddrPort)) error {
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	})
	leech.t.AddSources(
		FixedPeers(freePort(t)),
		Source{Kind: SourceDHT, Finder: late, Backoff: Backoff{First: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
		DHTAnnounce(announcer),
	)
	waitDone(t, leech, 20*time.Second)
	if err := leech.t.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for the sources: the announcer has ended by now.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("announcer ended with %v", err)
		}
	default:
		t.Fatal("Close returned with a source still running")
	}
}
