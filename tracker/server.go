package tracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// Defaults for Config fields left zero.
const (
	DefaultInterval          = 30 * time.Minute
	DefaultNumWant           = 50
	DefaultMaxNumWant        = 200
	DefaultRateLimit         = 20 // requests per second per address
	DefaultRateBurst         = 200
	DefaultRateLimitAddrs    = 100_000
	DefaultMaxQueryBytes     = 4096
	DefaultMaxScrapeHashes   = 32
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxHeaderBytes    = 8 << 10
	DefaultShutdownTimeout   = 5 * time.Second
)

// Config configures a Server. The zero value is a working public tracker
// with the defaults above.
type Config struct {
	// Interval is the re-announce interval sent to clients (default 30m).
	Interval time.Duration
	// MinInterval is the "min interval" sent to clients (default Interval/2).
	MinInterval time.Duration
	// PeerTTL is how long a silent peer is kept (default 2×Interval); a
	// client that misses one announce is not dropped yet.
	PeerTTL time.Duration
	// SweepInterval is how often Serve drops expired peers of idle
	// torrents (default PeerTTL/4, at most 5m).
	SweepInterval time.Duration

	// DefaultNumWant is the number of peers returned when numwant is absent
	// (default 50); MaxNumWant clamps any requested numwant (default 200).
	DefaultNumWant int
	MaxNumWant     int

	// Store holds the swarms. When nil, a MemStore is built from Shards,
	// MaxPeersPerTorrent, MaxTorrents and MaxPeers (see MemStoreConfig for
	// their defaults and eviction rules); those fields are ignored when
	// Store is set.
	Store              Store
	Shards             int
	MaxPeersPerTorrent int
	MaxTorrents        int
	MaxPeers           int

	// AllowHashes, when non-empty, restricts the tracker to these torrents;
	// see LoadAllowList and Server.SetAllowHashes.
	AllowHashes []InfoHash
	// Private requires a passkey from KeysFile in the path
	// (/announce/<key>, /scrape/<key>); Server.ReloadKeys re-reads the file.
	Private  bool
	KeysFile string

	// RateLimit is the sustained requests per second allowed per client
	// address (IPv6 per /64), default 20; negative disables limiting.
	// RateBurst is the bucket size (default 200), generous because a client
	// announces all its torrents at start-up. RateLimitAddrs caps the
	// addresses tracked (default 100,000, ~100 bytes each).
	RateLimit      float64
	RateBurst      int
	RateLimitAddrs int

	// RealIPHeader names a header (such as X-Forwarded-For) carrying the
	// client address when the tracker sits behind a reverse proxy. It is
	// honoured only on connections from loopback or private addresses,
	// where the proxy would be; the last comma-separated entry is used.
	RealIPHeader string

	// MaxQueryBytes refuses longer query strings with 414 (default 4096).
	// MaxScrapeHashes caps info_hash values per scrape (default 32).
	MaxQueryBytes   int
	MaxScrapeHashes int

	// HTTP server limits against slow or oversized clients; see
	// net/http.Server. Defaults: 5s, 10s, 10s, 30s, 8 KiB.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context is cancelled before closing connections (default 5s).
	ShutdownTimeout time.Duration

	// UDPSecret keys the MAC that makes UDP connection IDs (BEP 15), at
	// least 16 bytes; trackers given the same secret accept each other's
	// IDs. Nil picks a random one.
	UDPSecret []byte

	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject one to drive
	// expiry without sleeping.
	Now func() time.Time
}

// Server is an HTTP tracker. It is an http.Handler serving /announce,
// /scrape and /stats; Serve runs it on a listener with hardened timeouts.
//
// The "ip" announce parameter is honoured only from loopback and private
// (RFC 1918/4193) source addresses: from the open internet it would let
// anyone point a swarm at a third party.
type Server struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	now     func() time.Time
	limiter *ipLimiter
	started time.Time

	allow atomic.Pointer[map[InfoHash]struct{}]
	keys  atomic.Pointer[map[string]struct{}]

	announces   atomic.Uint64
	scrapes     atomic.Uint64
	refused     atomic.Uint64
	rateLimited atomic.Uint64
	panics      atomic.Uint64
	panicLog    *rate.Limiter // of panic log lines (panicked)

	pool sync.Pool // *reqState

	// testHookAnnounce, when set, sees every parsed announce. Only tests
	// set it (before Serve), to make a handler panic; nil in production.
	testHookAnnounce func(*announceQuery)

	udp udpState

	lists listSync // allow-list and passkeys shared through the store

	sweepMu    sync.Mutex
	sweepUsers int
	sweepStop  context.CancelFunc
	sweepDone  chan struct{}
}

