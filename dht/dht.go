// Package dht runs shoal's node in the BitTorrent mainline DHT (BEP 5) over
// github.com/anacrolix/dht/v2: it announces the torrents shoal serves, finds
// peers for them, and keeps its routing table across restarts.
//
// The library does the KRPC protocol and the routing table; this package
// adds what a long-running client needs around it: every lookup bounded in
// time, periodic re-announces, a saved table, a clear warning when no
// bootstrap node answers, and a shutdown that leaves no goroutine behind.
package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/dht/v2/types"
	"golang.org/x/time/rate"
)

// Defaults for the zero fields of Config.
const (
	// DefaultAnnounceInterval matches what other clients use; nodes drop
	// peers that have not re-announced for a while.
	DefaultAnnounceInterval = 15 * time.Minute
	// DefaultRefreshInterval is how often the routing table is refreshed
	// once it is healthy; a thin table is refreshed more often.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultLookupTimeout bounds each lookup and announce: a traversal of
	// the public DHT can otherwise run for minutes on slow nodes.
	DefaultLookupTimeout = 30 * time.Second
)

// thinTableRetry is the longest wait between refreshes while the table has
// fewer good nodes than a bucket holds: a node that just joined, or whose
// bootstrap nodes were unreachable, should not wait a full RefreshInterval.
const thinTableRetry = 30 * time.Second

// announceGrace is how long an announce may still send announce_peer after
// its get_peers traversal was cut short by LookupTimeout.
const announceGrace = 5 * time.Second

// DefaultBootstrap returns the public routers a node starts from when
// Config.Bootstrap is nil.
func DefaultBootstrap() []string {
	return []string{
		"router.bittorrent.com:6881",
		"dht.transmissionbt.com:6881",
		"router.utorrent.com:6881",
		"dht.libtorrent.org:25401",
	}
}

// Config configures a Node. The zero value joins the public DHT on a random
// port.
type Config struct {
	// ListenAddr is the UDP HOST:PORT to bind, usually the peer listener's;
	// "" means any free port. Ignored when Conn is set.
	ListenAddr string
	// Conn, if set, is used instead of binding ListenAddr, so callers can
	// share or wrap the socket. The Node closes it on Close.
	Conn net.PacketConn
	// Bootstrap lists HOST:PORT nodes to join through when the routing
	// table is empty. nil means DefaultBootstrap(); an empty non-nil slice
	// means none (a first node others bootstrap from, or a private network).
	Bootstrap []string
	// StateFile, if set, is where the routing table is loaded from at start
	// and saved to on Close, so a restart does not need bootstrap nodes.
	StateFile string
	// AnnounceInterval is how often each announced hash is re-announced
	// (default DefaultAnnounceInterval).
	AnnounceInterval time.Duration
	// RefreshInterval is how often the routing table is refreshed (default
	// DefaultRefreshInterval).
	RefreshInterval time.Duration
	// LookupTimeout bounds each lookup, announce and refresh (default
	// DefaultLookupTimeout).
	LookupTimeout time.Duration
	// Logger receives warnings and debug output (default slog.Default()).
	Logger *slog.Logger
	// IPv6Only says the socket takes IPv6 alone ("udp6"), as the IPv6
	// node of a dual-stack process does (BEP 32): the node then asks for
	// and bootstraps from IPv6 nodes only. A bound [::] does not tell.
	IPv6Only bool
}

// ErrClosed is returned by lookups on, or cut short by, a closed Node.
var ErrClosed = errors.New("dht node closed")

// Stats is a snapshot of a Node's health.
type Stats struct {
	// Nodes is how many nodes the routing table holds.
	Nodes int
	// GoodNodes is how many of them answered us recently (BEP 5 "good").
	GoodNodes int
	// Announcing is how many info-hashes are being announced.
	Announcing int
}

