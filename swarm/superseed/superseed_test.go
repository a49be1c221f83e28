package superseed

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/picker"
)

// The policy is driven as the swarm drives it, with the real picker
// keeping who has what, and a clock the test moves by hand.

var t0 = time.Unix(1_000_000, 0)

const (
	kib = 1 << 10
	mib = 1 << 20
)

type rig struct {
	t   *testing.T
	pk  *picker.Picker
	ss  *Policy
	now time.Time
}

func newRig(t *testing.T, pieces int, pieceLen int64, seed uint64) *rig {
	t.Helper()
	have := bitfield.New(pieces)
	have.SetAll()
	pk, err := picker.New(picker.Config{Pieces: pieces, BlocksIn: func(int) int { return 1 }, Have: have})
	if err != nil {
		t.Fatal(err)
	}
	ss := New(Config{
		Pieces:      pieces,
		PieceLength: pieceLen,
		Horizon:     2 * time.Second,
		MinQueue:    16 * 16 * kib, // 16 requests of 16 KiB
		Swarm:       pk,
		Rand:        rand.New(rand.NewPCG(seed, seed^0x5eed)),
	})
	return &rig{t: t, pk: pk, ss: ss, now: t0}
}

// active is a peer that has announced what it has, unchoked, idle.
var active = Peer{Joined: t0.Add(-time.Minute), Spoke: true, Announced: true, Interested: true}

func rate(r float64) Peer { p := active; p.Rate = r; return p }

func (r *rig) join(id picker.PeerID) {
	r.pk.HandleHaveNone(id)
	r.ss.AddPeer(id)
}

func (r *rig) have(id picker.PeerID, xs ...int) {
	r.t.Helper()
	for _, x := range xs {
		if err := r.pk.HandleHave(id, x); err != nil {
			r.t.Fatal(err)
		}
		r.ss.OnHave(x)
	}
}

func (r *rig) leave(id picker.PeerID) {
	r.pk.HandleDisconnect(id)
	r.ss.RemovePeer(id)
}

func (r *rig) fill(id picker.PeerID, p Peer, lone bool) []int {
	speakers := 1
	if !lone {
		speakers = 3
	}
	return slices.Clone(r.ss.Fill(id, r.now, p, speakers))
}

// Pieces are revealed only if no peer has them and none holds them on
// offer, so no piece goes out twice before each went out once; and the
// scan for them starts at a random piece, so offers spread over the
// torrent rather than all peers racing for piece 0.
func TestRevealsEachUnseenPieceOnce(t *testing.T) {
	r := newRig(t, 10, 256*kib, 1)
	r.join(9)
	r.have(9, 3, 4) // another peer has these already
	shown := map[int]picker.PeerID{}
	for id := picker.PeerID(1); id <= 5; id++ {
		r.join(id)
		got := r.fill(id, active, false)
		want := 2
		if id == 5 {
			want = 0 // 8 pieces, all on offer to peers 1 to 4
		}
		if len(got) != want {
			t.Fatalf("peer %d shown %v, want %d pieces", id, got, want)
		}
		for _, x := range got {
			if x == 3 || x == 4 {
				t.Fatalf("peer %d shown piece %d, which peer 9 has", id, x)
			}
			if o, dup := shown[x]; dup {
				t.Fatalf("piece %d shown to peers %d and %d", x, o, id)
			}
			shown[x] = id
			if !r.ss.MayServe(id, x) {
				t.Fatalf("peer %d may not be served piece %d it was shown", id, x)
			}
		}
	}
	// Fill again returns only what is new: nothing.
	if got := r.fill(1, active, false); len(got) != 0 {
		t.Fatalf("peer 1 shown %v again", got)
	}

	firsts := map[int]bool{}
	for seed := range uint64(20) {
		r := newRig(t, 10, 256*kib, seed)
		r.join(1)
		firsts[r.fill(1, active, false)[0]] = true
	}
	if len(firsts) < 5 {
		t.Fatalf("first piece shown over 20 seeds: %v; want the start spread over the torrent", firsts)
	}
}