// NewServer validates cfg, fills defaults and, in private mode, loads the
// passkey file.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = cfg.Interval / 2
	}
	if cfg.MinInterval > cfg.Interval {
		return nil, fmt.Errorf("tracker config: MinInterval %v exceeds Interval %v", cfg.MinInterval, cfg.Interval)
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = 2 * cfg.Interval
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = min(cfg.PeerTTL/4, 5*time.Minute)
	}
	if cfg.DefaultNumWant <= 0 {
		cfg.DefaultNumWant = DefaultNumWant
	}
	if cfg.MaxNumWant <= 0 {
		cfg.MaxNumWant = DefaultMaxNumWant
	}
	cfg.MaxNumWant = min(cfg.MaxNumWant, 10_000)
	cfg.DefaultNumWant = min(cfg.DefaultNumWant, cfg.MaxNumWant)
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.RateLimitAddrs <= 0 {
		cfg.RateLimitAddrs = DefaultRateLimitAddrs
	}
	if cfg.MaxQueryBytes <= 0 {
		cfg.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if cfg.MaxScrapeHashes <= 0 {
		cfg.MaxScrapeHashes = DefaultMaxScrapeHashes
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&cfg.ReadTimeout, DefaultReadTimeout)
	setDur(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDur(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDur(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Store == nil {
		cfg.Store = NewMemStore(MemStoreConfig{
			Shards:             cfg.Shards,
			MaxPeersPerTorrent: cfg.MaxPeersPerTorrent,
			MaxTorrents:        cfg.MaxTorrents,
			MaxPeers:           cfg.MaxPeers,
			PeerTTL:            cfg.PeerTTL,
		})
	}
	s := &Server{
		cfg:      cfg,
		panicLog: rate.NewLimiter(1, panicLogBurst),
		store:    cfg.Store,
		log:      cfg.Logger,
		now:      cfg.Now,
		started:  cfg.Now(),
	}
	if cfg.RateLimit > 0 {
		s.limiter = newIPLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateLimitAddrs)
	}
	s.lists.rs = s.sharedStore()
	s.SetAllowHashes(cfg.AllowHashes)
	if err := s.udp.init(cfg.UDPSecret); err != nil {
		return nil, fmt.Errorf("tracker config: %w", err)
	}
	if cfg.Private {
		if cfg.KeysFile == "" {
			return nil, errors.New("tracker config: Private requires KeysFile")
		}
		if err := s.ReloadKeys(); err != nil {
			return nil, fmt.Errorf("tracker config: %w", err)
		}
	}
	s.syncLists()
	return s, nil
}

// ReloadKeys re-reads Config.KeysFile and atomically replaces the passkeys.
// On error the old keys stay in force, so a botched edit cannot lock every
// user out.
func (s *Server) ReloadKeys() error {
	if s.cfg.KeysFile == "" {
		return errors.New("reload passkeys: no KeysFile configured")
	}
	keys, err := loadKeys(s.cfg.KeysFile)
	if err != nil {
		return err
	}
	s.keys.Store(&keys)
	s.log.Info("tracker passkeys loaded", "file", s.cfg.KeysFile, "keys", len(keys))
	s.publishLists(true, false)
	return nil
}

// SetAllowHashes replaces the allow-list; an empty list opens the tracker
// to every torrent. On a shared store it replaces the allow-list of every
// instance.
func (s *Server) SetAllowHashes(hs []InfoHash) {
	s.setAllow(hs)
	s.publishLists(false, true)
}

func (s *Server) setAllow(hs []InfoHash) {
	if len(hs) == 0 {
		s.allow.Store(nil)
		return
	}
	m := make(map[InfoHash]struct{}, len(hs))
	for _, h := range hs {
		m[h] = struct{}{}
	}
	s.allow.Store(&m)
}

// Serve answers HTTP on ln until ctx is cancelled, then shuts down
// gracefully (closing connections after Config.ShutdownTimeout) and returns
// nil once its goroutines, including the expiry sweeper, have exited. It
// closes ln. Serve may run on several listeners at once (IPv4 and IPv6).
//
// Serve runs a lean HTTP/1.1 server rather than net/http, because most
// clients announce on a new connection each time and net/http's
// per-connection cost is several times the tracker's own work; see
// lean.go. It applies the same limits: Config.MaxHeaderBytes caps the
// request head, ReadHeaderTimeout (or ReadTimeout if shorter) bounds
// reading it, IdleTimeout bounds waiting between keep-alive requests and
// WriteTimeout bounds writing an answer. ServeHTTP remains for embedding the
// tracker in another HTTP server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ls := newLeanServer(s)
	stopSweep := s.holdSweeper()
	defer stopSweep()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() { errc <- ls.acceptLoop(ln) })
	s.log.Info("tracker serving", "addr", ln.Addr().String())

	select {
	case <-ctx.Done():
		ls.closing.Store(true)
		ln.Close()
		ls.shutdown(s.cfg.ShutdownTimeout)
		stopSweep()
		wg.Wait()
		s.log.Info("tracker stopped", "addr", ln.Addr().String())
		return nil
	case err := <-errc:
		ln.Close()
		ls.shutdown(0)
		stopSweep()
		wg.Wait()
		return fmt.Errorf("tracker serve on %s: %w", ln.Addr(), err)
	}
}

