package swarm

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/picker"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/addrbook"
	"github.com/shoal-p2p/shoal/swarm/choker"
	"github.com/shoal-p2p/shoal/swarm/superseed"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Tuning of a torrent's housekeeping.
const (
	tickInterval     = time.Second
	saveInterval     = 5 * time.Second
	requestTimeout   = 30 * time.Second // no block for this long: release its requests
	idleTimeout      = 3 * time.Minute  // nothing received for this long: drop
	keepAliveEvery   = 90 * time.Second
	strikesToBan     = 2 // pieces proven bad before a peer is banned
	hashReplyTimeout = 20 * time.Second
	redialBackoff    = 5 * time.Second
	// firstRedial is the wait after a first failed dial, doubled with each
	// further failure up to maxRedialBackoff: a peer named on the command
	// line that is not up yet (a seeder starting a second later) is tried
	// again within seconds, a dead PEX address soon rarely.
	firstRedial      = time.Second
	maxRedialBackoff = 5 * time.Minute
	maxKnownPeers    = 2000
	maxStrikeEntries = 10000
)

// Torrent is one torrent being downloaded or seeded.
type Torrent struct {
	// What the torrent is, fixed at Add.
	c    *Client
	meta *piece.MetaInfo
	info *piece.Info
	st   *storage.Storage
	log  *slog.Logger
	// ih20 is the truncated v2 info-hash and v1 the v1 one, each zero if
	// the torrent lacks it; hashes lists those it has (Info.SwarmHashes),
	// under each of which the Client finds it (identity.go).
	ih20, v1 [20]byte
	hashes   [][20]byte

	// Life: Close cancels ctx and waits for wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed once every piece is verified
	failed chan struct{} // closed when an error stops the download
	// lastSave is when a tick last saved the resume record. Only the one
	// tick under way touches it (ticking orders them).
	lastSave time.Time

	// Counters read without the lock. wasted counts payload received but
	// discarded, whatever the reason: duplicates, bad pieces, blocks nobody
	// asked for, and the blocks and partly written pieces given up when a
	// disk error stopped the download.
	downloaded, uploaded, wasted atomic.Int64
	// sentFromFile is the part of uploaded sent with sendfile (sendfile.go).
	sentFromFile  atomic.Int64
	verifiedBytes atomic.Int64
	// upLimit and downLimit cap this torrent alone, beside the client's
	// caps over all torrents (SetRateLimits); nil inside means none.
	upLimit, downLimit atomic.Pointer[rate.Limiter]
	// peerLimit caps this torrent's connections in place of the client's
	// MaxPeers when above 0 (SetMaxPeers).
	peerLimit atomic.Int64
	refused   refusals // peers and messages refused, by reason (status.go)

	// Everything below is guarded by mu.
	mu      sync.Mutex
	seeding bool
	closing bool
	// ticking is set while a tick of housekeeping runs (startTick): one
	// at a time, in a goroutine that lives as long as the ticks, so that
	// a torrent at rest has no goroutine at all; tickDue says another is
	// to run after it, at nextTick.
	ticking, tickDue bool
	nextTick         time.Time

	// Peers (peer.go, limits.go): who is connected. evicting counts peers
	// closed to make room but not yet removed; speakers the peers that
	// have sent more than keep-alives.
	peers              map[*peer]struct{}
	byID               map[picker.PeerID]*peer
	nextID             picker.PeerID
	evicting, speakers int
	// encryptedPeers counts the connected peers whose stream is RC4
	// (encrypt.go); peersSeen and encryptedSeen count every connection
	// this session, for the summary a finished download prints.
	encryptedPeers, peersSeen, encryptedSeen int
	// downRate and upRate sum the peers' rates as of the last tick, so
	// that Stats need not walk the peers.
	downRate, upRate float64

	// Address book (dial.go): the addresses known, whom to dial next, bans.
	addressBook *addrbook.Book

	// Choking (choke.go): every choke decision is the choker's.
	choker *choker.Choker

	// Download pipeline (download.go, diskerr.go): what to ask for, pieces
	// partly in, and what stopped the download.
	picker  *picker.Picker
	pickBuf []picker.Request
	partial map[int]*partialPiece
	scratch []piece.Hash
	diskErr *DiskError // set once, with failed closed
	// stopErr is what stopped the download (diskErr, or an
	// *InconsistentError), set once with failed closed.
	stopErr   error
	writeErrs repeatLog // with saveErrs, keeps a failing disk to a few log lines
	saveErrs  repeatLog
	// firstPiece is when this session verified its first piece, and
	// firstPieceCh is closed then (FirstPiece).
	firstPiece   time.Time
	firstPieceCh chan struct{}

	// Blame (blame.go): failed pieces awaiting leaf hashes, strikes
	// towards a ban, and blocks convicted through leaf hashes or, in a v1
	// torrent, by smart ban. banSeed keys blockSum.
	suspects     map[int]*suspect
	strikes      map[addrbook.Key]int
	provenBlocks int
	ban          smartBan
	banSeed      maphash.Seed
	// v1Passed counts, by piece, the downloads of a hybrid piece that
	// passed its SHA-1 and failed its merkle root (hybrid.go).
	v1Passed map[int]int

	// layers are the piece layers a hybrid still lacks, being fetched from
	// v2 peers (hybrid.go); their files' pieces are checked by SHA-1
	// alone until then.
	layers map[int]*layerFetch

	// padded is set for a v1 torrent with BEP 47 pad files, whose pieces
	// hold padding (download.go); spans is scratch for dataBytes.
	padded bool
	spans  []piece.Span

	// Serving (upload.go, serve.go, hashserve.go): faults in the data we
	// serve, and trees built on demand to answer hash requests.
	srv   serveState
	trees map[int]*piece.FileTree

	// selective is set when some pieces are not wanted (AddOptions): done
	// then means the selection is, which trackers must not hear as
	// 'completed'.
	selective bool

	// trackers are the torrent's tier announcers (announce.go), for
	// Trackers.
	trackers []*tierAnnouncer

	// Super-seeding (superseed.go): the BEP 16 policy while it lasts.
	ss *superseed.Policy
}

