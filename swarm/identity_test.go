package swarm

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
	"github.com/shoal-p2p/shoal/tracker"
)

// randomFile writes size seeded random bytes to dir/name and returns them.
func randomFile(t *testing.T, dir, name string, size int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 12))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// v1Pieces is the SHA-1 "pieces" string of data cut into pieces of pl.
func v1Pieces(data []byte, pl int) string {
	var out []byte
	for off := 0; off < len(data); off += pl {
		h := sha1.Sum(data[off:min(off+pl, len(data))])
		out = append(out, h[:]...)
	}
	return string(out)
}

// v1Torrent is the single-file v1 torrent of data named name, its info
// dict written by hand as any v1 creator writes it.
func v1Torrent(t *testing.T, name string, data []byte, pl int) *piece.MetaInfo {
	t.Helper()
	b, err := bencode.Marshal(map[string]any{"name": name, "length": len(data), "piece length": pl, "pieces": v1Pieces(data, pl)})
	if err != nil {
		t.Fatal(err)
	}
	info, err := piece.ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != piece.FormatV1 {
		t.Fatalf("built a %v torrent, want v1", info.Format)
	}
	return &piece.MetaInfo{Info: info, Layers: make([][]piece.Hash, len(info.Files))}
}

// hybridTorrent builds the single-file v2 torrent of dir/name (whose
// bytes are data) and makes it a hybrid by adding the v1 keys to its info
// dict: one file needs no pad files.
func hybridTorrent(t *testing.T, dir, name string, data []byte, pl int) *piece.MetaInfo {
	t.Helper()
	m2, err := piece.Build(context.Background(), filepath.Join(dir, name), piece.BuildOptions{PieceLength: int64(pl)})
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := bencode.Unmarshal(m2.Info.Bytes, &d); err != nil {
		t.Fatal(err)
	}
	d["length"] = len(data)
	d["pieces"] = v1Pieces(data, pl)
	b, err := bencode.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	info, err := piece.ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != piece.FormatHybrid {
		t.Fatalf("built a %v torrent, want hybrid", info.Format)
	}
	return &piece.MetaInfo{Info: info, Layers: m2.Layers}
}

// dialRaw connects to addr as a bare wire-protocol peer: a handshake for
// ih with the fast and extension bits and, if v2bit, the BEP 52 bit. It
// returns the connection and the answer.
func dialRaw(t *testing.T, addr netip.AddrPort, ih [20]byte, v2bit bool) (net.Conn, wire.Handshake) {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
	h.Reserved.SetFast(true)
	h.Reserved.SetExtended(true)
	h.Reserved.SetV2(v2bit)
	if err := wire.WriteHandshake(conn, h); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := wire.ReadHandshake(conn)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return conn, got
}

// peerIdent waits for n's connection from or to addr and returns the
// swarm identity it settled on.
func peerIdent(t *testing.T, n *node, addr netip.AddrPort) ident {
	t.Helper()
	var got ident
	waitFor(t, 5*time.Second, "connection from "+addr.String(), func() bool {
		n.t.mu.Lock()
		defer n.t.mu.Unlock()
		for p := range n.t.peers {
			if p.addr == addr {
				got = p.ident
				return true
			}
		}
		return false
	})
	return got
}

// onlyPeerIdent waits for n's one connection and returns its identity.
func onlyPeerIdent(t *testing.T, n *node) ident {
	t.Helper()
	var got ident
	waitFor(t, 5*time.Second, "a connection", func() bool {
		n.t.mu.Lock()
		defer n.t.mu.Unlock()
		for p := range n.t.peers {
			got = p.ident
			return len(n.t.peers) == 1
		}
		return false
	})
	return got
}

