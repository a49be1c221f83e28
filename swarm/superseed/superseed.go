// Package superseed is BEP 16 super-seeding as a policy: which pieces an
// initial seeder reveals to which peer, which requests it may serve, and
// when it is done. It knows nothing of connections or messages: the swarm
// calls its hooks as events arrive, passes the clock in, and sends the have
// messages Fill returns.
//
// Super-seeding is how an initial seeder gets one whole copy into the
// swarm as fast as its upload allows: it poses as a peer with nothing and
// reveals, to each peer, only pieces no peer has yet, so every byte it
// uploads is a byte the swarm did not have. Peers then trade those pieces
// among themselves, and the seeder's upload is never spent twice on the
// same piece before every piece has gone out once.
//
// A peer is offered pieces in proportion to how fast we upload to it, so a
// lone fast downloader is not throttled by the one-piece-at-a-time rule of
// the BEP, while many slow ones each hold only a few. As in the BEP's
// strict mode, a piece a peer got from us counts against its share until
// some other peer has it too: a peer that never uploads (a free-rider, or
// one that left its upload at zero) gets a handful of pieces and no more,
// instead of draining our upload into a dead end. A piece that has sat
// with one peer for SpreadTTL is stuck: it may be offered to another peer,
// so a hoarder cannot keep it from the swarm, and it counts against the
// hoarder for good. Super-seeding ends for good once every piece has been
// announced by some peer and none is stuck: from then on a full copy exists
// outside us and ordinary seeding serves the swarm better (BEP 16 warns
// against super-seeding in a swarm with other seeds).
//
// A peer that lets an offer lapse (it stays not interested in a piece it
// lacks) is not after what the swarm lacks: it selected some files only,
// or its download is paused. Offering it one unseen piece at a time would
// stall it for as long as super-seeding lasts, so it is shown every piece
// at once and seeded as usual; it asks only for what it wants.
package superseed

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/picker"
)

const (
	// minOffers is how many pieces an unchoked peer holds on offer at
	// least: one to download and one queued behind it, so the round trip
	// of have → request does not idle the link.
	minOffers = 2
	// MaxOffers is how many pieces a peer holds on offer at most, a lone
	// downloader included.
	MaxOffers = 64
	// OfferTTL is how long an offer keeps its piece from being offered to
	// anyone else. A peer that sits on an offer (choked by us, slow, or
	// hostile) must not hold up the first copy for good.
	OfferTTL = 20 * time.Second
	// SpreadTTL is how long a piece may sit with the one peer we gave it
	// to before we call it stuck. In a swarm that trades, a fresh piece is
	// the rarest thing around and is fetched within moments.
	SpreadTTL = 2 * time.Second
	// InterestTTL is how long a peer shown a piece may take to say it is
	// interested. One that stays silent does not want it (it selected
	// other files, its download stopped, or it holds a copy it cannot
	// serve): its offer lapses, so the piece, maybe the last one the swarm
	// lacks, is not kept from the others for OfferTTL, and the peer is
	// shown every piece (see the package comment) rather than held to one
	// it does not want.
	InterestTTL = 2 * time.Second
	// announceWait is how long a peer that spoke but announced nothing
	// waits for offers: BEP 3 lets a peer with nothing skip its bitfield,
	// but one that sends it should not be offered what it already has.
	announceWait = time.Second
)

// Swarm is what the policy reads of the swarm: which connected peer
// announced which piece. *picker.Picker satisfies it.
type Swarm interface {
	// PeerHas reports whether the peer announced the piece.
	PeerHas(id picker.PeerID, piece int) bool
	// Availability is how many connected peers announced the piece.
	Availability(piece int) int
}

// Config sets up a Policy.
type Config struct {
	// Pieces is the number of pieces in the torrent. With none there is
	// nothing to super-seed: the policy is done at once.
	Pieces int
	// PieceLength is the size of a piece in bytes.
	PieceLength int64
	// Horizon is how long a downloader's request queue keeps its link
	// busy; a peer is offered what it downloads from us in that time.
	Horizon time.Duration
	// MinQueue is how many bytes a downloader's shallowest request queue
	// covers; a peer is offered at least that much, plus a piece.
	MinQueue int64
	// Swarm tells which peer has which piece. Required.
	Swarm Swarm
	// Rand spreads offers over the torrent; nil seeds one at random.
	Rand *rand.Rand
	// SpreadTTL and InterestTTL replace the package's when set: a test
	// on a loaded machine, whose peers trade slowly but do not hoard,
	// lengthens them so that no piece is offered twice for want of time.
	SpreadTTL, InterestTTL time.Duration
}