// A peer is offered what it downloads from us in a request horizon, at
// least two pieces and the shallowest request queue's worth, at most
// MaxOffers; a peer we choke gets one, so it has a reason to be
// interested.
func TestOffersScaleWithRate(t *testing.T) {
	r := newRig(t, 1000, 256*kib, 2)
	for _, c := range []struct {
		p    Peer
		want int
	}{
		{Peer{Joined: t0, Spoke: true, Announced: true, Choked: true, Rate: 100 * mib}, 1},
		{rate(0), 2},
		{rate(1 * mib), 9},   // 2 MiB in 2 s = 8 pieces, +1
		{rate(4 * mib), 33},  // 32 + 1
		{rate(1 << 30), 64},  // capped
		{rate(100 * kib), 2}, // 0.8 piece, +1, below the floor
	} {
		id := picker.PeerID(len(r.ss.peers) + 1)
		r.join(id)
		if got := r.fill(id, c.p, false); len(got) != c.want {
			t.Errorf("choked %v, %.0f B/s: %d offers, want %d", c.p.Choked, c.p.Rate, len(got), c.want)
		}
	}
	// A peer that speeds up is topped up by the difference.
	r.join(100)
	r.fill(100, rate(0), false)
	if got := r.fill(100, rate(1*mib), false); len(got) != 7 {
		t.Errorf("sped up to 1 MiB/s: %d more offers, want 7", len(got))
	}

	// Small pieces: 16 requests of 16 KiB cover 16 pieces of 16 KiB, plus
	// one so the queue does not run dry between two haves.
	r = newRig(t, 1000, 16*kib, 2)
	r.join(1)
	if got := r.fill(1, rate(0), false); len(got) != 17 {
		t.Errorf("16 KiB pieces at rest: %d offers, want 17", len(got))
	}
}

// A lone downloader has no one to pass pieces on to: it is shown
// MaxOffers at once whatever its rate, and the pieces it holds do not
// count against it. The same peer among others is held to its share.
func TestLoneDownloaderGetsMaxOffers(t *testing.T) {
	for _, lone := range []bool{true, false} {
		r := newRig(t, 300, 256*kib, 3)
		r.join(1)
		first := r.fill(1, active, lone)
		want := 2
		if lone {
			want = MaxOffers
		}
		if len(first) != want {
			t.Fatalf("lone %v: %d offers, want %d", lone, len(first), want)
		}
		r.now = r.now.Add(time.Second)
		r.have(1, first...) // downloaded them all; none spread
		next := r.fill(1, active, lone)
		if lone && len(next) != MaxOffers || !lone && len(next) != 0 {
			t.Fatalf("lone %v: holding %d unspread pieces, %d more offers", lone, len(first), len(next))
		}
	}
}

// Strict mode: a piece a peer got from us counts against its share until
// another peer has it too, so a peer that passes nothing on gets no more.
func TestStrictModeCountsHeldPieces(t *testing.T) {
	r := newRig(t, 20, 256*kib, 4)
	r.join(1)
	r.join(2)
	got := r.fill(1, active, false)
	if len(got) != 2 {
		t.Fatalf("%d offers, want 2", len(got))
	}
	r.have(1, got...)
	if more := r.fill(1, active, false); len(more) != 0 {
		t.Fatalf("holding both pieces it got, shown %v more", more)
	}
	r.have(2, got[0]) // peer 2 got one of them from peer 1
	more := r.fill(1, active, false)
	if len(more) != 1 {
		t.Fatalf("one piece passed on: shown %v, want 1 more", more)
	}
	r.have(2, got[1])
	if more := r.fill(1, active, false); len(more) != 1 {
		t.Fatalf("both pieces passed on: shown %v, want 1 more", more)
	}
}

