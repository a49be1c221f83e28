package swarm

import (
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
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

// A v2 peer that answers a piece layer request late, after the hybrid
// gave up waiting and asked again, sent hashes we did ask for: the late
// answer is taken, and the one to the repeat is a reply to a request we
// no longer need, not "hashes nobody asked for" that drops the peer.
func TestHybridLateLayerAnswerKeepsPeer(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", multiFiles, 32<<10)
	leech := startNode(t, stripLayers(m), t.TempDir(), Config{}, nil)
	conn, _ := dialRaw(t, leech.addr(), m.Info.Hash.Truncated(), true)
	rd := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	// requests reads the hash requests the leech sends until it has sent
	// none for a while.
	requests := func() []wire.Message {
		t.Helper()
		var got []wire.Message
		for {
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			msg, err := rd.ReadMessage()
			if errors.Is(err, wire.ErrUnknownID) {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && len(got) > 0 {
				return got
			}
			if err != nil {
				t.Fatalf("waiting for hash requests: %v", err)
			}
			if msg.ID == wire.HashRequest {
				got = append(got, msg)
			}
		}
	}
	first := requests()
	// The reply deadline passes with the requests unanswered: the next
	// tick asks again, of the only v2 peer there is.
	leech.t.mu.Lock()
	leech.t.askLayers(time.Now().Add(hashReplyTimeout + time.Second))
	leech.t.mu.Unlock()
	again := requests() // as many as the peer has room for
	// All answered, in order, as an honest peer does.
	var out []byte
	for _, q := range append(first, again...) {
		fi := -1
		for i := range m.Info.Files {
			if m.Info.Files[i].PiecesRoot == q.PiecesRoot {
				fi = i
			}
		}
		tree, err := piece.NewFileTree(m.Info, fi, m.Layers[fi])
		if err != nil {
			t.Fatal(err)
		}
		r := piece.HashRequest{PiecesRoot: q.PiecesRoot, BaseLayer: int(q.BaseLayer), Index: int(q.Index), Length: int(q.Length), ProofLayers: int(q.ProofLayers)}
		hs, err := tree.Hashes(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 32*len(hs))
		for _, h := range hs {
			buf = append(buf, h[:]...)
		}
		out = wire.AppendHashes(out, q.PiecesRoot, q.BaseLayer, q.Index, q.Length, q.ProofLayers, buf)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the layer taken", func() bool {
		leech.t.mu.Lock()
		defer leech.t.mu.Unlock()
		return len(leech.t.layers) == 0
	})
	if _, ok := droppedWithin(conn, time.Second); ok {
		t.Fatal("the peer that answered both requests was dropped")
	}
}
