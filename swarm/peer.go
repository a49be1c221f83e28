package swarm

import (
	"crypto/sha256"
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
)

// blockKey names a block by piece and byte offset.
type blockKey struct{ piece, begin uint32 }

// upload is a block a peer asked us for.
type upload struct {
	piece, begin, length uint32
}

// peer is one connection. Protocol state is guarded by the torrent's mutex;
// the send queue has its own, always taken after the torrent's.
type peer struct {
	t        *Torrent
	conn     net.Conn
	addr     netip.AddrPort
	id       [20]byte
	pid      picker.PeerID
	fast     bool
	extended bool
	outgoing bool
	joined   time.Time

	// Guarded by t.mu.
	amChoking, amInterested     bool
	peerChoking, peerInterested bool
	sawHaves                    bool // a have, bitfield or have-all arrived; no bitfield may follow
	requested                   map[blockKey]time.Time
	// cancelled holds requests we cancelled: BEP 3 lets the peer answer
	// them anyway, so such a block is a duplicate, not a violation.
	cancelled        map[blockKey]time.Time
	lastBlock        time.Time
	peerReqq         int
	listenPort       uint16
	downRate, upRate float64
	lastDown, lastUp int64
	hashReqs         int   // our hash requests outstanding at this peer
	metaID, pexID    uint8 // the peer's ids for ut_metadata and ut_pex; 0 = not spoken
	pexSent          map[netip.AddrPort]bool
	ss               *superPeer // while super-seeding
	unchokedAt       time.Time  // when we last unchoked it
	// unchokedUs records that it ever unchoked us; snubbedUs that it kept
	// us choked past the grace while it had what we wanted. A peer that
	// snubbed us and never unchoked us has shown it gives nothing: it is
	// owed only the optimistic slot for good, after we complete too.
	unchokedUs, snubbedUs bool
	nextPex               time.Time
	lastPexIn             time.Time

	downBytes, upBytes atomic.Int64
	lastRecv           atomic.Int64 // unix nanoseconds

	sendMu     sync.Mutex
	ctrl       []byte // encoded messages waiting to go out
	uploads    []upload
	upHead     int
	lastWrite  time.Time
	wake       chan struct{}
	closed     chan struct{}
	closeOnce  sync.Once
	closeCause error
	// served holds the last pieces uploaded to the peer (servedN counts
	// them): if it leaves right after, they are checked again.
	served  [4]uint32
	servedN uint
	// withheld holds pieces the peer refused while unchoking us, not asked
	// of it again until it announces them, unchokes us anew, or a while
	// passes (withhold.go). Guarded by t.mu; nil until one is.
	withheld map[uint32]time.Time
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

func (p *peer) unchoked() bool { return !p.amChoking }

// enqueue appends encoded messages to the send queue. Called with or
// without t.mu; takes sendMu.
func (p *peer) enqueue(appendFn func([]byte) []byte) {
	p.sendMu.Lock()
	p.ctrl = appendFn(p.ctrl)
	over := len(p.ctrl) > maxSendBacklog
	p.sendMu.Unlock()
	if over {
		p.close(errors.New("peer does not read: send queue overflow"))
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
	case p.ss != nil:
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
		if ap, err := netip.ParseAddrPort(p.t.c.ln.Addr().String()); err == nil {
			hs.Port = ap.Port()
		}
		if p.addr.IsValid() {
			hs.YourIP = p.addr.Addr()
		}
		if payload, err := hs.Marshal(); err == nil {
			p.enqueue(func(b []byte) []byte { return wire.AppendExtended(b, wire.ExtendedHandshakeID, payload) })
		}
	}
}

// setChoking changes our choke state toward the peer. Called with t.mu held.
func (p *peer) setChoking(choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	if choke {
		p.t.unchoked--
		p.sendMu.Lock()
		// BEP 6: queued requests of a fast peer are rejected explicitly; a
		// plain peer knows a choke discards them. The choke goes first, so
		// the rejects read as the choke's, not as pieces we cannot serve.
		p.ctrl = wire.AppendChoke(p.ctrl)
		for _, u := range p.uploads[p.upHead:] {
			if p.fast && u.length > 0 {
				p.ctrl = wire.AppendReject(p.ctrl, u.piece, u.begin, u.length)
			}
		}
		p.uploads, p.upHead = p.uploads[:0], 0
		p.sendMu.Unlock()
		p.signal()
		return
	}
	p.t.unchoked++
	p.unchokedAt = time.Now()
	p.enqueue(wire.AppendUnchoke)
	p.ssFill()
}

// freeRiding reports a peer that tit-for-tat owes only the optimistic
// slot: one that has pieces we want yet keeps us choked past the grace a
// new connection gets, or one that has taken a good deal from us and given
// almost nothing back. The second catches a free-rider that stays behind
// us, so never has what we want: it looks like a newcomer otherwise. A
// seeder wants nothing, so to it no peer is free-riding, save one that
// snubbed it and never unchoked it before it completed. Called with t.mu
// held; it may record the snub.
func (p *peer) freeRiding(now time.Time) bool {
	if p.snubbedUs && !p.unchokedUs {
		return true
	}
	if p.t.seeding {
		return false
	}
	if p.amInterested && p.peerChoking && now.Sub(p.joined) > reciprocityGrace {
		p.snubbedUs = true
		return true
	}
	// An honest peer behind us has nothing we want, so it has no occasion
	// to unchoke us, but if it ever did, it is no free-rider.
	taken, given := p.upBytes.Load(), p.downBytes.Load()
	return !p.unchokedUs && taken >= max(minFreeRideAllowance, p.t.info.PieceLength) && given < taken/8
}

// updateInterest tells the peer whether it has something we want.
// Called with t.mu held.
func (p *peer) updateInterest() {
	// A download stopped by a disk error wants nothing more.
	want := p.t.diskErr == nil && p.t.picker.Interesting(p.pid)
	if want == p.amInterested {
		return
	}
	p.amInterested = want
	if want {
		p.enqueue(wire.AppendInterested)
	} else {
		p.enqueue(wire.AppendNotInterested)
	}
}

// queueDepth is how many requests to keep outstanding at the peer.
func (p *peer) queueDepth() int {
	d := int(p.downRate * queueTime.Seconds() / wire.BlockSize)
	return min(p.peerReqq, max(minQueueDepth, min(d, maxQueueDepth)))
}

// fill tops up the request pipeline. Called with t.mu held.
func (p *peer) fill() {
	t := p.t
	p.updateInterest()
	if p.peerChoking || !p.amInterested {
		return
	}
	depth := p.queueDepth()
	free := depth - len(p.requested)
	// Refill in batches: one request per arriving block would cost the
	// writer a wake-up and a tiny write each.
	if free <= 0 || (len(p.requested) > 0 && free < max(4, depth/8)) {
		return
	}
	t.pickBuf = t.picker.PickFor(p.pid, t.pickBuf[:0], free)
	if len(t.pickBuf) == 0 {
		return
	}
	now := time.Now()
	p.sendMu.Lock()
	for _, r := range t.pickBuf {
		begin := uint32(r.Block * piece.BlockSize)
		length := uint32(min(int64(piece.BlockSize), t.info.PieceSize(r.Piece)-int64(begin)))
		p.requested[blockKey{uint32(r.Piece), begin}] = now
		p.ctrl = wire.AppendRequest(p.ctrl, uint32(r.Piece), begin, length)
	}
	p.sendMu.Unlock()
	p.signal()
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
		p.close(errors.New("idle"))
		return
	}
	p.restoreWithheld(now, false)
	if len(p.requested) > 0 && now.Sub(p.lastBlock) > requestTimeout {
		// Snubbed: give its requests to others, and cancel them here.
		p.sendMu.Lock()
		for k := range p.requested {
			p.t.picker.HandleTimeout(p.pid, int(k.piece), int(k.begin)/piece.BlockSize)
			length := uint32(min(int64(piece.BlockSize), p.t.info.PieceSize(int(k.piece))-int64(k.begin)))
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
	r := wire.NewReader(p.conn, wire.Limits{NumPieces: t.info.NumPieces})
	var lastDeadline time.Time
	var err error
	for {
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
	select {
	case <-p.closed:
		if p.closeCause != nil {
			err = p.closeCause
		} else {
			err = nil
		}
	default:
	}
	p.close(err)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		t.log.Info("dropping peer", "peer", p.addr, "client", clientName(p.id), "reason", err)
	} else {
		t.log.Debug("peer gone", "peer", p.addr)
	}
	t.removePeer(p)
}

// protocolError marks a peer's violation: logged, and the peer dropped.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("protocol violation: "+format, args...)
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
		t.maybeUnchoke(p)
	case wire.NotInterested:
		p.peerInterested = false
		if !p.amChoking {
			// A slot spent on a peer that asks for nothing is a slot
			// wasted: give it to one that wants it.
			p.setChoking(true)
			t.unchokeWaiting()
		}
	case wire.Have:
		if err := t.picker.HandleHave(p.pid, int(m.Index)); err != nil {
			return protocolError("%v", err)
		}
		delete(p.withheld, m.Index) // it says it can serve the piece again
		p.sawHaves = true
		t.ssSaw(int(m.Index))
		p.ssFill()
		p.fill()
	case wire.Bitfield:
		if p.sawHaves {
			return protocolError("bitfield after the first message")
		}
		bf, err := bitfield.FromBytes(m.Payload, t.info.NumPieces)
		if err != nil {
			return protocolError("bitfield: %v", err)
		}
		if err := t.picker.HandleBitfield(p.pid, bf); err != nil {
			return protocolError("%v", err)
		}
		p.sawHaves = true
		for x := bf.NextSet(0); x >= 0 && t.ss != nil; x = bf.NextSet(x + 1) {
			t.ssSaw(x)
		}
		p.ssFill()
		p.fill()
	case wire.HaveAll, wire.HaveNone:
		if !p.fast {
			return protocolError("%v without the fast extension", m.ID)
		}
		if p.sawHaves {
			return protocolError("%v after the first message", m.ID)
		}
		p.sawHaves = true
		if m.ID == wire.HaveAll {
			t.picker.HandleHaveAll(p.pid)
			t.ssSawAll()
		} else {
			t.picker.HandleHaveNone(p.pid)
		}
		p.ssFill()
		p.fill()
	case wire.Request:
		return p.handleRequest(m)
	case wire.Cancel:
		p.cancelUpload(m.Index, m.Begin, m.Length)
	case wire.Reject:
		if !p.fast {
			return protocolError("reject without the fast extension")
		}
		k := blockKey{m.Index, m.Begin}
		if _, ok := p.requested[k]; ok {
			delete(p.requested, k)
			t.picker.HandleReject(p.pid, int(m.Index), int(m.Begin)/piece.BlockSize)
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
				return protocolError("extension handshake: %v", err)
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
		}
	case wire.Port, wire.Suggest, wire.AllowedFast:
		// Hints we may ignore.
	}
	return nil
}