// A hybrid is one Torrent under both of its hashes: a peer handshaking
// with the v2 hash, or with the v1 hash and the upgrade bit, is a v2 peer
// (answered with the truncated v2 hash, as BEP 52 and libtorrent do); one
// with the v1 hash alone is a v1 peer, answered with the v1 hash. Each is
// allowed the fast set computed over its own hash, and gets the same
// pieces; hash requests are answered for the v2 peers and refused for
// the v1 one, which is sent no hash message.
func TestHybridAcceptsBothHashes(t *testing.T) {
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 20*pl+1000, 1)
	m := hybridTorrent(t, src, "data.bin", data, pl)
	n := m.Info.NumPieces
	seeder := startNode(t, m, src, Config{}, allHave(n))
	v1, v2 := [20]byte(m.Info.V1Hash), m.Info.Hash.Truncated()
	if v1 == v2 {
		t.Fatal("the two hashes are one")
	}
	for _, c := range []struct {
		name   string
		sent   [20]byte
		bit    bool
		answer [20]byte
	}{
		{"v2 hash", v2, true, v2},
		{"v1 hash with the upgrade bit", v1, true, v2},
		{"v1 hash, a v1-only peer", v1, false, v1},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, h := dialRaw(t, seeder.addr(), c.sent, c.bit)
			if h.InfoHash != c.answer {
				t.Fatalf("answered with %x, want %x", h.InfoHash, c.answer)
			}
			local := netip.MustParseAddrPort(conn.LocalAddr().String())
			wantV2 := c.answer == v2
			if got := peerIdent(t, seeder, local); got != (ident{ih: c.answer, v2: wantV2}) {
				t.Fatalf("seeder's connection is %x v2=%v, want %x v2=%v", got.ih, got.v2, c.answer, wantV2)
			}
			// We have nothing: the seeder offers its allowed-fast set,
			// computed over the hash this connection speaks under.
			root := m.Info.Files[0].PiecesRoot
			r := m.Info.LayerRequest(0, 0, maxLayerRequest)
			out := wire.AppendHaveNone(nil)
			out = wire.AppendHashRequest(out, root, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))
			conn.Write(out)
			rd := wire.NewReader(conn, wire.Limits{NumPieces: n})
			var fast []uint32
			var hashReply wire.ID
			readUntil(t, rd, "allowed-fast set and the hash reply", func(msg wire.Message) bool {
				switch msg.ID {
				case wire.AllowedFast:
					fast = append(fast, msg.Index)
				case wire.Hashes, wire.HashReject:
					if hashReply != 0 {
						t.Fatalf("a second %v", msg.ID)
					}
					hashReply = msg.ID
				case wire.HashRequest:
					t.Fatal("the seeder sent a hash request")
				}
				return len(fast) < allowedFastSetSize || hashReply == 0
			})
			if want := allowedFastSet(nil, local.Addr(), c.answer, n, allowedFastSetSize); !slices.Equal(fast, want) {
				t.Fatalf("allowed fast %v, want %v (over %x)", fast, want, c.answer)
			}
			if wantReply := map[bool]wire.ID{true: wire.Hashes, false: wire.HashReject}[wantV2]; hashReply != wantReply {
				t.Fatalf("hash request answered with %v, want %v", hashReply, wantReply)
			}
			// The same pieces, whichever the swarm: a block of an allowed
			// piece, asked for while choked.
			pc := fast[0]
			conn.Write(wire.AppendRequest(nil, pc, 0, wire.BlockSize))
			readUntil(t, rd, "the block", func(msg wire.Message) bool {
				switch msg.ID {
				case wire.Hashes, wire.HashReject, wire.HashRequest:
					t.Fatalf("unasked %v", msg.ID)
				case wire.Reject:
					t.Fatalf("block %d+0 rejected", pc)
				case wire.Piece:
					off := int(pc) * pl
					if msg.Index != pc || msg.Begin != 0 || string(msg.Payload) != string(data[off:off+wire.BlockSize]) {
						t.Fatalf("piece message %d+%d of %d bytes is not the block asked for", msg.Index, msg.Begin, len(msg.Payload))
					}
					return false
				}
				return true
			})
		})
	}
	// One torrent, though found under two hashes, with both in its status.
	var b strings.Builder
	seeder.c.WriteStatus(&b)
	if st := b.String(); !strings.Contains(st, "  torrents: 1\n") || !strings.Contains(st, "info-hash v1: "+m.Info.V1Hash.String()) {
		t.Fatalf("status of a hybrid:\n%s", st)
	}
}