// Add starts serving a torrent whose data lives in st. have is the
// wire-order bitfield of pieces already verified (from st.Check).
func (c *Client) Add(meta *piece.MetaInfo, st *storage.Storage, have []byte) (*Torrent, error) {
	return c.AddWith(meta, st, have, AddOptions{})
}

// AddOptions says which pieces of a torrent to download, and in what order.
type AddOptions struct {
	// Priority gives each piece's priority (piece.Info.NumPieces long);
	// nil downloads every piece. Pieces of priority picker.Skip are not
	// requested, and the torrent is Done once every other piece is
	// verified. PiecePriorities maps file priorities to it.
	Priority []picker.Priority
	// Sequential starts pieces in index order, for streaming.
	Sequential bool
}

// AddWith is Add with a selection of pieces and an order (opts).
func (c *Client) AddWith(meta *piece.MetaInfo, st *storage.Storage, have []byte, opts AddOptions) (*Torrent, error) {
	info := meta.Info
	// The torrent's own copy: layers fetched while it runs go into it,
	// under t.mu, never into the caller's.
	own := *meta
	own.Layers = make([][]piece.Hash, len(info.Files))
	copy(own.Layers, meta.Layers)
	meta = &own
	layers := missingLayers(meta)
	for fi := range layers {
		own.Layers[fi] = nil // not of the file's length: none at all
	}
	if len(layers) > 0 && !info.HasV1() {
		// A v2 torrent has no other check: every piece of those files
		// would fail and get honest peers banned. The layers come first
		// (FetchInfo, FetchLayersFrom). A hybrid goes by SHA-1 meanwhile
		// (hybrid.go).
		return nil, fmt.Errorf("add %s: the piece layers of %d file(s) are missing", info.Name, len(layers))
	}
	hb, err := bitfield.FromBytes(have, info.NumPieces)
	if err != nil {
		return nil, fmt.Errorf("resume bitfield: %w", err)
	}
	pk, err := picker.New(picker.Config{
		Pieces:     info.NumPieces,
		BlocksIn:   info.BlocksIn,
		Have:       hb,
		Priority:   opts.Priority,
		Sequential: opts.Sequential,
	})
	if err != nil {
		return nil, err
	}
	t := &Torrent{
		c: c, meta: meta, info: info, st: st,
		log:      c.log.With("torrent", info.Name),
		hashes:   info.SwarmHashes(),
		done:     make(chan struct{}),
		lastSave: time.Now(),
		picker:   pk,
		peers:    map[*peer]struct{}{},
		byID:     map[picker.PeerID]*peer{},
		partial:  map[int]*partialPiece{},
		suspects: map[int]*suspect{},
		strikes:  map[addrbook.Key]int{},
		trees:    map[int]*piece.FileTree{},
		scratch:  make([]piece.Hash, info.PieceLength/piece.BlockSize),
		banSeed:  maphash.MakeSeed(),
		v1Passed: map[int]int{},
		layers:   layers,
	}
	t.selective = slices.Contains(opts.Priority, picker.Skip)
	if !t.speaksV2() && info.Format == piece.FormatHybrid {
		// Playing a v1-only client: it knows the v1 hash alone.
		t.hashes = [][20]byte{info.V1Hash}
	}
	if info.Format == piece.FormatV1 {
		for i := range info.Files {
			t.padded = t.padded || info.Files[i].Pad && info.Files[i].Length > 0
		}
	}
	if info.HasV2() {
		t.ih20 = info.Hash.Truncated()
	}
	t.v1 = info.V1Hash
	t.failed = make(chan struct{})
	t.choker = choker.New(choker.Config{Slots: c.cfg.UploadSlots, Seeding: func() bool { return t.seeding }})
	t.addressBook = c.newBook()
	t.firstPieceCh = make(chan struct{})
	t.writeErrs = repeatLog{level: slog.LevelError, msg: "writing block"}
	t.saveErrs = repeatLog{level: slog.LevelWarn, msg: "saving resume record"}
	for p := range info.NumPieces {
		if hb.Has(p) {
			t.verifiedBytes.Add(t.dataBytes(p))
		}
	}
	// What the data looks like now is what it is served as; a change from
	// here on is noticed (serve.go).
	st.Baseline()
	t.ctx, t.cancel = context.WithCancel(c.ctx)
	if pk.Complete() {
		t.seeding = true
		close(t.done)
		if c.cfg.SuperSeed {
			t.ss = t.newSuperSeed()
		}
	}
	c.mu.Lock()
	for _, ih := range t.hashes {
		if _, dup := c.torrents[ih]; dup {
			c.mu.Unlock()
			t.cancel()
			return nil, fmt.Errorf("torrent %s already added (info-hash %x)", info.ID(), ih)
		}
	}
	for _, ih := range t.hashes {
		c.torrents[ih] = t
	}
	c.mu.Unlock()
	return t, nil
}

