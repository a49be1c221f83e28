// Package swarm runs BitTorrent v2 swarms: it accepts and dials peers,
// speaks the peer wire protocol to them, schedules requests through the
// piece picker, verifies pieces against their merkle trees before sharing
// them, and chooses whom to upload to.
//
// One Client owns one listening socket shared by all its torrents; each
// Torrent owns its peers. Every peer connection has a reader goroutine,
// which handles incoming messages, and a writer goroutine, which drains a
// bounded send queue, so a slow peer never stalls another.
package swarm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Defaults for Config's zero values.
const (
	DefaultMaxPeers     = 50
	DefaultRequestQueue = 2000 // requests we accept queued from one peer (reqq)
	// handshakeTimeout bounds a whole handshake, either way: a live peer
	// needs a round trip or two.
	handshakeTimeout   = 5 * time.Second
	dialTimeout        = 10 * time.Second
	maxConcurrentDials = 8
)

// Config configures a Client. The zero value listens on a free port of all
// interfaces with no rate limits.
type Config struct {
	// ListenAddr is HOST:PORT to accept peers on; port 0 picks a free one.
	// An address keeps to its family; an empty host (":6881") listens on
	// both, on one port (see listenFamilies).
	ListenAddr string
	// PeerID identifies us to peers; zero means a random Azureus-style id.
	PeerID [20]byte
	// MaxPeers caps connections per torrent. A full torrent still takes
	// a newcomer that has spoken in place of a peer that does nothing
	// with its slot (see evictRank).
	MaxPeers int
	// UploadSlots is the number of regular unchoke slots; 0 means
	// choker.DefaultSlots, and a negative number means never to unchoke
	// anyone: a leech that takes and gives nothing back (BEP 3 allows it;
	// tit-for-tat then serves it only through optimistic unchokes).
	UploadSlots int
	// SuperSeed makes torrents that are complete when added start in
	// BEP 16 super-seeding: each peer is shown only pieces no peer has
	// yet, until every piece has reached some peer. It is for an initial
	// seeder, whose upload is the swarm's bottleneck.
	SuperSeed bool
	// ssTTL, for tests only, sets superseed.Config's SpreadTTL and
	// InterestTTL; zero keeps the package's.
	ssTTL time.Duration
	// MaxUploadRate and MaxDownloadRate cap payload bytes per second over
	// all peers; 0 means unlimited.
	MaxUploadRate, MaxDownloadRate int64
	// Logger receives connection-level events; nil means slog's default.
	Logger *slog.Logger
	// Version is sent to peers in the extension handshake ("v").
	Version string
	// NoServeChecks turns off the re-checks of served pieces that a peer's
	// behaviour triggers (its asking for a piece's leaf hashes, its leaving
	// right after our block): a peer built to serve bad data, such as
	// internal/rogue's poisoner, must not catch itself. Honest clients
	// leave it false.
	NoServeChecks bool
	// Encryption is the MSE policy both ways (encrypt.go); the zero
	// value prefers encryption and falls back to plaintext.
	Encryption Encryption
	// TestV1Only, for tests only, makes the client play a v1-only client
	// (Transmission 3, say) on hybrid torrents, as a v1 peer of a hybrid
	// swarm must be tested: it knows them by their v1 hash alone, never
	// sets the v2 bit nor takes BEP 52's upgrade, and so gets and answers
	// no hash request. Real clients leave it false.
	TestV1Only bool
}

// Client is a BitTorrent peer: a listener and the torrents it serves.
type Client struct {
	cfg    Config
	log    *slog.Logger
	lns    []net.Listener // IPv4 first (listenFamilies)
	v4, v6 bool           // the families lns take (Reaches)
	peerID [20]byte
	// upLimit and downLimit cap all torrents together; nil inside means
	// no limit. They change at run time (SetRateLimits).
	upLimit   atomic.Pointer[rate.Limiter]
	downLimit atomic.Pointer[rate.Limiter]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// pending holds incoming connections until their handshake is done,
	// bounded apart from any torrent's peer slots.
	pending *pendingSet
	refused refusals // incoming connections refused before a torrent took them

	mu       sync.Mutex
	torrents map[[20]byte]*Torrent
	// fetches holds the metadata fetches under way, under each hash of
	// their links, to hand them incoming connections (fetchin.go).
	fetches map[[20]byte]*fetchInbox
}