// holdSweeper keeps the expiry sweeper running until the returned func is
// called: one sweeper serves every front end (HTTP and UDP) of the
// Server, and it stops, with the func waiting for it, when the last
// releases it.
func (s *Server) holdSweeper() func() {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if s.sweepUsers++; s.sweepUsers == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		s.sweepStop, s.sweepDone = cancel, done
		go func() {
			defer close(done)
			s.sweepLoop(ctx)
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.sweepMu.Lock()
			s.sweepUsers--
			var done chan struct{}
			if s.sweepUsers == 0 {
				s.sweepStop()
				done = s.sweepDone
			}
			s.sweepMu.Unlock()
			if done != nil {
				<-done
			}
		})
	}
}

func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	var poll <-chan time.Time // lists of a shared store
	if s.lists.rs != nil {
		pt := time.NewTicker(listPollInterval)
		defer pt.Stop()
		poll = pt.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.store.Sweep(s.now())
		case <-poll:
			s.syncLists()
		}
	}
}

// Stats is the /stats document.
type Stats struct {
	StoreStats
	// Announces and Scrapes count requests answered successfully.
	Announces uint64 `json:"announces"`
	Scrapes   uint64 `json:"scrapes"`
	// Refused counts answers with a failure reason (including RateLimited).
	Refused     uint64 `json:"refused"`
	RateLimited uint64 `json:"rate_limited"`
	// Panics counts connections on which a handler panicked under Serve:
	// each was logged with its stack and closed (after a 500 when nothing
	// of the answer was sent yet), and the tracker kept serving.
	Panics uint64 `json:"panics"`

	UptimeSeconds   int64 `json:"uptime_seconds"`
	IntervalSeconds int64 `json:"interval_seconds"`
	Goroutines      int   `json:"goroutines"`
	Private         bool  `json:"private"`
	AllowListed     int   `json:"allow_listed"`

	// Store reports a store shared between instances (absent for the
	// memory store): whether it is reachable.
	Store *StoreHealth `json:"store,omitempty"`

	// UDP counts the UDP front end's traffic; its announces and scrapes
	// are also in Announces and Scrapes, its refusals with a reason in
	// Refused.
	UDP UDPStats `json:"udp"`
}

// Stats returns the counters /stats reports.
func (s *Server) Stats() Stats {
	st := Stats{
		StoreStats:      s.store.Stats(),
		Announces:       s.announces.Load(),
		Scrapes:         s.scrapes.Load(),
		Refused:         s.refused.Load(),
		RateLimited:     s.rateLimited.Load(),
		Panics:          s.panics.Load(),
		UptimeSeconds:   int64(s.now().Sub(s.started) / time.Second),
		IntervalSeconds: int64(s.cfg.Interval / time.Second),
		Goroutines:      runtime.NumGoroutine(),
		Private:         s.cfg.Private,
		UDP:             s.udp.stats(),
		Store:           s.storeHealth(),
	}
	if m := s.allow.Load(); m != nil {
		st.AllowListed = len(*m)
	}
	return st
}