// handleRequest queues an upload after checking it against the torrent.
// Called with t.mu held.
func (p *peer) handleRequest(m *wire.Message) error {
	t := p.t
	if int(m.Index) >= t.info.NumPieces {
		return protocolError("request for piece %d of %d", m.Index, t.info.NumPieces)
	}
	size := t.wireSize(int(m.Index))
	if m.Length == 0 || m.Length > wire.MaxRequestLength || int64(m.Begin)+int64(m.Length) > size {
		return protocolError("request %d+%d outside piece %d of %d bytes", m.Begin, m.Length, m.Index, size)
	}
	reject := func() { p.enqueue(func(b []byte) []byte { return wire.AppendReject(b, m.Index, m.Begin, m.Length) }) }
	if !t.picker.Have(int(m.Index)) || p.ss != nil && !p.ss.revealed.Has(int(m.Index)) {
		if p.fast {
			reject()
			return nil
		}
		return protocolError("request for piece %d we do not have", m.Index)
	}
	if !t.servable(int(m.Index)) {
		t.refuse(p, m) // announced, but our disk failed us: not its fault
		return nil
	}
	if p.amChoking {
		if p.fast {
			reject()
		}
		return nil // a plain peer may race our choke; drop silently
	}
	p.sendMu.Lock()
	queued := len(p.uploads) - p.upHead
	if queued >= DefaultRequestQueue {
		p.sendMu.Unlock()
		return protocolError("more than %d requests queued", DefaultRequestQueue)
	}
	p.uploads = append(p.uploads, upload{m.Index, m.Begin, m.Length})
	p.sendMu.Unlock()
	p.signal()
	return nil
}

