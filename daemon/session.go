package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/internal/portmap"
	"github.com/shoal-p2p/shoal/swarm"
	"github.com/shoal-p2p/shoal/swarm/lsd"
)

// Config configures a Session. Its zero value (but for SessionDir) is a
// session listening on port 6881 or the next free one, downloading into
// SessionDir/downloads, with the DHT, local discovery and port mapping on
// and no rate limits.
type Config struct {
	// SessionDir is the session folder: the torrents, their settings and
	// resume records (see record.go). Required.
	SessionDir string
	// DownloadDir is where torrents' files go unless added elsewhere; ""
	// means SessionDir/downloads. A session.json setting overrides it
	// once changed through SetSettings.
	DownloadDir string
	// ListenAddr is the peer listener's HOST:PORT; "" means ":6881",
	// moving on to the next free port if taken. A given port must be free.
	ListenAddr string
	// Encryption is the MSE policy for every torrent.
	Encryption swarm.Encryption
	// DownLimit and UpLimit cap payload bytes per second over all
	// torrents; 0 means none. A session.json setting overrides them.
	DownLimit, UpLimit int64
	// PeerLimit caps each torrent's connections; 0 means
	// swarm.DefaultMaxPeers.
	PeerLimit int
	// NoDHT turns the DHT off. Bootstrap lists the nodes it joins
	// through; nil means the public routers, empty none.
	NoDHT     bool
	Bootstrap []string
	// NoLSD turns local service discovery (BEP 14) off, NoPortMap the
	// router port mapping (UPnP IGD, NAT-PMP).
	NoLSD, NoPortMap bool
	// Logger receives the session's logs; nil means slog's default.
	Logger *slog.Logger
	// Version is shoal's version, sent to peers and shown in Settings.
	Version string
	// MaxChecks bounds the torrents checking their data at once; 0 means
	// 2.
	MaxChecks int
	// housekeeping is the pace of the session-wide tick; tests shorten it.
	housekeeping time.Duration
}

// Session runs many torrents in one process. It implements Controller.
type Session struct {
	cfg     Config
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	cl      *swarm.Client
	nodes   []*dht.Node
	lsd     *lsd.Service
	pm      *portmap.Mapper
	started time.Time
	checks  chan struct{} // a slot per check allowed at once
	// announces spaces the torrents' first DHT announces (stagger.go).
	announces stagger
	wg        sync.WaitGroup

	mu  sync.Mutex
	rec sessionRecord
	// savedNextID is rec.NextID as session.json last had it: an ID below
	// it is never given again, whatever records are left (Remove).
	savedNextID ID
	torrents    map[ID]*torrent
	// byHash finds a torrent by each of its 20-byte swarm hashes (v1, and
	// the truncated v2), to refuse a second copy of it.
	byHash  map[[20]byte]*torrent
	removed []removal
	// loadErrs are the torrent records that could not be read at Open.
	loadErrs []error
	closed   bool
	// sessDown and sessUp count payload of this run that torrents no
	// longer running moved here (Stats).
	sessDown, sessUp int64
	// lastStart is when a torrent was last started, and released when
	// housekeep last gave the memory of such a burst back (releaseMemory).
	lastStart, released time.Time
}

type removal struct {
	id ID
	at time.Time
}

var _ Controller = (*Session)(nil)