// reqState is per-request scratch space recycled through a sync.Pool so a
// steady stream of announces does not allocate buffers.
type reqState struct {
	q      announceQuery
	pa     PeerAnnounce
	peers  []Peer
	v4, v6 []byte
	hashes []InfoHash
	out    bytes.Buffer
	enc    *bencode.Encoder
}

func (s *Server) getState() *reqState {
	if st, ok := s.pool.Get().(*reqState); ok {
		return st
	}
	st := &reqState{}
	st.enc = bencode.NewEncoder(&st.out)
	return st
}

func (s *Server) putState(st *reqState) {
	if st.out.Cap() > 64<<10 {
		return // don't keep an unusually large buffer alive
	}
	st.peers = st.peers[:0]
	st.v4, st.v6 = st.v4[:0], st.v6[:0]
	st.hashes = st.hashes[:0]
	st.out.Reset()
	s.pool.Put(st)
}

// Header values shared by all responses; assigning the slices directly
// skips the canonicalisation and allocation of Header.Set.
var (
	hdrText = []string{"text/plain; charset=utf-8"}
	hdrJSON = []string{"application/json"}
)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD"}
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	path := r.URL.Path
	if path == "/stats" {
		s.serveStats(w, r)
		return
	}
	st := s.getState()
	defer s.putState(st)
	code := s.serveTracker(st, s.clientIP(r), path, r.URL.RawQuery)
	if code != http.StatusOK {
		w.WriteHeader(code)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrText
	h["Content-Length"] = []string{strconv.Itoa(st.out.Len())}
	w.Write(st.out.Bytes())
}

// serveTracker answers /announce and /scrape (and 404 for any other path)
// into st.out and returns the HTTP status; a status other than 200 has no
// body. It is the core both front ends share: net/http through ServeHTTP
// and the lean HTTP/1.1 server of Serve.
func (s *Server) serveTracker(st *reqState, ip netip.Addr, path, rawQuery string) int {
	switch {
	case path == "/announce" || strings.HasPrefix(path, "/announce/"):
		return s.serveAnnounce(st, ip, path[len("/announce"):], rawQuery)
	case path == "/scrape" || strings.HasPrefix(path, "/scrape/"):
		return s.serveScrape(st, ip, path[len("/scrape"):], rawQuery)
	}
	return http.StatusNotFound
}

// admit applies the checks shared by announce and scrape. keyPath is the
// path after the endpoint name: "" or "/<passkey>". When it reports false
// the request is answered with the returned status (and st.out when 200).
func (s *Server) admit(st *reqState, ip netip.Addr, keyPath, rawQuery string) (int, bool) {
	if !ip.IsValid() {
		return http.StatusBadRequest, false
	}
	if s.limited(ip, s.now()) {
		return s.fail(st, errRateLimited, ip), false
	}
	if s.cfg.Private {
		if err := s.checkPasskey(keyPath); err != nil {
			return s.fail(st, err, ip), false
		}
	} else if keyPath != "" {
		return http.StatusNotFound, false
	}
	if len(rawQuery) > s.cfg.MaxQueryBytes {
		s.refused.Add(1)
		return http.StatusRequestURITooLong, false
	}
	return 0, true
}

// limited spends one request of ip's rate budget, shared by every front
// end, and reports (and counts) when it is spent.
func (s *Server) limited(ip netip.Addr, now time.Time) bool {
	if s.limiter == nil || s.limiter.allow(ip, now) {
		return false
	}
	s.rateLimited.Add(1)
	return true
}

// checkPasskey checks keyPath ("" or "/<passkey>") against the private
// tracker's passkeys.
func (s *Server) checkPasskey(keyPath string) error {
	key, ok := strings.CutPrefix(keyPath, "/")
	if !ok || key == "" {
		return errMissingPasskey
	}
	if _, ok := (*s.keys.Load())[key]; !ok {
		return errBadPasskey
	}
	return nil
}