// fakePeer accepts connections, records each handshake it reads, and
// answers with the hash answer gives for it (the zero hash: hang up).
type fakePeer struct {
	addr  netip.AddrPort
	mu    sync.Mutex
	got   []wire.Handshake
	conns []net.Conn // closed when the test ends
}

func newFakePeer(t *testing.T, answer func(wire.Handshake) [20]byte) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePeer{addr: netip.MustParseAddrPort(ln.Addr().String())}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, conn)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				h, err := wire.ReadHandshake(conn)
				if err != nil {
					return
				}
				f.mu.Lock()
				f.got = append(f.got, h)
				f.mu.Unlock()
				ih := answer(h)
				if ih == ([20]byte{}) {
					return
				}
				out := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
				out.Reserved.SetFast(true)
				wire.WriteHandshake(conn, out)
				// Stay until the other side hangs up (or the deadline).
				buf := make([]byte, 4096)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return f
}

// handshakes waits for the first handshake f reads.
func (f *fakePeer) handshake(t *testing.T) wire.Handshake {
	t.Helper()
	var h wire.Handshake
	waitFor(t, 5*time.Second, "a handshake at "+f.addr.String(), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.got) == 0 {
			return false
		}
		h = f.got[0]
		return true
	})
	return h
}

// A hybrid dials a peer that a source found under the v2 hash with the
// truncated v2 hash, and any other (found under the v1 hash, or named by
// the user) with the v1 hash and the upgrade bit; it takes either the v1
// answer (a v1 peer) or the v2 one (the upgrade) to that, and refuses a
// stranger's. A v1 torrent dials with the v1 hash and no v2 bit, which
// libtorrent would drop it for.
func TestDialHashByWhereFound(t *testing.T) {
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 6*pl+5, 2)
	m := hybridTorrent(t, src, "data.bin", data, pl)
	v1, v2 := [20]byte(m.Info.V1Hash), m.Info.Hash.Truncated()
	leech := startNode(t, m, t.TempDir(), Config{}, make([]byte, (m.Info.NumPieces+7)/8))

	same := func(h wire.Handshake) [20]byte { return h.InfoHash }
	upgrade := func(wire.Handshake) [20]byte { return v2 }
	stranger := func(wire.Handshake) [20]byte { return [20]byte{9, 9, 9} }
	byV2 := newFakePeer(t, same)
	byV1 := newFakePeer(t, upgrade)
	named := newFakePeer(t, same)
	liar := newFakePeer(t, stranger)
	// One source asked under each hash finds a different peer; the fan-in
	// asks it once per swarm hash.
	leech.t.AddSources(Source{Kind: SourceDHT, Finder: finderFunc(func(_ context.Context, ih [20]byte, found func([]netip.AddrPort)) error {
		switch ih {
		case v2:
			found([]netip.AddrPort{byV2.addr})
		case v1:
			found([]netip.AddrPort{byV1.addr, liar.addr})
		default:
			t.Errorf("source asked under %x, not a swarm hash", ih)
		}
		return nil
	})}, FixedPeers(named.addr))

	for _, c := range []struct {
		name    string
		f       *fakePeer
		sent    [20]byte
		connHas ident
	}{
		{"found under v2", byV2, v2, ident{v2, true}},
		{"found under v1, upgraded", byV1, v1, ident{v2, true}},
		{"named by the user, not upgraded", named, v1, ident{v1, false}},
	} {
		h := c.f.handshake(t)
		if h.InfoHash != c.sent || !h.Reserved.V2() {
			t.Errorf("%s: dialed with %x v2-bit=%v, want %x with the bit", c.name, h.InfoHash, h.Reserved.V2(), c.sent)
			continue
		}
		if got := peerIdent(t, leech, c.f.addr); got != c.connHas {
			t.Errorf("%s: connection is %x v2=%v, want %x v2=%v", c.name, got.ih, got.v2, c.connHas.ih, c.connHas.v2)
		}
	}
	liar.handshake(t)
	waitFor(t, 5*time.Second, "the stranger's answer refused", func() bool {
		rc := leech.t.refused.counts()
		return rc[RefusedWrongInfoHash] == 1
	})

	// A v1 torrent: the v1 hash, and no claim to v2.
	m1 := v1Torrent(t, "data.bin", data, pl)
	v1leech := startNode(t, m1, src, Config{}, make([]byte, (m1.Info.NumPieces+7)/8))
	v1peer := newFakePeer(t, same)
	v1leech.t.AddPeers(v1peer.addr)
	if h := v1peer.handshake(t); h.InfoHash != m1.Info.V1Hash || h.Reserved.V2() {
		t.Fatalf("v1 torrent dialed with %x v2-bit=%v, want %x without the bit", h.InfoHash, h.Reserved.V2(), m1.Info.V1Hash)
	}
	if got := peerIdent(t, v1leech, v1peer.addr); got != (ident{[20]byte(m1.Info.V1Hash), false}) {
		t.Fatalf("v1 connection is %x v2=%v", got.ih, got.v2)
	}
}

