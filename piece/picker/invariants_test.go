package picker

import (
	"testing"
)

// check recomputes every incrementally maintained quantity from scratch and
// compares; it is the oracle the scenario and simulation tests lean on.
func check(t testing.TB, p *Picker) {
	t.Helper()
	n := p.n
	seen := make([]bool, n)
	for i, x := range p.order {
		if seen[x] {
			t.Fatalf("piece %d twice in order", x)
		}
		seen[x] = true
		if p.pos[x] != int32(i) {
			t.Fatalf("pos[%d]=%d, want %d", x, p.pos[x], i)
		}
	}
	if len(p.order) != n {
		t.Fatalf("order has %d pieces, want %d", len(p.order), n)
	}
	top := p.top()
	if p.start[0] != 0 {
		t.Fatalf("start[0]=%d", p.start[0])
	}
	for k := 0; k <= top; k++ {
		s := int(p.start[k])
		e := n
		if k < top {
			e = int(p.start[k+1])
		}
		if s > e {
			t.Fatalf("bucket %d inverted [%d,%d)", k, s, e)
		}
		for _, x := range p.order[s:e] {
			if k < top && (p.st[x] != stWanted || int(p.avail[x]) != k) {
				t.Fatalf("piece %d (state %d avail %d) in bucket %d", x, p.st[x], p.avail[x], k)
			}
			if k == top && p.st[x] == stWanted {
				t.Fatalf("wanted piece %d in top bucket", x)
			}
		}
	}

	avail := make([]int32, n)
	for i, pe := range p.peers {
		if p.index[pe.id] != int32(i) {
			t.Fatalf("index of peer %d wrong", pe.id)
		}
		interesting, fresh := 0, 0
		for x := range n {
			if !pe.has.Has(x) {
				continue
			}
			avail[x]++
			if p.st[x] != stHave && p.st[x] != stSkip {
				interesting++
			}
			if p.st[x] == stWanted {
				fresh++
			}
		}
		if interesting != pe.interesting || fresh != pe.fresh {
			t.Fatalf("peer %d interesting/fresh %d/%d, want %d/%d", pe.id, pe.interesting, pe.fresh, interesting, fresh)
		}
		reqSeen := map[Request]bool{}
		for _, r := range pe.reqs {
			if reqSeen[r] {
				t.Fatalf("peer %d has request %v twice", pe.id, r)
			}
			reqSeen[r] = true
			s := p.ps[r.Piece]
			if s == nil || !s.blocks[r.Block].requestedFrom(pe.id) {
				t.Fatalf("peer %d request %v not recorded on the block", pe.id, r)
			}
		}
	}
	if len(p.index) != len(p.peers) {
		t.Fatalf("index has %d peers, list %d", len(p.index), len(p.peers))
	}

	free, missing, unrequested := 0, 0, 0
	for x := range n {
		if avail[x] != p.avail[x] {
			t.Fatalf("avail[%d]=%d, want %d", x, p.avail[x], avail[x])
		}
		if p.st[x] != stHave && p.st[x] != stSkip {
			missing++
		}
		if p.have.Has(x) != (p.st[x] == stHave) {
			t.Fatalf("have bit of %d disagrees with state", x)
		}
		s := p.ps[x]
		if (s != nil) != (p.st[x] == stActive) {
			t.Fatalf("piece %d state %d with pieceState %v", x, p.st[x], s != nil)
		}
		f := 0
		switch p.st[x] {
		case stWanted:
			f = int(p.nblocks[x])
		case stActive:
			if p.active[p.activePos[x]] != int32(x) {
				t.Fatalf("activePos[%d] wrong", x)
			}
			received, pending := 0, 0
			for b := range s.blocks {
				bl := &s.blocks[b]
				if bl.done {
					received++
					if bl.n != 0 {
						t.Fatalf("done block %d/%d still requested", x, b)
					}
				} else if bl.n == 0 {
					f++
					if b < s.hint {
						t.Fatalf("free block %d/%d below hint %d", x, b, s.hint)
					}
				}
				if int(bl.n) > p.dupMax {
					t.Fatalf("block %d/%d requested %d times", x, b, bl.n)
				}
				for i := 0; i < int(bl.n); i++ {
					pe := p.lookup(bl.peers[i])
					if pe == nil {
						t.Fatalf("block %d/%d requested from unknown peer %d", x, b, bl.peers[i])
					}
					found := false
					for _, r := range pe.reqs {
						found = found || r == (Request{x, b})
					}
					if !found {
						t.Fatalf("block %d/%d lists peer %d which lacks the request", x, b, bl.peers[i])
					}
					for j := i + 1; j < int(bl.n); j++ {
						if bl.peers[i] == bl.peers[j] {
							t.Fatalf("block %d/%d requested twice from peer %d", x, b, bl.peers[i])
						}
					}
				}
				pending += int(bl.n)
			}
			if received != s.received || pending != s.pending || f != s.free {
				t.Fatalf("piece %d received/pending/free %d/%d/%d, want %d/%d/%d", x, s.received, s.pending, s.free, received, pending, f)
			}
			if received == 0 && pending == 0 {
				t.Fatalf("empty piece %d left active", x)
			}
		}
		if avail[x] > 0 {
			free += f
		}
		unrequested += f
	}
	if unrequested != p.unrequested {
		t.Fatalf("unrequested=%d, want %d", p.unrequested, unrequested)
	}
	if free != p.freeBlocks {
		t.Fatalf("freeBlocks=%d, want %d", p.freeBlocks, free)
	}
	if missing != p.missing {
		t.Fatalf("missing=%d, want %d", p.missing, missing)
	}
	if len(p.active) != countActive(p) {
		t.Fatalf("active list has %d, states say %d", len(p.active), countActive(p))
	}
}

func countActive(p *Picker) int {
	c := 0
	for _, s := range p.st {
		if s == stActive {
			c++
		}
	}
	return c
}
