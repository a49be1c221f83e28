package lsd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Announce pacing (BEP 14): each torrent every five minutes while it
// runs, and never more often than once a minute, a torrent that stops and
// starts again included.
const (
	DefaultInterval    = 5 * time.Minute
	DefaultMinInterval = time.Minute
	// settle is how long a new torrent's first announce waits for others
	// registered with it (a hybrid's two hashes, several torrents started
	// together) to share its datagram.
	settle = 50 * time.Millisecond
	// maxRemembered bounds the announce times kept of torrents no longer
	// registered.
	maxRemembered = 4096
	// maxHeard bounds the peers remembered per torrent (heard).
	maxHeard = 32
	// foundQueue is how many batches of peers wait for a slow consumer
	// before more are dropped.
	foundQueue = 16
)

// ErrNoInterface is returned by New when no interface is in scope: the
// listen address covers none that is up and can multicast.
var ErrNoInterface = errors.New("lsd: no multicast interface in the listen address's scope")

// ErrClosed is returned by FindPeers when the service closes before its
// context ends.
var ErrClosed = errors.New("lsd: closed")

// Config configures a Service.
type Config struct {
	// Listen are the addresses of the peer listener; they choose the
	// interfaces (SelectScope). Empty means the dual-stack wildcard.
	Listen []netip.Addr
	// Port is the peer listener's port, which announces name.
	Port uint16
	// Logger receives debug events; nil means slog's default.
	Logger *slog.Logger
	// Interval and MinInterval pace each torrent's announces; zero means
	// DefaultInterval and DefaultMinInterval. Tests shorten them.
	Interval, MinInterval time.Duration
	// Interfaces, if not nil, replaces the host's interfaces (tests).
	Interfaces []Iface
}

// Service announces torrents on the LSD groups and hears its neighbours'
// announces. It is a swarm.PeerFinder: FindPeers announces a torrent
// and passes on the peers heard announcing it.
type Service struct {
	cfg    Config
	log    *slog.Logger
	scope  Scope
	cookie string
	conns  []*conn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu       sync.Mutex
	torrents map[[20]byte]*announced
	lastSent map[[20]byte]time.Time // every torrent's last announce, running or not
	// heard are the peers heard announcing a torrent while we announced
	// it, newest last: a FindPeers that starts again soon after (a
	// magnet's metadata fetch, then its download) gets them at once, as
	// they announce again only after Interval and we may not for
	// MinInterval.
	heard map[[20]byte][]heardPeer

	stats counters
}

// announced is a torrent being announced: the FindPeers calls waiting
// for its peers, and when it was last announced while they ran.
type announced struct {
	waiters []chan []netip.AddrPort
	sent    time.Time
}

// heardPeer is a peer heard announcing, and when.
type heardPeer struct {
	addr netip.AddrPort
	at   time.Time
}

// New opens the LSD sockets on the interfaces in scope of cfg.Listen and
// starts listening and announcing; Close stops it. It returns
// ErrNoInterface when the scope is empty.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	cfg.Interval = max(cfg.Interval, cfg.MinInterval)
	if len(cfg.Listen) == 0 {
		cfg.Listen = []netip.Addr{netip.IPv6Unspecified()}
	}
	ifs := cfg.Interfaces
	if ifs == nil {
		var err error
		if ifs, err = SystemInterfaces(); err != nil {
			return nil, fmt.Errorf("lsd: %w", err)
		}
	}
	scope := SelectScope(cfg.Listen, ifs)
	if scope.Empty() {
		return nil, ErrNoInterface
	}
	var c [8]byte
	rand.Read(c[:])
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		cookie:   hex.EncodeToString(c[:]),
		kick:     make(chan struct{}, 1),
		torrents: make(map[[20]byte]*announced),
		lastSent: make(map[[20]byte]time.Time),
		heard:    make(map[[20]byte][]heardPeer),
	}
	var errs []error
	var kept Scope
	for _, f := range []struct {
		group netip.AddrPort
		ifs   []Iface
		kept  *[]Iface
	}{{GroupV4, scope.V4, &kept.V4}, {GroupV6, scope.V6, &kept.V6}} {
		if len(f.ifs) == 0 {
			continue
		}
		cn, joined, err := openConn(f.group, f.ifs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cn == nil {
			continue
		}
		s.conns = append(s.conns, cn)
		*f.kept = joined
	}
	if len(s.conns) == 0 {
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return nil, ErrNoInterface
	}
	for _, err := range errs {
		s.log.Debug("lsd: a family is off", "err", err)
	}
	s.scope = kept
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, cn := range s.conns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.readLoop(cn)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.announceLoop()
	}()
	return s, nil
}