// dataBytes is the file data in piece pc: its PieceSize less the padding
// a v1 piece may hold, so that BytesDone adds up to TotalLength. Called
// with t.mu held, or before the torrent runs.
func (t *Torrent) dataBytes(pc int) int64 {
	size := t.info.PieceSize(pc)
	if !t.padded {
		return size
	}
	t.spans = t.info.AppendSpans(t.spans[:0], pc, 0, size)
	for _, s := range t.spans {
		if s.File < 0 {
			size -= s.Len
		}
	}
	return size
}

// Done is closed once every piece is downloaded and verified.
func (t *Torrent) Done() <-chan struct{} { return t.done }

// FirstPiece is closed when this session verifies its first piece, and
// Stats().FirstPiece then says when; for a torrent complete when added it
// never is. Waiting on it spares a progress display polling Stats.
func (t *Torrent) FirstPiece() <-chan struct{} { return t.firstPieceCh }

// Close disconnects the torrent's peers and stops its goroutines, saving
// the resume record last if it changed since it was saved (a session of
// a thousand idle seeds stops without a thousand writes and syncs).
func (t *Torrent) Close() error {
	t.c.mu.Lock()
	for _, ih := range t.hashes {
		if t.c.torrents[ih] == t {
			delete(t.c.torrents, ih)
		}
	}
	t.c.mu.Unlock()
	t.cancel()
	t.mu.Lock()
	t.closing = true
	for p := range t.peers {
		p.close(nil)
	}
	t.writeErrs.flush(t.log, time.Now(), true)
	t.saveErrs.flush(t.log, time.Now(), true)
	t.mu.Unlock()
	t.wg.Wait()
	if !t.st.Unsaved() {
		return nil
	}
	return t.st.Save()
}