// Two shoal nodes on a hybrid: dialed by the v2 hash, or by the v1 hash
// with the upgrade bit, both ends settle on the v2 hash.
func TestHybridNodesConnect(t *testing.T) {
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 5*pl, 3)
	m := hybridTorrent(t, src, "data.bin", data, pl)
	none := make([]byte, (m.Info.NumPieces+7)/8)
	v2 := m.Info.Hash.Truncated()
	for _, c := range []struct {
		name string
		add  func(from *node, to netip.AddrPort)
	}{
		{"found under the v2 hash", func(from *node, to netip.AddrPort) { from.t.addFound(SourceDHT, v2, []netip.AddrPort{to}) }},
		{"found under the v1 hash", func(from *node, to netip.AddrPort) {
			from.t.addFound(SourceTracker, [20]byte(m.Info.V1Hash), []netip.AddrPort{to})
		}},
		{"named by the user", func(from *node, to netip.AddrPort) { from.t.AddPeersFrom(SourceFixed, to) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := startNode(t, m, t.TempDir(), Config{}, none)
			b := startNode(t, m, t.TempDir(), Config{}, none)
			c.add(b, a.addr())
			want := ident{v2, true}
			if got := peerIdent(t, b, a.addr()); got != want {
				t.Fatalf("dialer's connection is %x v2=%v, want the v2 hash", got.ih, got.v2)
			}
			if got := onlyPeerIdent(t, a); got != want {
				t.Fatalf("accepter's connection is %x v2=%v, want the v2 hash", got.ih, got.v2)
			}
		})
	}
}