// Node is one DHT node. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	srv    *adht.Server
	conn   net.PacketConn
	want   []krpc.Want
	ctx    context.Context
	cancel context.CancelFunc

	pingLimit  *rate.Limiter
	pingSlots  chan struct{}
	replySlots chan struct{}
	sendLimit  *rate.Limiter // the library's, shared by our own replies

	mu        sync.Mutex
	closed    bool
	wg        sync.WaitGroup // every goroutine this package starts
	announces map[[20]byte]*announcement
	pinged    map[netip.AddrPort]time.Time
	answered  map[netip.AddrPort]answer // who answered our queries, for find_node replies
	warned    bool                      // the "no node answered" warning is showing

	closeOnce sync.Once
	closeErr  error
}

// announcement is one registered info-hash.
type announcement struct {
	port    int
	onPeers func([]netip.AddrPort)
	cancel  context.CancelFunc
}

// New binds the socket, loads the saved table and starts joining the DHT in
// the background: it does not wait for bootstrap nodes, which may be slow
// or unreachable. ctx bounds only the start; Close stops the node.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.AnnounceInterval < 0 || cfg.RefreshInterval < 0 || cfg.LookupTimeout < 0 {
		return nil, errors.New("dht: negative interval in Config")
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = DefaultAnnounceInterval
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.Bootstrap == nil {
		cfg.Bootstrap = DefaultBootstrap()
	}
	cfg.Bootstrap = slices.Clone(cfg.Bootstrap)
	for _, hp := range cfg.Bootstrap {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("dht: bootstrap node %q: %w", hp, err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}

	var st state
	haveState := false
	if cfg.StateFile != "" {
		var err error
		st, haveState, err = loadState(cfg.StateFile)
		if err != nil {
			// A damaged cache must not keep the node from starting; it
			// only costs a cold bootstrap.
			logger.Warn("dht: ignoring saved routing table", "err", err)
		}
	}

	conn := cfg.Conn
	if conn == nil {
		addr := cfg.ListenAddr
		if addr == "" {
			addr = ":0"
		}
		var lc net.ListenConfig
		var err error
		if conn, err = lc.ListenPacket(ctx, "udp", addr); err != nil {
			return nil, fmt.Errorf("dht: %w", err)
		}
	}

	n := &Node{
		cfg:        cfg,
		log:        logger,
		conn:       conn,
		want:       []krpc.Want{krpc.WantNodes, krpc.WantNodes6},
		pingLimit:  rate.NewLimiter(20, 50),
		pingSlots:  make(chan struct{}, 16),
		replySlots: make(chan struct{}, 32),
		sendLimit:  rate.NewLimiter(250, 100),
		announces:  make(map[[20]byte]*announcement),
		pinged:     make(map[netip.AddrPort]time.Time),
		answered:   make(map[netip.AddrPort]answer),
	}
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && ua.IP.To4() != nil {
		// An IPv4 socket cannot reach IPv6 nodes; asking for them only
		// bloats replies.
		n.want = []krpc.Want{krpc.WantNodes}
	} else if cfg.IPv6Only {
		// Nor can an IPv6-only one reach IPv4 nodes.
		n.want = []krpc.Want{krpc.WantNodes6}
	}

	id := st.ID
	if id == (krpc.ID{}) {
		id = krpc.RandomNodeID()
	}
	sc := adht.ServerConfig{
		NodeId: id,
		Conn:   conn,
		// The library's own check (NodeIdSecure) keeps BEP 42 for public
		// addresses and already exempts loopback and private ones, which
		// is the relaxation we want; nodeIDAllowed applies the same rule
		// at this package's own entry points.
		NoSecurity:    false,
		StartingNodes: n.startingNodes,
		OnQuery:       n.onQuery,
		PeerStore:     newPeerStore(),
		Logger:        libLogger(logger),
		DefaultWant:   n.want,
		Exp:           2 * time.Hour,
		// The library's default limiter is one global shared by every
		// Server in the process; many nodes in one process would starve
		// each other of replies.
		SendLimiter: n.sendLimit,
	}
	if ip, ok := publicIP(conn.LocalAddr()); ok {
		sc.PublicIP = net.IP(ip.AsSlice())
		if !adht.NodeIdSecure(id, sc.PublicIP) {
			adht.SecureNodeId(&sc.NodeId, sc.PublicIP)
		}
	}
	// The server serves from the moment it exists, so onQuery may run
	// before NewServer returns: it needs n.ctx, and skips pings until
	// n.srv is set.
	n.ctx, n.cancel = context.WithCancel(context.Background())
	srv, err := adht.NewServer(&sc)
	if err != nil {
		n.cancel()
		conn.Close()
		return nil, fmt.Errorf("dht: start server on %s: %w", conn.LocalAddr(), err)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()

	if haveState {
		added := 0
		for _, ni := range slices.Concat([]krpc.NodeInfo(st.Nodes), []krpc.NodeInfo(st.Nodes6)) {
			ap, ok := addrPort(ni.Addr)
			if !ok || !nodeIDAllowed(ni.ID, ap.Addr()) {
				continue
			}
			if srv.AddNode(ni) == nil {
				added++
			}
		}
		logger.Debug("dht: loaded routing table", "file", cfg.StateFile, "nodes", added)
	}

	n.wg.Add(1)
	go n.maintain()
	return n, nil
}

// Addr returns the bound UDP address.
func (n *Node) Addr() net.Addr { return n.conn.LocalAddr() }

// ID returns the node ID, which the state file keeps across restarts.
func (n *Node) ID() [20]byte { return n.srv.ID() }

// Stats returns the routing table size and the number of announced hashes.
func (n *Node) Stats() Stats {
	s := n.srv.Stats()
	n.mu.Lock()
	defer n.mu.Unlock()
	return Stats{Nodes: s.Nodes, GoodNodes: s.GoodNodes, Announcing: len(n.announces)}
}

// Announce registers ih: from now until Remove or Close the node announces
// that a peer for ih listens on port (0 means the DHT's own UDP port, via
// implied_port, for clients whose TCP and UDP ports are the same), now and
// every AnnounceInterval, and passes the peers each round finds to onPeers.
// onPeers runs on the announcing goroutine and should not block for long;
// it may be nil. Announcing an already registered hash replaces its port
// and callback.
func (n *Node) Announce(ih [20]byte, port int, onPeers func([]netip.AddrPort)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if old := n.announces[ih]; old != nil {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(n.ctx)
	a := &announcement{port: port, onPeers: onPeers, cancel: cancel}
	n.announces[ih] = a
	n.wg.Add(1)
	go n.announceLoop(ctx, ih, a)
}

// Remove stops announcing ih. The round in flight, if any, is cut short.
func (n *Node) Remove(ih [20]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a := n.announces[ih]; a != nil {
		a.cancel()
		delete(n.announces, ih)
	}
}

// Lookup finds peers for ih once, without announcing. It returns when the
// search has asked every node it found, when LookupTimeout has passed
// (with the peers found so far and no error), or when ctx ends (with
// ctx's error).
func (n *Node) Lookup(ctx context.Context, ih [20]byte) ([]netip.AddrPort, error) {
	var found []netip.AddrPort
	err := n.lookup(ctx, ih, func(ps []netip.AddrPort) {
		found = append(found, ps...)
	})
	return found, err
}

// FindPeers is Lookup for the swarm of 20-byte info-hash ih (a v1 hash,
// or a v2 one truncated as BEP 52 says), passing each batch of peers to
// found as it arrives rather than all at the end: a swarm.PeerFinder,
// which the swarm asks again on its own pace.
func (n *Node) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	return n.lookup(ctx, ih, found)
}

// lookup runs one get_peers traversal for ih, passing peers to found.
func (n *Node) lookup(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("dht: lookup %x: %w", ih, ErrClosed)
	}
	n.wg.Add(1)
	n.mu.Unlock()
	defer n.wg.Done()
	if err := n.traverse(ctx, ih, 0, false, found); err != nil {
		return fmt.Errorf("dht: lookup %x: %w", ih, err)
	}
	return nil
}

