package swarm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/picker"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Limits on what one peer may make us hold.
const (
	maxSendBacklog = 4 << 20 // queued control bytes before we give up on a peer that does not read
	flushAt        = 256 << 10
	minQueueDepth  = 16
	maxQueueDepth  = 2000
	// queueTime is how long the request pipeline should keep a peer busy:
	// the queue depth is its rate times this, so a fast peer on a fat link
	// always has work in flight while a slow one is not hoarding blocks.
	queueTime     = 2 * time.Second
	deadlineEvery = 10 * time.Second
	// cancelledMemory is how long a cancelled request may still be
	// answered: a slow peer may have the block in its send buffer.
	cancelledMemory = 3 * time.Minute
	writeTimeout    = 60 * time.Second
	// readAhead is how far a fast peer's read buffer may grow
	// (wire.Limits.MaxReadAhead), and so how long a run of its blocks is
	// written at once (flushRun). On a 1 GiB loopback download 256 KiB
	// cost as little CPU as 1 MiB or less, as the blocks are still in
	// the cache when they are copied to the page cache; at 64 KiB the
	// reads and writes were 4 to 16 times as many. Only a peer that keeps
	// the buffer full gets it, and keeps it only while it does (the
	// buffer shrinks back after a run of short reads): 50 such peers
	// hold 12.5 MiB.
	readAhead = 256 << 10
)

// peer is one connection. Protocol state is guarded by the torrent's mutex;
// the send queue has its own, always taken after the torrent's.
type peer struct {
	// The connection, fixed at the handshake.
	t        *Torrent
	conn     net.Conn
	addr     netip.AddrPort
	id       [20]byte
	pid      picker.PeerID
	fast     bool
	extended bool
	outgoing bool
	// encrypted says the stream is RC4 after an MSE handshake.
	encrypted bool
	joined    time.Time
	// ident is the hash the connection speaks under, and whether it is
	// a v2 one (identity.go).
	ident

	// Counters read without a lock.
	downBytes, upBytes atomic.Int64
	lastRecv           atomic.Int64 // unix nanoseconds

	// Everything from here to sendMu is guarded by t.mu.

	// Protocol state, both ways.
	amChoking, amInterested     bool
	peerChoking, peerInterested bool
	sawHaves                    bool // a have, bitfield or have-all arrived; no bitfield may follow
	sawAll                      bool // a have-all arrived: another adds nothing
	peerReqq                    int
	listenPort                  uint16
	metaID, pexID               uint8 // the peer's ids for ut_metadata and ut_pex; 0 = not spoken

	// Rates, for the choker and the request pipeline.
	downRate, upRate float64
	lastDown, lastUp int64

	// Download side (download.go, withhold.go, blame.go): our requests out
	// at the peer. cancelled holds requests we cancelled: BEP 3 lets the
	// peer answer them anyway, so such a block is a duplicate, not a
	// violation. withheld holds pieces the peer refused while unchoking
	// us, not asked of it again until it announces them, unchokes us anew,
	// or a while passes; nil until one is.
	requested map[blockKey]time.Time
	cancelled map[blockKey]time.Time
	lastBlock time.Time
	withheld  map[uint32]time.Time
	hashReqs  int  // our hash requests outstanding at this peer
	noLayers  bool // it refused us a piece layer: not asked for one again
	// spans is the reader's scratch for finding padding in a block
	// (padData); run holds the blocks it accepted but has not written yet
	// (flushRun). Touched by the reader goroutine only.
	spans []piece.Span
	run   blockRun

	// Choking (choke.go): unchokedUs records that it ever unchoked us;
	// snubbedUs that it kept us choked past the grace while it had what we
	// wanted. A peer that snubbed us and never unchoked us has shown it
	// gives nothing: it is owed only the optimistic slot for good, after
	// we complete too. fastOut holds the pieces we allowed it while we
	// choke it (fast.go).
	unchokedUs, snubbedUs bool
	fastOut               []uint32

	// PEX (ext.go).
	pexSent   map[netip.AddrPort]bool
	nextPex   time.Time
	lastPexIn time.Time

	// Slots under pressure (limits.go): spoke records any message but a
	// keep-alive; lastUseful (unix nanoseconds) when the peer last said
	// what it has, wanted something or asked for something. They decide
	// who gives up a slot when the torrent is full (evictRank); evicted
	// marks one that already has.
	spoke      bool
	lastUseful int64
	evicted    bool

	// The writer's side (send.go, upload.go), guarded by sendMu, always
	// taken after t.mu. served holds the last pieces uploaded to the peer
	// (servedN counts them): if it leaves right after, they are checked
	// again.
	sendMu    sync.Mutex
	ctrl      []byte // encoded messages waiting to go out
	uploads   []upload
	upHead    int
	runBufs   [][]byte // the writer's scratch for a run's reads (appendRun)
	lastWrite time.Time
	served    [4]uint32
	servedN   uint

	// Ending: wake rouses the writer; closed is closed once, with its
	// cause, by close.
	wake       chan struct{}
	closed     chan struct{}
	closeOnce  sync.Once
	closeCause error
}