// A v1 torrent is found by its v1 hash only: a peer claiming v2 is still
// a v1 peer (answered without the bit), is refused hash requests and
// dropped for sending hashes; two shoal nodes connect as v1 peers; and
// adding the same torrent twice is refused.
func TestV1TorrentIdentity(t *testing.T) {
	src := t.TempDir()
	const pl = 20 << 10 // not a power of two, as v1 allows
	data := randomFile(t, src, "data.bin", 7*pl+3, 4)
	m := v1Torrent(t, "data.bin", data, pl)
	none := make([]byte, (m.Info.NumPieces+7)/8)
	a := startNode(t, m, t.TempDir(), Config{}, none)
	v1 := [20]byte(m.Info.V1Hash)

	conn, h := dialRaw(t, a.addr(), v1, true)
	if h.InfoHash != v1 || h.Reserved.V2() {
		t.Fatalf("answered %x v2-bit=%v, want %x without the bit", h.InfoHash, h.Reserved.V2(), v1)
	}
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	if got := peerIdent(t, a, local); got != (ident{v1, false}) {
		t.Fatalf("connection is %x v2=%v, want a v1 one", got.ih, got.v2)
	}
	var root [32]byte
	conn.Write(wire.AppendHashRequest(nil, root, 0, 0, 2, 0))
	rd := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	readUntil(t, rd, "the hash reject", func(msg wire.Message) bool {
		if msg.ID == wire.Hashes || msg.ID == wire.HashRequest {
			t.Fatalf("a v1 torrent sent %v", msg.ID)
		}
		return msg.ID != wire.HashReject
	})
	conn.Write(wire.AppendHashes(nil, root, 0, 0, 2, 0, make([]byte, 64)))
	if !dropped(conn) {
		t.Fatal("a peer sending hashes on a v1 torrent was not dropped")
	}

	b := startNode(t, m, t.TempDir(), Config{}, none)
	b.t.AddPeers(a.addr())
	want := ident{v1, false}
	if got := peerIdent(t, b, a.addr()); got != want {
		t.Fatalf("dialer's connection is %x v2=%v, want v1", got.ih, got.v2)
	}
	waitFor(t, 5*time.Second, "the accepter's connection", func() bool {
		a.t.mu.Lock()
		defer a.t.mu.Unlock()
		for p := range a.t.peers {
			if p.id == b.c.PeerID() {
				return p.ident == want
			}
		}
		return false
	})
	if _, err := a.c.Add(m, a.st, none); err == nil || !strings.Contains(err.Error(), "already added") {
		t.Fatalf("adding the torrent twice: %v", err)
	}
}

