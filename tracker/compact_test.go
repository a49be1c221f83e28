package tracker

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// TestAppendCompactMatchesEncoder holds the hand-written compact reply to
// the bytes the bencode encoder writes for the same struct, for counts of
// every width, negative ones, and with and without IPv4 and IPv6 peers.
func TestAppendCompactMatchesEncoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		n := func() int { return int(r.Int64N(1<<uint(r.IntN(63)))) * (1 - 2*r.IntN(2)) }
		resp := compactResponse{
			Interval: int64(n()), MinInterval: int64(n()),
			Complete: n(), Incomplete: n(), Downloaded: n(),
		}
		if i%3 != 0 {
			resp.Peers = make([]byte, 6*r.IntN(60))
		}
		if i%2 == 0 {
			// Empty but not nil, the encoder writes "6:peers60:"
			// (which the server sent after a pooled state had once
			// held an IPv6 peer); appendCompact leaves the key out
			// whenever it is empty, as for nil.
			if n := r.IntN(60); n > 0 {
				resp.Peers6 = make([]byte, 18*n)
			}
		}
		want, err := bencode.Marshal(&resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCompact(nil, &resp); !bytes.Equal(got, want) {
			t.Fatalf("%+v:\n got %q\nwant %q", resp, got, want)
		}
	}
}

// The compact reply is written for every HTTP announce: it must not
// allocate once the buffer has room.
func TestAppendCompactAllocs(t *testing.T) {
	resp := compactResponse{Interval: 1800, MinInterval: 900, Complete: 3, Incomplete: 7, Peers: make([]byte, 300)}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = appendCompact(buf[:0], &resp) }); n != 0 {
		t.Fatalf("%.1f allocations per reply; want 0", n)
	}
}
