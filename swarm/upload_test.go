package swarm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// The upload side (issue 11: "serving requests, the rate limit, cancels"),
// seen from a peer on the wire: blocks come no faster than the upload
// limit allows past its burst, and requests cancelled while queued are
// not sent; as BEP 6 asks of a fast peer, each is answered once, by the
// block or by a reject.
func TestUploadRateAndCancels(t *testing.T) {
	const rateBps = 256 << 10 // its burst is 64 KiB (newLimiter): 4 blocks
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 1 << 20}, 64<<10)
	// One file in a folder makes a single-file torrent: the file itself.
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{MaxUploadRate: rateBps}, nil)
	conn := rawPeer(t, seeder, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	conn.Write(wire.AppendInterested(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	readUntil(t, r, "unchoke", func(msg wire.Message) bool { return msg.ID != wire.Unchoke })

	const perPiece = 64 << 10 / piece.BlockSize
	type block struct{ index, begin uint32 }
	blockOf := func(i int) block { return block{uint32(i / perPiece), uint32(i%perPiece) * piece.BlockSize} }

	// 16 blocks, 256 KiB: all but the burst wait for the limiter.
	var reqs []byte
	for i := range 16 {
		b := blockOf(i)
		reqs = wire.AppendRequest(reqs, b.index, b.begin, piece.BlockSize)
	}
	began := time.Now()
	conn.Write(reqs)
	got := 0
	readUntil(t, r, "16 blocks", func(msg wire.Message) bool {
		if msg.ID == wire.Piece {
			got++
		}
		return got < 16
	})
	least := time.Duration(float64(16*piece.BlockSize-4*piece.BlockSize) / rateBps * float64(time.Second))
	if took := time.Since(began); took < least*9/10 || took > 5*time.Second {
		t.Errorf("256 KiB at %d KiB/s took %v; the limit allows no less than %v", rateBps>>10, took, least)
	}

	// 32 more, of which all but the first 4 are cancelled at once: the
	// limiter, drained, holds them queued, where a cancel reaches them.
	reqs = reqs[:0]
	for i := 16; i < 48; i++ {
		b := blockOf(i)
		reqs = wire.AppendRequest(reqs, b.index, b.begin, piece.BlockSize)
	}
	cancelled := map[block]bool{}
	for i := 20; i < 48; i++ {
		b := blockOf(i)
		cancelled[b] = true
		reqs = wire.AppendCancel(reqs, b.index, b.begin, piece.BlockSize)
	}
	conn.Write(reqs)
	answered := map[block]int{}
	sentCancelled, rejected := 0, 0
	readUntil(t, r, "an answer to each of 32 requests", func(msg wire.Message) bool {
		b := block{msg.Index, msg.Begin}
		switch msg.ID {
		case wire.Piece:
			answered[b]++
			if cancelled[b] {
				sentCancelled++
			}
		case wire.Reject:
			answered[b]++
			rejected++
			if !cancelled[b] {
				t.Errorf("block %d+%d rejected though not cancelled", b.index, b.begin)
			}
		}
		return len(answered) < 32
	})
	for b, n := range answered {
		if n != 1 {
			t.Errorf("block %d+%d answered %d times", b.index, b.begin, n)
		}
	}
	// The writer may hold one cancelled block already, waiting for the
	// limiter; no more than that is sent.
	if sentCancelled > 1 || rejected < 27 {
		t.Errorf("of 28 cancelled blocks %d were sent and %d rejected; want at most 1 sent", sentCancelled, rejected)
	}
	if s := seeder.t.Stats(); s.Peers != 1 {
		t.Errorf("the peer was dropped: %+v", s)
	}
}
