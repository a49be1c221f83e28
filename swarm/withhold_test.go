package swarm

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A downloader told "no" by a peer that unchokes it does not ask that
// peer for the same piece again and again: each block is asked about once,
// it loses interest when nothing is left to ask, and a have for a piece
// brings the piece back.
func TestRejectingSeederNotAskedAgain(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 1 << 20, "b.bin": 256 << 10}, 64<<10)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	conn := rawPeer(t, leech, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	conn.Write(wire.AppendHaveAll(nil))
	conn.Write(wire.AppendUnchoke(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	blocks := 0
	for p := range m.Info.NumPieces {
		blocks += int((m.Info.PieceSize(p) + piece.BlockSize - 1) / piece.BlockSize)
	}
	requests, interested := 0, false
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		conn.SetReadDeadline(end)
		msg, err := r.ReadMessage()
		if err != nil {
			break
		}
		switch {
		case msg.KeepAlive:
		case msg.ID == wire.Request:
			requests++
			conn.Write(wire.AppendReject(nil, msg.Index, msg.Begin, msg.Length))
		case msg.ID == wire.Interested:
			interested = true
		case msg.ID == wire.NotInterested:
			interested = false
		}
	}
	t.Logf("%d requests for %d blocks in 2s", requests, blocks)
	if requests == 0 || requests > blocks {
		t.Fatalf("%d requests in 2s for a torrent of %d blocks, all refused", requests, blocks)
	}
	if interested {
		t.Fatal("still interested in a peer that refused every piece")
	}
	conn.Write(wire.AppendHave(nil, 3))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("a have did not bring piece 3 back: %v", err)
		}
		if !msg.KeepAlive && msg.ID == wire.Request {
			if msg.Index != 3 {
				t.Fatalf("asked for piece %d, only 3 was announced again", msg.Index)
			}
			break
		}
	}
	if s := leech.t.Stats(); s.Peers != 1 {
		t.Fatalf("the refusing peer was dropped: %+v", s)
	}
}

// Blocks a peer rejects go at once to another peer that has them, even
// one sitting idle because everything it has was asked of the first: a
// reject from a peer that unchokes us (it withholds the piece now) and
// the rejects that follow a fast peer's choke alike. No endgame covers
// for it: one piece is nowhere, so some block stays unrequested.
func TestRejectedBlocksGoToIdlePeer(t *testing.T) {
	for _, choke := range []bool{false, true} {
		name := "withheld"
		if choke {
			name = "choked"
		}
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			m := content(t, src, "data", map[string]int{"f.bin": 8 * piece.BlockSize}, piece.BlockSize)
			n := m.Info.NumPieces
			bf := bitfield.New(n) // all but the last piece, which no peer has
			for x := range n - 1 {
				bf.Set(x)
			}
			leech := startNode(t, m, t.TempDir(), Config{}, nil)
			conn := rawPeer(t, leech, wire.TruncateV2(m.Info.Hash))
			defer conn.Close()
			conn.Write(wire.AppendBitfield(nil, bf.Bytes()))
			conn.Write(wire.AppendUnchoke(nil))
			r := wire.NewReader(conn, wire.Limits{NumPieces: n})
			var reqs []wire.Message
			for len(reqs) < n-1 {
				msg, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("waiting for requests: %v", err)
				}
				if !msg.KeepAlive && msg.ID == wire.Request {
					reqs = append(reqs, msg)
				}
			}
			// The other peer holds the same pieces and unchokes us after
			// every block was asked of the first: it is given nothing.
			other := startNode(t, m, filepath.Join(src, "data"), Config{}, bf.Bytes())
			leech.t.AddPeers(other.addr())
			waitFor(t, 5*time.Second, "unchoked by the other peer", func() bool {
				leech.t.mu.Lock()
				defer leech.t.mu.Unlock()
				for q := range leech.t.peers {
					if q.addr == other.addr() && !q.peerChoking {
						return true
					}
				}
				return false
			})
			var out []byte
			if choke {
				out = wire.AppendChoke(out)
			}
			for _, q := range reqs {
				out = wire.AppendReject(out, q.Index, q.Begin, q.Length)
			}
			conn.Write(out)
			conn.SetDeadline(time.Time{})
			go io.Copy(io.Discard, conn)
			waitFor(t, 3*time.Second, "the rejected pieces from the other peer", func() bool {
				return leech.t.Stats().PiecesDone == n-1
			})
		})
	}
}