// Scope returns the interfaces the service runs on.
func (s *Service) Scope() Scope { return s.scope }

// Close stops the service and waits for its goroutines; FindPeers calls
// still running return ErrClosed.
func (s *Service) Close() error {
	s.cancel()
	var errs []error
	for _, c := range s.conns {
		if err := c.pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// FindPeers announces the torrent whose 20-byte info-hash is ih until ctx
// ends, at once and then every Interval, and passes on each peer heard
// announcing it. A hybrid torrent is asked under both its hashes, so both
// are announced (in one datagram when asked together).
func (s *Service) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	ch := make(chan []netip.AddrPort, foundQueue)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return ErrClosed
	}
	a := s.torrents[ih]
	if a == nil {
		a = &announced{}
		s.torrents[ih] = a
	}
	a.waiters = append(a.waiters, ch)
	var known []netip.AddrPort
	for _, h := range s.heard[ih] {
		if time.Since(h.at) < s.cfg.Interval {
			known = append(known, h.addr)
		}
	}
	if len(known) > 0 {
		ch <- known
	}
	s.mu.Unlock()
	defer s.unregister(ih, ch)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return ErrClosed
		case addrs := <-ch:
			found(addrs)
		}
	}
}

func (s *Service) unregister(ih [20]byte, ch chan []netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.torrents[ih]
	if a == nil {
		return
	}
	for i, w := range a.waiters {
		if w == ch {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			break
		}
	}
	if len(a.waiters) == 0 {
		delete(s.torrents, ih)
	}
}

// announceLoop sends each torrent's announces when they are due.
func (s *Service) announceLoop() {
	timer := time.NewTimer(s.cfg.Interval)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
			select {
			case <-time.After(settle):
			case <-s.ctx.Done():
				return
			}
		case <-timer.C:
		}
		wait := s.announceDue(time.Now())
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// announceDue announces the torrents that are due at now and returns how
// long until the next one is. A torrent is due Interval after its last
// announce while it runs; one that has not been announced since it
// started is due at once, or MinInterval after an announce made before
// (by a run that ended, or a magnet's metadata fetch).
func (s *Service) announceDue(now time.Time) time.Duration {
	wait := s.cfg.Interval
	var due [][20]byte
	s.mu.Lock()
	for ih, a := range s.torrents {
		at := a.sent.Add(s.cfg.Interval)
		if a.sent.IsZero() {
			at = now
			if last, ok := s.lastSent[ih]; ok {
				at = last.Add(s.cfg.MinInterval)
			}
		}
		if at.After(now) {
			wait = min(wait, at.Sub(now))
			continue
		}
		due = append(due, ih)
		a.sent = now
		s.lastSent[ih] = now
	}
	if len(s.lastSent) > maxRemembered {
		for ih, t := range s.lastSent {
			if now.Sub(t) >= s.cfg.MinInterval {
				delete(s.lastSent, ih)
			}
		}
	}
	s.mu.Unlock()
	if len(due) > 0 {
		s.send(due)
	}
	return max(wait, time.Millisecond)
}

