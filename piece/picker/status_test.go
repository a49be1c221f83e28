package picker

import (
	"strings"
	"testing"
)

// Status follows the picker through a download: what is missing, started,
// requested and unavailable, into endgame and out of it.
func TestStatus(t *testing.T) {
	p := newPicker(t, 4, constBlocks(2), bits(4, 3), 1)
	addPeer(t, p, 1, bits(4, 0, 1))
	p.HandleHaveNone(2) // knows nothing, still choking us
	s := p.Status()
	want := Status{Pieces: 4, Missing: 3, Unavailable: 1, Unrequested: 6, Requestable: 4, Peers: 2, Choking: 1}
	if s != want {
		t.Fatalf("fresh: %+v, want %+v", s, want)
	}
	got := p.PickFor(1, nil, 3)
	if len(got) != 3 {
		t.Fatalf("picked %v", got)
	}
	if _, ok := p.HandleBlock(1, got[0].Piece, got[0].Block); !ok {
		t.Fatal("block refused")
	}
	s = p.Status()
	want = Status{Pieces: 4, Missing: 3, Partial: 2, Unavailable: 1, BlocksReceived: 1, Outstanding: 2,
		Unrequested: 3, Requestable: 1, Peers: 2, Choking: 1}
	if s != want {
		t.Fatalf("after picks: %+v, want %+v", s, want)
	}
	// Piece 2 reaches a peer: every piece is available, and once its blocks
	// are asked for too, nothing is left unrequested: endgame.
	if err := p.HandleHave(2, 2); err != nil {
		t.Fatal(err)
	}
	p.HandleUnchoke(2)
	p.PickFor(1, nil, 10)
	p.PickFor(2, nil, 10)
	s = p.Status()
	if !s.Endgame || s.Unrequested != 0 || s.Unavailable != 0 || s.MinAvailability != 1 || s.Choking != 0 {
		t.Fatalf("endgame: %+v", s)
	}
	var b strings.Builder
	p.WriteStatus(&b)
	for _, w := range []string{
		"picker: 3 of 4 pieces missing, 3 partial (1 blocks in), 0 on no connected peer, the rarest on 1\n",
		", endgame true; peers known: 2, 0 of them choking us\n",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("WriteStatus lacks %q:\n%s", w, b.String())
		}
	}
	// A disconnect takes availability away again and releases requests.
	p.HandleDisconnect(2)
	if s = p.Status(); s.Unavailable != 1 || s.Peers != 1 || s.Endgame {
		t.Fatalf("after disconnect: %+v", s)
	}
	var zero Picker
	if s := zero.Status(); s != (Status{}) {
		t.Fatalf("zero picker: %+v", s)
	}
	b.Reset()
	zero.WriteStatus(&b)
	if b.String() != "picker: all 0 pieces verified; peers known: 0, 0 of them choking us\n" {
		t.Fatalf("zero picker's WriteStatus: %q", b.String())
	}
}