// wireSize is how long a piece may be on the wire. BEP 52 lets the last
// piece of a file end early, but libtorrent addresses every piece as if
// each file, the last one too, were followed by zero padding up to the
// piece boundary, and asks for whole blocks across that gap; we serve the
// gap as zeros.
func (t *Torrent) wireSize(int) int64 { return t.info.PieceLength }

// cancelUpload drops a queued upload; a fast peer gets a reject instead,
// as BEP 6 asks every request to be answered.
func (p *peer) cancelUpload(index, begin, length uint32) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	for i := p.upHead; i < len(p.uploads); i++ {
		u := &p.uploads[i]
		if u.piece == index && u.begin == begin && u.length == length {
			u.length = 0 // skipped by the writer
			if p.fast {
				p.ctrl = wire.AppendReject(p.ctrl, index, begin, length)
			}
			return
		}
	}
}

// handlePiece is the hot path: hash the block outside any lock, claim it
// in the picker, write it to disk, and verify the piece when its last
// block lands. The data is the reader's buffer, valid until the next read.
func (p *peer) handlePiece(m *wire.Message) error {
	t := p.t
	n := len(m.Payload)
	if int(m.Index) >= t.info.NumPieces {
		return protocolError("piece %d of %d", m.Index, t.info.NumPieces)
	}
	size := t.info.PieceSize(int(m.Index))
	want := min(int64(piece.BlockSize), size-int64(m.Begin))
	if m.Begin%piece.BlockSize != 0 || int64(m.Begin) >= size || int64(n) != want {
		return protocolError("block %d+%d does not fit piece %d", m.Begin, n, m.Index)
	}
	if lim := t.c.downLimit; lim != nil {
		if err := lim.WaitN(t.ctx, n); err != nil {
			return err
		}
	}
	p.downBytes.Add(int64(n))
	t.downloaded.Add(int64(n))
	leaf := piece.Hash(sha256.Sum256(m.Payload))
	pc, blk := int(m.Index), int(m.Begin)/piece.BlockSize

	t.mu.Lock()
	k := blockKey{m.Index, m.Begin}
	if _, ok := p.requested[k]; ok {
		delete(p.requested, k)
	} else if _, ok := p.cancelled[k]; ok {
		// A late answer to a request we gave up on: still good data if the
		// block is still missing, which HandleBlock decides.
		delete(p.cancelled, k)
	} else {
		t.mu.Unlock()
		t.wasted.Add(int64(n))
		// BEP 52: a block nobody asked for closes the connection.
		return protocolError("unrequested block %d+%d of piece %d", m.Begin, n, m.Index)
	}
	p.lastBlock = time.Now()
	if t.diskErr != nil {
		// The download stopped on a disk error: blocks still in flight
		// have nowhere to go.
		t.wasted.Add(int64(n))
		t.mu.Unlock()
		return nil
	}
	cancels, ok := t.picker.HandleBlock(p.pid, pc, blk)
	if !ok {
		t.wasted.Add(int64(n))
		p.fill()
		t.mu.Unlock()
		return nil
	}
	for _, id := range cancels {
		if q := t.byID[id]; q != nil && q != p {
			if _, had := q.requested[k]; had {
				delete(q.requested, k)
				q.cancelled[k] = p.lastBlock
				q.enqueue(func(b []byte) []byte { return wire.AppendCancel(b, m.Index, m.Begin, uint32(n)) })
			}
		}
	}
	pp := t.partial[pc]
	if pp == nil {
		nb := int((size + piece.BlockSize - 1) / piece.BlockSize)
		pp = &partialPiece{leaves: make([]piece.Hash, nb), senders: make([]*peer, nb)}
		t.partial[pc] = pp
	}
	pp.leaves[blk] = leaf
	pp.senders[blk] = p
	pp.pending++
	p.fill()
	t.mu.Unlock()

	// Disk writes happen on the torrent's disk goroutines, so this reader
	// goes back to the socket at once: reading and hashing overlap with
	// writing. The block is copied out of the reader's buffer into a pooled
	// one; the queue is bounded, so a slow disk slows the peer down (TCP
	// backpressure) instead of filling memory.
	buf := blockPool.Get().(*[piece.BlockSize]byte)
	copy(buf[:], m.Payload)
	select {
	case t.diskq <- diskJob{pc: pc, begin: int(m.Begin), n: n, buf: buf, pp: pp}:
	case <-t.ctx.Done():
		blockPool.Put(buf)
		t.wasted.Add(int64(n))
		return t.ctx.Err()
	}
	return nil
}