// A piece that sits with its one holder past SpreadTTL is stuck: it is
// offered to another peer, and super-seeding does not end while it is
// stuck, even once every piece was seen.
func TestStuckPieceReofferedAfterSpreadTTL(t *testing.T) {
	r := newRig(t, 6, 256*kib, 5)
	for id := picker.PeerID(1); id <= 4; id++ {
		r.join(id)
	}
	hoarded := r.fill(1, active, false)
	r.have(1, hoarded...)
	r.fill(1, active, false) // notices it has them: held since now
	b, c := r.fill(2, active, false), r.fill(3, active, false)
	if len(hoarded)+len(b)+len(c) != 6 {
		t.Fatalf("offers %v %v %v: want all 6 pieces out", hoarded, b, c)
	}
	r.now = r.now.Add(SpreadTTL)
	r.fill(1, active, false)
	if got := r.fill(4, active, false); len(got) != 0 {
		t.Fatalf("at SpreadTTL, peer 4 shown %v; nothing is stuck yet", got)
	}
	r.now = r.now.Add(time.Nanosecond)
	if got := r.fill(1, active, false); len(got) != 0 {
		t.Fatalf("the hoarder shown %v more", got)
	}
	got := r.fill(4, active, false)
	slices.Sort(got)
	slices.Sort(hoarded)
	if !slices.Equal(got, hoarded) {
		t.Fatalf("past SpreadTTL, peer 4 shown %v; want the stuck pieces %v", got, hoarded)
	}
	// Every piece reaches a peer; the stuck ones only the hoarder.
	r.have(2, b...)
	r.have(3, c...)
	if r.ss.Done() {
		t.Fatal("done while pieces are stuck with the hoarder")
	}
	// Peer 4 fetches them: the hoarder's next fill sees them spread.
	r.have(4, got...)
	r.fill(4, active, false)
	if r.ss.Done() {
		t.Fatal("done before the hoarder's pieces were seen to spread")
	}
	if more := r.fill(1, active, false); more != nil || !r.ss.Done() {
		t.Fatalf("stuck pieces spread: shown %v, done %v; want done", more, r.ss.Done())
	}
}

// An offer the peer does not take within OfferTTL frees its piece for
// others; the peer is not shown it again.
func TestOfferExpiresAfterOfferTTL(t *testing.T) {
	r := newRig(t, 2, 256*kib, 6)
	r.join(1)
	r.join(2)
	if got := r.fill(1, active, false); len(got) != 2 {
		t.Fatalf("peer 1 shown %v, want both pieces", got)
	}
	r.now = r.now.Add(OfferTTL)
	r.fill(1, active, false)
	if got := r.fill(2, active, false); len(got) != 0 {
		t.Fatalf("at OfferTTL, peer 2 shown %v", got)
	}
	r.now = r.now.Add(time.Nanosecond)
	if got := r.fill(1, active, false); len(got) != 0 {
		t.Fatalf("peer 1 shown %v again", got)
	}
	if got := r.fill(2, active, false); len(got) != 2 {
		t.Fatalf("after OfferTTL, peer 2 shown %v, want both pieces", got)
	}
}

// A peer that leaves frees its offers at once, and pieces stuck with it
// no longer hold super-seeding up.
func TestRemovePeerFreesOffersAndStuck(t *testing.T) {
	r := newRig(t, 2, 256*kib, 7)
	r.join(1)
	r.join(2)
	r.join(3)
	if got := r.fill(1, active, false); len(got) != 2 {
		t.Fatalf("peer 1 shown %v", got)
	}
	r.leave(1)
	got := r.fill(2, active, false)
	if len(got) != 2 {
		t.Fatalf("after peer 1 left, peer 2 shown %v, want both pieces", got)
	}
	r.have(2, got[0])
	r.fill(2, active, false)
	r.now = r.now.Add(SpreadTTL + time.Nanosecond)
	r.fill(2, active, false) // got[0] now stuck with peer 2
	r.have(3, got[1])
	if r.ss.Done() {
		t.Fatal("done with a piece stuck")
	}
	r.leave(2)
	if !r.ss.Done() {
		t.Fatal("not done after the peer holding the stuck piece left")
	}
}

// Super-seeding ends once every piece was announced by some peer, by
// have, bitfield or have-all; then every piece may be served, and Hidden
// lists what each peer was not shown and does not have.
func TestEndsOnceEveryPieceSeen(t *testing.T) {
	r := newRig(t, 8, 256*kib, 8)
	r.join(1)
	r.join(2)
	shown := r.fill(1, active, false)
	for x := range 7 {
		r.have(2, x)
		if r.ss.Done() {
			t.Fatalf("done after piece %d of 8", x)
		}
	}
	var want []int
	for x := range 8 {
		if !slices.Contains(shown, x) {
			want = append(want, x)
		}
	}
	if h := r.ss.Hidden(1); !slices.Equal(h, want) {
		t.Fatalf("hidden from peer 1: %v, want %v", h, want)
	}
	if h := r.ss.Hidden(2); !slices.Equal(h, []int{7}) {
		t.Fatalf("hidden from peer 2: %v, want [7]", h)
	}
	r.have(2, 7)
	if !r.ss.Done() {
		t.Fatal("not done with every piece seen")
	}
	if got := r.fill(1, rate(1<<30), true); got != nil {
		t.Fatalf("done, yet shown %v", got)
	}
	if !r.ss.MayServe(1, 7) || !r.ss.MayServe(42, 0) {
		t.Fatal("done, yet a request is refused")
	}

	r = newRig(t, 8, 256*kib, 8)
	bf := bitfield.New(8)
	for x := range 7 {
		bf.Set(x)
	}
	r.ss.OnBitfield(bf)
	if r.ss.Done() {
		t.Fatal("done after a bitfield lacking a piece")
	}
	r.ss.OnBitfield(bitfield.New(20)) // wrong length: ignored, no panic
	r.ss.OnHaveAll()
	if !r.ss.Done() {
		t.Fatal("not done after a have-all")
	}

	if ss := New(Config{Pieces: 0, PieceLength: 1, Swarm: r.pk}); !ss.Done() || ss.Fill(1, t0, active, 1) != nil {
		t.Fatal("a torrent of no pieces is super-seeded")
	}
}