// announce records an announce that a front end has parsed and admitted,
// applying what HTTP and UDP share: the allow-list, the "ip" claim honoured
// only from trusted sources, the default numwant and none for a stopping
// peer. It appends up to q.NumWant peers to dst. pa is the caller's
// scratch: passed to the Store interface, a local one would be allocated
// on the heap for every announce.
func (s *Server) announce(now time.Time, remote netip.Addr, q *announceQuery, pa *PeerAnnounce, dst []Peer) ([]Peer, Swarm, error) {
	if !s.allowed(q.InfoHash) {
		return dst, Swarm{}, errUnregistered
	}
	ip := remote
	if q.IP.IsValid() && trustedSource(remote) {
		ip = q.IP
	}
	numWant := q.NumWant
	if numWant < 0 {
		numWant = s.cfg.DefaultNumWant
	}
	if q.Event == EventStopped {
		numWant = 0
	}
	*pa = PeerAnnounce{
		InfoHash: q.InfoHash,
		PeerID:   q.PeerID,
		Addr:     netip.AddrPortFrom(ip, q.Port),
		Key:      q.Key,
		Event:    q.Event,
		Seeder:   q.HasLeft && q.Left == 0,
		NumWant:  numWant,
	}
	peers, sw, err := s.store.Announce(now, pa, dst)
	if err == nil {
		s.announces.Add(1)
	}
	return peers, sw, err
}

func (s *Server) serveAnnounce(st *reqState, remote netip.Addr, keyPath, rawQuery string) int {
	if code, ok := s.admit(st, remote, keyPath, rawQuery); !ok {
		return code
	}
	q := &st.q
	if err := parseAnnounce(rawQuery, q, s.cfg.MaxNumWant); err != nil {
		return s.fail(st, err, remote)
	}
	if s.testHookAnnounce != nil {
		s.testHookAnnounce(q)
	}
	peers, sw, err := s.announce(s.now(), remote, q, &st.pa, st.peers[:0])
	st.peers = peers
	if err != nil {
		return s.fail(st, err, remote)
	}

	if q.Compact {
		for _, p := range peers {
			a, port := p.Addr.Addr(), p.Addr.Port()
			if a.Is4() {
				b := a.As4()
				st.v4 = append(append(st.v4, b[:]...), byte(port>>8), byte(port))
			} else {
				b := a.As16()
				st.v6 = append(append(st.v6, b[:]...), byte(port>>8), byte(port))
			}
		}
		resp := compactResponse{
			Interval:    int64(s.cfg.Interval / time.Second),
			MinInterval: int64(s.cfg.MinInterval / time.Second),
			Complete:    sw.Complete,
			Incomplete:  sw.Incomplete,
			Downloaded:  sw.Downloaded,
			Peers:       st.v4,
			Peers6:      st.v6,
		}
		st.out.Write(appendCompact(st.out.AvailableBuffer(), &resp))
		return http.StatusOK
	}
	// The list form carries no "peer id", as if no_peer_id were always
	// set: the memory store keeps only a hash of each peer ID (20 bytes a
	// peer saved), clients connect by address and learn the ID in the
	// handshake, and clients that ask for this form (libtorrent,
	// Transmission) take a dict without it.
	list := make([]dictPeer, len(peers))
	for i := range peers {
		p := &peers[i]
		list[i] = dictPeer{IP: p.Addr.Addr().String(), Port: p.Addr.Port()}
	}
	resp := listResponse{
		Interval:    int64(s.cfg.Interval / time.Second),
		MinInterval: int64(s.cfg.MinInterval / time.Second),
		Complete:    sw.Complete,
		Incomplete:  sw.Incomplete,
		Downloaded:  sw.Downloaded,
		Peers:       list,
	}
	return s.encode(st, &resp)
}

func (s *Server) serveScrape(st *reqState, ip netip.Addr, keyPath, rawQuery string) int {
	if code, ok := s.admit(st, ip, keyPath, rawQuery); !ok {
		return code
	}
	hashes, err := parseScrape(rawQuery, st.hashes[:0], s.cfg.MaxScrapeHashes)
	st.hashes = hashes
	if err != nil {
		return s.fail(st, err, ip)
	}
	now := s.now()
	files := make(map[string]scrapeFile, len(hashes))
	for _, h := range hashes {
		sw, err := s.scrapeCounts(now, h)
		if err != nil {
			return s.fail(st, err, ip)
		}
		files[string(h[:])] = scrapeFile{Complete: sw.Complete, Incomplete: sw.Incomplete, Downloaded: sw.Downloaded}
	}
	s.scrapes.Add(1)
	return s.encode(st, &scrapeResponse{Files: files})
}