// Open starts a session from cfg.SessionDir, creating the folder if need
// be, and brings back every torrent recorded there in the state it was
// left in. A record that cannot be read is logged and skipped (LoadErrors);
// its files are left for the user to look at.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.SessionDir == "" {
		return nil, errors.New("daemon: no session folder")
	}
	dir, err := filepath.Abs(cfg.SessionDir)
	if err != nil {
		return nil, fmt.Errorf("daemon: session folder: %w", err)
	}
	cfg.SessionDir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "shoal"
	}
	if cfg.MaxChecks <= 0 {
		cfg.MaxChecks = 2
	}
	if cfg.housekeeping <= 0 {
		cfg.housekeeping = time.Second
	}
	for _, d := range []string{dir, filepath.Join(dir, torrentsDir), filepath.Join(dir, resumeDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	s := &Session{
		cfg:       cfg,
		log:       cfg.Logger,
		started:   time.Now(),
		checks:    make(chan struct{}, cfg.MaxChecks),
		announces: stagger{spacing: announceSpacing},
		torrents:  map[ID]*torrent{},
		byHash:    map[[20]byte]*torrent{},
		rec:       sessionRecord{Version: recordVersion, NextID: 1, DownLimit: cfg.DownLimit, UpLimit: cfg.UpLimit, PeerLimit: cfg.PeerLimit},
	}
	if err := s.loadSession(); err != nil {
		return nil, err
	}
	if s.rec.DownloadDir == "" {
		s.rec.DownloadDir = cfg.DownloadDir
		if s.rec.DownloadDir == "" {
			s.rec.DownloadDir = filepath.Join(dir, "downloads")
		}
	}
	if s.rec.DownloadDir, err = filepath.Abs(s.rec.DownloadDir); err != nil {
		return nil, fmt.Errorf("daemon: download folder: %w", err)
	}
	if err := os.MkdirAll(s.rec.DownloadDir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: download folder: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if err := s.startNetwork(); err != nil {
		s.cancel()
		return nil, err
	}
	s.loadTorrents()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.housekeep()
	}()
	return s, nil
}

// loadSession reads session.json, if there is one.
func (s *Session) loadSession() error {
	path := filepath.Join(s.cfg.SessionDir, sessionFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s.saveSessionLocked()
	}
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	rec := s.rec
	if err := json.Unmarshal(data, &rec); err != nil {
		// The counters matter (IDs are never reused): the records'
		// own IDs restore NextID below, so a damaged file costs only
		// the settings.
		s.log.Error("session settings unreadable; using defaults", "path", path, "err", err)
		return nil
	}
	s.rec = rec
	s.rec.NextID = max(s.rec.NextID, 1)
	s.savedNextID = s.rec.NextID
	return nil
}

// saveSessionLocked writes session.json. Called with s.mu held, or
// before the session runs.
func (s *Session) saveSessionLocked() error {
	if err := writeJSON(filepath.Join(s.cfg.SessionDir, sessionFile), s.rec); err != nil {
		return fmt.Errorf("daemon: saving session: %w", err)
	}
	s.savedNextID = s.rec.NextID
	return nil
}

// startNetwork opens the peer listener, the DHT nodes, local discovery
// and the port mapping that every torrent shares.
func (s *Session) startNetwork() error {
	addr, tries := s.cfg.ListenAddr, 1
	if addr == "" {
		addr, tries = ":6881", 50
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("daemon: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("daemon: listen address %q: bad port", addr)
	}
	if port == 0 {
		tries = 1
	}
	for i := 0; ; i++ {
		s.cl, err = swarm.Listen(s.ctx, swarm.Config{
			ListenAddr:      net.JoinHostPort(host, strconv.Itoa(port+i)),
			MaxPeers:        s.peerLimit(),
			MaxUploadRate:   s.rec.UpLimit,
			MaxDownloadRate: s.rec.DownLimit,
			Logger:          s.log,
			Version:         s.cfg.Version,
			Encryption:      s.cfg.Encryption,
		})
		if err == nil {
			break
		}
		if i+1 >= tries || port+i+1 > 65535 || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	if !s.cfg.NoDHT {
		for _, a := range s.cl.Addrs() {
			n, err := s.startDHT(a)
			if err != nil {
				s.closeNetwork()
				return err
			}
			s.nodes = append(s.nodes, n)
		}
	}
	ap, _ := netip.ParseAddrPort(s.cl.Addr().String())
	if !s.cfg.NoLSD {
		var listen []netip.Addr
		for _, a := range s.cl.Addrs() {
			if p, err := netip.ParseAddrPort(a.String()); err == nil {
				listen = append(listen, p.Addr().Unmap())
			}
		}
		ls, err := lsd.New(lsd.Config{Listen: listen, Port: ap.Port(), Logger: s.log})
		switch {
		case errors.Is(err, lsd.ErrNoInterface):
			s.log.Debug("local service discovery off", "err", err)
		case err != nil:
			s.log.Warn("local service discovery off", "err", err)
		default:
			s.lsd = ls
		}
	}
	if !s.cfg.NoPortMap {
		s.pm = portmap.Start(s.ctx, portmap.Config{Listen: ap, Description: s.cfg.Version, Logger: s.log})
	}
	return nil
}

// startDHT runs the DHT node of listener address a (dht.NewForListener),
// keeping its table in the session folder across restarts.
func (s *Session) startDHT(a net.Addr) (*dht.Node, error) {
	_, family := dht.Family(a)
	n, err := dht.NewForListener(s.ctx, a, dht.Config{
		Bootstrap: s.cfg.Bootstrap,
		StateFile: filepath.Join(s.cfg.SessionDir, "dht-"+family+".state"),
		Logger:    s.log.With("family", family),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return n, nil
}

func (s *Session) closeNetwork() {
	if s.pm != nil {
		s.pm.Close()
	}
	if s.lsd != nil {
		s.lsd.Close()
	}
	for _, n := range s.nodes {
		n.Close()
	}
	s.nodes = nil
	if s.cl != nil {
		s.cl.Close()
	}
}

// closeParallel is how many torrents Close stops at once.
const closeParallel = 16

// Close stops every torrent, saving its resume record and settings, and
// then the network. The session cannot be used afterwards.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ts := s.listLocked()
	s.mu.Unlock()
	// Each stop syncs the torrent's resume record and settings to disk:
	// one after another, a thousand torrents took 17 s to stop, past what
	// a service manager may wait. Several at once share the file
	// system's journal commits.
	var (
		errs  []error
		errMu sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, closeParallel)
		// stopped marks the running torrents deactivate stopped without
		// error, and so saved just now.
		stopped = make([]bool, len(ts))
	)
	for i, t := range ts {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			t.op.Lock()
			running := s.running(t)
			err := s.deactivate(t, false)
			t.op.Unlock()
			stopped[i] = running && err == nil
			if err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	for i, t := range ts {
		// Writing a record just saved again would double the stop's
		// disk syncs for nothing.
		if stopped[i] && !t.dirty {
			continue
		}
		if err := s.saveRecordLocked(t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.saveSessionLocked(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Unlock()
	s.closeNetwork()
	return errors.Join(errs...)
}

// ListenAddrs are the addresses the peer listener takes.
func (s *Session) ListenAddrs() []net.Addr { return s.cl.Addrs() }

// LoadErrors lists the torrent records Open could not read and skipped.
func (s *Session) LoadErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.loadErrs)
}

// listLocked returns the torrents in ID order. Called with s.mu held.
func (s *Session) listLocked() []*torrent {
	ts := make([]*torrent, 0, len(s.torrents))
	for _, t := range s.torrents {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *torrent) int { return int(a.id - b.id) })
	return ts
}

// housekeep is the session's one periodic task for all torrents: it
// notices completions and disk faults and saves what changed, so that
// an idle torrent costs no goroutine or timer of its own here.
func (s *Session) housekeep() {
	tick := time.NewTicker(s.cfg.housekeeping)
	defer tick.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			var failed, ratioMet []*torrent
			starting := false
			s.mu.Lock()
			save := now.Sub(lastSave) >= recordSaveEvery
			ratio := s.rec.SeedRatioLimit
			if !s.rec.SeedRatioOn {
				ratio = 0
			}
			for _, t := range s.torrents {
				starting = starting || t.state == CheckWait || t.state == Checking
				if t.sw != nil && t.state == Seeding && ratio > 0 && t.act != nil && s.ratioMetLocked(t, ratio) {
					ratioMet = append(ratioMet, t)
				}
				if t.sw != nil {
					select {
					case <-t.sw.Failed():
						failed = append(failed, t)
						continue
					default:
					}
					select {
					case <-t.sw.Done():
						if t.state == Downloading {
							t.state = Seeding
							if t.rec.Done.IsZero() {
								t.rec.Done = now
							}
							if t.st != nil {
								t.rec.Have = t.st.Have()
							}
							t.dirty = true
						}
					default:
					}
					if save {
						st := t.sw.Stats()
						if st.Downloaded != t.savedDown || st.Uploaded != t.savedUp {
							t.dirty = true
						}
					}
				}
				if t.dirty {
					if err := s.saveRecordLocked(t); err != nil {
						s.log.Warn("saving torrent record", "id", t.id, "err", err)
					}
				}
			}
			if save {
				lastSave = now
				if err := s.saveSessionLocked(); err != nil {
					s.log.Warn("saving the session's settings", "err", err)
				}
			}
			release := !starting && s.lastStart.After(s.released) && now.Sub(s.lastStart) >= quietBeforeRelease
			if release {
				s.released = now
			}
			s.mu.Unlock()
			if release {
				releaseMemory()
			}
			for _, t := range failed {
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.fail(t)
				}()
			}
			for _, t := range ratioMet {
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.log.Info("seed ratio reached: stopping", "id", t.id, "ratio", ratio)
					if err := s.Stop([]ID{t.id}); err != nil && !errors.Is(err, errClosed) {
						s.log.Warn("stopping a torrent at its seed ratio", "id", t.id, "err", err)
					}
				}()
			}
		}
	}
}

// ratioMetLocked says whether seeding torrent t has uploaded ratio times
// its wanted size over its life, as Transmission's seedRatioLimit counts
// it. Called with s.mu held.
func (s *Session) ratioMetLocked(t *torrent, ratio float64) bool {
	st := s.statusLocked(t, 0)
	return st.WantedSize > 0 && float64(st.Uploaded) >= ratio*float64(st.WantedSize)
}

// quietBeforeRelease is how long after the last torrent started, with no
// check under way, housekeep gives back the memory the starts took.
const quietBeforeRelease = 5 * time.Second

// releaseMemory collects the garbage of a burst of starts (opening
// storage, checking, reading records) and returns the free pages to the
// system at once. The runtime would keep them for its next heap growth, up
// to twice the live heap, and a session at rest never grows it: with
// 1,000 seeds that was some megabytes of RSS held for nothing. It costs
// one collection of a heap of a few MiB, once per burst.
func releaseMemory() { debug.FreeOSMemory() }

// recordSaveEvery is how often the transfer totals of running torrents
// are written, so that a kill -9 loses at most this much of them.
const recordSaveEvery = 30 * time.Second