// A btih link (40 hex digits) fetches a v1 torrent's info dict, checked
// by its SHA-1, with no layers to fetch; and a hybrid's, with its piece
// layers fetched under the v2 hash the dict names. The hybrid link gets
// them through the upgrade.
func TestFetchInfoByBtih(t *testing.T) {
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 9*pl+77, 5)
	m1 := v1Torrent(t, "data.bin", data, pl)
	mh := hybridTorrent(t, src, "data.bin", data, pl)
	v1seeder := startNode(t, m1, src, Config{}, allHave(m1.Info.NumPieces))
	hseeder := startNode(t, mh, src, Config{}, allHave(mh.Info.NumPieces))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	mg, err := piece.ParseMagnet(hex.EncodeToString(m1.Info.V1Hash[:]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fetcher(t).FetchInfo(ctx, mg, addrs(v1seeder.addr()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Info.Format != piece.FormatV1 || got.Info.V1Hash != m1.Info.V1Hash || string(got.Info.Bytes) != string(m1.Info.Bytes) {
		t.Fatalf("fetched a %v torrent %s", got.Info.Format, got.Info.ID())
	}
	for i, l := range got.Layers {
		if len(l) != 0 {
			t.Fatalf("a v1 torrent came with a piece layer for file %d", i)
		}
	}
	// Asked with the v1 hash and no v2 bit: the link does not say the
	// torrent has v2, and libtorrent drops a peer that claims v2 for a
	// v1 torrent.
	hangUp := newFakePeer(t, func(wire.Handshake) [20]byte { return [20]byte{} })
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	fetcher(t).FetchInfo(sctx, mg, addrs(hangUp.addr))
	scancel()
	if h := hangUp.handshake(t); h.InfoHash != [20]byte(m1.Info.V1Hash) || h.Reserved.V2() {
		t.Fatalf("btih fetch handshake: %x v2-bit=%v, want %s without the bit", h.InfoHash, h.Reserved.V2(), m1.Info.V1Hash)
	}

	// And a multi-file hybrid with pad files, as Build makes it.
	msrc := t.TempDir()
	content(t, msrc, "multi", multiFiles, pl)
	mm, err := piece.Build(context.Background(), filepath.Join(msrc, "multi"), piece.BuildOptions{PieceLength: pl, Format: piece.FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	mseeder := startNode(t, mm, msrc, Config{}, allHave(mm.Info.NumPieces))
	for _, c := range []struct {
		m    *piece.MetaInfo
		at   netip.AddrPort
		link string
	}{
		{mh, hseeder.addr(), "magnet:?xt=urn:btih:" + mh.Info.V1Hash.String()},
		{mh, hseeder.addr(), mh.Magnet().String()},
		{mm, mseeder.addr(), "magnet:?xt=urn:btih:" + mm.Info.V1Hash.String()},
		{mm, mseeder.addr(), mm.Magnet().String()},
	} {
		mg, err := piece.ParseMagnet(c.link)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetcher(t).FetchInfo(ctx, mg, addrs(c.at))
		if err != nil {
			t.Fatalf("%s: %v", c.link, err)
		}
		if got.Info.Format != piece.FormatHybrid || got.Info.Hash != c.m.Info.Hash || got.Info.V1Hash != c.m.Info.V1Hash {
			t.Fatalf("%s: fetched a %v torrent %s", c.link, got.Info.Format, got.Info.ID())
		}
		for i := range c.m.Layers {
			if !slices.Equal(got.Layers[i], c.m.Layers[i]) {
				t.Fatalf("%s: piece layer of file %d: %d hashes, want %d", c.link, i, len(got.Layers[i]), len(c.m.Layers[i]))
			}
		}
	}
}

// A peer that answers a btih link with an info dict that is not the
// link's is dropped with an error that says so: another torrent's dict
// (its SHA-1 differs), or a v2-only dict whose SHA-1 is the link's, which
// names no v1 torrent. With an honest peer among them the fetch succeeds.
func TestFetchInfoByBtihRefusesWrongDict(t *testing.T) {
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 3*pl, 6)
	m := v1Torrent(t, "data.bin", data, pl)
	other := v1Torrent(t, "other.bin", data[:pl], pl)
	v1 := [20]byte(m.Info.V1Hash)
	serve := func(b []byte) func(int) []byte {
		return func(p int) []byte {
			n, _ := wire.MetadataPieceLen(int64(len(b)), p)
			return b[p*wire.MetadataPieceSize : p*wire.MetadataPieceSize+n]
		}
	}
	wrong := liar(t, v1, int64(len(other.Info.Bytes)), serve(other.Info.Bytes))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := fetcher(t).FetchInfo(ctx, piece.Magnet{V1Hash: v1}, addrs(wrong))
	if err == nil || !strings.Contains(err.Error(), "does not match the magnet") || !strings.Contains(err.Error(), "SHA-1") {
		t.Fatalf("another torrent's dict: %v", err)
	}

	// A v2 dict served for a btih that is its SHA-1.
	m2 := content(t, t.TempDir(), "v2", map[string]int{"f": 1000}, 16<<10)
	v2sha1 := piece.V1Hash(sha1.Sum(m2.Info.Bytes))
	v2liar := liar(t, v2sha1, int64(len(m2.Info.Bytes)), serve(m2.Info.Bytes))
	_, err = fetcher(t).FetchInfo(ctx, piece.Magnet{V1Hash: v2sha1}, addrs(v2liar))
	if err == nil || !strings.Contains(err.Error(), "has no v1 pieces") {
		t.Fatalf("a v2-only dict by btih: %v", err)
	}

	seeder := startNode(t, m, src, Config{}, allHave(m.Info.NumPieces))
	got, err := fetcher(t).FetchInfo(ctx, piece.Magnet{V1Hash: v1}, addrs(wrong, seeder.addr()))
	if err != nil || got.Info.V1Hash != v1 {
		t.Fatalf("with an honest peer: %v", err)
	}
}

// startTracker runs a tracker on loopback, HTTP and UDP on one port, for
// the test's lifetime, and returns its two announce URLs.
func startTracker(t *testing.T) (httpURL, udpURL string) {
	t.Helper()
	srv, err := tracker.NewServer(tracker.Config{Logger: quietLog(), Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	conns, err := tracker.ListenUDP(context.Background(), "udp", ln.Addr().String(), 1)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ctx, ln) }()
	go func() { done <- srv.ServeUDP(ctx, conns...) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	return fmt.Sprintf("http://127.0.0.1:%d/announce", port), fmt.Sprintf("udp://127.0.0.1:%d", port)
}

// A hybrid announces under both of its short hashes, through the HTTP
// and the UDP tracker clients alike, and a peer the tracker names under
// the v2 hash is dialed with it.
func TestHybridAnnouncesBothHashes(t *testing.T) {
	httpURL, udpURL := startTracker(t)
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 4*pl, 7)
	m := hybridTorrent(t, src, "data.bin", data, pl)
	none := make([]byte, (m.Info.NumPieces+7)/8)
	a := startNode(t, m, t.TempDir(), Config{}, none)
	b := startNode(t, m, t.TempDir(), Config{}, none)
	a.t.AddTrackers([][]string{{httpURL}})
	b.t.AddTrackers([][]string{{udpURL}})
	v1, v2 := tracker.InfoHash(m.Info.V1Hash), tracker.InfoHash(m.Info.Hash.Truncated())
	cl := &tracker.Client{}
	waitFor(t, 10*time.Second, "both peers announced under both hashes", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got, err := cl.Scrape(ctx, httpURL, v1, v2)
		return err == nil && got[v1].Incomplete == 2 && got[v2].Incomplete == 2
	})
	// The later announcer hears of the earlier one under both hashes,
	// remembers it under the v2 one, and so the two connect as v2 peers
	// (dialed with the v2 hash, or upgraded if the v1 answer came first).
	waitFor(t, 10*time.Second, "a peer remembered as found under the v2 hash", func() bool {
		for _, n := range [][2]*node{{a, b}, {b, a}} {
			n[0].t.mu.Lock()
			ok := n[0].t.addressBook.FoundV2(n[1].addr())
			n[0].t.mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	})
	for _, n := range []*node{a, b} {
		if got := onlyPeerIdent(t, n); got != (ident{[20]byte(v2), true}) {
			t.Fatalf("connection is %x v2=%v, want the v2 hash", got.ih, got.v2)
		}
	}
}

// A hybrid announces to the DHT under both of its short hashes, so a
// v1-only client looking up the btih finds it as a v2 one looking up the
// truncated btmh does. Every DHT node is local.
func TestHybridDHTBothHashes(t *testing.T) {
	dcfg := func(bootstrap ...string) dht.Config {
		return dht.Config{ListenAddr: "127.0.0.1:0", Bootstrap: append([]string{}, bootstrap...), AnnounceInterval: time.Second,
			RefreshInterval: 500 * time.Millisecond, LookupTimeout: 3 * time.Second, Logger: quietLog()}
	}
	startDHT := func(cfg dht.Config) *dht.Node {
		n, err := dht.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	boot := startDHT(dcfg())
	var nodes []*dht.Node
	for range 4 {
		nodes = append(nodes, startDHT(dcfg(boot.Addr().String())))
	}
	src := t.TempDir()
	const pl = 16 << 10
	data := randomFile(t, src, "data.bin", 3*pl, 8)
	m := hybridTorrent(t, src, "data.bin", data, pl)
	a := startNode(t, m, t.TempDir(), Config{}, make([]byte, (m.Info.NumPieces+7)/8))
	a.t.AddSources(DHTAnnounce(nodes[0].Announcer(int(a.addr().Port()))))
	for _, ih := range [][20]byte{m.Info.V1Hash, m.Info.Hash.Truncated()} {
		waitFor(t, 20*time.Second, fmt.Sprintf("a DHT lookup of %x finds the torrent", ih), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			found, _ := nodes[3].Lookup(ctx, ih)
			return slices.Contains(found, a.addr())
		})
	}
}
