package swarm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// content writes files (relative path → size) of random bytes under
// dir/name and returns the torrent built from them.
func content(t *testing.T, dir, name string, files map[string]int, pieceLength int64) *piece.MetaInfo {
	t.Helper()
	return contentFormat(t, dir, name, files, pieceLength, piece.FormatV2)
}

// contentFormat is content for a torrent of the given format.
func contentFormat(t *testing.T, dir, name string, files map[string]int, pieceLength int64, format piece.Format) *piece.MetaInfo {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(files)), 7))
	for p, n := range files {
		full := filepath.Join(dir, name, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := piece.Build(context.Background(), filepath.Join(dir, name), piece.BuildOptions{PieceLength: pieceLength, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// node is a client with one torrent, on loopback.
type node struct {
	c  *Client
	t  *Torrent
	st *storage.Storage
}

func (n *node) addr() netip.AddrPort { return netip.MustParseAddrPort(n.c.Addr().String()) }

// startNode serves m from dir. check hashes what is on disk first; without
// it the node claims whatever have says, which is how a lying peer is made.
func startNode(t *testing.T, m *piece.MetaInfo, dir string, cfg Config, have []byte) *node {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	st, err := storage.OpenWith(dir, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	if have == nil {
		if have, err = st.Check(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.Add(m, st, have)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, t: tor, st: st}
	t.Cleanup(func() {
		tor.Close()
		c.Close()
		st.Close()
	})
	return n
}

func allHave(n int) []byte {
	b := make([]byte, (n+7)/8)
	for i := range n {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

func waitDone(t *testing.T, n *node, d time.Duration) {
	t.Helper()
	select {
	case <-n.t.Done():
	case <-time.After(d):
		s := n.t.Stats()
		t.Fatalf("not complete after %v: %d of %d pieces, %d peers", d, s.PiecesDone, s.Pieces, s.Peers)
	}
}

func sameTree(t *testing.T, a, b string) {
	t.Helper()
	filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs (%v)", rel, err)
		}
		return nil
	})
}

var multiFiles = map[string]int{
	"big.bin":        700_000,
	"docs/small.txt": 1000,
	"docs/empty":     0,
	"deep/a/b/c.dat": 200_001,
	"one-piece.bin":  64 << 10,
}

func TestDownloadFromSeeder(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	if s := leech.t.Stats(); s.BytesDone != m.Info.TotalLength || s.Wasted != 0 {
		t.Errorf("stats %+v", s)
	}
	if s := seeder.t.Stats(); s.Uploaded < m.Info.TotalLength {
		t.Errorf("seeder uploaded %d of %d", s.Uploaded, m.Info.TotalLength)
	}
}

// Downloaders also serve each other: with the seeder's upload capped, the
// three finish sooner together than the seeder alone could serve them.
func TestSwarmOfThree(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 32<<10)
	seeder := startNode(t, m, src, Config{MaxUploadRate: 1 << 20}, nil)
	var leeches []*node
	for range 3 {
		n := startNode(t, m, t.TempDir(), Config{}, nil)
		leeches = append(leeches, n)
	}
	for i, n := range leeches {
		n.t.AddPeers(seeder.addr())
		for j, o := range leeches {
			if i != j {
				n.t.AddPeers(o.addr())
			}
		}
	}
	for _, n := range leeches {
		waitDone(t, n, 30*time.Second)
		sameTree(t, filepath.Join(src, "data"), filepath.Join(n.st.Dir(), "data"))
	}
	var fromPeers int64
	for _, n := range leeches {
		fromPeers += n.t.Stats().Uploaded
	}
	if fromPeers == 0 {
		t.Error("downloaders never uploaded to each other")
	}
}

// A peer that serves corrupted blocks is identified through the merkle
// tree, banned, and the download completes from the honest seeder.
func TestPoisonedPeerBanned(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"big.bin": 2 << 20}, 256<<10)
	// One file in a folder is a single-file torrent: its data sits in the
	// folder itself.
	honest := startNode(t, m, filepath.Join(src, "data"), Config{MaxUploadRate: 2 << 20}, nil)

	// The liar holds a copy with one byte flipped in every 16 KiB block and
	// claims to have every piece.
	badDir := t.TempDir()
	good, _ := os.ReadFile(filepath.Join(src, "data", "big.bin"))
	for i := 100; i < len(good); i += piece.BlockSize {
		good[i] ^= 0xff
	}
	os.MkdirAll(filepath.Join(badDir, "data"), 0o755)
	os.WriteFile(filepath.Join(badDir, "data", "big.bin"), good, 0o644)
	liar := startNode(t, m, filepath.Join(badDir, "data"), Config{}, allHave(m.Info.NumPieces))

	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(liar.addr(), honest.addr())
	waitDone(t, leech, 30*time.Second)
	sameTree(t, filepath.Join(src, "data"), dst)
	s := leech.t.Stats()
	if s.Banned != 1 || s.Wasted == 0 {
		var b strings.Builder
		leech.c.WriteStatus(&b)
		liar.c.WriteStatus(&b)
		honest.c.WriteStatus(&b)
		t.Logf("status of the leech, the liar and the honest seeder:\n%s", b.String())
		t.Fatalf("liar not banned or no waste counted: %+v", s)
	}
	leech.t.mu.Lock()
	defer leech.t.mu.Unlock()
	for p := range leech.t.peers {
		if p.id == liar.c.PeerID() {
			t.Fatal("liar still connected")
		}
	}
}

// rawPeer completes a handshake with n and returns the connection.
func rawPeer(t *testing.T, n *node, ih [20]byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", n.c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
	h.Reserved.SetFast(true)
	if err := wire.WriteHandshake(conn, h); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadHandshake(conn); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return conn
}

// dropped reports whether the other side closes conn within a few seconds,
// reading (and discarding) whatever it sends first.
func dropped(conn net.Conn) bool {
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	// EOF (nil from Copy) or a reset: closed by the peer. A timeout: not.
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestHostilePeersDroppedSeederSurvives(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	ih := wire.TruncateV2(m.Info.Hash)

	cases := map[string]func(conn net.Conn){
		"oversized message": func(c net.Conn) {
			binary.Write(c, binary.BigEndian, uint32(1<<30))
			c.Write([]byte{byte(wire.Piece)})
		},
		"out-of-range request": func(c net.Conn) {
			c.Write(wire.AppendInterested(nil))
			c.Write(wire.AppendRequest(nil, uint32(m.Info.NumPieces+5), 0, 16384))
		},
		"request past piece end": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, 0, 64<<10-100, 16384))
		},
		"oversized request": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, 0, 0, 1<<20))
		},
		"garbage": func(c net.Conn) {
			c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13}, 1000))
		},
		"late have-none": func(c net.Conn) {
			c.Write(wire.AppendBitfield(nil, make([]byte, (m.Info.NumPieces+7)/8)))
			c.Write(wire.AppendHaveNone(nil))
		},
		"unrequested block": func(c net.Conn) {
			c.Write(wire.AppendPiece(nil, 0, 0, make([]byte, 16384)))
		},
	}
	for name, attack := range cases {
		t.Run(name, func(t *testing.T) {
			conn := rawPeer(t, seeder, ih)
			defer conn.Close()
			attack(conn)
			if !dropped(conn) {
				t.Fatal("hostile peer not dropped")
			}
		})
	}
	t.Run("wrong info-hash", func(t *testing.T) {
		conn, _ := net.Dial("tcp", seeder.c.Addr().String())
		defer conn.Close()
		wire.WriteHandshake(conn, wire.Handshake{InfoHash: [20]byte{1, 2, 3}, PeerID: NewPeerID()})
		if !dropped(conn) {
			t.Fatal("peer with an unknown info-hash not dropped")
		}
	})
	t.Run("not bittorrent", func(t *testing.T) {
		conn, _ := net.Dial("tcp", seeder.c.Addr().String())
		defer conn.Close()
		conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if !dropped(conn) {
			t.Fatal("HTTP client not dropped")
		}
	})
	// The seeder still serves an honest peer.
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
}

