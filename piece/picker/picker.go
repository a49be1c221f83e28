// Package picker decides which 16 KiB blocks to request from which peer.
//
// The shape follows cenkalti/rain's piecepicker: the swarm feeds protocol
// events in (HandleHave, HandleChoke, HandleBlock, ...) and asks PickFor for
// requests to send. The cost model does not: rain sorts every piece on each
// pick, which is O(n log n) per request batch on a 100k-piece torrent. Here
// the pieces we still want are kept in a single permutation array grouped
// into availability buckets (as libtorrent's piece_picker does), so a have
// or a disconnect moves a piece between adjacent buckets with one swap, and
// rarest-first is a scan of the lowest non-empty buckets from a random
// offset (or, when that scan would be long because the peer has few useful
// pieces, a walk of the peer's bitfield). Nothing on the event or pick paths
// sorts, and in steady state nothing allocates.
//
// Policy, in order, for each PickFor:
//
//  1. Blocks of pieces already started that the peer has, so partial pieces
//     are completed (and verified, and shareable) before new ones start.
//  2. A new piece the peer has, rarest first, with a random tie-break among
//     equally rare pieces so that peers of a swarm do not converge on the
//     same piece.
//  3. Endgame: once every block still missing that some connected peer can
//     supply is requested, outstanding blocks are requested again from other
//     peers, at most Config.EndgameRequests times each; HandleBlock returns
//     the peers to send cancels to when the first copy arrives.
//
// A block is never outstanding twice at the same peer.
//
// Selective download (Config.Priority): a piece of priority Skip is never
// requested, does not make a peer interesting and does not count as
// missing, so Complete means every wanted piece is verified. Among new
// pieces, higher priorities start first; with Config.Sequential, new pieces
// start in index order (for streaming) rather than rarest first. Both walk
// the peer's bitfield per piece started, never per block.
//
// A peer that chokes us but named allowed-fast pieces (BEP 6,
// HandleAllowedFast) gets requests for those pieces only, by the same
// policy restricted to them.
package picker

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// PeerID identifies a connection. The swarm assigns them; the picker only
// compares them. An ID may be reused after HandleDisconnect.
type PeerID int

// Request names one block: block b of piece p covers bytes
// [b*16KiB, min((b+1)*16KiB, pieceLen)) of the piece. The picker works in
// block indices only; the caller turns them into offsets and lengths because
// only it knows each piece's byte length.
type Request struct {
	Piece int
	Block int
}

// MaxEndgameRequests bounds Config.EndgameRequests: every block keeps its
// requesters in a fixed array so that endgame bookkeeping never allocates.
const MaxEndgameRequests = 4

// DefaultEndgameRequests is used when Config.EndgameRequests is zero: two
// copies of a block hide one slow peer without doubling the swarm's upload.
const DefaultEndgameRequests = 2

// MaxAllowedFast bounds the allowed-fast pieces kept per peer. BEP 6
// suggests sets of 10; a peer naming more gains nothing past this, and
// cannot make us hold more.
const MaxAllowedFast = 32

// Config describes the torrent to a new Picker.
type Config struct {
	// Pieces is the number of pieces in the torrent.
	Pieces int

	// BlocksIn returns the number of 16 KiB blocks of a piece, at least 1.
	// It is a function rather than a constant because BEP 52 aligns pieces
	// to files: the last piece of every file may be shorter than the piece
	// length, so short pieces occur throughout a multi-file v2 torrent, not
	// only at the end. It is called once per piece, by New only.
	BlocksIn func(piece int) int

	// Have lists the pieces already verified on disk (resume). Nil means
	// none; otherwise its length must be Pieces. New copies it.
	Have *bitfield.Bitfield

	// EndgameRequests is the largest number of peers a block is requested
	// from at once in endgame, 1 (no endgame) to MaxEndgameRequests. Zero
	// means DefaultEndgameRequests.
	EndgameRequests int

	// Priority gives each piece's priority, Skip to Highest; nil means
	// Normal for all. Otherwise its length must be Pieces. A piece had
	// (Have) is had whatever its priority. New copies it.
	Priority []Priority

	// Sequential starts new pieces lowest index first instead of rarest
	// first, within a priority: a player can begin before the end arrives.
	Sequential bool

	// Rand breaks ties between equally rare pieces. Nil means a randomly
	// seeded source; tests pass a seeded one to be deterministic.
	Rand *rand.Rand
}

// Priority orders the pieces to download; Skip excludes a piece.
type Priority uint8

// Priorities, lowest first. A torrent client maps a file's priority to its
// pieces; a piece shared by files takes the highest of theirs.
const (
	Skip Priority = iota
	Low
	Normal
	High
	Highest
)

// Piece states.
const (
	stWanted uint8 = iota // missing, nothing requested or received: in an availability bucket
	stActive              // missing, started: has a pieceState
	stHave                // verified
	stSkip                // missing and not wanted: hidden like stHave, never picked
)