// scrapeCounts returns the counts of h for a scrape. Unknown and
// non-allowed torrents are reported with zero counts, which tells a prober
// nothing about which hashes are tracked.
func (s *Server) scrapeCounts(now time.Time, h InfoHash) (Swarm, error) {
	if !s.allowed(h) {
		return Swarm{}, nil
	}
	return s.scrapeStore(now, h)
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	ip := s.clientIP(r)
	if !ip.IsValid() {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if s.limited(ip, s.now()) {
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	b, err := json.Marshal(s.Stats())
	if err != nil {
		s.log.Warn("tracker stats encoding failed", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = hdrJSON
	w.Write(append(b, '\n'))
}

func (s *Server) allowed(h InfoHash) bool {
	m := s.allow.Load()
	if m == nil {
		return true
	}
	_, ok := (*m)[h]
	return ok
}

// fail answers with a bencoded failure reason and HTTP 200, which is what
// clients expect from a tracker that refuses; they show the reason to the
// user instead of retrying a transport error.
func (s *Server) fail(st *reqState, err error, remote netip.Addr) int {
	s.refused.Add(1)
	var f failure
	if !errors.As(err, &f) {
		s.log.Warn("tracker request failed", "remote", remote, "err", err)
		f = "internal error"
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("tracker refused request", "remote", remote, "reason", string(f))
	}
	resp := failureResponse{Reason: string(f)}
	if f == errRateLimited || f == errStoreUnavailable {
		resp.RetryIn = 1 // minutes, BEP 31
	}
	st.out.Reset()
	return s.encode(st, &resp)
}

// encode bencodes v into st.out and returns the status to answer with.
func (s *Server) encode(st *reqState, v any) int {
	if err := st.enc.Encode(v); err != nil {
		s.log.Error("tracker response encoding failed", "err", err)
		st.out.Reset()
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// clientIP returns the address a request came from, or, behind a trusted
// proxy, the address named in Config.RealIPHeader.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if s.cfg.RealIPHeader != "" {
		return realIP(ip, r.Header.Get(s.cfg.RealIPHeader))
	}
	return ip
}

// realIP returns the address named by the RealIPHeader value v when the
// connection came from a trusted source, else the connection's address ip.
func realIP(ip netip.Addr, v string) netip.Addr {
	if v == "" || !trustedSource(ip) {
		return ip
	}
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	if fwd, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
		return fwd.Unmap().WithZone("")
	}
	return ip
}

// trustedSource reports whether ip is on the same host or private network,
// the only places a tracker should take address claims from.
func trustedSource(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate()
}

type compactResponse struct {
	Interval    int64  `bencode:"interval"`
	MinInterval int64  `bencode:"min interval"`
	Complete    int    `bencode:"complete"`
	Incomplete  int    `bencode:"incomplete"`
	Downloaded  int    `bencode:"downloaded"`
	Peers       []byte `bencode:"peers"`
	Peers6      []byte `bencode:"peers6,omitempty"`
}

type dictPeer struct {
	IP   string `bencode:"ip"`
	Port uint16 `bencode:"port"`
}

type listResponse struct {
	Interval    int64      `bencode:"interval"`
	MinInterval int64      `bencode:"min interval"`
	Complete    int        `bencode:"complete"`
	Incomplete  int        `bencode:"incomplete"`
	Downloaded  int        `bencode:"downloaded"`
	Peers       []dictPeer `bencode:"peers"`
}

type failureResponse struct {
	Reason  string `bencode:"failure reason"`
	RetryIn int    `bencode:"retry in,omitempty"`
}

type scrapeFile struct {
	Complete   int `bencode:"complete"`
	Incomplete int `bencode:"incomplete"`
	Downloaded int `bencode:"downloaded"`
}

type scrapeResponse struct {
	Files map[string]scrapeFile `bencode:"files"`
}

// panicLogBurst is how many recovered panics are logged in a row before
// the log is held to one a second.
const panicLogBurst = 10

// panicked records a panic recovered in a front end's handler: counted
// always, logged with its stack at most panicLogBurst at once and one a
// second after that, so a request that reliably panics cannot flood the
// log.
func (s *Server) panicked(v any, front string, remote netip.AddrPort, attrs ...any) {
	n := s.panics.Add(1)
	if !s.panicLog.Allow() {
		return
	}
	stack := debug.Stack()
	if len(stack) > maxPanicStack {
		stack = append(stack[:maxPanicStack:maxPanicStack], "\n... (truncated)"...)
	}
	attrs = append(attrs, "front", front, "remote", remote, "panic", v, "panics", n, "stack", string(stack))
	s.log.Error("tracker handler panicked; request dropped, serving on", attrs...)
}