// PEX: a downloader told of one peer learns the others from it and
// connects to all three.
func TestPexSpreadsPeers(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{MaxUploadRate: 512 << 10}, nil)
	a := startNode(t, m, t.TempDir(), Config{}, nil)
	b := startNode(t, m, t.TempDir(), Config{}, nil)
	a.t.AddPeers(seeder.addr())
	b.t.AddPeers(seeder.addr())
	d := startNode(t, m, t.TempDir(), Config{}, nil)
	d.t.AddPeers(seeder.addr())
	want := map[[20]byte]bool{seeder.c.PeerID(): true, a.c.PeerID(): true, b.c.PeerID(): true}
	deadline := time.Now().Add(15 * time.Second)
	for {
		d.t.mu.Lock()
		got := 0
		for p := range d.t.peers {
			if want[p.id] {
				got++
			}
		}
		d.t.mu.Unlock()
		if got == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connected to %d of the 3 peers after 15s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BEP 6: a fast peer that chokes us may still answer requests made before
// the choke; that block is welcome, not a reason to drop the peer.
func TestFastPeerAnswersAfterChoke(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	conn := rawPeer(t, leech, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	conn.Write(wire.AppendHaveAll(nil))
	conn.Write(wire.AppendUnchoke(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	var req wire.Message
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for a request: %v", err)
		}
		if msg.ID == wire.Request {
			req = msg
			break
		}
	}
	conn.Write(wire.AppendChoke(nil))
	st, _ := storage.Open(src, m.Info)
	defer st.Close()
	block := make([]byte, req.Length)
	if _, err := st.ReadBlock(int(req.Index), int(req.Begin), block); err != nil {
		t.Fatal(err)
	}
	conn.Write(wire.AppendPiece(nil, req.Index, req.Begin, block))
	deadline := time.Now().Add(5 * time.Second)
	for leech.t.Stats().Downloaded == 0 {
		if time.Now().After(deadline) {
			t.Fatal("block after choke not taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if s := leech.t.Stats(); s.Peers != 1 {
		t.Fatalf("fast peer dropped for answering after its choke: %+v", s)
	}
}

// A seeder whose data vanished refuses the blocks it cannot read instead of
// dropping the peer that asked; the download completes from another peer.
func TestSeederWithLostDataRejects(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	broken := startNode(t, m, t.TempDir(), Config{}, allHave(m.Info.NumPieces))
	honest := startNode(t, m, src, Config{MaxUploadRate: 4 << 20}, nil)
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(broken.addr(), honest.addr())
	waitDone(t, leech, 30*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	leech.t.mu.Lock()
	defer leech.t.mu.Unlock()
	for p := range leech.t.peers {
		if p.id == broken.c.PeerID() {
			return
		}
	}
	t.Fatal("the peer was dropped by, or dropped, the seeder that lost its data")
}

// Requests that are well framed but ask for what does not exist get a
// refusal, not a dropped connection and never a crash: hash requests for
// an unknown root or outside the tree, metadata pieces past the end.
func TestBadRequestsRefusedPolitely(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 16<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	conn := rawPeer(t, seeder, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	hs := wire.ExtendedHandshake{M: map[string]uint8{wire.ExtMetadata: 7}}
	b, _ := hs.Marshal()
	conn.Write(wire.AppendExtended(nil, wire.ExtendedHandshakeID, b))
	root := m.Info.Files[0].PiecesRoot
	conn.Write(wire.AppendHashRequest(nil, [32]byte{1}, 0, 0, 2, 0)) // unknown root
	conn.Write(wire.AppendHashRequest(nil, root, 0, 0, 1<<20, 0))    // far too many hashes
	conn.Write(wire.AppendHashRequest(nil, root, 40, 0, 2, 0))       // base layer above the tree
	conn.Write(wire.AppendHashRequest(nil, root, 0, 3, 2, 0))        // index not a multiple of length
	req := wire.MetadataMsg{Type: wire.MetadataRequest, Piece: 9999} // past the end
	b, _ = req.Marshal()
	conn.Write(wire.AppendExtended(nil, extMetadataID, b))
	// One good request, so the answers can be told from silence.
	conn.Write(wire.AppendHashRequest(nil, root, 0, 0, 2, 0))

	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	rejects, metaRejects, hashes := 0, 0, 0
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for rejects < 4 || metaRejects < 1 || hashes < 1 {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("after %d hash rejects, %d metadata rejects, %d hashes: %v", rejects, metaRejects, hashes, err)
		}
		switch {
		case msg.ID == wire.HashReject:
			rejects++
		case msg.ID == wire.Hashes:
			hashes++
		case msg.ID == wire.Extended && msg.ExtendedID == 7:
			if mm, err := wire.ParseMetadataMsg(msg.Payload); err == nil && mm.Type == wire.MetadataReject {
				metaRejects++
			}
		}
	}
	if s := seeder.t.Stats(); s.Peers != 1 {
		t.Fatalf("peer dropped for refusable requests: %+v", s)
	}
	// A malformed metadata message, though, is a violation.
	conn.Write(wire.AppendExtended(nil, extMetadataID, []byte("garbage")))
	if !dropped(conn) {
		t.Fatal("peer sending a malformed ut_metadata message not dropped")
	}
}

// The list of known addresses never fills up for good: a failing entry
// makes room for a new one.
func TestKnownPeersEvictFailing(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	// Loopback addresses only, marked failing: a seeder does not redial them.
	n := startNode(t, m, src, Config{}, nil)
	n.t.mu.Lock()
	now := time.Now()
	for i := range maxKnownPeers {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 6881)
		n.t.addressBook.Add(a, SourcePEX, now)
		n.t.addressBook.Dialing(a, now)
		n.t.addressBook.Failed(a, errors.New("refused"), now)
	}
	n.t.mu.Unlock()
	fresh := netip.MustParseAddrPort("127.0.0.1:1")
	n.t.AddPeers(fresh)
	if s := n.t.Stats(); s.KnownAddrs != maxKnownPeers {
		t.Fatalf("full list of %d did not make room for one more: %d entries", maxKnownPeers, s.KnownAddrs)
	}
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	if !n.t.addressBook.Has(fresh) {
		t.Fatal("full list did not take a fresh address in place of a failing one")
	}
}
