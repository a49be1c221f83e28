package swarm

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"time"

	"github.com/shoal-p2p/shoal/tracker"
)

// Announce timing. Trackers set the interval; these bound it so a
// misconfigured tracker can neither hammer us nor forget us.
const (
	minAnnounceInterval = 5 * time.Second
	maxAnnounceInterval = time.Hour
	firstRetry          = 15 * time.Second
	maxRetry            = 30 * time.Minute
	stoppedTimeout      = 3 * time.Second
	announceTimeout     = 5 * time.Second
)

// AddTrackers announces the torrent to trackers, one announcer per tier
// (BEP 12: within a tier trackers are tried in order and the one that
// answers moves to the front), each a source of peers (AddSources) and so
// run under each swarm hash: a hybrid is announced under its v1 hash and
// its truncated v2 hash alike. An unreachable tracker is retried with
// backoff and never holds up the download.
func (t *Torrent) AddTrackers(tiers [][]string) {
	key := rand.Uint32()
	var sources []Source
	var announcers []*tierAnnouncer
	for i, tier := range tiers {
		// Once over each family we listen on, as the tracker lists the
		// address an announce comes from (tracker.Client.Family).
		quiet := false
		for _, fam := range t.c.families() {
			urls := familyURLs(tier, fam)
			if len(urls) == 0 {
				continue
			}
			a := &tierAnnouncer{t: t, tiers: tracker.NewTiers([][]string{urls}, ""), key: key, family: fam, quiet: quiet, poke: make(chan struct{}, 1),
				info: TrackerInfo{Tier: i, Family: fam, URLs: urls, Seeders: -1, Leechers: -1}}
			announcers = append(announcers, a)
			sources = append(sources, Source{Kind: SourceTracker, Finder: a})
			quiet = true
		}
	}
	t.mu.Lock()
	t.trackers = append(t.trackers, announcers...)
	t.mu.Unlock()
	if len(sources) > 0 {
		t.AddSources(sources...)
	}
}

// tierAnnouncer announces a running torrent to one tier for as long as it
// runs: a PeerFinder that returns only when ctx ends, after telling the
// tracker we left. The tracker sets its pace.
type tierAnnouncer struct {
	t      *Torrent
	tiers  *tracker.Tiers
	key    uint32
	family int // 4 or 6: the family announced over
	// quiet logs failures at debug level: a dual-stack client's second
	// family for a tier the first also announces to, which many
	// trackers do not have.
	quiet bool
	// info is how its announces went, guarded by t.mu (Trackers).
	info TrackerInfo
	// poke cuts the wait for the next announce short (Reannounce).
	poke chan struct{}
}

// Reannounce asks each tracker tier for peers now, rather than when the
// tracker said to, unless it was asked less than minAnnounceInterval ago.
func (t *Torrent) Reannounce() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, a := range t.trackers {
		if now.Sub(a.info.LastAnnounce) < minAnnounceInterval {
			continue
		}
		select {
		case a.poke <- struct{}{}:
		default:
		}
	}
}

// TrackerInfo is how a torrent's announces to one tier over one address
// family went, as Trackers reports it.
type TrackerInfo struct {
	Tier   int      // index in the torrent's tiers
	Family int      // 4 or 6
	URLs   []string // the tier's trackers of that family
	// URL is the tracker that last answered, or that was last tried.
	URL          string
	LastAnnounce time.Time // zero if none yet
	LastResult   string    // "Success", or why it failed
	NextAnnounce time.Time
	// Seeders and Leechers are the last counts the tracker gave; -1
	// before any.
	Seeders, Leechers int
	// Peers is how many peers the last successful announce returned.
	Peers int
}

// Trackers reports the torrent's announces, tier by tier.
func (t *Torrent) Trackers() []TrackerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TrackerInfo, 0, len(t.trackers))
	for _, a := range t.trackers {
		out = append(out, a.info)
	}
	return out
}

// noteAnnounce records how an announce went for Trackers.
func (t *Torrent) noteAnnounce(a *tierAnnouncer, now time.Time, url string, resp *tracker.AnnounceResponse, err error, wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a.info.LastAnnounce, a.info.NextAnnounce = now, now.Add(wait)
	if url != "" {
		a.info.URL = url
	} else if a.info.URL == "" && len(a.info.URLs) > 0 {
		a.info.URL = a.info.URLs[0]
	}
	if err != nil {
		a.info.LastResult = err.Error()
		return
	}
	a.info.LastResult = "Success"
	a.info.Seeders, a.info.Leechers = resp.Complete, resp.Incomplete
	a.info.Peers = len(resp.Peers)
}

// FindPeers announces under ih until ctx ends, passing each answer's
// peers on.
func (a *tierAnnouncer) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	a.t.announceLoop(ctx, a, ih, found)
	return nil
}

func (t *Torrent) announceRequest(ih [20]byte, ev tracker.Event, key uint32) tracker.AnnounceRequest {
	s := t.Stats()
	req := tracker.AnnounceRequest{
		InfoHash:   tracker.InfoHash(ih),
		PeerID:     tracker.PeerID(t.c.peerID),
		Uploaded:   uint64(s.Uploaded),
		Downloaded: uint64(s.Downloaded),
		Left:       uint64(s.BytesTotal - s.BytesDone),
		Event:      ev,
		Key:        key,
	}
	req.Port = t.c.port()
	if ev == tracker.EventStopped {
		req.NumWant = -1
	}
	return req
}