// Peer is what the swarm knows of a peer when the policy tops up its
// offers.
type Peer struct {
	// Joined is when the connection was set up.
	Joined time.Time
	// Spoke reports that it sent more than keep-alives. A peer that has
	// said nothing at all gets nothing: clients send a bitfield, have-none
	// or extension handshake at once, and an offer to a connection that
	// only stays open would lock its piece up for OfferTTL (a flood of
	// them, every piece).
	Spoke bool
	// Announced reports that its have, bitfield, have-all or have-none
	// arrived, so we know what not to offer it.
	Announced bool
	// Choked reports that we choke it: it gets one offer, so it has a
	// reason to be interested.
	Choked bool
	// Interested reports that it wants what we have.
	Interested bool
	// Rate is how fast we upload to it, in bytes/s.
	Rate float64
}

// Policy is a torrent's super-seeding state. It is not safe for concurrent
// use: the swarm calls it under its own lock.
type Policy struct {
	swarm  Swarm
	pieces int
	pl     int64
	// horizon and floor set a peer's offer target (target).
	horizon time.Duration
	floor   int
	rnd     *rand.Rand
	// spreadTTL and interestTTL are SpreadTTL and InterestTTL, or what
	// Config set instead.
	spreadTTL, interestTTL time.Duration

	// offered counts, per piece, the peers it is on offer to that have
	// not announced it yet.
	offered []int32
	// lapsed counts open peers (an offer lapsed for want of interest)
	// that are not interested: they do not keep another peer from being
	// lone.
	lapsed int
	// seen marks pieces announced by some peer since we started; left is
	// how many are not. At zero, with none stuck, super-seeding ends.
	seen *bitfield.Bitfield
	left int
	// stuck marks pieces whose only holder did not pass them on.
	stuck *bitfield.Bitfield
	done  bool
	peers map[picker.PeerID]*peerState
	// reveal is Fill's result, reused from call to call.
	reveal []int
}

// peerState is one peer's side of super-seeding.
type peerState struct {
	revealed *bitfield.Bitfield // pieces we told this peer we have
	offers   []offer            // revealed pieces it does not have yet
	// unspread lists offered pieces it has that no other peer had yet,
	// and the stuck ones, which stay listed while it is connected.
	unspread []holding
	// open marks a peer shown every piece because an offer to it lapsed
	// for want of interest; it gets no offers since. lapsed marks it
	// counted in Policy.lapsed: open and, when last filled, not
	// interested.
	open   bool
	lapsed bool
}

// holding is a piece a peer got from us, since when, and whether it sat
// there too long.
type holding struct {
	piece int32
	since time.Time
	stuck bool
}

// offer is a piece revealed to one peer, and when.
type offer struct {
	piece int32
	at    time.Time
}

// New returns a policy that has revealed nothing to anyone.
func New(cfg Config) *Policy {
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	n := max(cfg.Pieces, 0)
	pl := max(cfg.PieceLength, 1)
	spreadTTL, interestTTL := SpreadTTL, InterestTTL
	if cfg.SpreadTTL > 0 {
		spreadTTL = cfg.SpreadTTL
	}
	if cfg.InterestTTL > 0 {
		interestTTL = cfg.InterestTTL
	}
	return &Policy{
		spreadTTL:   spreadTTL,
		interestTTL: interestTTL,
		swarm:       cfg.Swarm,
		pieces:      n,
		pl:          pl,
		horizon:     cfg.Horizon,
		// With fewer offers than the shallowest request queue covers, a
		// downloader finishes every offer between two of our haves, loses
		// interest, and the choke that follows costs a round trip.
		floor:   int((max(cfg.MinQueue, 0)+pl-1)/pl) + 1,
		rnd:     rnd,
		offered: make([]int32, n),
		seen:    bitfield.New(n),
		stuck:   bitfield.New(n),
		left:    n,
		done:    n == 0,
		peers:   map[picker.PeerID]*peerState{},
	}
}

// Done reports that super-seeding is over: every piece reached a peer and
// none is stuck with one that keeps it to itself. It stays over; the
// swarm then reveals to each peer what Hidden lists and seeds as usual.
func (s *Policy) Done() bool { return s.done }

// AddPeer starts tracking a new connection, shown nothing yet.
func (s *Policy) AddPeer(id picker.PeerID) {
	if s.done {
		return
	}
	s.peers[id] = &peerState{revealed: bitfield.New(s.pieces)}
}