func newPeer(t *Torrent, conn net.Conn, addr netip.AddrPort, reserved wire.Reserved, id [20]byte, pid picker.PeerID) *peer {
	now := time.Now()
	p := &peer{
		t: t, conn: conn, addr: addr, id: id, pid: pid,
		fast: reserved.Fast(), extended: reserved.Extended(), joined: now,
		amChoking: true, peerChoking: true,
		requested: map[blockKey]time.Time{},
		cancelled: map[blockKey]time.Time{},
		lastBlock: now,
		peerReqq:  250,
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	p.lastRecv.Store(now.UnixNano())
	p.lastUseful = now.UnixNano()
	return p
}

// close ends the connection once, recording why; nil means an orderly
// local close.
func (p *peer) close(cause error) {
	p.closeOnce.Do(func() {
		p.closeCause = cause
		close(p.closed)
		p.conn.Close()
	})
}

// enqueue appends encoded messages to the send queue. Called with or
// without t.mu; takes sendMu.
func (p *peer) enqueue(appendFn func([]byte) []byte) {
	p.sendMu.Lock()
	p.ctrl = appendFn(p.ctrl)
	over := len(p.ctrl) > maxSendBacklog
	p.sendMu.Unlock()
	if over {
		p.close(errSendOverflow)
		return
	}
	p.signal()
}

func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sendOpening sends what must come first: our pieces, then the extension
// handshake. Called with t.mu held.
func (p *peer) sendOpening() {
	have := p.t.servableHave()
	switch {
	case p.t.ss != nil:
		// Super-seeding: we pose as empty and reveal pieces one by one.
		if p.fast {
			p.enqueue(wire.AppendHaveNone)
		}
	case p.fast && have.All():
		p.enqueue(wire.AppendHaveAll)
	case p.fast && have.Count() == 0:
		p.enqueue(wire.AppendHaveNone)
	case have.Count() > 0:
		p.enqueue(func(b []byte) []byte { return wire.AppendBitfield(b, have.Bytes()) })
	}
	if p.extended {
		hs := wire.ExtendedHandshake{
			M:            map[string]uint8{wire.ExtMetadata: extMetadataID},
			V:            p.t.c.cfg.Version,
			Reqq:         DefaultRequestQueue,
			MetadataSize: int64(len(p.t.info.Bytes)),
		}
		if !p.t.info.Private {
			hs.M[wire.ExtPex] = extPexID
		}
		hs.Port = p.t.c.port()
		if p.addr.IsValid() {
			hs.YourIP = p.addr.Addr()
		}
		if payload, err := hs.Marshal(); err == nil {
			p.enqueue(func(b []byte) []byte { return wire.AppendExtended(b, wire.ExtendedHandshakeID, payload) })
		}
	}
}

// tick updates rates and enforces timeouts. Called with t.mu held, once a
// second.
func (p *peer) tick(now time.Time) {
	down, up := p.downBytes.Load(), p.upBytes.Load()
	// A short moving average: responsive enough for the pipeline depth,
	// smooth enough for choking.
	p.downRate = 0.6*p.downRate + 0.4*float64(down-p.lastDown)
	p.upRate = 0.6*p.upRate + 0.4*float64(up-p.lastUp)
	p.lastDown, p.lastUp = down, up
	if now.Sub(time.Unix(0, p.lastRecv.Load())) > idleTimeout {
		p.close(errIdle)
		return
	}
	p.restoreWithheld(now, false)
	if len(p.requested) > 0 && now.Sub(p.lastBlock) > requestTimeout {
		// Snubbed: give its requests to others, and cancel them here.
		p.sendMu.Lock()
		for k := range p.requested {
			blk := int(k.begin) / piece.BlockSize
			p.t.picker.HandleTimeout(p.pid, int(k.piece), blk)
			length := uint32(p.t.info.BlockLen(int(k.piece), blk))
			p.ctrl = wire.AppendCancel(p.ctrl, k.piece, k.begin, length)
			p.cancelled[k] = now
		}
		p.sendMu.Unlock()
		clear(p.requested)
		p.lastBlock = now
		p.signal()
		for q := range p.t.peers {
			q.fill()
		}
	}
	for k, at := range p.cancelled {
		if now.Sub(at) > cancelledMemory {
			delete(p.cancelled, k)
		}
	}
	p.sendMu.Lock()
	idle := now.Sub(p.lastWrite) > keepAliveEvery && len(p.ctrl) == 0
	p.sendMu.Unlock()
	if idle {
		p.enqueue(wire.AppendKeepAlive)
	}
}

// readLoop reads and handles messages until the connection fails or a
// protocol violation drops the peer; then it unregisters the peer.
func (p *peer) readLoop() {
	t := p.t
	r := wire.NewReader(p.conn, wire.Limits{NumPieces: t.info.NumPieces, MaxReadAhead: readAhead})
	var lastDeadline time.Time
	var err error
	for {
		if !r.Ready() {
			// The next read may move the buffer the run's blocks lie
			// in, or wait for the peer: write them now.
			p.flushRun()
		}
		now := time.Now()
		if now.Sub(lastDeadline) > deadlineEvery {
			p.conn.SetReadDeadline(now.Add(idleTimeout))
			lastDeadline = now
		}
		var m wire.Message
		m, err = r.ReadMessage()
		if errors.Is(err, wire.ErrUnknownID) {
			continue // an extension we do not speak; its body was skipped
		}
		if err != nil {
			break
		}
		p.lastRecv.Store(now.UnixNano())
		if err = p.handle(&m); err != nil {
			break
		}
	}
	// Blocks accepted before the end are good data: written, not lost
	// with their pieces' accounting pending.
	p.flushRun()
	select {
	case <-p.closed:
		if p.closeCause != nil {
			err = p.closeCause
		} else {
			err = nil
		}
	default:
	}
	t.refused.dropped(err)
	p.close(err)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		t.log.Info("dropping peer", "peer", p.addr, "client", clientName(p.id), "reason", err)
	} else {
		t.log.Debug("peer gone", "peer", p.addr)
	}
	t.removePeer(p)
}