// announceLoop announces the swarm of info-hash ih to tiers on the
// tracker's interval, and the torrent's completion as soon as it happens,
// until ctx ends.
func (t *Torrent) announceLoop(ctx context.Context, a *tierAnnouncer, ih [20]byte, found func([]netip.AddrPort)) {
	tiers, key := a.tiers, a.key
	cl := &tracker.Client{UserAgent: t.c.cfg.Version, Family: a.family}
	ev := tracker.EventStarted
	t.mu.Lock()
	// We will tell the tracker when we finish, unless only some files
	// are wanted: then we never hold it all, whatever done says.
	completedPending := !t.seeding && !t.selective
	t.mu.Unlock()
	retry := firstRetry
	failed := false
	announced := false
	for {
		// An announce is never cut off half way when the torrent closes:
		// the tracker could then handle it after our 'stopped' (they travel
		// on separate connections) and list us again. A short timeout of
		// its own bounds the wait instead.
		actx, acancel := context.WithTimeout(context.Background(), announceTimeout)
		resp, url, err := cl.AnnounceTiers(actx, tiers, t.announceRequest(ih, ev, key))
		acancel()
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
		case err != nil:
			if !failed && !a.quiet {
				t.log.Warn("tracker unreachable; retrying with backoff", "err", err)
			} else {
				t.log.Debug("tracker still unreachable", "err", err)
			}
			failed = true
			wait = retry
			retry = min(2*retry, maxRetry)
		default:
			if failed {
				t.log.Info("tracker answered", "url", url)
			}
			failed, announced = false, true
			retry = firstRetry
			if ev == tracker.EventCompleted {
				completedPending = false
			}
			ev = tracker.EventNone
			peers := make([]netip.AddrPort, 0, len(resp.Peers))
			for _, p := range resp.Peers {
				peers = append(peers, p.Addr)
			}
			found(peers)
			wait = max(minAnnounceInterval, min(resp.Interval, maxAnnounceInterval))
			if resp.MinInterval > wait {
				wait = min(resp.MinInterval, maxAnnounceInterval)
			}
		}
		if ctx.Err() == nil {
			t.noteAnnounce(a, time.Now(), url, resp, err, wait)
		}
		timer := time.NewTimer(wait)
		var done <-chan struct{}
		if completedPending && ev != tracker.EventStarted {
			done = t.done
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			if announced {
				// Tell the tracker we left, briefly: shutting down must not
				// wait on a slow tracker.
				ctx, cancel := context.WithTimeout(context.Background(), stoppedTimeout)
				cl.AnnounceTiers(ctx, tiers, t.announceRequest(ih, tracker.EventStopped, key))
				cancel()
			}
			return
		case <-done:
			timer.Stop()
			ev = tracker.EventCompleted
		case <-a.poke:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// TrackerLookup is the source a magnet's metadata fetch has in the
// tracker at url: it announces the torrent, known only by hash, as a
// starting peer with everything left, and passes on the peers the tracker
// names, asking again with back-off, as a seeder may announce after us.
func (c *Client) TrackerLookup(url string) Source {
	return Source{Kind: SourceTracker, Finder: trackerLookup{c: c, url: url}, Backoff: trackerLookupBackoff}
}

type trackerLookup struct {
	c   *Client
	url string
}

// FindPeers announces once under ih over each family we listen on, as
// AddTrackers does; it fails only if every family does.
func (l trackerLookup) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	var first error
	ok := false
	for _, fam := range l.c.families() {
		if len(familyURLs([]string{l.url}, fam)) == 0 {
			continue
		}
		err := l.announce(ctx, ih, fam, found)
		if err == nil {
			ok = true
		} else if first == nil {
			first = err
		}
	}
	if ok || first == nil {
		return nil
	}
	if ctx.Err() == nil {
		l.c.log.Warn("tracker", "url", l.url, "err", first)
	}
	return first
}

// announce is one announce of FindPeers, over family fam.
func (l trackerLookup) announce(ctx context.Context, ih [20]byte, fam int, found func([]netip.AddrPort)) error {
	cl := &tracker.Client{UserAgent: l.c.cfg.Version, Family: fam}
	req := tracker.AnnounceRequest{
		InfoHash: tracker.InfoHash(ih),
		PeerID:   tracker.PeerID(l.c.peerID),
		Left:     1, // unknown until the metadata arrives, but not done
		Event:    tracker.EventStarted,
	}
	req.Port = l.c.port()
	resp, err := cl.Announce(ctx, l.url, req)
	if err != nil {
		return err
	}
	peers := make([]netip.AddrPort, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		peers = append(peers, p.Addr)
	}
	found(peers)
	return nil
}

// families lists the address families the client listens on, IPv4 first:
// those it announces over.
func (c *Client) families() []int {
	var fams []int
	if c.v4 {
		fams = append(fams, 4)
	}
	if c.v6 {
		fams = append(fams, 6)
	}
	return fams
}

// familyURLs keeps the tracker URLs of tier that family fam may reach:
// all but those whose host is an address of the other family.
func familyURLs(tier []string, fam int) []string {
	var out []string
	for _, raw := range tier {
		if u, err := url.Parse(raw); err == nil {
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap().Is4() != (fam == 4) {
				continue
			}
		}
		out = append(out, raw)
	}
	return out
}
