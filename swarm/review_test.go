package swarm

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A have-all that repeats one already taken adds nothing; it must cost
// nothing either. Each costs five bytes on the wire, and handled in full
// it is a pass over every piece under the torrent's lock: a peer
// streaming them would stall the torrent for as long as it cared to.
// Here 5,000 of them over a torrent of 2^17 pieces must be through in
// well under what 5,000 passes take (a second and more), which a request answered after
// them shows.
func TestRepeatedHaveAllCostsNothing(t *testing.T) {
	const pieces, pl = 1 << 17, 16 << 10
	hashes := make([]byte, pieces*20)
	rand.Read(hashes)
	info := map[string]any{"name": "big", "piece length": pl, "pieces": string(hashes), "length": pieces * pl}
	m := parsedInfo(t, info, nil)
	leech := startNode(t, m, t.TempDir(), Config{}, bitfield.New(pieces).Bytes())
	conn := rawPeer(t, leech, swarmHash(leech))
	defer conn.Close()
	var out []byte
	for range 5000 {
		out = wire.AppendHaveAll(out)
	}
	out = wire.AppendRequest(out, 7, 0, 1<<10) // rejected: the leech has nothing
	start := time.Now()
	conn.SetDeadline(start.Add(30 * time.Second))
	go conn.Write(out)
	r := wire.NewReader(conn, wire.Limits{NumPieces: pieces})
	readUntil(t, r, "the reject", func(msg wire.Message) bool { return msg.ID != wire.Reject })
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("5000 repeated have-alls took %v to get through", took)
	}
	leech.t.mu.Lock()
	defer leech.t.mu.Unlock()
	for q := range leech.t.peers {
		if !leech.t.picker.PeerHas(q.pid, pieces-1) {
			t.Fatal("the first have-all was not taken")
		}
	}
}