// A request for a piece not revealed to the peer is refused, whatever it
// was revealed to others.
func TestMayServeRefusesUnrevealedPieces(t *testing.T) {
	r := newRig(t, 10, 256*kib, 9)
	r.join(1)
	r.join(2)
	if r.ss.MayServe(1, 0) || r.ss.MayServe(3, 0) {
		t.Fatal("a piece served before it was revealed")
	}
	got := r.fill(1, active, false)
	for x := range 10 {
		if r.ss.MayServe(1, x) != slices.Contains(got, x) {
			t.Fatalf("peer 1 shown %v, may be served piece %d: %v", got, x, r.ss.MayServe(1, x))
		}
		if r.ss.MayServe(2, x) {
			t.Fatalf("peer 2 may be served piece %d shown only to peer 1", x)
		}
	}
	if r.ss.MayServe(1, -1) || r.ss.MayServe(1, 10) {
		t.Fatal("a piece out of range may be served")
	}
	r.leave(1)
	if r.ss.MayServe(1, got[0]) {
		t.Fatal("a departed peer may be served")
	}
}

// A connection that has said nothing gets no offers; one that spoke but
// sent no bitfield gets them a second after it joined (BEP 3 lets a peer
// with nothing skip the bitfield).
func TestSilentPeerGetsNoOffers(t *testing.T) {
	r := newRig(t, 10, 256*kib, 10)
	r.join(1)
	silent := Peer{Joined: t0.Add(-time.Hour)}
	if got := r.fill(1, silent, true); got != nil {
		t.Fatalf("a silent peer shown %v", got)
	}
	quiet := Peer{Joined: t0, Spoke: true}
	if got := r.fill(1, quiet, true); got != nil {
		t.Fatalf("a peer that has not announced shown %v at once", got)
	}
	r.now = t0.Add(time.Second)
	if got := r.fill(1, quiet, false); len(got) == 0 {
		t.Fatal("a peer that spoke but announced nothing is shown nothing after a second")
	}
	r.join(2)
	if got := r.fill(2, Peer{Joined: r.now, Spoke: true, Announced: true}, false); len(got) == 0 {
		t.Fatal("a peer that announced is shown nothing")
	}
}