// send announces hashes on every interface in scope.
func (s *Service) send(hashes [][20]byte) {
	for _, c := range s.conns {
		pkts := packets(c.group, s.cfg.Port, s.cookie, hashes)
		for i, ifi := range c.ifs {
			for _, p := range pkts {
				if err := c.send(i, p); err != nil {
					s.stats.sendFailed.Add(1)
					s.log.Debug("lsd: announce", "interface", ifi.Name, "group", c.group, "err", err)
					continue
				}
				s.stats.sent.Add(1)
			}
		}
	}
	s.stats.announced.Add(uint64(len(hashes)))
}

// readLoop takes in c's datagrams until the service closes.
func (s *Service) readLoop(c *conn) {
	// One byte more than is accepted, so a datagram too long to take shows
	// as one: the kernel truncates it to the buffer.
	buf := make([]byte, MaxDatagram+1)
	lim := newLimiter(time.Now())
	for {
		n, ifIndex, dst, src, err := c.read(buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("lsd: read", "group", c.group, "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		s.handle(c, lim, buf[:n], ifIndex, dst, src, time.Now())
	}
}

// handle takes in one datagram: it drops what is out of scope, comes too
// fast from its source, is too long, malformed, our own or for no torrent
// we announce, and passes the announcing peer on to every FindPeers of a
// torrent it names.
func (s *Service) handle(c *conn, lim *limiter, b []byte, ifIndex int, dst netip.Addr, src netip.AddrPort, now time.Time) {
	s.stats.received.Add(1)
	if !c.inIfs[ifIndex] || dst != c.group.Addr() {
		// Another interface, or not sent to the group: the scope rule
		// holds for what we hear too.
		s.stats.outOfScope.Add(1)
		return
	}
	if !lim.allow(src.Addr(), now) {
		s.stats.rateLimited.Add(1)
		return
	}
	if len(b) > MaxDatagram {
		s.stats.huge.Add(1)
		return
	}
	a, err := Parse(b)
	if err == nil && (!src.Addr().IsValid() || src.Addr().IsUnspecified()) {
		err = errors.New("no source address to reach the peer at")
	}
	if err != nil {
		s.stats.malformed.Add(1)
		s.log.Debug("lsd: malformed announce", "from", src, "err", err)
		return
	}
	if a.Cookie == s.cookie {
		s.stats.own.Add(1)
		return
	}
	from := src.Addr()
	if from.Is6() && from.IsLinkLocalUnicast() {
		// The zone is the interface it came in on, named as we listed it
		// when joining: a link-local peer is reachable only through it.
		from = from.WithZone(c.ifName(ifIndex))
	}
	peer := netip.AddrPortFrom(from, a.Port)
	matched := false
	s.mu.Lock()
	for _, ih := range a.Hashes {
		t := s.torrents[ih]
		if t == nil {
			continue
		}
		matched = true
		s.remember(ih, peer, now)
		for _, w := range t.waiters {
			select {
			case w <- []netip.AddrPort{peer}:
			default:
				s.stats.queueFull.Add(1)
			}
		}
	}
	s.mu.Unlock()
	if matched {
		s.stats.peers.Add(1)
	} else {
		s.stats.unknown.Add(1)
	}
}

// remember records that peer announced ih at now. Called with s.mu held.
func (s *Service) remember(ih [20]byte, peer netip.AddrPort, now time.Time) {
	hs := s.heard[ih]
	for i, h := range hs {
		if h.addr == peer {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) >= maxHeard {
		hs = hs[1:]
	}
	if _, ok := s.heard[ih]; !ok && len(s.heard) >= maxRemembered {
		for k, v := range s.heard {
			if now.Sub(v[len(v)-1].at) >= s.cfg.Interval {
				delete(s.heard, k)
			}
		}
		if len(s.heard) >= maxRemembered {
			return
		}
	}
	s.heard[ih] = append(hs, heardPeer{peer, now})
}