// Picker is the scheduling state of one torrent.
//
// It is not safe for concurrent use: it is meant to be owned by the swarm's
// event loop, which already serialises protocol events, so a mutex would be
// pure overhead. A caller that shares it must lock around every call.
//
// The zero value is a usable picker for a torrent of zero pieces (complete,
// never picks anything); use New for anything else.
type Picker struct {
	n       int
	nblocks []uint32 // blocks per piece
	st      []uint8  // stWanted, stActive or stHave
	avail   []int32  // connected peers that have the piece

	// order is a permutation of the pieces. For k < top(), bucket k is
	// order[start[k]:start[k+1]] and holds the wanted pieces of availability
	// k; the last bucket, order[start[top()]:], holds the active and had
	// pieces, which rarest-first must not see. pos inverts order.
	order []int32
	pos   []int32
	start []int32

	active    []int32       // started pieces, for phase 1 and endgame
	activePos []int32       // index into active, valid while stActive
	ps        []*pieceState // per piece, non-nil while stActive
	pool      []*pieceState // recycled pieceStates

	have       *bitfield.Bitfield
	missing    int // pieces not had
	freeBlocks int // unrequested, unreceived blocks of missing pieces with avail > 0
	// unrequested counts the blocks of missing pieces neither received nor
	// requested, whoever has them. Endgame starts when it reaches zero:
	// when only freeBlocks is zero, the swarm merely has nothing more to
	// offer yet (early on, or from a super-seeder revealing a piece at a
	// time), and duplicating requests then would only waste bandwidth.
	unrequested int

	peers    []*peer
	index    map[PeerID]int32 // into peers
	peerPool []*peer

	// prio is nil when every piece has the same priority; otherwise
	// phase 2 goes by priority first (pickByBits). seq is Config.Sequential,
	// and seqFrom a lower bound on the lowest stWanted piece.
	prio    []Priority
	seq     bool
	seqFrom int

	dupMax  int
	rng     *rand.Rand
	scratch []PeerID // HandleBlock's result, reused
}

type peer struct {
	id   PeerID
	has  *bitfield.Bitfield
	reqs []Request // outstanding, in no particular order
	// pos indexes reqs: a fast peer may have thousands of requests out,
	// and a linear search per arriving block would cost O(queue depth).
	pos    map[Request]int32
	choked bool // the peer is choking us
	// fast lists the pieces the peer allows us to request while it
	// chokes us (BEP 6), at most MaxAllowedFast, in the order named.
	fast []int32

	interesting int // pieces it has that we lack
	fresh       int // of those, how many are stWanted: 0 means phase 2 can skip the bucket scan
}

type pieceState struct {
	blocks   []block
	received int // blocks done
	pending  int // outstanding requests, counting endgame duplicates
	free     int // blocks neither done nor requested
	hint     int // no free block below this index
}

type block struct {
	n     uint8 // outstanding requests
	done  bool
	peers [MaxEndgameRequests]PeerID
}

func (b *block) remove(id PeerID) bool {
	for i := 0; i < int(b.n); i++ {
		if b.peers[i] == id {
			b.n--
			b.peers[i] = b.peers[b.n]
			return true
		}
	}
	return false
}

func (b *block) requestedFrom(id PeerID) bool {
	for i := 0; i < int(b.n); i++ {
		if b.peers[i] == id {
			return true
		}
	}
	return false
}