// RemovePeer forgets a departing peer: its offers are free for others, and
// pieces stuck with it no longer hold super-seeding up. It may end
// super-seeding (see Done).
func (s *Policy) RemovePeer(id picker.PeerID) {
	sp := s.peers[id]
	delete(s.peers, id)
	if s.done || sp == nil {
		return
	}
	for _, o := range sp.offers {
		s.offered[o.piece]--
	}
	for _, h := range sp.unspread {
		if h.stuck {
			s.stuck.Clear(int(h.piece))
		}
	}
	if sp.lapsed {
		s.lapsed--
	}
	s.maybeEnd()
}

// OnHave records that some peer announced piece x.
func (s *Policy) OnHave(x int) {
	if s.done || uint(x) >= uint(s.pieces) || !s.seen.Set(x) {
		return
	}
	s.left--
	s.maybeEnd()
}

// OnBitfield records a peer's bitfield.
func (s *Policy) OnBitfield(bf *bitfield.Bitfield) {
	for x := bf.NextSet(0); x >= 0 && !s.done; x = bf.NextSet(x + 1) {
		s.OnHave(x)
	}
}

// OnHaveAll records a peer that announced every piece: another seeder.
func (s *Policy) OnHaveAll() {
	for x := 0; x < s.pieces && !s.done; x++ {
		s.OnHave(x)
	}
}

// maybeEnd ends super-seeding once every piece has reached a peer and
// none is stuck with a peer that keeps it to itself. It reports whether
// it ended.
func (s *Policy) maybeEnd() bool {
	if s.done || s.left > 0 || s.stuck.Count() > 0 {
		return false
	}
	s.done = true
	return true
}

// MayServe reports whether a request of peer id for piece x may be
// served: the piece was revealed to it, or super-seeding is over.
func (s *Policy) MayServe(id picker.PeerID, x int) bool {
	if s.done {
		return true
	}
	sp := s.peers[id]
	return sp != nil && uint(x) < uint(s.pieces) && sp.revealed.Has(x)
}

// Hidden lists the pieces peer id was not shown and does not have: what
// to announce to it when super-seeding ends. Call it before RemovePeer.
func (s *Policy) Hidden(id picker.PeerID) []int {
	sp := s.peers[id]
	if sp == nil {
		return nil
	}
	var xs []int
	for x := range s.pieces {
		if !sp.revealed.Has(x) && !s.swarm.PeerHas(id, x) {
			xs = append(xs, x)
		}
	}
	return xs
}

// Fill tops up the offers of peer id and returns the pieces newly
// revealed to it, in the order to announce them; the slice is valid until
// the next call. speakers counts the connected peers that have spoken, it
// among them. A peer is lone when no other is there to pass pieces on to,
// not counting open peers that are not interested (their offer lapsed:
// they download nothing from us now): a lone peer is not held to what it
// has spread.
// Call Fill whenever the peer announces pieces or is unchoked, and once a
// second. It may end super-seeding (see Done).
func (s *Policy) Fill(id picker.PeerID, now time.Time, p Peer, speakers int) []int {
	s.reveal = s.reveal[:0]
	sp := s.peers[id]
	if s.done || sp == nil || !p.Spoke || !p.Announced && now.Sub(p.Joined) < announceWait {
		return nil
	}
	lapse := false
	kept := sp.offers[:0]
	for _, o := range sp.offers {
		switch {
		case s.swarm.PeerHas(id, int(o.piece)):
			s.offered[o.piece]--
			sp.unspread = append(sp.unspread, holding{piece: o.piece, since: now})
		case now.Sub(o.at) > OfferTTL:
			s.offered[o.piece]--
		case !p.Interested && now.Sub(o.at) > s.interestTTL:
			s.offered[o.piece]--
			lapse = true
		default:
			kept = append(kept, o)
		}
	}
	sp.offers = kept
	if lapse && !sp.open {
		s.open(id, sp)
	}
	if sp.open {
		s.setLapsed(sp, !p.Interested)
	}
	unstuck := false
	still := sp.unspread[:0]
	for _, h := range sp.unspread {
		spread := s.swarm.Availability(int(h.piece)) >= 2
		switch {
		case h.stuck:
			if spread && s.stuck.Clear(int(h.piece)) {
				unstuck = true
			}
		case spread:
			continue
		case now.Sub(h.since) > s.spreadTTL:
			h.stuck = true
			s.stuck.Set(int(h.piece))
		}
		still = append(still, h)
	}
	sp.unspread = still
	if unstuck && s.maybeEnd() {
		return nil
	}
	if sp.open {
		return s.reveal
	}
	lone := speakers-s.lapsed < 2
	held := len(sp.unspread)
	if lone {
		held = 0
	}
	for target := s.target(p, lone); len(sp.offers)+held < target; {
		x := s.pick(id, sp)
		if x < 0 {
			break
		}
		sp.offers = append(sp.offers, offer{int32(x), now})
		s.offered[x]++
		sp.revealed.Set(x)
		s.reveal = append(s.reveal, x)
	}
	return s.reveal
}

