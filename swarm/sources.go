package swarm

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// PeerFinder is a source of peer addresses for a torrent: the addresses
// given on the command line or in a magnet, trackers, the DHT, later local
// discovery. Peers that arrive over the torrent's own connections (PEX,
// incoming) need none. dht.Node is one; the swarm asks them through Source,
// which says how often.
type PeerFinder interface {
	// FindPeers looks for peers of the swarm whose 20-byte info-hash is
	// ih (the v1 hash, or the v2 hash truncated as BEP 52 says; a hybrid
	// torrent is asked for under both) and passes each batch to found as
	// it arrives. A lookup returns after one round; a finder that keeps
	// announcing us returns when ctx ends. Either way it must not call
	// found after it has returned. found may block, but returns promptly
	// once ctx ends.
	FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error
}

// Backoff paces the rounds of a lookup: the second round starts First
// after the first one ended, and each wait after that is twice the one
// before, up to Max. The zero Backoff asks once.
type Backoff struct {
	First, Max time.Duration
}

// after returns the wait that follows a wait of prev, 0 meaning none yet.
func (b Backoff) after(prev time.Duration) time.Duration {
	if prev <= 0 {
		return b.First
	}
	return min(2*prev, max(b.Max, b.First))
}

// Source is a PeerFinder with what it is and how often to ask it.
type Source struct {
	// Kind is where the addresses come from, as the address book records
	// them and logs name them.
	Kind   PeerSource
	Finder PeerFinder
	// Backoff paces a lookup; a finder that runs until ctx ends ignores
	// it.
	Backoff Backoff
}

// Paces of the lookups a magnet's metadata fetch repeats: a seeder may
// announce only after we start, so a source that found nothing is asked
// again. The DHT is asked soon at first, as a seeder's announce may still
// be travelling; trackers, which count announces, more slowly.
var (
	dhtLookupBackoff     = Backoff{First: 250 * time.Millisecond, Max: 5 * time.Second}
	trackerLookupBackoff = Backoff{First: 2 * time.Second, Max: 30 * time.Second}
)

// FixedPeers is the source of addresses known from the start (--peer, a
// magnet's x.pe hints): passed on once.
func FixedPeers(addrs ...netip.AddrPort) Source {
	return Source{Kind: SourceFixed, Finder: fixedPeers(addrs)}
}

type fixedPeers []netip.AddrPort

// FindPeers passes the addresses on.
func (f fixedPeers) FindPeers(ctx context.Context, _ [20]byte, found func([]netip.AddrPort)) error {
	if len(f) > 0 {
		found(append([]netip.AddrPort(nil), f...))
	}
	return nil
}

// DHTLookup is the source of a torrent known only by hash: f, a one-round
// DHT lookup (dht.Node), asked again and again, soon at first and then
// every few seconds, until ctx ends.
func DHTLookup(f PeerFinder) Source {
	return Source{Kind: SourceDHT, Finder: f, Backoff: dhtLookupBackoff}
}

// DHTAnnounce is the DHT source of a running torrent: f announces us and
// passes on the peers each of its rounds finds until ctx ends, on the
// DHT's own schedule (dht.Node.Announcer).
func DHTAnnounce(f PeerFinder) Source {
	return Source{Kind: SourceDHT, Finder: f}
}

// maxSeenPeers bounds the addresses a fan-in remembers having passed on;
// when full it forgets them all, so a long-running torrent's memory stays
// bounded and an address its consumer dropped may come back.
const maxSeenPeers = 4096

// fanIn asks several sources for peers of one torrent at once, under each
// of its swarm hashes, each source and hash on its own goroutine and pace,
// and passes every address on to found once per hash: an address that
// several sources (or rounds) name under one hash reaches the consumer
// only the first time. A source that fails is asked again on its pace; it
// never stops the others.
type fanIn struct {
	hashes [][20]byte
	log    *slog.Logger
	// found gets the addresses with the hash they were found under, zero
	// for a source that looks nothing up (hashFree).
	found func(kind PeerSource, ih [20]byte, addrs []netip.AddrPort)
	// sleep waits d or until ctx ends, reporting whether d passed; tests
	// replace it to check the pace without waiting.
	sleep func(ctx context.Context, d time.Duration) bool

	mu      sync.Mutex // serialises found and guards what follows
	seen    map[seenKey]struct{}
	stopped bool // run has returned: found is not called again
}

// seenKey is an address as found under one hash.
type seenKey struct {
	addr netip.AddrPort
	ih   [20]byte
}

func newFanIn(hashes [][20]byte, log *slog.Logger, found func(kind PeerSource, ih [20]byte, addrs []netip.AddrPort)) *fanIn {
	return &fanIn{hashes: hashes, log: log, found: found, sleep: sleepCtx, seen: make(map[seenKey]struct{})}
}

// hashFree reports whether a source of this kind names addresses without
// looking anything up (the user's --peer, a magnet's x.pe): it is asked
// once, not once per hash, and what it names counts as found under none,
// so a hybrid dials it with the v1 hash and the upgrade bit, which reaches
// v1-only and v2 peers alike.
func hashFree(kind PeerSource) bool { return kind == SourceFixed || kind == SourceMagnet }

// run asks every source until ctx ends or each has finished (a source
// with a zero Backoff finishes after one round), and returns once every
// goroutine it started has ended; found is not called after that.
func (f *fanIn) run(ctx context.Context, sources []Source) {
	var wg sync.WaitGroup
	for _, s := range sources {
		if s.Finder == nil {
			continue
		}
		for i, ih := range f.hashes {
			if hashFree(s.Kind) {
				if i > 0 {
					break
				}
				ih = [20]byte{}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.ask(ctx, s, ih)
			}()
		}
	}
	wg.Wait()
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
}

// ask runs source s's rounds for hash ih on its pace until ctx ends or it
// is done.
func (f *fanIn) ask(ctx context.Context, s Source, ih [20]byte) {
	pass := func(addrs []netip.AddrPort) { f.pass(ctx, s.Kind, ih, addrs) }
	var wait time.Duration
	for {
		err := s.Finder.FindPeers(ctx, ih, pass)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Only debug: a finder warns of what a user should hear (a
			// tracker that does not answer; the DHT node of its own table).
			f.log.Debug("peer source failed", "source", s.Kind, "err", err)
		}
		if s.Backoff.First <= 0 {
			return
		}
		wait = s.Backoff.after(wait)
		if !f.sleep(ctx, wait) {
			return
		}
	}
}

// pass hands the addresses not passed on before under ih to found.
func (f *fanIn) pass(ctx context.Context, kind PeerSource, ih [20]byte, addrs []netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || ctx.Err() != nil {
		return
	}
	var fresh []netip.AddrPort
	for _, a := range addrs {
		if !a.IsValid() || a.Port() == 0 {
			continue
		}
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		k := seenKey{a, ih}
		if _, ok := f.seen[k]; ok {
			continue
		}
		if len(f.seen) >= maxSeenPeers {
			clear(f.seen)
		}
		f.seen[k] = struct{}{}
		fresh = append(fresh, a)
	}
	if len(fresh) > 0 {
		f.found(kind, ih, fresh)
	}
}

// sleepCtx waits d, or less if ctx ends first; it reports whether d
// passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// AddSources has the torrent ask sources for peers under each of its
// swarm hashes until it closes, and add every address they find with its
// source and the hash that found it. Trackers are added with AddTrackers,
// which announces what the torrent has done.
func (t *Torrent) AddSources(sources ...Source) {
	f := newFanIn(t.hashes, t.log, t.addFound)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f.run(t.ctx, sources)
	}()
}