// Announcer is the DHT as the peer source of a torrent we serve: it
// announces that a peer for the torrent listens on a port, and finds the
// torrent's other peers while doing so.
type Announcer struct {
	n    *Node
	port int
}

// Announcer returns the announcer for a peer listening on port (0 for
// the DHT's own UDP port, as in Announce).
func (n *Node) Announcer(port int) *Announcer { return &Announcer{n: n, port: port} }

// FindPeers announces the swarm of 20-byte info-hash ih (v1, or v2
// truncated as BEP 52 says) now and every AnnounceInterval, passing the peers each
// round finds to found, on the caller's goroutine: a swarm.PeerFinder
// that runs until ctx ends, the announce is replaced or removed (nil
// error), or the node closes (ErrClosed). While it runs ih counts as
// announced, as with Announce.
func (a *Announcer) FindPeers(ctx context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
	n, ih20 := a.n, ih
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("dht: announce %x: %w", ih20, ErrClosed)
	}
	if old := n.announces[ih20]; old != nil {
		old.cancel()
	}
	actx, cancel := context.WithCancel(ctx)
	// Close waits for every goroutine in n.wg, this caller's included.
	stop := context.AfterFunc(n.ctx, cancel)
	reg := &announcement{port: a.port, onPeers: found, cancel: cancel}
	n.announces[ih20] = reg
	n.wg.Add(1)
	n.mu.Unlock()
	defer func() {
		stop()
		cancel()
		n.mu.Lock()
		if n.announces[ih20] == reg {
			delete(n.announces, ih20)
		}
		n.mu.Unlock()
		n.wg.Done()
	}()
	n.announceRounds(actx, ih20, a.port, found)
	if n.ctx.Err() != nil {
		return fmt.Errorf("dht: announce %x: %w", ih20, ErrClosed)
	}
	return ctx.Err()
}

