package swarm

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A seeder is sent one connection or message of each of several kinds it
// must refuse; its status dump counts each once, under its own reason,
// and shows the peers that stayed, one line each.
func TestStatusDumpCountsRefusals(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	ih := wire.TruncateV2(m.Info.Hash)
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	// Refused before any torrent takes them.
	c := dial()
	// Long enough for MSE, which it is taken for (encryption is
	// preferred), to give up once its padding limit is past.
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("x", 1000) + "\r\n\r\n"))
	if !dropped(c) {
		t.Fatal("HTTP client not dropped")
	}
	c = dial()
	wire.WriteHandshake(c, wire.Handshake{InfoHash: [20]byte{1, 2, 3}, PeerID: NewPeerID()})
	if !dropped(c) {
		t.Fatal("unknown info-hash not dropped")
	}
	dial().Close() // gone before its handshake
	// Refused by the torrent: a second connection from a peer that has one,
	// and the seeder dialing itself.
	c = dial()
	wire.WriteHandshake(c, wire.Handshake{InfoHash: ih, PeerID: leech.c.PeerID()})
	if !dropped(c) {
		t.Fatal("second connection of a connected peer not dropped")
	}
	seeder.t.AddPeers(seeder.addr())
	// Protocol violations, each from its own peer.
	for _, attack := range [][]byte{
		wire.AppendPiece(nil, 0, 0, make([]byte, 16384)),
		wire.AppendRequest(nil, uint32(m.Info.NumPieces+5), 0, 16384),
		{0x40, 0, 0, 0, byte(wire.Piece)},
	} {
		c = rawPeer(t, seeder, ih)
		c.Write(attack)
		if !dropped(c) {
			t.Fatalf("peer that sent %x not dropped", attack)
		}
	}
	// A request while choked is refused with a reject; the peer stays.
	choked := rawPeer(t, seeder, ih)
	defer choked.Close()
	choked.Write(wire.AppendRequest(nil, 0, 0, 16384))
	r := wire.NewReader(choked, wire.Limits{NumPieces: m.Info.NumPieces})
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the reject: %v", err)
		}
		if msg.ID == wire.Reject {
			break
		}
	}

	// The counters are bumped as the seeder's goroutines get to them.
	waitFor(t, 5*time.Second, "refusals counted", func() bool {
		cr, tr := seeder.c.Refused(), seeder.t.Refused()
		return cr[RefusedHandshakeBad] == 1 && cr[RefusedUnknownTorrent] == 1 && cr[RefusedHandshakeClosed] == 1 &&
			tr[RefusedDuplicate] == 1 && tr[RefusedOurselves] > 0 &&
			tr[ViolationUnrequestedBlock] == 1 && tr[ViolationRequest] == 1 && tr[ViolationMalformed] == 1 && tr[RejectedChoked] == 1 &&
			// The accepting side of the seeder's dial to itself may
			// still be in its handshake (slower under MSE) when the
			// dialing side has counted it.
			seeder.c.pending.len() == 0
	})
	// A dropped peer is counted before its session is torn down, so its
	// entry may linger for a moment after the counter moved.
	waitFor(t, 5*time.Second, "the seeder keeps the leech and the choked peer only", func() bool {
		return seeder.t.Stats().Peers == 2
	})
	var b bytes.Buffer
	seeder.c.WriteStatus(&b)
	dump := b.String()
	if testing.Verbose() {
		t.Logf("seeder's dump:\n%s", dump)
	}
	for _, want := range []string{
		`(?m)^client: listening on ` + regexp.QuoteMeta(seeder.c.Addr().String()) + `, peer id [0-9a-f]{40} \(SH0100\)$`,
		`(?m)^  handshakes pending: 0 of \d+$`,
		`(?m)^  refused connections: bad handshake 1, closed in handshake 1, unknown torrent 1$`,
		`(?m)^  torrents: 1$`,
		`(?m)^torrent "data"$`,
		`(?m)^  info-hash: ` + m.Info.HexHash() + `$`,
		`(?m)^  state: seeding$`,
		fmt.Sprintf(`(?m)^  pieces: %d of %d verified`, m.Info.NumPieces, m.Info.NumPieces),
		// The raw peers announced nothing: the picker knows the leech only.
		fmt.Sprintf(`(?m)^  picker: all %d pieces verified; peers known: 1, 1 of them choking us$`, m.Info.NumPieces),
		`(?m)^  choker: \d+/5 slots taken \(4 regular \+ 1 optimistic\), ranked by upload rate; `,
		`(?m)^  address book: \d+ dialable of at most 2000, `,
		`(?m)^  serving: no faults$`,
		`(?m)^  refused connections: ourselves \d, already connected 1$`,
		`(?m)^  protocol violations: malformed message 1, unrequested block 1, bad request 1$`,
		`(?m)^  refused messages: request while choked 1$`,
		`(?m)^  peers: 2 `,
		`(?m)^    ADDRESS +CLIENT +DIR +WE +THEY +DOWN/s +UP/s +GOT +SENT +REQS +QUEUED +FLAGS +AGE$`,
		// The raw peer: choked by us, asks nothing, sent a request (so it
		// spoke) and speaks BEP 6.
		`(?m)^    ` + regexp.QuoteMeta(choked.LocalAddr().String()) + ` +SH0100 +in +C- +C- +0 B +0 B +0 B +0 B +0 +0 +F +\d+s$`,
		// The leech, complete: neither side wants anything; encrypted,
		// as both prefer it.
		`(?m)^    127\.0\.0\.1:\d+ +SH0100 +in +[CU]- +[CU]- .* [1-9][0-9.]* KiB +0 +0 +FE +\d+s$`,
	} {
		if !regexp.MustCompile(want).MatchString(dump) {
			t.Errorf("seeder's dump lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("seeder's dump:\n%s", dump)
	}

	// A super-seeder with no peers yet has every piece still to hand out.
	ss := startNode(t, m, src, Config{SuperSeed: true}, nil)
	b.Reset()
	ss.t.WriteStatus(&b)
	if !strings.Contains(b.String(), "  state: super-seeding\n") ||
		!strings.Contains(b.String(), fmt.Sprintf("  super-seeding: %d of %d pieces not yet seen in the swarm, 0 on offer, 0 stuck\n", m.Info.NumPieces, m.Info.NumPieces)) {
		t.Errorf("super-seeder's dump:\n%s", b.String())
	}

	// The leech sees the seeder as a peer it dialed; Torrent.WriteStatus
	// alone has no client header.
	b.Reset()
	leech.t.WriteStatus(&b)
	ld := b.String()
	line := regexp.MustCompile(`(?m)^    ` + regexp.QuoteMeta(seeder.addr().String()) + ` +SH0100 +out +.*$`)
	if !line.MatchString(ld) || strings.Contains(ld, "client:") || !strings.Contains(ld, "refusals: none") {
		t.Errorf("leech's dump:\n%s", ld)
	}
}
