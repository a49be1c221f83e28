package swarm

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestChokerFavoursBestRatesAndRotatesOptimistic(t *testing.T) {
	c := newChoker[int](2, rand.New(rand.NewPCG(1, 1)))
	t0 := time.Unix(1000, 0)
	old := t0.Add(-time.Hour)
	peers := []chokeCandidate[int]{
		{key: 1, interested: true, rate: 100, joined: old},
		{key: 2, interested: true, rate: 900, joined: old},
		{key: 3, interested: true, rate: 500, joined: old},
		{key: 4, interested: false, rate: 10000, joined: old},
		{key: 5, interested: true, rate: 0, joined: old},
		{key: 6, interested: true, rate: 0, joined: old},
	}
	u := c.rechoke(peers, t0)
	if !u[2] || !u[3] || u[4] || len(u) != 3 {
		t.Fatalf("unchoked %v: want 2 and 3 by rate, one optimistic, never the uninterested 4", u)
	}
	opt := c.optimistic
	if opt == 2 || opt == 3 || opt == 4 {
		t.Fatalf("optimistic %d took a regular slot or is not interested", opt)
	}
	// Within the optimistic interval the same peer keeps its slot.
	if u := c.rechoke(peers, t0.Add(RechokeInterval)); !u[opt] {
		t.Fatalf("optimistic peer %d lost its slot after %v", opt, RechokeInterval)
	}
	// Over many rounds every choked interested peer gets its turn.
	seen := map[int]bool{}
	for i := 1; i <= 40; i++ {
		c.rechoke(peers, t0.Add(time.Duration(i)*OptimisticInterval))
		seen[c.optimistic] = true
	}
	for _, k := range []int{1, 5, 6} {
		if !seen[k] {
			t.Errorf("peer %d never unchoked optimistically: %v", k, seen)
		}
	}
	if seen[4] {
		t.Error("an uninterested peer was unchoked optimistically")
	}
}

func TestChokerNoInterest(t *testing.T) {
	c := newChoker[int](0, rand.New(rand.NewPCG(2, 2)))
	if u := c.rechoke([]chokeCandidate[int]{{key: 1}}, time.Now()); len(u) != 0 {
		t.Fatalf("unchoked %v with nobody interested", u)
	}
}

// A leech-only choker (negative slots) unchokes nobody, however keen.
func TestLeechOnlyChokerUnchokesNobody(t *testing.T) {
	c := newChoker[int](-1, rand.New(rand.NewPCG(1, 1)))
	peers := []chokeCandidate[int]{
		{key: 1, interested: true, rate: 100, joined: time.Unix(0, 0)},
		{key: 2, interested: true, rate: 0, joined: time.Unix(999, 0)},
	}
	if u := c.rechoke(peers, time.Unix(1000, 0)); len(u) != 0 {
		t.Fatalf("leech-only choker unchoked %v", u)
	}
}

// A free-riding peer never gets a regular slot, however
// fast it took from us, but may still be drawn for the optimistic one.
func TestWithholdingPeerOnlyOptimistic(t *testing.T) {
	c := newChoker[int](2, rand.New(rand.NewPCG(1, 1)))
	old := time.Unix(0, 0)
	peers := []chokeCandidate[int]{
		{key: 1, interested: true, rate: 9000, joined: old, freeRiding: true},
		{key: 2, interested: true, rate: 10, joined: old},
		{key: 3, interested: true, rate: 5, joined: old},
	}
	u := c.rechoke(peers, time.Unix(1000, 0))
	if !u[2] || !u[3] {
		t.Fatalf("unchoked %v: want the reciprocating 2 and 3 in the regular slots", u)
	}
	if u[1] != c.isOptimistic(1) {
		t.Fatalf("free-riding peer 1 unchoked=%v but optimistic=%v", u[1], c.isOptimistic(1))
	}
	if !c.isOptimistic(1) {
		t.Fatal("the only choked interested peer did not get the optimistic slot")
	}
}