// blockPool recycles block buffers between readers and disk writers.
var blockPool = sync.Pool{New: func() any { return new([piece.BlockSize]byte) }}

// diskJob is an accepted block on its way to disk.
type diskJob struct {
	pc, begin, n int
	buf          *[piece.BlockSize]byte
	pp           *partialPiece
}

// diskLoop writes accepted blocks and verifies pieces once their last block
// is on disk. Once a disk error stopped the download, what is still queued
// is dropped unwritten.
func (t *Torrent) diskLoop() {
	for {
		select {
		case <-t.ctx.Done():
			return
		case j := <-t.diskq:
			var werr error
			if !t.stopped() {
				werr = t.st.WriteBlock(j.pc, j.begin, j.buf[:j.n])
			}
			blockPool.Put(j.buf)
			t.mu.Lock()
			stopped := t.blockWritten(j, werr)
			t.mu.Unlock()
			if stopped {
				// Keep what was verified: the record may be all the next
				// run has to go on.
				if err := t.st.Save(); err != nil {
					t.mu.Lock()
					t.saveErrs.add(t.log, time.Now(), "saving resume record", "err", err)
					t.mu.Unlock()
				}
			}
		}
	}
}

// blockWritten accounts for a block on disk, and reports whether its write
// error just stopped the download. Called with t.mu held.
func (t *Torrent) blockWritten(j diskJob, werr error) (stopped bool) {
	pp := j.pp
	pp.pending--
	if werr != nil || t.diskErr != nil {
		t.wasted.Add(int64(j.n))
	}
	switch {
	case t.diskErr != nil:
		// Stopped already: dropped, and its piece was given up.
		if werr != nil {
			t.writeErrs.add(t.log, time.Now(), "writing block", "piece", j.pc, "err", werr)
		}
		return false
	case werr != nil && t.ctx.Err() != nil:
		return false // closing: the storage may be gone already
	case werr != nil:
		// Our disk failed, not the peer, and it will fail the next block
		// too: the torrent stops downloading rather than fetch and drop
		// blocks forever.
		t.stopDownload(j.pc, werr)
		t.writeErrs.add(t.log, time.Now(), "download stopped by a disk error; still serving the verified pieces",
			"file", t.diskErr.Path, "piece", j.pc, "err", werr)
		return true
	}
	pp.written++
	pp.writtenBytes += int64(j.n)
	if pp.written == len(pp.leaves) && pp.pending == 0 {
		t.pieceDone(j.pc, pp)
	}
	return false
}