// AddNode asks the node at addr to join our routing table, as a peer's BEP 5
// PORT message suggests. The address is pinged rather than trusted: only a
// node that answers, with an acceptable ID, enters the table.
func (n *Node) AddNode(addr netip.AddrPort) {
	n.pingBack(netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()))
}

// Close stops every goroutine of the node, saves the routing table if
// Config.StateFile is set, and closes the socket. It returns the save error,
// if any; calling it again returns the same.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.cancel()
		// Our queries all carry n.ctx, so they end promptly and the
		// library holds no transaction of ours once this returns.
		n.wg.Wait()
		if n.cfg.StateFile != "" {
			n.closeErr = saveState(n.cfg.StateFile, n.srv.ID(), n.srv.Nodes())
		}
		n.srv.Close()
		// The library closes the socket on a goroutine of its own; closing
		// it here too makes its read loop end before Close returns.
		n.conn.Close()
	})
	return n.closeErr
}

// maintain keeps the routing table filled: a refresh now and then on a
// schedule, sooner while the table is thin. The first refresh is the
// bootstrap; later ones matter because a node answers find_node only with
// nodes it has heard back from, so nodes that joined after us become useful
// to others only once we have queried them.
func (n *Node) maintain() {
	defer n.wg.Done()
	for {
		n.refresh()
		wait := n.cfg.RefreshInterval
		if n.srv.Stats().GoodNodes < 8 {
			wait = min(wait, thinTableRetry)
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh runs one bounded find_node traversal toward our own ID, which
// fills the buckets nearest to us and tells the nodes we reach about us.
func (n *Node) refresh() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LookupTimeout)
	defer cancel()
	target := krpc.ID(n.srv.ID())
	op := traversal.Start(traversal.OperationInput{
		Target: target,
		K:      16,
		DoQuery: func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
			res := n.srv.Query(qctx, adht.NewAddr(addr.UDP()), "find_node", adht.QueryInput{
				MsgArgs: krpc.MsgArgs{Target: target, Want: n.want},
			})
			n.noteReply(addr.UDP(), res)
			return res.TraversalQueryResult(addr)
		},
		NodeFilter: n.srv.TraversalNodeFilter,
	})
	starting, err := n.srv.TraversalStartingNodes()
	if err == nil && n.srv.Stats().GoodNodes < 8 && len(n.cfg.Bootstrap) > 0 && len(starting) > 0 && starting[0].Id.Ok {
		// The table is not empty, so the library did not fall back on the
		// bootstrap nodes; but its nodes may all be stale (a table saved
		// long ago), and then only the bootstrap nodes can help.
		if extra, berr := n.startingNodes(); berr == nil {
			for _, a := range extra {
				starting = append(starting, types.AddrMaybeId{Addr: a.KRPC().ToNodeAddrPort()})
			}
		}
	}
	if err == nil {
		op.AddNodes(starting)
		select {
		case <-ctx.Done():
		case <-op.Stalled():
		}
	}
	op.Stop()
	<-op.Stopped()
	if n.ctx.Err() != nil {
		return
	}
	responses := op.Stats().NumResponses
	stats := n.srv.Stats()
	n.log.Debug("dht: refreshed routing table", "responses", responses, "nodes", stats.Nodes, "good", stats.GoodNodes)

	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case responses > 0 || stats.GoodNodes > 0:
		if n.warned {
			n.log.Info("dht: reached the DHT", "nodes", stats.Nodes)
			n.warned = false
		}
	case len(n.cfg.Bootstrap) == 0 && stats.Nodes == 0:
		// A first node of a network has nobody to ask; others will come
		// to it.
	case !n.warned:
		n.warned = true
		reason := "no node answered"
		if err != nil {
			reason = err.Error()
		}
		n.log.Warn("dht: cannot reach any DHT node; running without DHT peers and retrying",
			"reason", reason, "bootstrap", n.cfg.Bootstrap, "nodes", stats.Nodes)
	}
}