// Listen opens the client's listening socket and starts accepting peers.
// The client stops when ctx ends or Close is called.
func Listen(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "shoal"
	}
	addr := cfg.ListenAddr
	if addr == "" {
		addr = ":0"
	}
	lns, err := listenFamilies(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		lns:      lns,
		peerID:   cfg.PeerID,
		torrents: map[[20]byte]*Torrent{},
		pending:  newPendingSet(maxPendingHandshakes, maxPendingPerIP),
	}
	if c.peerID == ([20]byte{}) {
		c.peerID = NewPeerID()
	}
	c.SetRateLimits(cfg.MaxDownloadRate, cfg.MaxUploadRate)
	c.setFamilies()
	c.ctx, c.cancel = context.WithCancel(ctx)
	for _, ln := range lns {
		c.wg.Add(1)
		go c.acceptLoop(ln)
	}
	c.wg.Add(1)
	go c.tickLoop()
	return c, nil
}

// tickLoop is the one timer of all the client's torrents: every
// tickInterval it runs a tick for each torrent that has something to look
// after (atRest, startTick), so that idle torrents cost no timer, no
// wake-up and no goroutine each.
func (c *Client) tickLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	var ts []*Torrent
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-tick.C:
			c.mu.Lock()
			ts = ts[:0]
			for ih, t := range c.torrents {
				if ih == t.hashes[0] {
					ts = append(ts, t)
				}
			}
			c.mu.Unlock()
			for _, t := range ts {
				if !t.atRest() {
					t.startTick(now)
				}
			}
			clear(ts)
		}
	}
}

// NewPeerID returns a random peer id in the Azureus style, -SH0100-…, so
// peers and trackers can tell which client they talk to.
func NewPeerID() (id [20]byte) {
	copy(id[:], "-SH0100-")
	rand.Read(id[8:])
	return id
}

// newLimiter returns a limiter for bytes per second, nil for unlimited.
// The burst holds a few blocks so a single 16 KiB block always fits.
func newLimiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	burst := int(max(4*wire.BlockSize, bps/8))
	return rate.NewLimiter(rate.Limit(bps), burst)
}

// SetRateLimits changes the caps on payload bytes per second over all
// torrents, down and up; 0 means unlimited. Transfers under way take the
// new caps with their next block.
func (c *Client) SetRateLimits(down, up int64) {
	c.downLimit.Store(newLimiter(down))
	c.upLimit.Store(newLimiter(up))
}

// Addr returns the address the client listens on, the IPv4 one of a
// dual-stack client (Addrs has both).
func (c *Client) Addr() net.Addr { return c.lns[0].Addr() }

// PeerID returns the id the client sends in handshakes.
func (c *Client) PeerID() [20]byte { return c.peerID }

// Close stops the client: it closes the listener and every connection and
// waits for all of its goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	ts := c.torrentList()
	c.mu.Unlock()
	for _, t := range ts {
		t.Close()
	}
	c.cancel()
	var err error
	for _, ln := range c.lns {
		if e := ln.Close(); e != nil && err == nil {
			err = e
		}
	}
	c.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// torrentList returns each torrent once: a hybrid is in c.torrents under
// both of its hashes. Called with c.mu held.
func (c *Client) torrentList() []*Torrent {
	ts := make([]*Torrent, 0, len(c.torrents))
	for ih, t := range c.torrents {
		if ih == t.hashes[0] {
			ts = append(ts, t)
		}
	}
	return ts
}

func (c *Client) acceptLoop(ln net.Listener) {
	defer c.wg.Done()
	stop := make(chan struct{})
	defer close(stop)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.ctx.Done():
			ln.Close()
		case <-stop:
		}
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("accept", "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-c.ctx.Done():
				return
			}
			continue
		}
		// Too many handshakes under way push out the oldest (see
		// maxPendingHandshakes); the newcomer always gets its chance.
		ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
		pc := c.pending.add(conn, ap.Addr())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handleIncoming(conn, pc)
		}()
	}
}

// answerHandshake sends our handshake for ih to an incoming peer and reads
// its peer id, the part of the exchange a torrent and a metadata fetch
// share. A failure is counted and closes conn.
func (c *Client) answerHandshake(conn net.Conn, pc *pendingConn, ih [20]byte, v2 bool) (id [20]byte, ok bool) {
	if err := wire.WriteHandshake(conn, c.handshake(ih, v2)); err != nil {
		c.refused.add(c.handshakeRefusal(pc, err))
		conn.Close()
		return id, false
	}
	id, err := wire.ReadPeerID(conn)
	if err != nil {
		c.refused.add(c.handshakeRefusal(pc, err))
		conn.Close()
		return id, false
	}
	return id, true
}