// pieceDone checks a fully written piece against its hash. Called with
// t.mu held.
func (t *Torrent) pieceDone(pc int, pp *partialPiece) {
	delete(t.partial, pc)
	fi := t.info.FileOfPiece(pc)
	width := t.info.PieceWidth(fi)
	want, known := t.meta.ExpectedRoot(pc)
	// Hash a copy in the torrent's scratch: the leaves themselves are kept
	// for blame should the piece fail.
	scratch := t.scratch[:len(pp.leaves)]
	copy(scratch, pp.leaves)
	got := piece.RootOfLeaves(scratch, width)
	if known && got == want {
		if t.firstPiece.IsZero() {
			t.firstPiece = time.Now()
		}
		t.picker.HandlePieceVerified(pc)
		t.st.MarkVerified(pc)
		t.verifiedBytes.Add(t.info.PieceSize(pc))
		t.cancelPiece(pc)
		for q := range t.peers {
			q.enqueue(func(b []byte) []byte { return wire.AppendHave(b, uint32(pc)) })
			q.updateInterest()
		}
		if t.picker.Complete() && !t.seeding {
			t.seeding = true
			close(t.done)
			t.log.Info("download complete")
			for q := range t.peers {
				q.updateInterest()
			}
		}
		return
	}
	t.wasted.Add(t.info.PieceSize(pc))
	t.picker.HandlePieceFailed(pc)
	t.st.MarkMissing(pc)
	t.blame(pc, pp.leaves, pp.senders)
	for q := range t.peers {
		q.fill()
	}
}

// cancelPiece cancels requests still out for a verified piece (endgame).
func (t *Torrent) cancelPiece(pc int) {
	size := t.info.PieceSize(pc)
	for q := range t.peers {
		for begin := int64(0); begin < size; begin += piece.BlockSize {
			k := blockKey{uint32(pc), uint32(begin)}
			if _, ok := q.requested[k]; ok {
				delete(q.requested, k)
				q.cancelled[k] = time.Now()
				length := uint32(min(piece.BlockSize, size-begin))
				q.enqueue(func(b []byte) []byte { return wire.AppendCancel(b, k.piece, k.begin, length) })
			}
		}
	}
}

// clientName renders an Azureus-style peer id ("-LT2080-…") for logs.
func clientName(id [20]byte) string {
	if id[0] == '-' && id[7] == '-' {
		return string(id[1:7])
	}
	return "unknown"
}