// startingNodes resolves the bootstrap nodes for the library when the
// routing table is empty. Names are resolved here, with a deadline, rather
// than by the library, whose resolver has none.
func (n *Node) startingNodes() ([]adht.Addr, error) {
	if len(n.cfg.Bootstrap) == 0 {
		return nil, errors.New("no bootstrap nodes configured and the routing table is empty")
	}
	v4only := len(n.want) == 1 && n.want[0] == krpc.WantNodes
	v6only := len(n.want) == 1 && n.want[0] == krpc.WantNodes6
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var addrs []adht.Addr
	var errs []error
	for _, hp := range n.cfg.Bootstrap {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			errs = append(errs, fmt.Errorf("bootstrap node %s: %w", hp, err))
			continue
		}
		for _, ip := range ips {
			ip = ip.Unmap()
			if v4only && !ip.Is4() || v6only && ip.Is4() {
				continue
			}
			ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(ip.String(), port))
			if err != nil {
				errs = append(errs, fmt.Errorf("bootstrap node %s: %w", hp, err))
				continue
			}
			addrs = append(addrs, adht.NewAddr(ua))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no bootstrap node resolved: %w", errors.Join(errs...))
	}
	return addrs, nil
}

// onQuery answers find_node itself (see takeFindNode) and pings back nodes
// that query us. Only nodes that have answered one of our own queries are
// handed out, so without the ping a node that merely joined through us
// stays invisible to everyone else until our next refresh. It runs with
// the library's lock held, so it must not call into the server itself.
func (n *Node) onQuery(m *krpc.Msg, source net.Addr) bool {
	ua, ok := source.(*net.UDPAddr)
	if !ok {
		return true
	}
	ua = &net.UDPAddr{IP: slices.Clone(ua.IP), Port: ua.Port, Zone: ua.Zone}
	propagate := !n.takeFindNode(m, ua)
	id := m.SenderID()
	if m.ReadOnly || id == nil {
		return propagate
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !nodeIDAllowed(*id, ap.Addr()) {
		return propagate
	}
	n.pingBack(ap)
	return propagate
}

// pingBack pings ap at most once per 15 minutes (BEP 5's "good" window),
// within a rate and concurrency budget so that a flood of queries cannot
// turn us into a traffic source.
func (n *Node) pingBack(ap netip.AddrPort) {
	if !ap.IsValid() || ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	srv := n.srv
	if n.closed || srv == nil {
		return
	}
	if t, ok := n.pinged[ap]; ok && now.Sub(t) < 15*time.Minute {
		return
	}
	if len(n.pinged) >= 4096 {
		for k, t := range n.pinged {
			if now.Sub(t) >= 15*time.Minute {
				delete(n.pinged, k)
			}
		}
		if len(n.pinged) >= 4096 {
			return
		}
	}
	if !n.pingLimit.AllowN(now, 1) {
		return
	}
	select {
	case n.pingSlots <- struct{}{}:
	default:
		return
	}
	n.pinged[ap] = now
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.pingSlots }()
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		// The answer is all we want: the library adds a node that
		// answers to its table.
		ua := net.UDPAddrFromAddrPort(ap)
		n.noteReply(ua, srv.Query(ctx, adht.NewAddr(ua), "ping", adht.QueryInput{}))
	}()
}

