package swarm

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A plaintext handshake that stalls is dropped by the handshake deadline
// wherever it stops (issue 10: "a handshake deadline of a few seconds"):
// a connection that sends nothing, or only part of the 20-byte protocol
// prefix, within 3 s (headerTimeout); one that stalls after the prefix,
// or after the info-hash once we have answered, within 5 s
// (handshakeTimeout). Each is counted as a handshake timeout, and none
// ever becomes a peer.
func TestStalledHandshakesDropped(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 100_000}, 32<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	ih := wire.TruncateV2(m.Info.Hash)
	header := append(append(append([]byte{}, plainPrefix...), make([]byte, 8)...), ih[:]...)
	before := seeder.c.Refused()[RefusedHandshakeTimeout]

	cases := []struct {
		name  string
		sends []byte
		limit time.Duration
	}{
		// The bounds README promises ("within 3–5 s"), not the
		// constants, so that a longer deadline fails here.
		{"nothing", nil, 3 * time.Second},
		{"part of the prefix", plainPrefix[:10], 3 * time.Second},
		{"the prefix only", plainPrefix, 5 * time.Second},
		{"no peer id", header, 5 * time.Second},
	}
	// All at once, so the test takes the longest deadline, not their sum.
	took := make([]time.Duration, len(cases))
	dropped := make([]bool, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		conn, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(tc.sends); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { took[i], dropped[i] = droppedWithin(conn, tc.limit+time.Second) })
	}
	wg.Wait()
	for i, tc := range cases {
		switch {
		case !dropped[i]:
			t.Errorf("%s: still open after %v; the deadline is %v", tc.name, took[i], tc.limit)
		case took[i] < tc.limit/2:
			// Dropped at once for some other reason, which would not
			// show that the deadline holds.
			t.Errorf("%s: dropped after %v, well before the %v deadline", tc.name, took[i], tc.limit)
		}
	}
	waitFor(t, 2*time.Second, "four handshake timeouts counted", func() bool {
		return seeder.c.Refused()[RefusedHandshakeTimeout]-before == int64(len(cases))
	})
	if s := seeder.t.Stats(); s.PeersSeen != 0 {
		t.Errorf("a stalled handshake became a peer: %d seen", s.PeersSeen)
	}
}