// A reject that answers our cancel (BEP 6) says nothing of a request for
// the same block made since. The first peer is asked for both blocks of
// the one piece; the second peer's copies arrive first, so the first is
// sent cancels; they were bad, the piece fails, and both blocks are asked
// of the first peer again before its rejects for the cancels arrive. Those
// rejects must leave the new requests standing and the piece not withheld
// from the peer (taken for refusals, they kept an honest seeder from a
// piece for withholdFor and left it to a poisoner alone): it then serves
// the blocks, and the download completes.
func TestRejectOfCancelKeepsNewRequest(t *testing.T) {
	src := t.TempDir()
	m := v1Content(t, src, "data", []tfile{{path: "a.bin", size: 2 * piece.BlockSize}}, 2*piece.BlockSize)
	if m.Info.NumPieces != 1 || m.Info.BlocksIn(0) != 2 {
		t.Fatalf("%d pieces, %d blocks in the first", m.Info.NumPieces, m.Info.BlocksIn(0))
	}
	space := pieceSpace(t, m, src)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	// requests reads from r until it has n requests, skipping the rest
	// and counting cancels.
	requests := func(r *wire.Reader, n int, what string) (reqs []wire.Message, cancels int) {
		t.Helper()
		readUntil(t, r, what, func(msg wire.Message) bool {
			switch msg.ID {
			case wire.Request:
				reqs = append(reqs, msg)
			case wire.Cancel:
				cancels++
			}
			return len(reqs) < n
		})
		return reqs, cancels
	}
	a := rawPeer(t, leech, swarmHash(leech))
	defer a.Close()
	a.Write(wire.AppendHaveAll(nil))
	a.Write(wire.AppendUnchoke(nil))
	ra := wire.NewReader(a, wire.Limits{NumPieces: 1})
	requests(ra, 2, "both blocks asked of the first peer")

	b := rawPeer(t, leech, swarmHash(leech))
	defer b.Close()
	b.Write(wire.AppendHaveAll(nil))
	b.Write(wire.AppendUnchoke(nil))
	rb := wire.NewReader(b, wire.Limits{NumPieces: 1})
	copies, _ := requests(rb, 2, "endgame copies asked of the second peer")
	for _, q := range copies {
		// Zeros: bad data, so the piece fails.
		b.Write(wire.AppendPiece(nil, q.Index, q.Begin, make([]byte, q.Length)))
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	again, cancels := requests(ra, 2, "both blocks asked of the first peer again")
	if cancels != 2 {
		t.Fatalf("%d cancels before the new requests, want 2", cancels)
	}
	var out []byte
	for _, q := range again {
		out = wire.AppendReject(out, q.Index, q.Begin, q.Length)
	}
	a.Write(out)

	// The leech's side of the first peer: its cancels answered, or (the
	// fault) its new requests taken for refused.
	var requested, withheld int
	waitFor(t, 5*time.Second, "the rejects read", func() bool {
		leech.t.mu.Lock()
		defer leech.t.mu.Unlock()
		for q := range leech.t.peers {
			if q.addr.String() == a.LocalAddr().String() {
				requested, withheld = len(q.requested), len(q.withheld)
				return len(q.cancelled) == 0 || requested < 2
			}
		}
		return false
	})
	if requested != 2 || withheld != 0 {
		t.Fatalf("after the rejects of its cancels, %d requests stand at the first peer (want 2) and %d pieces are withheld from it (want 0)", requested, withheld)
	}
	for _, q := range again {
		off := int(q.Begin)
		a.Write(wire.AppendPiece(nil, q.Index, q.Begin, space[off:off+int(q.Length)]))
	}
	a.SetReadDeadline(time.Time{})
	go io.Copy(io.Discard, a)
	go io.Copy(io.Discard, b)
	waitDone(t, leech, 5*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(leech.st.Dir(), "data"))
}