// announceLoop announces a's hash every AnnounceInterval until ctx ends.
func (n *Node) announceLoop(ctx context.Context, ih [20]byte, a *announcement) {
	defer n.wg.Done()
	n.announceRounds(ctx, ih, a.port, a.onPeers)
}

// announceRounds announces ih as a peer on port now and every
// AnnounceInterval, passing the peers found to onPeers (if not nil),
// until ctx ends.
func (n *Node) announceRounds(ctx context.Context, ih [20]byte, port int, onPeers func([]netip.AddrPort)) {
	for {
		err := n.traverse(ctx, ih, port, true, func(ps []netip.AddrPort) {
			if onPeers != nil && ctx.Err() == nil {
				onPeers(ps)
			}
		})
		if err != nil && ctx.Err() == nil {
			n.log.Debug("dht: announce", "info_hash", fmt.Sprintf("%x", ih), "err", err)
		}
		t := time.NewTimer(jitter(n.cfg.AnnounceInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// traverse runs one get_peers traversal for ih, bounded by LookupTimeout,
// passing each batch of new peers to found; with announce set it then sends
// announce_peer to the closest nodes that answered. The error is ctx's if
// ctx ended, or why the traversal could not start.
func (n *Node) traverse(ctx context.Context, ih [20]byte, port int, announce bool, found func([]netip.AddrPort)) error {
	tctx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()

	var opts []adht.AnnounceOpt
	if announce {
		opts = append(opts, adht.AnnouncePeer(adht.AnnouncePeerOpts{Port: port, ImpliedPort: port == 0}))
	}
	a, err := n.srv.AnnounceTraversal(ih, opts...)
	if err != nil {
		return err
	}
	seen := make(map[netip.AddrPort]bool)
	var grace <-chan time.Time
	done, closing := tctx.Done(), n.ctx.Done()
	for {
		select {
		case pv, ok := <-a.Peers:
			if !ok {
				if n.ctx.Err() != nil {
					return ErrClosed
				}
				return ctx.Err()
			}
			var batch []netip.AddrPort
			for _, p := range pv.Peers {
				if ap, ok := addrPort(p); ok && !seen[ap] {
					seen[ap] = true
					batch = append(batch, ap)
				}
			}
			if len(batch) > 0 {
				found(batch)
			}
		case <-done:
			done = nil
			if announce && ctx.Err() == nil && n.ctx.Err() == nil {
				// Out of time for searching, but the nodes found so far
				// should still hear the announce.
				a.StopTraversing()
				t := time.NewTimer(announceGrace)
				defer t.Stop()
				grace = t.C
				continue
			}
			a.Close()
		case <-grace:
			grace = nil
			a.Close()
		case <-closing:
			// Also ends the grace period: Close must not wait for it.
			closing = nil
			a.Close()
		}
	}
}

// jitter spreads periodic work by ±10% so that nodes started together do
// not query in lockstep.
func jitter(d time.Duration) time.Duration {
	if d < 10 {
		return d
	}
	return d - d/10 + rand.N(d/5)
}