// protocolError marks a peer's violation of the given kind: logged,
// counted, and the peer dropped.
func protocolError(kind Refusal, format string, args ...any) error {
	return &violation{kind, fmt.Errorf("protocol violation: "+format, args...)}
}

// handle processes one message. Errors drop the peer.
func (p *peer) handle(m *wire.Message) error {
	if m.KeepAlive {
		return nil
	}
	t := p.t
	switch m.ID {
	case wire.Piece:
		return p.handlePiece(m)
	case wire.HashRequest:
		// Answering may read a whole piece from disk: not under t.mu.
		return p.handleHashRequest(m)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !p.spoke {
		p.spoke = true
		t.speakers++
	}
	switch m.ID {
	case wire.Interested, wire.Request, wire.Have, wire.Bitfield, wire.HaveAll:
		p.lastUseful = p.lastRecv.Load()
	case wire.Extended:
		if m.ExtendedID == extMetadataID {
			p.lastUseful = p.lastRecv.Load() // a magnet download's first step
		}
	}
	switch m.ID {
	case wire.Choke:
		p.peerChoking = true
		if p.fast {
			// BEP 6: our requests stand until served or rejected; the
			// request timeout still catches a peer that does neither.
			t.picker.HandleFastChoke(p.pid)
			return nil
		}
		t.picker.HandleChoke(p.pid)
		// A plain peer discards our requests (BEP 3), but may have some
		// blocks in flight already: they move to cancelled, not away.
		now := time.Now()
		for k := range p.requested {
			p.cancelled[k] = now
		}
		clear(p.requested)
		for q := range t.peers {
			q.fill()
		}
	case wire.Unchoke:
		p.peerChoking = false
		p.unchokedUs = true
		t.picker.HandleUnchoke(p.pid)
		p.restoreWithheld(time.Time{}, true)
		p.fill()
	case wire.Interested:
		p.peerInterested = true
		t.choker.HandleInterested(p, time.Now())
	case wire.NotInterested:
		p.peerInterested = false
		t.choker.HandleNotInterested(p, time.Now())
	case wire.Have:
		if err := t.picker.HandleHave(p.pid, int(m.Index)); err != nil {
			return protocolError(ViolationHave, "%v", err)
		}
		delete(p.withheld, m.Index) // it says it can serve the piece again
		p.sawHaves = true
		t.ssSaw(int(m.Index))
		p.ssFill()
		p.fill()
	case wire.Bitfield:
		bf, err := bitfield.FromBytes(m.Payload, t.info.NumPieces)
		if err != nil {
			return protocolError(ViolationBitfield, "bitfield: %v", err)
		}
		// A later bitfield adds to what the peer has, as libtorrent and
		// Transmission take it: aria2 1.36 sends its haves so after a
		// have-none. Recording a piece twice is a no-op.
		if err := t.picker.HandleBitfield(p.pid, bf); err != nil {
			return protocolError(ViolationBitfield, "%v", err)
		}
		t.ssSawBitfield(bf)
		if !p.sawHaves {
			p.offerFast(bf.Count())
		}
		p.sawHaves = true
		p.ssFill()
		p.fill()
	case wire.HaveAll, wire.HaveNone:
		if !p.fast {
			return protocolError(ViolationNoFast, "%v without the fast extension", m.ID)
		}
		if p.sawHaves && m.ID == wire.HaveNone {
			return protocolError(ViolationLateBitfield, "%v after the first message", m.ID)
		}
		if m.ID == wire.HaveAll && p.sawAll {
			// Nothing to add, and taking it is a pass over every piece
			// under t.mu: five bytes a peer could repeat without end.
			return nil
		}
		p.sawHaves = true
		if m.ID == wire.HaveAll {
			p.sawAll = true
			t.picker.HandleHaveAll(p.pid)
			t.ssSawAll()
		} else {
			t.picker.HandleHaveNone(p.pid)
			p.offerFast(0)
		}
		p.ssFill()
		p.fill()
	case wire.Request:
		return p.handleRequest(m)
	case wire.Cancel:
		p.cancelUpload(m.Index, m.Begin, m.Length)
	case wire.Reject:
		if !p.fast {
			return protocolError(ViolationNoFast, "reject without the fast extension")
		}
		k := blockKey{m.Index, m.Begin}
		if _, ok := p.cancelled[k]; ok {
			// BEP 6 answers our cancel with this reject. We may have asked
			// for the block again since (its piece failed its hash), and a
			// peer answers requests for a block in the order they came: the
			// reject is the cancel's, says nothing of the new request, which
			// stands, and does not mean the peer cannot serve the piece.
			delete(p.cancelled, k)
			return nil
		}
		if _, ok := p.requested[k]; ok {
			delete(p.requested, k)
			t.picker.HandleReject(p.pid, int(m.Index), int(m.Begin)/piece.BlockSize)
			if p.peerChoking {
				// Allowed fast or not, it will not serve the piece while
				// it chokes us: asking again would only be refused again.
				t.picker.RevokeAllowedFast(p.pid, int(m.Index))
			}
			p.withhold(m.Index)
			// The block is free again, but not for this peer: it chokes
			// us, or the piece is withheld from it now. Another peer may
			// sit idle, all it has asked of elsewhere, with nothing else
			// to wake it: offer the block to every peer, as a timeout does.
			for q := range t.peers {
				q.fill()
			}
		}
	case wire.Extended:
		if m.ExtendedID == wire.ExtendedHandshakeID {
			hs, err := wire.ParseExtendedHandshake(m.Payload)
			if err != nil {
				return protocolError(ViolationExtension, "extension handshake: %v", err)
			}
			if hs.Reqq > 0 {
				p.peerReqq = min(hs.Reqq, maxQueueDepth)
			}
			if hs.Port != 0 {
				p.listenPort = hs.Port
			}
			p.metaID = hs.M[wire.ExtMetadata]
			p.pexID = hs.M[wire.ExtPex]
			p.nextPex = time.Now().Add(firstPexDelay)
			return nil
		}
		return p.handleExtension(m.ExtendedID, m.Payload)
	case wire.Hashes:
		return p.handleHashes(m)
	case wire.HashReject:
		if p.hashReqs > 0 {
			p.hashReqs--
			p.layerRejected(m)
			p.leavesRejected(m)
		}
	case wire.AllowedFast:
		if !p.fast {
			return nil // BEP 6 was not agreed: a hint we may ignore
		}
		if err := t.picker.HandleAllowedFast(p.pid, int(m.Index)); err != nil {
			return protocolError(ViolationHave, "allowed fast: %v", err)
		}
		if p.peerChoking {
			p.fill()
		}
	case wire.Port, wire.Suggest:
		// Hints we may ignore.
	}
	return nil
}

// clientName renders an Azureus-style peer id ("-LT2080-…") for logs.
func clientName(id [20]byte) string {
	if id[0] == '-' && id[7] == '-' {
		return string(id[1:7])
	}
	return "unknown"
}
