package swarm

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// TestAllowedFastSetBEP6 checks the canonical set against the example in
// BEP 6, and that it depends on the /24 only.
func TestAllowedFastSetBEP6(t *testing.T) {
	var ih [20]byte
	for i := range ih {
		ih[i] = 0xaa
	}
	ip := netip.MustParseAddr("80.4.4.200")
	if got, want := allowedFastSet(nil, ip, ih, 1313, 7), []uint32{1059, 431, 808, 1217, 287, 376, 1188}; !slices.Equal(got, want) {
		t.Errorf("k=7: %v, want %v", got, want)
	}
	want9 := []uint32{1059, 431, 808, 1217, 287, 376, 1188, 353, 508}
	if got := allowedFastSet(nil, ip, ih, 1313, 9); !slices.Equal(got, want9) {
		t.Errorf("k=9: %v, want %v", got, want9)
	}
	for _, other := range []string{"80.4.4.1", "::ffff:80.4.4.9"} {
		if got := allowedFastSet(nil, netip.MustParseAddr(other), ih, 1313, 9); !slices.Equal(got, want9) {
			t.Errorf("%s, same /24: %v, want %v", other, got, want9)
		}
	}
	if got := allowedFastSet(nil, netip.MustParseAddr("80.4.5.200"), ih, 1313, 9); slices.Equal(got, want9) {
		t.Error("another /24 got the same set")
	}
	if got := allowedFastSet(nil, ip, ih, 4, 10); !slices.Equal(got, []uint32{0, 1, 2, 3}) {
		t.Errorf("4 pieces, k=10: %v, want every piece", got)
	}
	v6 := allowedFastSet(nil, netip.MustParseAddr("2001:db8:1::1"), ih, 1313, 10)
	if len(v6) != 10 || !slices.Equal(v6, allowedFastSet(nil, netip.MustParseAddr("2001:db8:1:ffff::2"), ih, 1313, 10)) {
		t.Errorf("IPv6 in one /48: %v, differs or short", v6)
	}
}

// readUntil reads messages until keep returns false or the deadline.
func readUntil(t *testing.T, r *wire.Reader, what string, keep func(wire.Message) bool) {
	t.Helper()
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if !m.KeepAlive && !keep(m) {
			return
		}
	}
}

// A seeder that keeps us choked but allows pieces 1, 3 and 5 (BEP 6) is
// asked for blocks of those only; it serves 1 and 3, which complete, and
// refuses 5, whose blocks are then not asked for again while it chokes us.
func TestAllowedFastFromChokingPeer(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	conn := rawPeer(t, leech, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	st, err := storage.Open(src, m.Info)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []byte
	out = wire.AppendHaveAll(out)
	for _, pc := range []uint32{1, 3, 5} {
		out = wire.AppendAllowedFast(out, pc)
	}
	conn.Write(out)

	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	asked := map[blockKey]int{}
	served := 0
	answer := func(msg wire.Message) {
		if msg.ID != wire.Request {
			return
		}
		k := blockKey{msg.Index, msg.Begin}
		asked[k]++
		switch {
		case msg.Index != 1 && msg.Index != 3 && msg.Index != 5:
			t.Fatalf("asked for piece %d while choked; only 1, 3 and 5 are allowed", msg.Index)
		case asked[k] > 1:
			t.Fatalf("block %d+%d asked for twice", msg.Index, msg.Begin)
		case msg.Index == 5:
			conn.Write(wire.AppendReject(nil, msg.Index, msg.Begin, msg.Length))
		default:
			block := make([]byte, msg.Length)
			if _, err := st.ReadBlock(int(msg.Index), int(msg.Begin), block); err != nil {
				t.Fatal(err)
			}
			conn.Write(wire.AppendPiece(nil, msg.Index, msg.Begin, block))
			served++
		}
	}
	want := m.Info.BlocksIn(1) + m.Info.BlocksIn(3)
	readUntil(t, r, "requests for the allowed pieces", func(msg wire.Message) bool {
		answer(msg)
		return served < want
	})
	deadline := time.Now().Add(5 * time.Second)
	for leech.t.Stats().PiecesDone < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("allowed pieces not verified: %+v", leech.t.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Piece 5 may still be asked for, each block once: a refused block
	// asked for again would show here.
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			break
		}
		answer(msg)
	}
	if s := leech.t.Stats(); s.Peers != 1 || s.PiecesDone != 2 {
		t.Fatalf("after the refusals: %d peers, %d pieces done; want the peer kept and 2 pieces", s.Peers, s.PiecesDone)
	}
}

// A newcomer we choke gets our canonical allowed-fast set and is served
// those pieces while choked; anything else it is refused. A peer with
// pieces of its own to trade gets no set.
func TestAllowedFastToNewcomer(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	ih := wire.TruncateV2(m.Info.Hash)
	conn := rawPeer(t, seeder, ih)
	defer conn.Close()
	conn.Write(wire.AppendHaveNone(nil)) // and never interested: we stay choked

	want := allowedFastSet(nil, netip.MustParseAddr("127.0.0.1"), ih, m.Info.NumPieces, allowedFastSetSize)
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var got []uint32
	readUntil(t, r, "the allowed-fast set", func(msg wire.Message) bool {
		switch msg.ID {
		case wire.AllowedFast:
			got = append(got, msg.Index)
		case wire.Unchoke:
			t.Fatal("unchoked a peer that is not interested")
		}
		return len(got) < len(want)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("allowed fast %v, want the canonical %v", got, want)
	}
	var other uint32
	for slices.Contains(want, other) {
		other++
	}
	size := uint32(m.Info.BlockLen(int(want[0]), 0))
	conn.Write(wire.AppendRequest(nil, want[0], 0, size))
	conn.Write(wire.AppendRequest(nil, other, 0, 1024))
	var block []byte
	rejected := false
	readUntil(t, r, "the allowed block and the refusal", func(msg wire.Message) bool {
		switch {
		case msg.ID == wire.Piece && msg.Index == want[0]:
			block = bytes.Clone(msg.Payload)
		case msg.ID == wire.Piece:
			t.Fatalf("served piece %d, not allowed, while choking", msg.Index)
		case msg.ID == wire.Reject && msg.Index == other:
			rejected = true
		case msg.ID == wire.Reject:
			t.Fatalf("refused allowed piece %d", msg.Index)
		}
		return block == nil || !rejected
	})
	st, err := storage.Open(src, m.Info)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wantBlock := make([]byte, size)
	if _, err := st.ReadBlock(int(want[0]), 0, wantBlock); err != nil || !bytes.Equal(block, wantBlock) {
		t.Fatalf("allowed block differs from the data (%v)", err)
	}

	// A peer with ten pieces gets no set: its first answer is a refusal.
	trader := rawPeer(t, seeder, ih)
	defer trader.Close()
	bf := make([]byte, (m.Info.NumPieces+7)/8)
	bf[0], bf[1] = 0xff, 0xc0
	trader.Write(wire.AppendBitfield(nil, bf))
	trader.Write(wire.AppendRequest(nil, want[0], 0, size))
	r = wire.NewReader(trader, wire.Limits{NumPieces: m.Info.NumPieces})
	trader.SetDeadline(time.Now().Add(5 * time.Second))
	readUntil(t, r, "a refusal", func(msg wire.Message) bool {
		switch msg.ID {
		case wire.AllowedFast:
			t.Fatalf("allowed piece %d to a peer with 10 pieces", msg.Index)
		case wire.Piece:
			t.Fatal("served a choked peer with 10 pieces")
		}
		return msg.ID != wire.Reject
	})
}