// open shows peer id every piece it was not shown and does not have, and
// ends its offers: it takes from us only what it wants, as from any seed.
// The pieces go into s.reveal.
func (s *Policy) open(id picker.PeerID, sp *peerState) {
	sp.open = true
	for _, o := range sp.offers {
		s.offered[o.piece]--
	}
	sp.offers = sp.offers[:0]
	for x := range s.pieces {
		if !sp.revealed.Has(x) && !s.swarm.PeerHas(id, x) {
			s.reveal = append(s.reveal, x)
		}
	}
	sp.revealed.SetAll()
}

// setLapsed keeps Policy.lapsed counting open peers that are not
// interested.
func (s *Policy) setLapsed(sp *peerState, lapsed bool) {
	if sp.lapsed == lapsed {
		return
	}
	sp.lapsed = lapsed
	if lapsed {
		s.lapsed++
	} else {
		s.lapsed--
	}
}

// target is how many pieces a peer should hold on offer: enough to keep
// its link busy for one request-queue horizon at the rate we upload to it.
func (s *Policy) target(p Peer, lone bool) int {
	if p.Choked {
		return 1 // so it has a reason to be interested
	}
	if lone {
		// A lone downloader will take every piece from us anyway; holding
		// it to its rate only slows its start.
		return MaxOffers
	}
	n := int(p.Rate*s.horizon.Seconds()/float64(s.pl)) + 1
	return min(MaxOffers, max(minOffers, s.floor, n))
}

// pick chooses the piece to reveal to a peer next: one that no peer has
// and none holds on offer (or a stuck one that only its hoarder has), or
// -1. Handing out a piece already on offer elsewhere would spend our
// upload twice on it before every piece went out once, so a peer with
// nothing left to take from us waits, and the slot it then frees (it
// loses interest) goes to a peer that still has an offer. The scan starts
// at a random piece so offers spread over the torrent; it is linear, but
// runs once per piece handed out, not per block.
func (s *Policy) pick(id picker.PeerID, sp *peerState) int {
	n := s.pieces
	start := s.rnd.IntN(n)
	for i := range n {
		x := start + i
		if x >= n {
			x -= n
		}
		if s.offered[x] != 0 || sp.revealed.Has(x) {
			continue
		}
		if a := s.swarm.Availability(x); a == 0 || a == 1 && s.stuck.Has(x) {
			return x
		}
	}
	return -1
}

// statusList is how many piece numbers WriteStatus lists before it only
// counts.
const statusList = 16

// WriteStatus writes the policy's state for an operator: pieces not yet
// seen in the swarm, pieces stuck with a peer, and each peer's offers and
// holdings. It is for status dumps, not hot paths: it sorts.
func (s *Policy) WriteStatus(w io.Writer) {
	if s.done {
		fmt.Fprintf(w, "super-seeding: done, all %d pieces seen in the swarm\n", s.pieces)
		return
	}
	on := 0
	for _, c := range s.offered {
		if c > 0 {
			on++
		}
	}
	fmt.Fprintf(w, "super-seeding: %d of %d pieces not yet seen in the swarm, %d on offer, %d stuck%s\n",
		s.left, s.pieces, on, s.stuck.Count(), pieceList(s.stuck))
	for _, id := range slices.Sorted(maps.Keys(s.peers)) {
		sp := s.peers[id]
		stuck := 0
		for _, h := range sp.unspread {
			if h.stuck {
				stuck++
			}
		}
		offers := bitfield.New(s.pieces)
		for _, o := range sp.offers {
			offers.Set(int(o.piece))
		}
		open := ""
		if sp.open {
			open = ", shown every piece (an offer lapsed)"
		}
		fmt.Fprintf(w, "  peer %d: %d on offer%s, %d held unspread (%d stuck), %d revealed%s\n",
			id, len(sp.offers), pieceList(offers), len(sp.unspread), stuck, sp.revealed.Count(), open)
	}
}

// pieceList renders up to statusList set pieces of bf as " [a b c]".
func pieceList(bf *bitfield.Bitfield) string {
	if bf.Count() == 0 {
		return ""
	}
	var xs []int
	for x := bf.NextSet(0); x >= 0 && len(xs) < statusList; x = bf.NextSet(x + 1) {
		xs = append(xs, x)
	}
	if bf.Count() > statusList {
		return fmt.Sprintf(" %v …", xs)
	}
	return fmt.Sprintf(" %v", xs)
}