// handleIncoming reads the handshake header first: only then do we know
// which torrent the peer wants, and so which info-hash to answer with.
// The connecting side speaks first, so its header has a shorter deadline
// than the whole exchange: a connection that sends nothing is gone soon.
func (c *Client) handleIncoming(conn net.Conn, pc *pendingConn) {
	defer c.pending.done(pc)
	start := time.Now()
	conn.SetDeadline(start.Add(headerTimeout))
	// Plaintext or MSE (encrypt.go); the whole of either handshake is
	// bounded by handshakeTimeout, once the first bytes are in.
	conn, sk, err := c.sniffIncoming(conn, start.Add(handshakeTimeout))
	if err != nil {
		c.log.Debug("incoming handshake", "peer", pc.conn.RemoteAddr(), "err", err)
		c.refused.add(c.handshakeRefusal(pc, err))
		pc.conn.Close()
		return
	}
	reserved, ih, err := wire.ReadHandshakeHeader(conn)
	if err != nil {
		c.log.Debug("incoming handshake", "peer", conn.RemoteAddr(), "err", err)
		c.refused.add(c.handshakeRefusal(pc, err))
		conn.Close()
		return
	}
	c.mu.Lock()
	t := c.torrents[ih]
	fetch := c.fetches[ih]
	c.mu.Unlock()
	if t == nil && fetch != nil && sk.allows(nil, fetch) {
		c.fetchIncoming(conn, pc, fetch, ih, reserved)
		return
	}
	if t == nil || !sk.allows(t, nil) {
		// Under MSE the handshake must name the torrent whose hash
		// keyed it, as libtorrent checks.
		c.log.Debug("incoming handshake for unknown torrent", "peer", conn.RemoteAddr(), "info_hash", fmt.Sprintf("%x", ih))
		c.refused.add(RefusedUnknownTorrent)
		conn.Close()
		return
	}
	idn := t.accept(ih, reserved)
	id, ok := c.answerHandshake(conn, pc, idn.ih, t.speaksV2())
	if !ok {
		return
	}
	if t.full() {
		// A full torrent makes room for a newcomer by closing a peer that
		// does nothing (evictionVictim), so the newcomer must first show
		// it is not one of those: a live client sends its bitfield or
		// extension handshake right after the handshake. Connections
		// that stay silent then wait here, among the pending handshakes,
		// and never take a slot from anyone.
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			c.log.Debug("no message after the handshake to a full torrent", "peer", conn.RemoteAddr(), "err", err)
			c.refused.add(c.silentRefusal(pc))
			conn.Close()
			return
		}
		conn = &primedConn{Conn: conn, pre: buf[:n]}
	}
	conn.SetDeadline(time.Time{})
	c.pending.done(pc)
	addr, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	t.addConn(conn, addr, reserved, id, idn, false)
}

// handshake is ours for info-hash ih. v2 sets the BEP 52 bit, which says
// we speak v2 and, sent with the v1 hash of a hybrid torrent, asks the
// peer to answer with the v2 one. It stays clear for a v1-only torrent:
// libtorrent drops a peer that claims v2 for a torrent that has none.
func (c *Client) handshake(ih [20]byte, v2 bool) wire.Handshake {
	h := wire.Handshake{InfoHash: ih, PeerID: c.peerID}
	h.Reserved.SetExtended(true)
	h.Reserved.SetFast(true)
	h.Reserved.SetV2(v2)
	return h
}

// dial connects to a peer for torrent t and completes the handshake,
// naming the torrent by sent, with the v2 bit if v2bit (t.dialHash).
func (c *Client) dial(ctx context.Context, t *Torrent, addr netip.AddrPort, sent [20]byte, v2bit bool) error {
	// MSE, or not, by the policy; the swarm's hash we name is its key.
	conn, err := c.connect(ctx, addr, sent, handshakeTimeout)
	if err != nil {
		return err
	}
	// Closing must not wait out a slow handshake.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := wire.WriteHandshake(conn, c.handshake(sent, v2bit)); err != nil {
		conn.Close()
		return err
	}
	h, err := wire.ReadHandshake(conn)
	if err != nil {
		conn.Close()
		return err
	}
	idn, ok := t.answered(sent, h.InfoHash)
	if !ok {
		t.refused.add(RefusedWrongInfoHash)
		conn.Close()
		return fmt.Errorf("peer answered for info-hash %x, not %x", h.InfoHash, sent)
	}
	conn.SetDeadline(time.Time{})
	t.addConn(conn, addr, h.Reserved, h.PeerID, idn, true)
	return nil
}