// The status dump says what is left, what is stuck, and what each peer
// holds.
func TestWriteStatus(t *testing.T) {
	r := newRig(t, 6, 256*kib, 11)
	r.join(1)
	r.join(2)
	held := r.fill(1, active, false)
	r.have(1, held...)
	r.fill(1, active, false)
	r.now = r.now.Add(SpreadTTL + time.Nanosecond)
	r.fill(1, active, false)
	r.fill(2, active, false)
	var b bytes.Buffer
	r.ss.WriteStatus(&b)
	out := b.String()
	for _, want := range []string{
		"4 of 6 pieces not yet seen in the swarm, 2 on offer, 2 stuck [",
		"peer 1: 0 on offer, 2 held unspread (2 stuck), 2 revealed",
		"peer 2: 2 on offer [",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	r.have(2, 0, 1, 2, 3, 4, 5)
	r.fill(1, active, false)
	b.Reset()
	r.ss.WriteStatus(&b)
	if !strings.Contains(b.String(), "done") {
		t.Errorf("status when done: %q", b.String())
	}
}

// A peer shown a piece that does not become interested within
// InterestTTL does not want it: the piece goes to another peer at once,
// not after OfferTTL, and the silent peer is shown nothing new until it
// asks or OfferTTL passes.
func TestOfferToUninterestedPeerLapses(t *testing.T) {
	r := newRig(t, 1, 256*kib, 12)
	r.join(1)
	r.join(2)
	silent := active
	silent.Interested = false
	if got := r.fill(1, silent, false); len(got) != 1 {
		t.Fatalf("peer 1 shown %v, want the one piece", got)
	}
	r.now = r.now.Add(InterestTTL)
	if got := r.fill(2, active, false); len(got) != 0 {
		t.Fatalf("at InterestTTL, peer 2 shown %v", got)
	}
	r.now = r.now.Add(time.Nanosecond)
	if got := r.fill(1, silent, false); len(got) != 0 {
		t.Fatalf("after its offer lapsed, peer 1 shown %v", got)
	}
	if got := r.fill(2, active, false); len(got) != 1 {
		t.Fatalf("after InterestTTL, peer 2 shown %v, want the piece", got)
	}
}

// A peer whose offer lapsed for want of interest does not keep another
// from being lone, until it becomes interested.
func TestLapsedPeerDoesNotCountAgainstLone(t *testing.T) {
	r := newRig(t, 100, 256*kib, 13)
	r.join(1)
	r.join(2)
	silent := active
	silent.Interested = false
	silent.Choked = true
	r.fill(1, silent, false)
	r.now = r.now.Add(InterestTTL + time.Nanosecond)
	r.fill(1, silent, false) // its offer lapses
	slow := active           // unchoked, rate 0: its own target is small unless lone
	if got := r.ss.Fill(2, r.now, slow, 2); len(got) != r.ss.target(slow, true) {
		t.Fatalf("beside a lapsed peer, peer 2 shown %d pieces, want a lone peer's %d", len(got), r.ss.target(slow, true))
	}
	silent.Interested = true
	r.fill(1, silent, false)
	if r.ss.lapsed != 0 {
		t.Fatalf("lapsed = %d after the peer became interested", r.ss.lapsed)
	}
}

// A peer that lets its offer lapse selected other files (or paused): it is
// shown every piece it lacks at once rather than one unwanted piece after
// another, holds no offer from then on, and what it was shown stays free
// to offer to the others.
func TestLapsedPeerShownEveryPiece(t *testing.T) {
	const n = 40
	r := newRig(t, n, 256*kib, 14)
	r.join(1)
	r.join(2)
	r.have(1, 5, 6)
	partial := active
	partial.Interested = false
	partial.Choked = true
	first := r.fill(1, partial, false)
	if len(first) != 1 {
		t.Fatalf("choked peer shown %v, want one piece", first)
	}
	r.now = r.now.Add(InterestTTL)
	if got := r.fill(1, partial, false); len(got) != 0 {
		t.Fatalf("at InterestTTL, peer 1 shown %v", got)
	}
	r.now = r.now.Add(time.Nanosecond)
	rest := r.fill(1, partial, false)
	if len(rest) != n-3 || slices.Contains(rest, first[0]) || slices.Contains(rest, 5) || slices.Contains(rest, 6) {
		t.Fatalf("after its offer lapsed, peer 1 shown %d pieces %v; want the %d it neither has nor was shown", len(rest), rest, n-3)
	}
	for x := range n {
		if !r.ss.MayServe(1, x) {
			t.Fatalf("piece %d shown to peer 1 but not to be served", x)
		}
	}
	partial.Interested = true
	partial.Choked = false
	r.now = r.now.Add(time.Second)
	if got := r.fill(1, partial, false); len(got) != 0 {
		t.Fatalf("an open peer was offered %v again", got)
	}
	if r.ss.lapsed != 0 {
		t.Fatalf("lapsed = %d for an open peer that is interested", r.ss.lapsed)
	}
	// Nothing is on offer to peer 1, so peer 2, lone beside it, may be
	// offered any piece no one has, its lapsed one included.
	if got := r.fill(2, active, true); len(got) != n-2 {
		t.Fatalf("peer 2 shown %d pieces, want the %d no peer has", len(got), n-2)
	}
	var sb strings.Builder
	r.ss.WriteStatus(&sb)
	if !strings.Contains(sb.String(), "peer 1: 0 on offer, 0 held unspread (0 stuck), 40 revealed, shown every piece") {
		t.Errorf("status does not say peer 1 was shown every piece:\n%s", sb.String())
	}
}