// addConn registers a connection whose handshake is complete.
// idn is the swarm it joined (identity.go).
func (t *Torrent) addConn(conn net.Conn, addr netip.AddrPort, reserved wire.Reserved, id [20]byte, idn ident, outgoing bool) {
	t.mu.Lock()
	reason := ""
	switch {
	case t.closing:
		reason = "torrent closing"
	case id == t.c.peerID:
		reason = "connected to ourselves"
		t.addressBook.Ourselves(addr, time.Now())
	}
	if t.addressBook.Banned(addr, id) {
		reason = "banned"
	}
	key, limited := ipKey(addr.Addr())
	sameHost := 0
	for p := range t.peers {
		if p.id == id && !p.evicted {
			reason = "already connected"
		}
		if k, _ := ipKey(p.addr.Addr()); limited && k == key && !p.evicted {
			sameHost++
		}
	}
	if reason == "" && sameHost >= maxPeersPerIP {
		reason = "too many connections from one host"
	}
	if reason == "" && t.liveCount() >= t.maxPeers() {
		// Full: the newcomer takes the slot of a peer that does nothing
		// with it, if there is one; real peers must not be locked out by
		// connections that merely stay open.
		if victim := t.evictionVictim(time.Now()); victim != nil {
			t.refused.add(EvictedForNewcomer)
			t.evict(victim, "replaced by a new peer")
		} else {
			reason = "peer limit"
		}
	}
	if reason != "" {
		t.refused.add(connRefusal(reason))
		if outgoing {
			t.addressBook.Refused(addr, time.Now())
		}
		t.mu.Unlock()
		t.log.Debug("refusing peer", "peer", addr, "reason", reason)
		conn.Close()
		return
	}
	p := newPeer(t, conn, addr, reserved, id, t.nextID)
	p.ident = idn
	p.outgoing = outgoing
	p.encrypted = encrypted(conn)
	t.peersSeen++
	if p.encrypted {
		t.encryptedPeers++
		t.encryptedSeen++
	}
	t.ssAddPeer(p)
	if _, primed := conn.(*primedConn); primed {
		// It has sent more than its handshake already (handleIncoming).
		p.spoke = true
		t.speakers++
	}
	t.nextID++
	t.peers[p] = struct{}{}
	t.byID[p.pid] = p
	t.choker.HandleConnect(p)
	if !outgoing {
		t.addressBook.Add(addr, SourceIncoming, time.Now())
	}
	t.addressBook.Connected(addr, time.Now())
	p.sendOpening()
	if p.v2 && len(t.layers) > 0 {
		t.askLayers(time.Now())
	}
	// Added under t.mu, after the closing check: Close cannot then see a
	// zero count while these goroutines are about to start.
	t.wg.Add(2)
	t.mu.Unlock()
	t.log.Debug("peer connected", "peer", addr, "outgoing", outgoing, "client", clientName(id), "info_hash", fmt.Sprintf("%x", idn.ih), "v2", idn.v2)
	go func() { defer t.wg.Done(); p.writeLoop() }()
	go func() { defer t.wg.Done(); p.readLoop() }()
}

