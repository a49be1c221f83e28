package picker

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoal-p2p/shoal/piece/bitfield"
)

func newSelective(t testing.TB, prio []Priority, seq bool, have *bitfield.Bitfield) *Picker {
	t.Helper()
	p, err := New(Config{
		Pieces:     len(prio),
		BlocksIn:   constBlocks(2),
		Have:       have,
		Priority:   prio,
		Sequential: seq,
		Rand:       rand.New(rand.NewPCG(7, 11)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// finish delivers and verifies every block of the requests.
func finish(p *Picker, id PeerID, rs []Request) {
	for _, r := range rs {
		p.HandleBlock(id, r.Piece, r.Block)
	}
	for _, r := range rs {
		if p.Downloaded(r.Piece) && !p.Have(r.Piece) {
			p.HandlePieceVerified(r.Piece)
		}
	}
}

func TestSkippedPiecesNeverPicked(t *testing.T) {
	prio := []Priority{Skip, Normal, Skip, Normal, Skip, Skip}
	p := newSelective(t, prio, false, nil)
	if p.Missing() != 2 {
		t.Fatalf("Missing()=%d, want the 2 wanted pieces", p.Missing())
	}
	addPeer(t, p, 1, bits(6, span(0, 6)...))
	check(t, p)
	var got []Request
	for range 10 {
		rs := p.PickFor(1, nil, 100)
		got = append(got, rs...)
		finish(p, 1, rs)
		check(t, p)
	}
	ps := pieces(got)
	slices.Sort(ps)
	if want := []int{1, 1, 3, 3}; !slices.Equal(ps, want) {
		t.Fatalf("picked pieces %v, want %v (each block once, skipped pieces never)", ps, want)
	}
	if !p.Complete() || p.Endgame() {
		t.Fatalf("Complete()=%v Endgame()=%v after every wanted piece", p.Complete(), p.Endgame())
	}
	if p.Interesting(1) {
		t.Fatal("a peer with only skipped pieces left is still interesting")
	}
	// A block of a skipped piece that arrives anyway is not wanted.
	if _, ok := p.HandleBlock(1, 0, 0); ok {
		t.Fatal("block of a skipped piece accepted")
	}
	if p.Downloaded(0) || p.Have(0) {
		t.Fatal("skipped piece reported downloaded or had")
	}
	// A skipped piece found verified on disk is had, and nothing else moves.
	p.HandlePieceVerified(4)
	check(t, p)
	if !p.Have(4) || !p.HaveBitfield().Has(4) {
		t.Fatal("verified skipped piece not had")
	}
}

func TestOnlySkippedPeerNotInteresting(t *testing.T) {
	p := newSelective(t, []Priority{Skip, Normal, Skip}, false, nil)
	addPeer(t, p, 1, bits(3, 0, 2))
	if p.Interesting(1) {
		t.Fatal("peer with only skipped pieces is interesting")
	}
	if rs := p.PickFor(1, nil, 10); len(rs) != 0 {
		t.Fatalf("picked %v from a peer with only skipped pieces", rs)
	}
	if err := p.HandleHave(1, 1); err != nil {
		t.Fatal(err)
	}
	if !p.Interesting(1) {
		t.Fatal("peer with a wanted piece not interesting")
	}
	p.HandleWithdraw(1, 2)
	p.HandleWithdraw(1, 1)
	check(t, p)
	if p.Interesting(1) {
		t.Fatal("interest left after withdrawals")
	}
}

func TestHigherPriorityFirst(t *testing.T) {
	// Pieces 6 and 2 are high; 4 is rarer but only normal.
	prio := []Priority{Normal, Low, High, Normal, Normal, Low, Highest, Normal}
	p := newSelective(t, prio, false, nil)
	addPeer(t, p, 1, bits(8, span(0, 8)...))
	addPeer(t, p, 2, bits(8, 0, 1, 2, 3, 5, 6, 7)) // 4 is rarest
	var order []int
	for range 8 {
		rs := p.PickFor(1, nil, 2) // one piece at a time
		if len(rs) == 0 {
			break
		}
		order = append(order, rs[0].Piece)
		finish(p, 1, rs)
		check(t, p)
	}
	if len(order) != 8 {
		t.Fatalf("picked %v, want all 8 pieces", order)
	}
	if order[0] != 6 || order[1] != 2 {
		t.Fatalf("order %v: want Highest 6 then High 2 first", order)
	}
	if order[2] != 4 {
		t.Fatalf("order %v: among Normal pieces the rarest (4) first", order)
	}
	if last := order[6:]; !slices.Contains(last, 1) || !slices.Contains(last, 5) {
		t.Fatalf("order %v: Low pieces 1 and 5 last", order)
	}
}

func TestSequentialOrder(t *testing.T) {
	prio := []Priority{Normal, Skip, Normal, Normal, Normal, Normal, Normal, Normal}
	have := bits(8, 3)
	p := newSelective(t, prio, true, have)
	addPeer(t, p, 1, bits(8, span(0, 8)...))
	addPeer(t, p, 2, bits(8, 0, 2, 3, 4, 6)) // rarity must not matter
	var order []int
	for range 10 {
		rs := p.PickFor(1, nil, 2)
		if len(rs) == 0 {
			break
		}
		order = append(order, rs[0].Piece)
		finish(p, 1, rs)
		check(t, p)
	}
	if want := []int{0, 2, 4, 5, 6, 7}; !slices.Equal(order, want) {
		t.Fatalf("sequential order %v, want %v", order, want)
	}
}

func TestSequentialReturnsToReleasedPiece(t *testing.T) {
	p := newSelective(t, []Priority{Normal, Normal, Normal, Normal}, true, nil)
	addPeer(t, p, 1, bits(4, span(0, 4)...))
	addPeer(t, p, 2, bits(4, span(0, 4)...))
	if rs := p.PickFor(1, nil, 2); !slices.Equal(pieces(rs), []int{0, 0}) {
		t.Fatalf("first pick %v, want piece 0", rs)
	}
	if rs := p.PickFor(2, nil, 2); !slices.Equal(pieces(rs), []int{1, 1}) {
		t.Fatalf("second pick %v, want piece 1", rs)
	}
	// Peer 1 goes away: piece 0 is released and comes before piece 2.
	p.HandleDisconnect(1)
	check(t, p)
	if rs := p.PickFor(2, nil, 2); !slices.Equal(pieces(rs), []int{0, 0}) {
		t.Fatalf("after release picked %v, want piece 0 again", rs)
	}
}

func TestSequentialWithPriority(t *testing.T) {
	p := newSelective(t, []Priority{Normal, Normal, High, Normal, High}, true, nil)
	addPeer(t, p, 1, bits(5, span(0, 5)...))
	var order []int
	for range 6 {
		rs := p.PickFor(1, nil, 2)
		if len(rs) == 0 {
			break
		}
		order = append(order, rs[0].Piece)
		finish(p, 1, rs)
	}
	if want := []int{2, 4, 0, 1, 3}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestPriorityValidated(t *testing.T) {
	for _, prio := range [][]Priority{{Normal}, {Normal, Highest + 1, Normal}} {
		if _, err := New(Config{Pieces: 3, BlocksIn: constBlocks(1), Priority: prio}); err == nil {
			t.Fatalf("priority %v accepted", prio)
		}
	}
}

func TestPickSelectiveNoAlloc(t *testing.T) {
	prio := make([]Priority, 512)
	for i := range prio {
		prio[i] = Priority(i%3 + 1)
	}
	p := newSelective(t, prio, true, nil)
	addPeer(t, p, 1, bits(512, span(0, 512)...))
	buf := make([]Request, 0, 8)
	allocs := testing.AllocsPerRun(50, func() {
		rs := p.PickFor(1, buf[:0], 2)
		for _, r := range rs {
			p.HandleBlock(1, r.Piece, r.Block)
		}
		if len(rs) > 0 {
			p.HandlePieceVerified(rs[0].Piece)
		}
	})
	// pieceStates are pooled after the first few; per-request map entries
	// of the peer are the picker's existing cost, not this path's.
	if allocs > 1 {
		t.Fatalf("%.1f allocations per pick", allocs)
	}
}

// TestSetPrioritiesAtRuntime changes the selection while a peer is
// connected and a piece is under way: pieces newly unwanted are never
// picked, pieces newly wanted are, the started piece finishes, and every
// count the picker keeps stays consistent (check).
func TestSetPrioritiesAtRuntime(t *testing.T) {
	p := newSelective(t, []Priority{Skip, Normal, Normal, Skip, Normal, Skip}, false, nil)
	addPeer(t, p, 1, bits(6, span(0, 6)...))
	check(t, p)
	// Start one piece: one block of it only.
	rs := p.PickFor(1, nil, 1)
	if len(rs) != 1 {
		t.Fatalf("picked %v", rs)
	}
	started := rs[0].Piece
	p.HandleBlock(1, started, rs[0].Block)
	check(t, p)
	// Now want 0 and 3 (High) instead of 1, 2 and 4, except the one started.
	prio := []Priority{High, Skip, Skip, High, Skip, Skip}
	if err := p.SetPriorities(prio); err != nil {
		t.Fatal(err)
	}
	check(t, p)
	if got, want := p.Missing(), 3; got != want {
		t.Fatalf("Missing()=%d, want %d (two new pieces and the started one)", got, want)
	}
	if !p.Interesting(1) {
		t.Fatal("peer with newly wanted pieces not interesting")
	}
	var got []Request
	for range 10 {
		rs := p.PickFor(1, nil, 100)
		got = append(got, rs...)
		finish(p, 1, rs)
		check(t, p)
	}
	finish(p, 1, []Request{rs[0]})
	ps := pieces(got)
	slices.Sort(ps)
	want := []int{0, 0, 3, 3, started}
	slices.Sort(want)
	if !slices.Equal(ps, want) {
		t.Fatalf("picked %v after the change, want %v", ps, want)
	}
	if !p.Complete() {
		t.Fatalf("not Complete after the new selection; missing %d", p.Missing())
	}
	// Back to everything: the rest is wanted again.
	if err := p.SetPriorities(nil); err != nil {
		t.Fatal(err)
	}
	check(t, p)
	if p.Complete() || p.Missing() != 3 {
		t.Fatalf("Missing()=%d after selecting all, want 3", p.Missing())
	}
	if err := p.SetPriorities(make([]Priority, 5)); err == nil {
		t.Fatal("wrong length accepted")
	}
}

// TestSetPrioritiesSkipsEmptiedActivePiece unselects a started piece whose
// only request is then rejected: it leaves the download instead of coming
// back to selection.
func TestSetPrioritiesSkipsEmptiedActivePiece(t *testing.T) {
	p := newSelective(t, []Priority{Normal, Normal}, false, nil)
	addPeer(t, p, 1, bits(2, span(0, 2)...))
	rs := p.PickFor(1, nil, 1)
	if err := p.SetPriorities([]Priority{Skip, Skip}); err != nil {
		t.Fatal(err)
	}
	check(t, p)
	p.HandleTimeout(1, rs[0].Piece, rs[0].Block)
	check(t, p)
	if !p.Complete() || p.Interesting(1) {
		t.Fatalf("Complete()=%v Interesting=%v once the started piece emptied", p.Complete(), p.Interesting(1))
	}
	if rs := p.PickFor(1, nil, 100); len(rs) != 0 {
		t.Fatalf("picked %v with nothing selected", rs)
	}
}
