package picker

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoal-p2p/shoal/piece/bitfield"
)

func newPicker(t testing.TB, pieces int, blocks func(int) int, have *bitfield.Bitfield, seed uint64) *Picker {
	t.Helper()
	p, err := New(Config{
		Pieces:   pieces,
		BlocksIn: blocks,
		Have:     have,
		Rand:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func constBlocks(n int) func(int) int { return func(int) int { return n } }

func bits(n int, set ...int) *bitfield.Bitfield {
	f := bitfield.New(n)
	for _, i := range set {
		f.Set(i)
	}
	return f
}

func span(lo, hi int) []int {
	var s []int
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func addPeer(t testing.TB, p *Picker, id PeerID, bf *bitfield.Bitfield) {
	t.Helper()
	if err := p.HandleBitfield(id, bf); err != nil {
		t.Fatal(err)
	}
	p.HandleUnchoke(id)
}

func pieces(rs []Request) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.Piece)
	}
	return s
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Pieces: -1},
		{Pieces: 2},
		{Pieces: 2, BlocksIn: constBlocks(0)},
		{Pieces: 2, BlocksIn: constBlocks(1), Have: bitfield.New(3)},
		{Pieces: 2, BlocksIn: constBlocks(1), EndgameRequests: MaxEndgameRequests + 1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestZeroValue(t *testing.T) {
	var p Picker
	p.HandleHaveAll(1)
	p.HandleUnchoke(1)
	if got := p.PickFor(1, nil, 10); len(got) != 0 {
		t.Fatalf("zero picker picked %v", got)
	}
	if !p.Complete() || p.Endgame() || p.Interesting(1) {
		t.Fatal("zero picker should be a complete empty torrent")
	}
	if err := p.HandleHave(1, 0); err == nil {
		t.Fatal("have out of range accepted")
	}
	if _, ok := p.HandleBlock(1, 0, 0); ok {
		t.Fatal("block out of range accepted")
	}
	p.HandleDisconnect(1)
}

func TestRarestFirst(t *testing.T) {
	const n = 10
	p := newPicker(t, n, constBlocks(1), nil, 1)
	addPeer(t, p, 1, bits(n, span(0, 10)...)) // availability: 0-2 → 3, 3-4 → 2, 5-9 → 1
	addPeer(t, p, 2, bits(n, span(0, 5)...))
	addPeer(t, p, 3, bits(n, span(0, 3)...))

	// Peer 2's rarest pieces are 3 and 4.
	got := pieces(p.PickFor(2, nil, 2))
	slices.Sort(got)
	if !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("peer 2 picked %v, want [3 4]", got)
	}
	check(t, p)
	// Peer 1 must take the pieces only it has, then the remaining.
	got = pieces(p.PickFor(1, nil, 8))
	if len(got) != 8 {
		t.Fatalf("peer 1 picked %v", got)
	}
	first := slices.Sorted(slices.Values(got[:5]))
	rest := slices.Sorted(slices.Values(got[5:]))
	if !slices.Equal(first, span(5, 10)) || !slices.Equal(rest, span(0, 3)) {
		t.Fatalf("peer 1 picked %v, want 5-9 before 0-2", got)
	}
	check(t, p)
}

func TestRarestFollowsAvailabilityChanges(t *testing.T) {
	const n = 4
	p := newPicker(t, n, constBlocks(1), nil, 1)
	addPeer(t, p, 1, bits(n, 0, 1, 2, 3))
	for _, id := range []PeerID{2, 3} {
		addPeer(t, p, id, bits(n, 0, 1, 2))
	}
	// Availability 0-2 → 3, 3 → 1. Haves raise piece 3 to 3; disconnects
	// and a newcomer's haves leave 0,1 → 2 and 2,3 → 1.
	for _, id := range []PeerID{2, 3} {
		if err := p.HandleHave(id, 3); err != nil {
			t.Fatal(err)
		}
	}
	p.HandleDisconnect(3)
	check(t, p)
	if p.Availability(3) != 2 || p.Availability(0) != 2 {
		t.Fatalf("availability %d %d", p.Availability(3), p.Availability(0))
	}
	p.HandleDisconnect(2)
	if err := p.HandleHave(4, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleHave(4, 1); err != nil {
		t.Fatal(err)
	}
	got := pieces(p.PickFor(1, nil, 2))
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("picked %v, want [2 3]", got)
	}
	check(t, p)
}

// spread picks one single-block piece at a time and releases it again, so
// every pick is a fresh rarest-first decision among equally rare pieces.
func spread(t *testing.T, p *Picker, id PeerID, rounds int) map[int]int {
	counts := map[int]int{}
	for range rounds {
		rs := p.PickFor(id, nil, 1)
		if len(rs) != 1 {
			t.Fatalf("picked %v", rs)
		}
		counts[rs[0].Piece]++
		p.HandleReject(id, rs[0].Piece, rs[0].Block)
	}
	check(t, p)
	return counts
}

func TestTieBreakSpreadsBucketScan(t *testing.T) {
	const n, rounds = 20, 4000
	p := newPicker(t, n, constBlocks(1), nil, 7)
	addPeer(t, p, 1, bits(n, span(0, n)...))
	counts := spread(t, p, 1, rounds)
	// Expect 200 each. The seed is fixed, so this is deterministic; the
	// bounds are loose enough to hold for any reasonable seed.
	for x := range n {
		if c := counts[x]; c < 100 || c > 300 {
			t.Errorf("piece %d chosen %d times of %d: %v", x, c, rounds, counts)
		}
	}
}

func TestTieBreakSpreadsBitScan(t *testing.T) {
	// A peer with 10 useful pieces out of 10000 takes the bitfield walk.
	const n, rounds = 10000, 2000
	p := newPicker(t, n, constBlocks(1), nil, 9)
	addPeer(t, p, 1, bits(n, span(0, n)...))
	mine := []int{3, 500, 501, 2000, 4095, 4096, 7000, 8191, 9000, 9999}
	addPeer(t, p, 2, bits(n, mine...))
	p.HandleHave(3, 9999) // one piece more common: never chosen while others are rarer
	counts := spread(t, p, 2, rounds)
	if counts[9999] != 0 {
		t.Errorf("more common piece chosen %d times", counts[9999])
	}
	for _, x := range mine[:9] {
		if c := counts[x]; c < 2000/9/2 || c > 2000/9*2 {
			t.Errorf("piece %d chosen %d times: %v", x, c, counts)
		}
	}
}

func TestStartedPiecesFinishedFirst(t *testing.T) {
	const n = 6
	p := newPicker(t, n, constBlocks(4), nil, 3)
	addPeer(t, p, 1, bits(n, span(0, n)...))
	addPeer(t, p, 2, bits(n, span(0, n)...))
	addPeer(t, p, 3, bits(n, 5)) // make 0-4 rarer than 5
	p.HandleDisconnect(3)
	a := p.PickFor(1, nil, 2)
	if len(a) != 2 || a[0].Piece != a[1].Piece {
		t.Fatalf("peer 1 picked %v", a)
	}
	started := a[0].Piece
	// Receive one block, so the piece is partly downloaded, then peer 2
	// must finish it before starting anything.
	if _, ok := p.HandleBlock(1, started, a[0].Block); !ok {
		t.Fatal("block rejected")
	}
	b := p.PickFor(2, nil, 3)
	if len(b) != 3 || b[0].Piece != started || b[1].Piece != started || b[2].Piece == started {
		t.Fatalf("peer 2 picked %v, want the 2 remaining blocks of %d then a new piece", b, started)
	}
	check(t, p)
}

func TestEndgame(t *testing.T) {
	p := newPicker(t, 1, constBlocks(2), nil, 1)
	for id := PeerID(1); id <= 3; id++ {
		addPeer(t, p, id, bits(1, 0))
	}
	if got := p.PickFor(1, nil, 5); len(got) != 2 {
		t.Fatalf("peer 1 picked %v", got)
	}
	if !p.Endgame() {
		t.Fatal("not in endgame with every block requested")
	}
	if got := p.PickFor(1, nil, 5); len(got) != 0 {
		t.Fatalf("peer 1 asked twice for the same blocks: %v", got)
	}
	if got := p.PickFor(2, nil, 5); len(got) != 2 {
		t.Fatalf("peer 2 endgame picked %v", got)
	}
	if got := p.PickFor(3, nil, 5); len(got) != 0 {
		t.Fatalf("peer 3 exceeded EndgameRequests: %v", got)
	}
	check(t, p)
	cancel, ok := p.HandleBlock(1, 0, 0)
	if !ok || !slices.Equal(cancel, []PeerID{2}) {
		t.Fatalf("HandleBlock = %v, %v; want [2], true", cancel, ok)
	}
	if p.Outstanding(2) != 1 || p.Outstanding(1) != 1 {
		t.Fatalf("outstanding %d %d", p.Outstanding(1), p.Outstanding(2))
	}
	if _, ok := p.HandleBlock(2, 0, 0); ok {
		t.Fatal("duplicate block accepted")
	}
	cancel, ok = p.HandleBlock(2, 0, 1)
	if !ok || !slices.Equal(cancel, []PeerID{1}) {
		t.Fatalf("HandleBlock = %v, %v; want [1], true", cancel, ok)
	}
	if !p.Downloaded(0) || p.Outstanding(1) != 0 {
		t.Fatal("piece not downloaded")
	}
	check(t, p)
	p.HandlePieceVerified(0)
	if !p.Complete() || p.Endgame() || p.Interesting(1) {
		t.Fatal("not complete")
	}
	check(t, p)
}

func TestEndgameWaitsForAllBlocks(t *testing.T) {
	p := newPicker(t, 2, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(2, 0, 1))
	addPeer(t, p, 2, bits(2, 0, 1))
	p.PickFor(1, nil, 3)
	if p.Endgame() {
		t.Fatal("endgame with a block unrequested")
	}
	got := p.PickFor(2, nil, 5)
	// One free block, then duplicates of the three peer 1 holds.
	if len(got) != 4 || !p.Endgame() {
		t.Fatalf("peer 2 picked %v, endgame %v", got, p.Endgame())
	}
	check(t, p)
}

// Every block the swarm offers is requested, but a piece nobody has yet is
// still missing: that is a starved swarm, not the endgame, and asking a
// second peer for the same blocks would only waste its upload.
func TestNoEndgameWhilePiecesAreUnavailable(t *testing.T) {
	p := newPicker(t, 2, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(2, 0))
	addPeer(t, p, 2, bits(2, 0))
	if got := p.PickFor(1, nil, 5); len(got) != 2 {
		t.Fatalf("peer 1 picked %v", got)
	}
	if p.Endgame() {
		t.Fatal("endgame while piece 1 is on no peer")
	}
	if got := p.PickFor(2, nil, 5); len(got) != 0 {
		t.Fatalf("peer 2 duplicated requests outside the endgame: %v", got)
	}
	check(t, p)
}

// A fast peer's choke keeps our requests alive (BEP 6): they stay
// outstanding, nothing new is picked, and the blocks are still accepted.
func TestFastChokeKeepsRequests(t *testing.T) {
	p := newPicker(t, 1, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(1, 0))
	p.PickFor(1, nil, 5)
	p.HandleFastChoke(1)
	if p.Outstanding(1) != 2 {
		t.Fatalf("outstanding after a fast choke: %d, want 2", p.Outstanding(1))
	}
	if got := p.PickFor(1, nil, 5); len(got) != 0 {
		t.Fatalf("picked %v for a choking peer", got)
	}
	if _, ok := p.HandleBlock(1, 0, 1); !ok {
		t.Fatal("block requested before the choke refused")
	}
	check(t, p)
}

func TestDisconnectReleases(t *testing.T) {
	p := newPicker(t, 3, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(3, 0, 1, 2))
	addPeer(t, p, 2, bits(3, 0, 1, 2))
	a := p.PickFor(1, nil, 4)
	p.HandleBlock(1, a[0].Piece, a[0].Block)
	p.HandleDisconnect(1)
	check(t, p)
	if p.Availability(0) != 1 || p.Outstanding(1) != 0 || p.Interesting(1) {
		t.Fatal("disconnect left state behind")
	}
	// Peer 2 gets the released block of the started piece first, then
	// every other block including the ones peer 1 held.
	b := p.PickFor(2, nil, 10)
	if len(b) != 5 || b[0] != a[1] {
		t.Fatalf("peer 2 picked %v after peer 1 held %v", b, a)
	}
	for _, r := range a[1:] {
		if !slices.Contains(b, r) {
			t.Fatalf("released request %v not re-picked: %v", r, b)
		}
	}
	check(t, p)
	// The ID may be reused.
	addPeer(t, p, 1, bits(3, 2))
	if p.Availability(2) != 2 || p.Availability(0) != 1 {
		t.Fatal("reused id availability wrong")
	}
	check(t, p)
}

func TestChokeReleases(t *testing.T) {
	p := newPicker(t, 2, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(2, 0, 1))
	addPeer(t, p, 2, bits(2, 0, 1))
	a := p.PickFor(1, nil, 2)
	p.HandleChoke(1)
	check(t, p)
	if p.Outstanding(1) != 0 {
		t.Fatal("choke kept requests")
	}
	if got := p.PickFor(1, nil, 2); len(got) != 0 {
		t.Fatalf("choked peer got %v", got)
	}
	b := p.PickFor(2, nil, 4)
	if len(b) != 4 {
		t.Fatalf("peer 2 picked %v", b)
	}
	for _, r := range a {
		if !slices.Contains(b, r) {
			t.Fatalf("released %v not re-picked: %v", r, b)
		}
	}
	p.HandleUnchoke(1)
	if got := p.PickFor(1, nil, 8); len(got) != 4 || !p.Endgame() {
		t.Fatalf("unchoked peer in endgame picked %v", got)
	}
	check(t, p)
}

func TestRejectAndTimeoutRelease(t *testing.T) {
	p := newPicker(t, 1, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(1, 0))
	addPeer(t, p, 2, bits(1, 0))
	a := p.PickFor(1, nil, 2)
	p.HandleReject(1, a[0].Piece, a[0].Block)
	p.HandleTimeout(1, a[1].Piece, a[1].Block)
	p.HandleReject(1, 0, 0) // not outstanding: ignored
	check(t, p)
	if p.Outstanding(1) != 0 || p.Endgame() {
		t.Fatal("requests not released")
	}
	if got := p.PickFor(2, nil, 2); len(got) != 2 {
		t.Fatalf("peer 2 picked %v", got)
	}
	// A late answer to the timed-out request is still accepted, and the
	// peer now holding it is told to cancel.
	cancel, ok := p.HandleBlock(1, a[1].Piece, a[1].Block)
	if !ok || !slices.Equal(cancel, []PeerID{2}) {
		t.Fatalf("late block: %v %v", cancel, ok)
	}
	check(t, p)
}

func TestFailedPieceRerequested(t *testing.T) {
	p := newPicker(t, 1, constBlocks(3), nil, 1)
	addPeer(t, p, 1, bits(1, 0))
	for _, r := range p.PickFor(1, nil, 3) {
		p.HandleBlock(1, r.Piece, r.Block)
	}
	if !p.Downloaded(0) {
		t.Fatal("not downloaded")
	}
	if got := p.PickFor(1, nil, 3); len(got) != 0 {
		t.Fatalf("picked %v from a downloaded piece", got)
	}
	p.HandlePieceFailed(0)
	check(t, p)
	if p.Downloaded(0) || p.Endgame() {
		t.Fatal("failed piece still downloaded")
	}
	got := p.PickFor(1, nil, 5)
	if len(got) != 3 {
		t.Fatalf("re-picked %v", got)
	}
	check(t, p)
}

func TestNeverSameBlockTwiceToSamePeer(t *testing.T) {
	p := newPicker(t, 3, constBlocks(3), nil, 1)
	addPeer(t, p, 1, bits(3, 0, 1, 2))
	addPeer(t, p, 2, bits(3, 0, 1, 2))
	seen := map[PeerID]map[Request]bool{1: {}, 2: {}}
	for range 5 {
		for _, id := range []PeerID{1, 2} {
			for _, r := range p.PickFor(id, nil, 4) {
				if seen[id][r] {
					t.Fatalf("peer %d asked twice for %v", id, r)
				}
				seen[id][r] = true
			}
		}
	}
	if len(seen[1])+len(seen[2]) != 2*9 {
		t.Fatalf("endgame should have asked both peers for all 9 blocks, got %d+%d", len(seen[1]), len(seen[2]))
	}
	check(t, p)
}

func TestShortPiecesPerFile(t *testing.T) {
	// Two files, piece length 4 blocks: file A is 10 blocks (pieces 0-2,
	// the last of 2 blocks), file B is 5 blocks (pieces 3-4, last of 1).
	sizes := []int{4, 4, 2, 4, 1}
	p := newPicker(t, len(sizes), func(i int) int { return sizes[i] }, nil, 1)
	addPeer(t, p, 1, bits(len(sizes), span(0, len(sizes))...))
	got := p.PickFor(1, nil, 100)
	if len(got) != 15 {
		t.Fatalf("picked %d blocks, want 15", len(got))
	}
	per := make([]int, len(sizes))
	for _, r := range got {
		if r.Block >= sizes[r.Piece] {
			t.Fatalf("block %v beyond piece", r)
		}
		per[r.Piece]++
	}
	if !slices.Equal(per, sizes) {
		t.Fatalf("blocks per piece %v, want %v", per, sizes)
	}
	for _, r := range got {
		p.HandleBlock(1, r.Piece, r.Block)
	}
	for i := range sizes {
		if !p.Downloaded(i) {
			t.Fatalf("piece %d not downloaded", i)
		}
		p.HandlePieceVerified(i)
	}
	if !p.Complete() {
		t.Fatal("not complete")
	}
	check(t, p)
}

func TestHavePiecesNeverPicked(t *testing.T) {
	const n = 50
	have := bits(n)
	for i := 0; i < n; i += 3 {
		have.Set(i)
	}
	p := newPicker(t, n, constBlocks(2), have, 1)
	addPeer(t, p, 1, bits(n, span(0, n)...))
	addPeer(t, p, 2, bits(n, 0, 3, 6))
	if p.Interesting(2) {
		t.Fatal("peer with only pieces we have is interesting")
	}
	if got := p.PickFor(2, nil, 10); len(got) != 0 {
		t.Fatalf("picked %v", got)
	}
	for _, r := range p.PickFor(1, nil, 1000) {
		if have.Has(r.Piece) {
			t.Fatalf("picked piece %d we have", r.Piece)
		}
	}
	if !p.HaveBitfield().Has(3) || p.HaveBitfield().Count() != have.Count() {
		t.Fatal("HaveBitfield wrong")
	}
	check(t, p)
}

func TestBitfieldLengthChecked(t *testing.T) {
	p := newPicker(t, 9, constBlocks(1), nil, 1)
	if err := p.HandleBitfield(1, bitfield.New(8)); err == nil {
		t.Fatal("wrong-length bitfield accepted")
	}
	if err := p.HandleHave(1, 9); err == nil {
		t.Fatal("have out of range accepted")
	}
}

func TestUnsolicitedBlockStartsPiece(t *testing.T) {
	p := newPicker(t, 3, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(3, 0, 1, 2))
	if _, ok := p.HandleBlock(1, 2, 1); !ok {
		t.Fatal("unsolicited block of a missing piece rejected")
	}
	check(t, p)
	if got := p.PickFor(1, nil, 1); len(got) != 1 || got[0] != (Request{2, 0}) {
		t.Fatalf("picked %v, want the rest of the started piece", got)
	}
	check(t, p)
}

func TestVerifiedWithRequestsOutstanding(t *testing.T) {
	// E.g. the piece was found complete on disk by another path.
	p := newPicker(t, 2, constBlocks(4), nil, 1)
	addPeer(t, p, 1, bits(2, 0, 1))
	addPeer(t, p, 2, bits(2, 0, 1))
	a := p.PickFor(1, nil, 2)
	p.PickFor(2, nil, 2)
	p.HandlePieceVerified(a[0].Piece)
	check(t, p)
	if p.Outstanding(1) != 0 || p.Outstanding(2) != 0 || !p.Have(a[0].Piece) {
		t.Fatal("requests of a verified piece kept")
	}
	if _, ok := p.HandleBlock(1, a[0].Piece, a[0].Block); ok {
		t.Fatal("block of a verified piece accepted")
	}
	if got := p.PickFor(1, nil, 8); len(got) != 4 || got[0].Piece == a[0].Piece {
		t.Fatalf("picked %v", got)
	}
	check(t, p)
}

// A peer that refuses a piece it announced is not asked for it again
// until it announces it anew; the piece goes to other peers meanwhile.
func TestWithdrawnPieceNotAskedAgain(t *testing.T) {
	p := newPicker(t, 2, constBlocks(2), nil, 1)
	addPeer(t, p, 1, bits(2, 0, 1))
	a := p.PickFor(1, nil, 1)
	if len(a) != 1 {
		t.Fatalf("picked %v", a)
	}
	x := a[0].Piece
	p.HandleReject(1, x, a[0].Block)
	p.HandleWithdraw(1, x)
	p.HandleWithdraw(1, x) // twice: no double count
	check(t, p)
	if p.PeerHas(1, x) || p.Availability(x) != 0 {
		t.Fatalf("piece %d still counted at the peer", x)
	}
	for _, r := range p.PickFor(1, nil, 8) {
		if r.Piece == x {
			t.Fatalf("withdrawn piece %d asked of the same peer again: %v", x, r)
		}
	}
	check(t, p)
	addPeer(t, p, 2, bits(2, 0, 1))
	if got := p.PickFor(2, nil, 8); len(got) == 0 || got[0].Piece != x {
		t.Fatalf("another peer is not given the withdrawn piece: %v", got)
	}
	if err := p.HandleHave(1, x); err != nil {
		t.Fatal(err)
	}
	check(t, p)
	if !p.PeerHas(1, x) || p.Availability(x) != 2 {
		t.Fatal("a have does not bring the piece back")
	}
	p.HandleWithdraw(1, x)
	p.HandleDisconnect(1)
	check(t, p)
	p.HandleWithdraw(9, 0)  // unknown peer: ignored
	p.HandleWithdraw(2, 99) // out of range: ignored
	check(t, p)
}

// A peer that chokes us is asked only for its allowed-fast pieces (BEP 6),
// started ones first; after an unchoke, for anything; a revoked piece is
// not asked for again while it chokes us.
func TestAllowedFastWhileChoked(t *testing.T) {
	p := newPicker(t, 8, constBlocks(2), bits(8, 6), 1)
	if err := p.HandleBitfield(1, bits(8, span(0, 8)...)); err != nil {
		t.Fatal(err)
	}
	if got := p.PickFor(1, nil, 10); len(got) != 0 {
		t.Fatalf("choking peer with no allowed-fast pieces asked for %v", got)
	}
	// 6 we have; 5 peer 2 is about to start; 3 twice counts once.
	for _, pc := range []int{3, 6, 5, 3} {
		if err := p.HandleAllowedFast(1, pc); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.HandleAllowedFast(1, 8); err == nil {
		t.Error("allowed fast past the last piece accepted")
	}
	addPeer(t, p, 2, bits(8, 5))
	if got := p.PickFor(2, nil, 1); len(got) != 1 || got[0] != (Request{5, 0}) {
		t.Fatalf("peer 2 picked %v, want block 0 of piece 5", got)
	}
	got := p.PickFor(1, nil, 10)
	if want := []Request{{5, 1}, {3, 0}, {3, 1}}; !slices.Equal(got, want) {
		t.Fatalf("choking peer asked for %v, want %v: the started allowed piece, then the new one", got, want)
	}
	check(t, p)
	p.HandleReject(1, 3, 0)
	p.HandleReject(1, 3, 1)
	p.RevokeAllowedFast(1, 3)
	if got := p.PickFor(1, nil, 10); len(got) != 0 {
		t.Fatalf("revoked allowed-fast piece asked for again: %v", got)
	}
	p.HandleUnchoke(1)
	if got := p.PickFor(1, nil, 12); len(got) != 12 || slices.Contains(pieces(got), 6) {
		t.Fatalf("unchoked: picked %v, want the 12 free blocks of pieces we lack", got)
	}
	check(t, p)
}

// The allowed-fast set is bounded, reused across connections, and picking
// from it allocates nothing.
func TestAllowedFastBounded(t *testing.T) {
	p := newPicker(t, 1000, constBlocks(1), nil, 1)
	p.HandleHaveAll(1)
	for pc := range 1000 {
		if err := p.HandleAllowedFast(1, pc); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.lookup(1).fast); n != MaxAllowedFast {
		t.Fatalf("kept %d allowed-fast pieces, want %d", n, MaxAllowedFast)
	}
	dst := make([]Request, 0, 8)
	allocs := testing.AllocsPerRun(20, func() {
		dst = p.PickFor(1, dst[:0], 1)
		for _, r := range dst {
			p.HandleReject(1, r.Piece, r.Block)
		}
	})
	if allocs != 0 {
		t.Errorf("PickFor while choked allocates %v times", allocs)
	}
	p.HandleDisconnect(1)
	p.HandleHaveAll(2) // reuses the pooled peer
	if got := p.PickFor(2, nil, 5); len(got) != 0 {
		t.Fatalf("a new peer inherited allowed-fast pieces: %v", got)
	}
	check(t, p)
}