// removePeer forgets a closed peer. Called from its reader goroutine.
func (t *Torrent) removePeer(p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.evicted {
		t.evicting--
	}
	if p.spoke {
		t.speakers--
	}
	if p.encrypted {
		t.encryptedPeers--
	}
	delete(t.peers, p)
	delete(t.byID, p.pid)
	if len(t.peers) == 0 {
		// No tick may come to sum them again (atRest).
		t.downRate, t.upRate = 0, 0
	}
	t.picker.HandleDisconnect(p.pid)
	t.recheckServed(p)
	t.ssDrop(p)
	t.choker.HandleDisconnect(p, time.Now())
	t.addressBook.Disconnected(p.addr, time.Now())
	// Requests it held are free again: others may pick them up now.
	for q := range t.peers {
		q.fill()
	}
	t.dialMore()
}

// startTick runs a tick of the torrent's housekeeping (tick) in a
// goroutine that ends with it, unless the torrent is closing. If the last
// tick is still under way, this one runs right after it, in the same
// goroutine, as a tick waited in a one-slot queue for the loop that once
// ran them: one tick may wait, later ones are dropped. The client's one
// ticker (Client.tickLoop) calls it for the torrents not at rest, so a
// session of a thousand idle seeds has no goroutine of theirs, not even a
// parked one: each took 8 KiB of stack.
func (t *Torrent) startTick(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closing:
		return
	case t.ticking:
		t.tickDue, t.nextTick = true, now
		return
	}
	t.ticking = true
	// Counted in the torrent's group, under t.mu after the closing check
	// (as addConn does): Close must not return while a tick is still
	// under way, with a resume save the caller's closing of the storage
	// would race.
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			t.tick(now)
			t.mu.Lock()
			if !t.tickDue || t.closing {
				t.ticking, t.tickDue = false, false
				t.mu.Unlock()
				return
			}
			now, t.tickDue = t.nextTick, false
			t.mu.Unlock()
		}
	}()
}

// tick is the torrent's housekeeping: rates, choking, timeouts, resume
// saves and redials.
func (t *Torrent) tick(now time.Time) {
	if t.ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	for p := range t.peers {
		p.tick(now)
		p.maybeSendPex(now)
		p.ssFill()
	}
	t.sumRates()
	t.dropUseless(now)
	t.choker.Tick(now)
	for piece, s := range t.suspects {
		if now.After(s.deadline) {
			t.log.Info("no leaf hashes for failed piece; blame unknown", "piece", piece)
			delete(t.suspects, piece)
			if s.asked.hashReqs > 0 {
				s.asked.hashReqs--
			}
		}
	}
	t.askLayers(now)
	t.dialMore()
	t.writeErrs.flush(t.log, now, false)
	t.saveErrs.flush(t.log, now, false)
	t.mu.Unlock()
	t.serveTick(now)
	if now.Sub(t.lastSave) >= saveInterval && t.st.Unsaved() {
		// A full disk fails every save: retried, logged once.
		if err := t.st.Save(); err != nil {
			t.mu.Lock()
			t.saveErrs.add(t.log, now, "saving resume record", "err", err)
			t.mu.Unlock()
		}
		t.lastSave = now
	}
}

// atRest reports whether a tick would find nothing to do: no peer, no
// address to dial, no check or fetch pending, no fault being watched or
// logged, and the resume record saved. Anything that changes that (a
// peer, an address, a write) makes the next tick count.
func (t *Torrent) atRest() bool {
	if t.st.Unsaved() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers) == 0 && t.addressBook.Len() == 0 && t.addressBook.NumDialing() == 0 &&
		len(t.suspects) == 0 && len(t.layers) == 0 && t.srv.files == nil &&
		!t.writeErrs.logged && t.writeErrs.n == 0 && !t.saveErrs.logged && t.saveErrs.n == 0
}