// New returns a Picker for cfg. It allocates O(Pieces) memory up front so
// that later events need not.
func New(cfg Config) (*Picker, error) {
	n := cfg.Pieces
	if n < 0 || n > math.MaxInt32 {
		return nil, fmt.Errorf("picker: invalid piece count %d", n)
	}
	if n > 0 && cfg.BlocksIn == nil {
		return nil, errors.New("picker: Config.BlocksIn is nil")
	}
	if cfg.Have != nil && cfg.Have.Len() != n {
		return nil, fmt.Errorf("picker: Have has %d bits for %d pieces", cfg.Have.Len(), n)
	}
	if cfg.Priority != nil && len(cfg.Priority) != n {
		return nil, fmt.Errorf("picker: Priority has %d entries for %d pieces", len(cfg.Priority), n)
	}
	dup := cfg.EndgameRequests
	if dup == 0 {
		dup = DefaultEndgameRequests
	}
	if dup < 1 || dup > MaxEndgameRequests {
		return nil, fmt.Errorf("picker: EndgameRequests %d out of range [1,%d]", cfg.EndgameRequests, MaxEndgameRequests)
	}
	p := &Picker{
		n:         n,
		nblocks:   make([]uint32, n),
		st:        make([]uint8, n),
		avail:     make([]int32, n),
		order:     make([]int32, 0, n),
		pos:       make([]int32, n),
		activePos: make([]int32, n),
		ps:        make([]*pieceState, n),
		have:      bitfield.New(n),
		index:     make(map[PeerID]int32),
		dupMax:    dup,
		rng:       cfg.Rand,
		seq:       cfg.Sequential,
	}
	// Priorities matter only among the wanted pieces; when those all share
	// one, the plain rarest-first path is kept.
	var first Priority
	for i, pr := range cfg.Priority {
		if pr > Highest {
			return nil, fmt.Errorf("picker: piece %d has priority %d", i, pr)
		}
		if pr == Skip || (cfg.Have != nil && cfg.Have.Has(i)) {
			continue
		}
		if first == Skip {
			first = pr
		} else if pr != first {
			p.prio = slices.Clone(cfg.Priority)
			break
		}
	}
	for i := range n {
		b := cfg.BlocksIn(i)
		if b < 1 || b > math.MaxInt32 {
			return nil, fmt.Errorf("picker: piece %d has %d blocks", i, b)
		}
		p.nblocks[i] = uint32(b)
		if cfg.Have != nil && cfg.Have.Has(i) {
			p.st[i] = stHave
			p.have.Set(i)
		} else if cfg.Priority != nil && cfg.Priority[i] == Skip {
			p.st[i] = stSkip
		} else {
			p.order = append(p.order, int32(i))
		}
	}
	p.missing = len(p.order)
	for _, x := range p.order {
		p.unrequested += int(p.nblocks[x])
	}
	wanted := int32(len(p.order))
	for i := range n {
		if p.st[i] == stHave || p.st[i] == stSkip {
			p.order = append(p.order, int32(i))
		}
	}
	for i, x := range p.order {
		p.pos[x] = int32(i)
	}
	// Bucket 0 holds every wanted piece; buckets 1..7 start empty and more
	// are added as the swarm grows. Capacity for 64 avoids regrowth in
	// typical swarms.
	p.start = make([]int32, 1, 64)
	for range 8 {
		p.start = append(p.start, wanted)
	}
	if p.rng == nil {
		p.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return p, nil
}

// --- availability buckets ---

func (p *Picker) top() int { return len(p.start) - 1 }

func (p *Picker) swap(i, j int32) {
	a, b := p.order[i], p.order[j]
	p.order[i], p.order[j] = b, a
	p.pos[b], p.pos[a] = i, j
}

// up moves x from bucket k to the front of bucket k+1.
func (p *Picker) up(x int32, k int) {
	last := p.start[k+1] - 1
	p.swap(p.pos[x], last)
	p.start[k+1] = last
}

// down moves x from bucket k to the back of bucket k-1.
func (p *Picker) down(x int32, k int) {
	first := p.start[k]
	p.swap(p.pos[x], first)
	p.start[k] = first + 1
}

// hide moves a wanted piece into the top bucket, one swap per bucket
// crossed: O(swarm size), paid once per piece start or finish.
func (p *Picker) hide(x int32) {
	for k := int(p.avail[x]); k < p.top(); k++ {
		p.up(x, k)
	}
}

// unhide moves a piece from the top bucket back to its availability bucket.
func (p *Picker) unhide(x int32) {
	for k := p.top(); k > int(p.avail[x]); k-- {
		p.down(x, k)
	}
}

func (p *Picker) free(x int32) int {
	switch p.st[x] {
	case stWanted:
		return int(p.nblocks[x])
	case stActive:
		return p.ps[x].free
	}
	return 0
}

func (p *Picker) addFree(x int32, d int) {
	p.ps[x].free += d
	p.unrequested += d
	if p.avail[x] > 0 {
		p.freeBlocks += d
	}
}

func (p *Picker) incAvail(x int32) {
	a := p.avail[x]
	if int(a)+1 >= p.top() {
		// Insert an empty bucket below the top one; allocates only when
		// the swarm outgrows every earlier swarm.
		p.start = append(p.start, p.start[p.top()])
	}
	if a == 0 {
		p.freeBlocks += p.free(x)
	}
	p.avail[x] = a + 1
	if p.st[x] == stWanted {
		p.up(x, int(a))
	}
}

func (p *Picker) decAvail(x int32) {
	a := p.avail[x]
	p.avail[x] = a - 1
	if a == 1 {
		p.freeBlocks -= p.free(x)
	}
	if p.st[x] == stWanted {
		p.down(x, int(a))
	}
}

// --- piece lifecycle ---

func (p *Picker) activate(x int32) *pieceState {
	p.hide(x)
	p.st[x] = stActive
	var s *pieceState
	if k := len(p.pool); k > 0 {
		s = p.pool[k-1]
		p.pool = p.pool[:k-1]
	} else {
		s = new(pieceState)
	}
	nb := int(p.nblocks[x])
	if cap(s.blocks) < nb {
		s.blocks = make([]block, nb)
	} else {
		s.blocks = s.blocks[:nb]
		clear(s.blocks)
	}
	*s = pieceState{blocks: s.blocks, free: nb}
	p.ps[x] = s
	p.activePos[x] = int32(len(p.active))
	p.active = append(p.active, x)
	for _, pe := range p.peers {
		if pe.has.Has(int(x)) {
			pe.fresh--
		}
	}
	return s
}

// retire drops the pieceState of an active piece; the caller sets the new
// state.
func (p *Picker) retire(x int32) {
	i := p.activePos[x]
	last := p.active[len(p.active)-1]
	p.active[i] = last
	p.activePos[last] = i
	p.active = p.active[:len(p.active)-1]
	p.pool = append(p.pool, p.ps[x])
	p.ps[x] = nil
}

// maybeDeactivate returns a started piece to rarest-first selection once it
// holds neither data nor requests, so that a choke or disconnect does not
// leave empty "started" pieces pinning phase 1.
func (p *Picker) maybeDeactivate(x int32) {
	s := p.ps[x]
	if s == nil || s.received > 0 || s.pending > 0 {
		return
	}
	if p.prio != nil && p.prio[x] == Skip {
		// Unselected while it was under way (SetPriorities): now that it
		// holds nothing, it leaves the download.
		p.skipActive(x)
		return
	}
	p.retire(x)
	p.st[x] = stWanted
	p.unhide(x)
	p.seqFrom = min(p.seqFrom, int(x))
	for _, pe := range p.peers {
		if pe.has.Has(int(x)) {
			pe.fresh++
		}
	}
}

// --- peers ---

func (p *Picker) lookup(id PeerID) *peer {
	if i, ok := p.index[id]; ok {
		return p.peers[i]
	}
	return nil
}

func (p *Picker) register(id PeerID) *peer {
	if pe := p.lookup(id); pe != nil {
		return pe
	}
	if p.index == nil { // zero-value Picker
		p.index = make(map[PeerID]int32)
	}
	var pe *peer
	if k := len(p.peerPool); k > 0 {
		pe = p.peerPool[k-1]
		p.peerPool = p.peerPool[:k-1]
	} else {
		pe = &peer{has: bitfield.New(p.n), pos: make(map[Request]int32)}
	}
	pe.id = id
	pe.choked = true // BEP 3: connections start choked
	p.index[id] = int32(len(p.peers))
	p.peers = append(p.peers, pe)
	return pe
}

func (p *Picker) peerHas(pe *peer, x int32) {
	if !pe.has.Set(int(x)) {
		return
	}
	p.incAvail(x)
	if st := p.st[x]; st != stHave && st != stSkip {
		pe.interesting++
		if st == stWanted {
			pe.fresh++
		}
	}
}

func (pe *peer) removeReq(x, b int) bool {
	r := Request{Piece: x, Block: b}
	i, ok := pe.pos[r]
	if !ok {
		return false
	}
	last := pe.reqs[len(pe.reqs)-1]
	pe.reqs[i] = last
	pe.pos[last] = i
	pe.reqs = pe.reqs[:len(pe.reqs)-1]
	delete(pe.pos, r)
	return true
}

// release undoes one outstanding request that the caller has already
// removed from pe.reqs.
func (p *Picker) release(pe *peer, x int32, b int) {
	s := p.ps[x]
	if s == nil {
		return
	}
	bl := &s.blocks[b]
	if !bl.remove(pe.id) {
		return
	}
	s.pending--
	if bl.n == 0 && !bl.done {
		p.addFree(x, 1)
		s.hint = min(s.hint, b)
	}
	p.maybeDeactivate(x)
}

func (p *Picker) releaseAll(pe *peer) {
	for _, r := range pe.reqs {
		p.release(pe, int32(r.Piece), r.Block)
	}
	pe.reqs = pe.reqs[:0]
	clear(pe.pos)
}

// --- events ---

// HandleBitfield records a peer's bitfield message. The picker keeps its own
// copy, so bf may be reused. Bits already known from earlier messages are
// counted once. It fails if bf has the wrong length; the caller should then
// drop the peer.
func (p *Picker) HandleBitfield(id PeerID, bf *bitfield.Bitfield) error {
	if bf.Len() != p.n {
		return fmt.Errorf("picker: peer bitfield has %d bits for %d pieces", bf.Len(), p.n)
	}
	pe := p.register(id)
	for x := bf.NextSet(0); x >= 0; x = bf.NextSet(x + 1) {
		p.peerHas(pe, int32(x))
	}
	return nil
}

// HandleHave records a have message. It fails if piece is out of range; the
// caller should then drop the peer.
func (p *Picker) HandleHave(id PeerID, piece int) error {
	if uint(piece) >= uint(p.n) {
		return fmt.Errorf("picker: have for piece %d of %d", piece, p.n)
	}
	p.peerHas(p.register(id), int32(piece))
	return nil
}

// HandleHaveAll records a fast-extension (BEP 6) have-all: the peer is a
// seeder.
func (p *Picker) HandleHaveAll(id PeerID) {
	pe := p.register(id)
	for x := range p.n {
		p.peerHas(pe, int32(x))
	}
}

// HandleHaveNone records a fast-extension have-none. It only registers the
// peer, whose later have messages then count.
func (p *Picker) HandleHaveNone(id PeerID) { p.register(id) }

// HandleUnchoke records that the peer unchoked us: until then PickFor asks
// it only for blocks of its allowed-fast pieces, if any.
func (p *Picker) HandleUnchoke(id PeerID) { p.register(id).choked = false }

// HandleChoke records that the peer choked us. A choking peer discards our
// queued requests (BEP 3), so all of them are released for other peers.
// Requests the fast extension would keep (allowed-fast pieces) are released
// too, for simplicity: at worst a block is fetched twice.
func (p *Picker) HandleChoke(id PeerID) {
	pe := p.lookup(id)
	if pe == nil {
		return
	}
	pe.choked = true
	p.releaseAll(pe)
}

// HandleFastChoke records a choke from a peer that speaks the fast
// extension. BEP 6 keeps our requests alive across such a choke, to be
// served or rejected one by one, so they stay outstanding: releasing them
// would have the blocks fetched twice when the peer serves them anyway.
func (p *Picker) HandleFastChoke(id PeerID) { p.register(id).choked = true }

// HandleAllowedFast records a fast-extension (BEP 6) allowed-fast message:
// while the peer chokes us, PickFor asks it for blocks of this piece (if
// the peer has it and we lack it). A piece already allowed, or one past
// the first MaxAllowedFast, is ignored. It fails if piece is out of range;
// the caller should then drop the peer.
func (p *Picker) HandleAllowedFast(id PeerID, piece int) error {
	if uint(piece) >= uint(p.n) {
		return fmt.Errorf("picker: allowed fast for piece %d of %d", piece, p.n)
	}
	pe := p.register(id)
	if len(pe.fast) >= MaxAllowedFast || slices.Contains(pe.fast, int32(piece)) {
		return nil
	}
	pe.fast = append(pe.fast, int32(piece))
	return nil
}

// RevokeAllowedFast takes a piece out of the peer's allowed-fast set: the
// peer refused a request for it while choking us, and would refuse the
// next one too. A later HandleAllowedFast may allow it again.
func (p *Picker) RevokeAllowedFast(id PeerID, piece int) {
	pe := p.lookup(id)
	if pe == nil {
		return
	}
	if i := slices.Index(pe.fast, int32(piece)); i >= 0 {
		pe.fast = slices.Delete(pe.fast, i, i+1)
	}
}

// AllowedFast reports whether PickFor may ask the peer for something
// while it chokes us: it named allowed-fast pieces.
func (p *Picker) AllowedFast(id PeerID) bool {
	pe := p.lookup(id)
	return pe != nil && len(pe.fast) > 0
}

// HandleDisconnect forgets a peer: its availability is withdrawn and its
// outstanding requests are released for other peers. Its PeerID may then be
// reused.
func (p *Picker) HandleDisconnect(id PeerID) {
	i, ok := p.index[id]
	if !ok {
		return
	}
	pe := p.peers[i]
	p.releaseAll(pe)
	for x := pe.has.NextSet(0); x >= 0; x = pe.has.NextSet(x + 1) {
		p.decAvail(int32(x))
	}
	last := p.peers[len(p.peers)-1]
	p.peers[i] = last
	p.index[last.id] = i
	p.peers = p.peers[:len(p.peers)-1]
	delete(p.index, id)
	pe.has.ClearAll()
	clear(pe.pos)
	*pe = peer{has: pe.has, reqs: pe.reqs[:0], pos: pe.pos, fast: pe.fast[:0]}
	p.peerPool = append(p.peerPool, pe)
}

// HandleReject records a fast-extension reject-request: the block is
// released for other peers (and for this one; the picker does not remember
// rejections: see HandleWithdraw).
func (p *Picker) HandleReject(id PeerID, piece, block int) {
	p.drop(id, piece, block)
}

// HandleWithdraw records that a peer cannot supply a piece it announced
// after all: it refused a request for it while unchoking us (a seeder whose
// file became unreadable, say). Asking again would only be refused again,
// so the piece no longer counts toward the peer's availability or our
// interest in it until HandleHave (or the caller's retry) brings it back.
// Requests for the piece still outstanding at the peer stay until
// answered, rejected or timed out.
func (p *Picker) HandleWithdraw(id PeerID, piece int) {
	pe := p.lookup(id)
	if pe == nil || uint(piece) >= uint(p.n) || !pe.has.Clear(piece) {
		return
	}
	x := int32(piece)
	p.decAvail(x)
	if st := p.st[x]; st != stHave && st != stSkip {
		pe.interesting--
		if st == stWanted {
			pe.fresh--
		}
	}
}

// HandleTimeout gives up on an outstanding request that the peer has been
// sitting on, so other peers may be asked for the block. The caller should
// send a cancel; if the block arrives anyway HandleBlock still accepts it.
func (p *Picker) HandleTimeout(id PeerID, piece, block int) {
	p.drop(id, piece, block)
}

func (p *Picker) drop(id PeerID, piece, block int) {
	pe := p.lookup(id)
	if pe == nil || !pe.removeReq(piece, block) {
		return
	}
	p.release(pe, int32(piece), block)
}

// HandleBlock records the arrival of a block from a peer.
//
// ok is false when the data is not wanted (already received, piece already
// verified, or indices out of range) and should be discarded. cancel lists
// the other peers the block was also requested from (endgame); the caller
// sends them cancel messages. cancel is reused by the next HandleBlock call.
//
// A block that was not requested from this peer is accepted if still
// missing: a late answer to a released request is still good data.
func (p *Picker) HandleBlock(id PeerID, piece, block int) (cancel []PeerID, ok bool) {
	if uint(piece) >= uint(p.n) || uint(block) >= uint(p.nblocks[piece]) {
		return nil, false
	}
	x := int32(piece)
	switch p.st[x] {
	case stHave, stSkip:
		return nil, false
	case stWanted:
		p.activate(x)
	}
	s := p.ps[x]
	bl := &s.blocks[block]
	wasFree := !bl.done && bl.n == 0
	if pe := p.lookup(id); pe != nil && bl.remove(id) {
		pe.removeReq(piece, block)
		s.pending--
	}
	if bl.done {
		return nil, false
	}
	if wasFree {
		p.addFree(x, -1)
	}
	cancel = p.scratch[:0]
	for _, q := range bl.peers[:bl.n] {
		cancel = append(cancel, q)
		if qe := p.lookup(q); qe != nil {
			qe.removeReq(piece, block)
		}
		s.pending--
	}
	bl.n = 0
	bl.done = true
	s.received++
	p.scratch = cancel
	return cancel, true
}

// HandlePieceVerified records that a piece's hash checked out (or that it
// was found complete on disk). Requests still outstanding for it are
// forgotten; the caller should cancel them.
func (p *Picker) HandlePieceVerified(piece int) {
	if uint(piece) >= uint(p.n) {
		return
	}
	x := int32(piece)
	st := p.st[x]
	if st == stHave {
		return
	}
	if st == stSkip {
		// Found complete on disk, say: had, but it was never missing
		// nor interesting, and is already hidden.
		p.st[x] = stHave
		p.have.Set(piece)
		return
	}
	if p.avail[x] > 0 {
		p.freeBlocks -= p.free(x)
	}
	p.unrequested -= p.free(x)
	if st == stActive {
		for b := range p.ps[x].blocks {
			bl := &p.ps[x].blocks[b]
			for _, q := range bl.peers[:bl.n] {
				if qe := p.lookup(q); qe != nil {
					qe.removeReq(piece, b)
				}
			}
		}
		p.retire(x)
	} else {
		p.hide(x)
	}
	p.st[x] = stHave
	p.have.Set(piece)
	p.missing--
	for _, pe := range p.peers {
		if pe.has.Has(piece) {
			pe.interesting--
			if st == stWanted {
				pe.fresh--
			}
		}
	}
}

// HandlePieceFailed records that a piece failed its hash check: every block
// becomes wanted again. The piece returns to rarest-first selection unless
// requests for it are still outstanding.
func (p *Picker) HandlePieceFailed(piece int) {
	if uint(piece) >= uint(p.n) || p.st[piece] != stActive {
		return
	}
	x := int32(piece)
	s := p.ps[x]
	for b := range s.blocks {
		bl := &s.blocks[b]
		if !bl.done {
			continue
		}
		bl.done = false
		s.received--
		if bl.n == 0 {
			p.addFree(x, 1)
		}
	}
	s.hint = 0
	p.maybeDeactivate(x)
}

// --- picking ---

// PickFor appends to dst up to max new requests for the peer and returns
// the extended slice; passing dst[:0] of a reused slice makes it
// allocation-free. max is the number of free slots in the peer's request
// queue. An unknown peer gets nothing, and a peer choking us only blocks
// of its allowed-fast pieces (HandleAllowedFast). The requests are recorded
// as outstanding until HandleBlock, HandleReject, HandleTimeout,
// HandleChoke or HandleDisconnect.
func (p *Picker) PickFor(id PeerID, dst []Request, max int) []Request {
	pe := p.lookup(id)
	if pe == nil || max <= 0 || pe.interesting == 0 {
		return dst
	}
	budget := max
	if pe.choked {
		return p.pickFast(pe, dst, &budget)
	}
	// 1. Finish started pieces.
	for _, x := range p.active {
		if budget == 0 {
			return dst
		}
		if s := p.ps[x]; s.free > 0 && pe.has.Has(int(x)) {
			dst = p.take(pe, x, s, dst, &budget)
		}
	}
	// 2. Start the rarest pieces.
	for budget > 0 && pe.fresh > 0 {
		var x int32
		if p.prio != nil || p.seq {
			x = p.pickByBits(pe)
		} else {
			x = p.rarest(pe)
		}
		if x < 0 {
			break
		}
		dst = p.take(pe, x, p.activate(x), dst, &budget)
	}
	// 3. Endgame: duplicate the least-duplicated outstanding blocks.
	if budget > 0 && p.unrequested == 0 {
		for level := 1; level < p.dupMax && budget > 0; level++ {
			for _, x := range p.active {
				if !pe.has.Has(int(x)) {
					continue
				}
				s := p.ps[x]
				for b := range s.blocks {
					bl := &s.blocks[b]
					if int(bl.n) != level || bl.done || bl.requestedFrom(id) {
						continue
					}
					dst = p.request(pe, x, s, b, dst)
					if budget--; budget == 0 {
						return dst
					}
				}
			}
		}
	}
	return dst
}

// pickFast is PickFor for a peer that chokes us: blocks of its allowed-fast
// pieces, started ones first, then new ones in the order the peer named
// them. The set is a handful of pieces, so a scan of it is the cheapest
// way; no endgame duplicates are sent to a peer that chokes us.
func (p *Picker) pickFast(pe *peer, dst []Request, budget *int) []Request {
	for _, x := range pe.fast {
		if *budget == 0 {
			return dst
		}
		if s := p.ps[x]; p.st[x] == stActive && s.free > 0 && pe.has.Has(int(x)) {
			dst = p.take(pe, x, s, dst, budget)
		}
	}
	for _, x := range pe.fast {
		if *budget == 0 {
			return dst
		}
		if p.st[x] == stWanted && pe.has.Has(int(x)) {
			dst = p.take(pe, x, p.activate(x), dst, budget)
		}
	}
	return dst
}

func (p *Picker) request(pe *peer, x int32, s *pieceState, b int, dst []Request) []Request {
	bl := &s.blocks[b]
	if bl.n == 0 {
		p.addFree(x, -1)
	}
	bl.peers[bl.n] = pe.id
	bl.n++
	s.pending++
	r := Request{Piece: int(x), Block: b}
	pe.pos[r] = int32(len(pe.reqs))
	pe.reqs = append(pe.reqs, r)
	return append(dst, r)
}

// take requests free blocks of an active piece, lowest first.
func (p *Picker) take(pe *peer, x int32, s *pieceState, dst []Request, budget *int) []Request {
	b := s.hint
	for ; b < len(s.blocks) && *budget > 0 && s.free > 0; b++ {
		if bl := &s.blocks[b]; bl.done || bl.n > 0 {
			continue
		}
		dst = p.request(pe, x, s, b, dst)
		*budget--
	}
	s.hint = b // everything below b is now done or requested
	return dst
}

// rarest returns a wanted piece the peer has with the lowest availability,
// or -1.
func (p *Picker) rarest(pe *peer) int32 {
	top := p.top()
	// Walking the peer's bitfield costs about n/64 + its popcount. A bucket
	// scan usually costs far less (about candidates/fresh probes) but can
	// cost more when the low buckets hold only other peers' pieces, which is
	// exactly what rarest-first leads to late in a download. So scan with
	// that as a probe budget and fall back to the walk when it runs out: a
	// pick never costs more than twice the cheaper method.
	budget := p.n/64 + pe.has.Count() + 64
	candidates := int(p.start[top] - p.start[1]) // wanted pieces someone has
	if candidates > pe.fresh*budget {
		return p.rarestByBits(pe)
	}
	for k := 1; k < top; k++ {
		s, e := int(p.start[k]), int(p.start[k+1])
		if s == e {
			continue
		}
		// Starting at a random offset spreads equally rare picks across
		// peers without shuffling the bucket.
		l := e - s
		r := p.rng.IntN(l)
		m := min(l, budget)
		for j := range m {
			i := s + r + j
			if i >= e {
				i -= l
			}
			if x := p.order[i]; pe.has.Has(int(x)) {
				return x
			}
		}
		if budget -= m; m < l {
			return p.rarestByBits(pe)
		}
	}
	return -1
}

// pickByBits returns the wanted piece the peer has that comes first by
// priority (highest), then by index if sequential or else by availability
// (lowest, random among ties); -1 if none. It walks the peer's bitfield,
// from seqFrom when sequential: about n/64 words plus the pieces visited,
// once per piece started.
func (p *Picker) pickByBits(pe *peer) int32 {
	if p.seq {
		for p.seqFrom < p.n && p.st[p.seqFrom] != stWanted {
			p.seqFrom++
		}
	}
	from := 0
	if p.seq {
		from = p.seqFrom
	}
	best, ties := int32(math.MaxInt32), 0
	var bestPr Priority
	chosen := int32(-1)
	for i := pe.has.NextSet(from); i >= 0; i = pe.has.NextSet(i + 1) {
		if p.st[i] != stWanted {
			continue
		}
		pr := Normal
		if p.prio != nil {
			pr = p.prio[i]
		}
		if chosen >= 0 && pr < bestPr {
			continue
		}
		if chosen < 0 || pr > bestPr {
			if p.seq && (p.prio == nil || pr == Highest) {
				return int32(i) // nothing later can beat it
			}
			bestPr, best, ties, chosen = pr, p.avail[i], 1, int32(i)
			continue
		}
		if p.seq {
			continue // same priority, higher index
		}
		switch a := p.avail[i]; {
		case a < best:
			best, ties, chosen = a, 1, int32(i)
		case a == best:
			if ties++; p.rng.IntN(ties) == 0 {
				chosen = int32(i)
			}
		}
	}
	return chosen
}

func (p *Picker) rarestByBits(pe *peer) int32 {
	best, ties := int32(math.MaxInt32), 0
	chosen := int32(-1)
	for i := pe.has.NextSet(0); i >= 0; i = pe.has.NextSet(i + 1) {
		if p.st[i] != stWanted {
			continue
		}
		switch a := p.avail[i]; {
		case a < best:
			best, ties, chosen = a, 1, int32(i)
		case a == best:
			// Reservoir sampling: uniform among the ties.
			if ties++; p.rng.IntN(ties) == 0 {
				chosen = int32(i)
			}
		}
	}
	return chosen
}

// --- queries ---

// Have reports whether a piece has been verified.
func (p *Picker) Have(piece int) bool {
	return uint(piece) < uint(p.n) && p.st[piece] == stHave
}

// HaveBitfield returns a copy of the verified pieces, for the bitfield
// message.
func (p *Picker) HaveBitfield() *bitfield.Bitfield {
	if p.have == nil {
		return bitfield.New(0)
	}
	return p.have.Clone()
}

// Complete reports whether every wanted piece (priority above Skip) has
// been verified.
func (p *Picker) Complete() bool { return p.missing == 0 }

// Downloaded reports whether every block of a piece has arrived, so the
// caller should hash it; it stays true until HandlePieceVerified or
// HandlePieceFailed.
func (p *Picker) Downloaded(piece int) bool {
	if uint(piece) >= uint(p.n) {
		return false
	}
	switch p.st[piece] {
	case stHave:
		return true
	case stActive:
		return p.ps[piece].received == len(p.ps[piece].blocks)
	}
	return false
}

// Interesting reports whether the peer has a piece we lack, i.e. whether we
// should be interested in it.
func (p *Picker) Interesting(id PeerID) bool {
	pe := p.lookup(id)
	return pe != nil && pe.interesting > 0
}

// PeerHas reports whether the peer announced the piece.
func (p *Picker) PeerHas(id PeerID, piece int) bool {
	pe := p.lookup(id)
	return pe != nil && uint(piece) < uint(p.n) && pe.has.Has(piece)
}

// Availability returns the number of connected peers that have a piece.
func (p *Picker) Availability(piece int) int {
	if uint(piece) >= uint(p.n) {
		return 0
	}
	return int(p.avail[piece])
}

// Outstanding returns the number of requests outstanding at the peer.
func (p *Picker) Outstanding(id PeerID) int {
	if pe := p.lookup(id); pe != nil {
		return len(pe.reqs)
	}
	return 0
}

// Endgame reports whether every missing block has been requested, so
// PickFor now duplicates requests.
func (p *Picker) Endgame() bool { return p.missing > 0 && p.unrequested == 0 }

// Missing returns the number of wanted pieces not yet verified.
func (p *Picker) Missing() int { return p.missing }

// SetPriorities changes the pieces' priorities while the download runs,
// as Config.Priority gives them at the start (nil: every piece Normal). A
// piece newly Skip is never started again; one already started keeps
// going and is verified as usual, unless it empties first (a choke or a
// failed hash), as the bytes on their way are as good as any. A piece
// newly wanted joins rarest-first selection at once. Afterwards the
// caller should re-evaluate each peer's interest (Interesting) and
// whether the download is Complete.
func (p *Picker) SetPriorities(prio []Priority) error {
	if prio != nil && len(prio) != p.n {
		return fmt.Errorf("picker: Priority has %d entries for %d pieces", len(prio), p.n)
	}
	for i, pr := range prio {
		if pr > Highest {
			return fmt.Errorf("picker: piece %d has priority %d", i, pr)
		}
	}
	at := func(i int) Priority {
		if prio == nil {
			return Normal
		}
		return prio[i]
	}
	for i := range p.n {
		x := int32(i)
		switch pr := at(i); {
		case p.st[i] == stSkip && pr != Skip:
			p.st[i] = stWanted
			p.unhide(x)
			p.missing++
			p.unrequested += int(p.nblocks[i])
			if p.avail[i] > 0 {
				p.freeBlocks += int(p.nblocks[i])
			}
			p.seqFrom = min(p.seqFrom, i)
			for _, pe := range p.peers {
				if pe.has.Has(i) {
					pe.interesting++
					pe.fresh++
				}
			}
		case p.st[i] == stWanted && pr == Skip:
			p.hide(x)
			p.st[i] = stSkip
			p.missing--
			p.unrequested -= int(p.nblocks[i])
			if p.avail[i] > 0 {
				p.freeBlocks -= int(p.nblocks[i])
			}
			for _, pe := range p.peers {
				if pe.has.Has(i) {
					pe.interesting--
					pe.fresh--
				}
			}
		}
	}
	// Keep the plain rarest-first path when the wanted pieces share one
	// priority, as New does; an active piece newly Skip needs the record
	// (maybeDeactivate).
	uniform := true
	var first Priority
	for i := range p.n {
		pr := at(i)
		if p.st[i] == stActive && pr == Skip {
			uniform = false
			break
		}
		if pr == Skip || p.st[i] == stHave {
			continue
		}
		if first == Skip {
			first = pr
		} else if pr != first {
			uniform = false
			break
		}
	}
	if uniform {
		p.prio = nil
	} else {
		p.prio = make([]Priority, p.n)
		for i := range p.n {
			p.prio[i] = at(i)
		}
	}
	return nil
}

// skipActive takes an empty started piece out of the download: its
// priority became Skip while it was under way. It holds no data and no
// request (maybeDeactivate), so only the counts of its free blocks and the
// peers' interest change.
func (p *Picker) skipActive(x int32) {
	free := p.ps[x].free
	p.unrequested -= free
	if p.avail[x] > 0 {
		p.freeBlocks -= free
	}
	p.retire(x)
	p.st[x] = stSkip
	p.missing--
	for _, pe := range p.peers {
		if pe.has.Has(int(x)) {
			pe.interesting--
		}
	}
}

// SetSequential switches sequential order (Config.Sequential) on or off
// while the download runs.
func (p *Picker) SetSequential(seq bool) {
	if seq && !p.seq {
		p.seqFrom = 0
	}
	p.seq = seq
}

// PeerPieces counts the pieces a peer announced.
func (p *Picker) PeerPieces(id PeerID) int {
	if pe := p.lookup(id); pe != nil {
		return pe.has.Count()
	}
	return 0
}
