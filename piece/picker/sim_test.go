package picker

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// simPeer is the remote side as the swarm would see it: the requests it
// has been sent and not yet answered, in order.
type simPeer struct {
	inflight []Request
	choking  bool
}

func (s *simPeer) remove(r Request) bool {
	if i := slices.Index(s.inflight, r); i >= 0 {
		s.inflight = slices.Delete(s.inflight, i, i+1)
		return true
	}
	return false
}

// TestSimulation drives the picker the way a swarm would, with random
// events from a seeded source, and checks that every piece is verified
// exactly once and every block is accepted exactly once per attempt at its
// piece.
func TestSimulation(t *testing.T) {
	for seed := uint64(1); seed <= 24; seed++ {
		simulate(t, seed)
	}
}

func simulate(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	n := 40 + rng.IntN(80)
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 4
		if rng.IntN(4) == 0 { // a file boundary: short piece
			sizes[i] = 1 + rng.IntN(4)
		}
	}
	have := bitfield.New(n)
	for i := range n {
		if rng.IntN(10) == 0 {
			have.Set(i)
		}
	}
	p, err := New(Config{
		Pieces:          n,
		BlocksIn:        func(i int) int { return sizes[i] },
		Have:            have,
		EndgameRequests: 1 + rng.IntN(MaxEndgameRequests),
		Rand:            rand.New(rand.NewPCG(seed, 7)),
	})
	if err != nil {
		t.Fatal(err)
	}

	const K = 8
	depth := 1 + rng.IntN(12)
	peers := map[PeerID]*simPeer{}
	connect := func(id PeerID) {
		bf := bitfield.New(n)
		density := rng.Float64()
		for i := range n {
			if rng.Float64() < density {
				bf.Set(i)
			}
		}
		if id == 0 { // one seeder that never leaves guarantees progress
			bf.SetAll()
		}
		switch {
		case bf.All() && rng.IntN(2) == 0:
			p.HandleHaveAll(id)
		case bf.Count() == 0:
			p.HandleHaveNone(id)
		default:
			if err := p.HandleBitfield(id, bf); err != nil {
				t.Fatal(err)
			}
		}
		peers[id] = &simPeer{choking: true}
	}
	for id := range PeerID(K) {
		connect(id)
	}

	verified := make([]int, n)
	failures := make([]int, n)
	accepted := map[Request]int{}
	var buf []Request

	endgameSteps, fails, cancels := 0, 0, 0
	step := 0
	for ; !p.Complete(); step++ {
		if p.Endgame() {
			endgameSteps++
		}
		if step > 200000 {
			t.Fatalf("seed %d: no completion after %d steps", seed, step)
		}
		id := PeerID(rng.IntN(K))
		sp := peers[id]
		switch ev := rng.IntN(100); {
		case ev < 30: // pick
			if sp.choking {
				break
			}
			buf = p.PickFor(id, buf[:0], depth-len(sp.inflight))
			for _, r := range buf {
				if slices.Contains(sp.inflight, r) {
					t.Fatalf("seed %d: %v requested twice from peer %d", seed, r, id)
				}
				if p.Have(r.Piece) {
					t.Fatalf("seed %d: requested piece %d we have", seed, r.Piece)
				}
				sp.inflight = append(sp.inflight, r)
			}
		case ev < 65: // a block arrives
			if len(sp.inflight) == 0 {
				break
			}
			r := sp.inflight[rng.IntN(len(sp.inflight))]
			sp.remove(r)
			cancel, ok := p.HandleBlock(id, r.Piece, r.Block)
			cancels += len(cancel)
			for _, q := range cancel {
				if q == id || !peers[q].remove(r) {
					t.Fatalf("seed %d: bogus cancel to %d for %v", seed, q, r)
				}
			}
			if !ok {
				break
			}
			accepted[r]++
			if p.Downloaded(r.Piece) {
				if rng.IntN(8) == 0 { // a bad peer: hash mismatch
					failures[r.Piece]++
					fails++
					p.HandlePieceFailed(r.Piece)
				} else {
					verified[r.Piece]++
					p.HandlePieceVerified(r.Piece)
				}
			}
		case ev < 72: // reject or timeout
			if len(sp.inflight) == 0 {
				break
			}
			r := sp.inflight[rng.IntN(len(sp.inflight))]
			sp.remove(r)
			if ev < 69 {
				p.HandleReject(id, r.Piece, r.Block)
				if rng.IntN(3) == 0 { // it cannot serve the piece; a later have restores it
					p.HandleWithdraw(id, r.Piece)
				}
			} else {
				p.HandleTimeout(id, r.Piece, r.Block)
			}
		case ev < 80: // choke
			if id == 0 && rng.IntN(2) == 0 {
				break
			}
			sp.choking = true
			sp.inflight = sp.inflight[:0]
			p.HandleChoke(id)
		case ev < 92: // unchoke
			sp.choking = false
			p.HandleUnchoke(id)
		case ev < 97: // have
			if err := p.HandleHave(id, rng.IntN(n)); err != nil {
				t.Fatal(err)
			}
		default: // disconnect and reconnect under the same id
			if id == 0 {
				break
			}
			p.HandleDisconnect(id)
			connect(id)
		}
		if step%13 == 0 {
			check(t, p)
		}
		for qid, q := range peers {
			if p.Outstanding(qid) != len(q.inflight) {
				t.Fatalf("seed %d step %d: peer %d outstanding %d, simulated %d", seed, step, qid, p.Outstanding(qid), len(q.inflight))
			}
		}
	}
	check(t, p)
	t.Logf("seed %d: n=%d steps=%d endgame=%d fails=%d cancels=%d", seed, n, step, endgameSteps, fails, cancels)
	for i := range n {
		want := 1
		if have.Has(i) {
			want = 0
		}
		if verified[i] != want {
			t.Fatalf("seed %d: piece %d verified %d times, want %d", seed, i, verified[i], want)
		}
		for b := range sizes[i] {
			if got := accepted[Request{i, b}]; got != want*(1+failures[i]) {
				t.Fatalf("seed %d: block %d/%d accepted %d times, want %d", seed, i, b, got, want*(1+failures[i]))
			}
		}
	}
	for id := range peers {
		if p.Outstanding(id) != 0 {
			t.Fatalf("seed %d: peer %d left with requests", seed, id)
		}
	}
}
