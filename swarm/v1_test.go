package swarm

import (
	"crypto/sha1"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// tfile is a file of a hand-built v1 torrent: its path under the
// torrent's folder and size; a pad file (BEP 47) is zeros, never on disk.
type tfile struct {
	path string
	size int
	pad  bool
}

// v1Content writes the files of random bytes under dir/name and returns a
// v1 torrent of them laid end to end in the order given, so pieces cross
// file boundaries where sizes fall that way. It is built by hand:
// piece.Build makes v1 torrents without pad files.
func v1Content(t *testing.T, dir, name string, files []tfile, pl int) *piece.MetaInfo {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(files)), 11))
	var space []byte
	var list []any
	for _, f := range files {
		data := make([]byte, f.size)
		d := map[string]any{"length": f.size, "path": strings.Split(f.path, "/")}
		if f.pad {
			d["attr"] = "p"
		} else {
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			full := filepath.Join(dir, name, filepath.FromSlash(f.path))
			os.MkdirAll(filepath.Dir(full), 0o755)
			if err := os.WriteFile(full, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		list = append(list, d)
		space = append(space, data...)
	}
	info := map[string]any{"name": name, "piece length": pl, "pieces": string(sha1Pieces(space, pl)), "files": list}
	return parsedInfo(t, info, nil)
}

// hybridContent writes files (path → size) of random bytes under dir/name
// and returns a hybrid torrent of them as piece.Build makes it: BEP 47 pad
// files after each file that does not end on a piece boundary, as
// libtorrent 2.0 pads.
func hybridContent(t *testing.T, dir, name string, files map[string]int, pl int) *piece.MetaInfo {
	t.Helper()
	m := contentFormat(t, dir, name, files, int64(pl), piece.FormatHybrid)
	if m.Info.Format != piece.FormatHybrid {
		t.Fatalf("built a %v torrent, want hybrid", m.Info.Format)
	}
	return m
}

// sha1Pieces hashes the piece space as v1 does.
func sha1Pieces(space []byte, pl int) []byte {
	var out []byte
	for off := 0; off < len(space); off += pl {
		s := sha1.Sum(space[off:min(len(space), off+pl)])
		out = append(out, s[:]...)
	}
	return out
}

func parsedInfo(t *testing.T, info map[string]any, layers [][]piece.Hash) *piece.MetaInfo {
	t.Helper()
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	in, err := piece.ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return &piece.MetaInfo{Info: in, Layers: layers}
}

// v1Files has pieces (24 KiB: neither a power of two nor whole blocks)
// that cross files, a file smaller than a block, an empty file, and a pad
// file in the middle of a piece.
var v1Files = []tfile{
	{path: "a.bin", size: 100_000},
	{path: "docs/b.txt", size: 5000},
	{path: "docs/empty", size: 0},
	{path: "c/d.bin", size: 70_001},
	{path: ".pad/3000", size: 3000, pad: true},
	{path: "e.bin", size: 30_000},
}

// noPadFolder fails the test if a .pad folder was written under dir.
func noPadFolder(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == ".pad" {
			t.Errorf("pad file written to disk: %s", p)
		}
		return nil
	})
}

// v1 downloads of pieces that cross files: a torrent piece.Build makes
// (files end to end, no padding), and one made by hand as other clients
// may: 24 KiB pieces, neither a power of two nor whole blocks, and a pad
// file inside a piece.
func TestV1DownloadAcrossFiles(t *testing.T) {
	t.Run("built", func(t *testing.T) {
		src := t.TempDir()
		testV1Download(t, src, contentFormat(t, src, "data", multiFiles, 32<<10, piece.FormatV1))
	})
	t.Run("hand-made with pad", func(t *testing.T) {
		src := t.TempDir()
		testV1Download(t, src, v1Content(t, src, "data", v1Files, 24<<10))
	})
}

func testV1Download(t *testing.T, src string, m *piece.MetaInfo) {
	if m.Info.Format != piece.FormatV1 {
		t.Fatalf("format %v", m.Info.Format)
	}
	crossing := false
	for _, f := range m.Info.Files {
		crossing = crossing || f.Length > 0 && f.Offset%m.Info.PieceLength != 0
	}
	if !crossing {
		t.Fatal("no piece crosses a file boundary: the test would prove little")
	}
	seeder := startNode(t, m, src, Config{}, nil)
	if s := seeder.t.Stats(); !s.Seeding {
		t.Fatalf("seeder does not find its data complete: %+v", s)
	}
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	noPadFolder(t, dst)
	if s := leech.t.Stats(); s.BytesDone != m.Info.TotalLength || s.Wasted != 0 || s.BytesDone != s.BytesTotal {
		t.Errorf("stats %+v, want %d bytes done and none wasted", s, m.Info.TotalLength)
	}
	// What the downloader wrote checks out as the seeder's did.
	for p := range m.Info.NumPieces {
		if ok, err := leech.t.verifyStored(p, nil); !ok || err != nil {
			t.Fatalf("piece %d does not verify on the downloader's disk: %v", p, err)
		}
	}
}

func TestHybridDownload(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", multiFiles, 32<<10)
	if m.Info.Format != piece.FormatHybrid {
		t.Fatalf("format %v", m.Info.Format)
	}
	seeder := startNode(t, m, src, Config{}, nil)
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	noPadFolder(t, dst)
	if s := leech.t.Stats(); s.BytesDone != m.Info.TotalLength || s.Wasted != 0 {
		t.Errorf("stats %+v", s)
	}
}

// v1PoisonFiles is a v1 torrent of big pieces (many blocks each, so that
// several peers' blocks meet in one piece) that cross files.
var v1PoisonFiles = []tfile{
	{path: "a.bin", size: 1_300_000},
	{path: "b.bin", size: 700_000},
	{path: "c.bin", size: 500_000},
}

// startPoisoner starts a peer that claims every piece of m and serves a
// copy of its files (under src/data) with one byte flipped in every 16 KiB
// block, as internal/rogue's poisoner does (which this package's tests
// cannot import): it does not check what it serves, and dials to.
func startPoisoner(t *testing.T, m *piece.MetaInfo, src string, to *node, rate int64) *node {
	t.Helper()
	return startPoisonerWith(t, m, src, to, Config{MaxUploadRate: rate})
}

// startPoisonerWith is startPoisoner with cfg for the poisoner's client.
func startPoisonerWith(t *testing.T, m *piece.MetaInfo, src string, to *node, cfg Config) *node {
	t.Helper()
	cfg.UploadSlots, cfg.NoServeChecks = 64, true
	p := startNode(t, m, poisonedCopy(t, m, src), cfg, allHave(m.Info.NumPieces))
	p.t.AddPeers(to.addr())
	// Connected, or served and banned already.
	waitFor(t, 5*time.Second, "poisoner connected", func() bool { return p.t.Stats().Peers > 0 || to.t.Stats().Banned > 0 })
	return p
}

// poisonedCopy copies the files of m under src/data to a new folder with
// one byte flipped in every 16 KiB of each file, and returns the folder.
func poisonedCopy(t *testing.T, m *piece.MetaInfo, src string) string {
	t.Helper()
	dir := t.TempDir()
	for i, f := range m.Info.Files {
		if f.Pad || f.Length == 0 {
			continue
		}
		rel := filepath.Join(m.Info.DiskPath(i)...)
		data, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += piece.BlockSize {
			data[off+min(piece.BlockSize, len(data)-off)/2] ^= 0xff
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// blockPoisoner is a v1 peer on the wire that claims every piece and
// serves the odd blocks of each from a poisoned copy (every 16 KiB of file
// data has a byte flipped), rejecting requests for the even ones (BEP 6).
// So every piece it sends blocks of has blocks from honest peers too, for
// sure rather than as timing has it: it cannot be convicted as a piece's
// lone sender, only by smart ban, its blocks set against those of the
// piece once it passed.
type blockPoisoner struct {
	conn   net.Conn
	served atomic.Int64  // blocks sent
	gone   chan struct{} // closed once the connection is
}

// startBlockPoisoner connects a blockPoisoner of m, whose files lie under
// src/data, to the downloader to.
func startBlockPoisoner(t *testing.T, m *piece.MetaInfo, src string, to *node) *blockPoisoner {
	t.Helper()
	space := pieceSpace(t, m, poisonedCopy(t, m, src))
	// The v1 hash without the v2 bit: a v1 peer, never asked for hashes.
	conn := rawPeer(t, to, m.Info.V1Hash)
	conn.SetDeadline(time.Time{})
	bp := &blockPoisoner{conn: conn, gone: make(chan struct{})}
	conn.Write(wire.AppendUnchoke(wire.AppendHaveAll(nil)))
	go func() {
		defer close(bp.gone)
		r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
		var out []byte
		for {
			msg, err := r.ReadMessage()
			if err != nil {
				return
			}
			if msg.KeepAlive || msg.ID != wire.Request {
				continue
			}
			off := int(msg.Index)*int(m.Info.PieceLength) + int(msg.Begin)
			if msg.Begin/piece.BlockSize%2 == 0 || off+int(msg.Length) > len(space) {
				out = wire.AppendReject(out[:0], msg.Index, msg.Begin, msg.Length)
			} else {
				out = wire.AppendPiece(out[:0], msg.Index, msg.Begin, space[off:off+int(msg.Length)])
				bp.served.Add(1)
			}
			if _, err := conn.Write(out); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-bp.gone
	})
	return bp
}

// A poisoner among honest peers on a v1 torrent, where no leaf hashes can
// say which block was bad, is found out by smart ban: the blocks it sent
// of a failed piece differ from those of the piece that passed. It is
// banned, the download completes byte for byte, and the waste is counted.
// The poisoner serves only some blocks of each piece (blockPoisoner): a
// full poisoner, first in, was sent whole pieces alone often enough to be
// banned for them before smart ban had a say.
func TestV1PoisonerAmongHonestSmartBanned(t *testing.T) {
	src := t.TempDir()
	m := v1Content(t, src, "data", v1PoisonFiles, 256<<10)
	honest := []*node{
		startNode(t, m, src, Config{MaxUploadRate: 1 << 20}, nil),
		startNode(t, m, src, Config{MaxUploadRate: 1 << 20}, nil),
	}
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	poisoner := startBlockPoisoner(t, m, src, leech)
	leech.t.AddPeers(honest[0].addr(), honest[1].addr())
	waitDone(t, leech, 30*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	s := leech.t.Stats()
	if s.Banned != 1 || s.Wasted == 0 || s.BadBlocks == 0 {
		t.Fatalf("stats %+v: want the poisoner banned through its blocks' hashes (BadBlocks > 0) and waste counted", s)
	}
	if poisoner.served.Load() == 0 {
		t.Fatal("the poisoner served nothing: the test proved nothing")
	}
	waitFor(t, 5*time.Second, "poisoner dropped", func() bool { return !connectedAt(leech, poisoner.conn.LocalAddr()) })
	for _, h := range honest {
		if h.t.Stats().Uploaded == 0 {
			t.Errorf("honest peer %v served nothing", h.addr())
		}
	}
	var dump strings.Builder
	leech.t.WriteStatus(&dump)
	if !strings.Contains(dump.String(), "wasted ") || strings.Contains(dump.String(), "wasted 0 B") {
		t.Errorf("status dump shows no waste:\n%s", dump.String())
	}
}

// connectedAt reports whether n has a connection from addr.
func connectedAt(n *node, addr net.Addr) bool {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	for p := range n.t.peers {
		if p.addr.String() == addr.String() {
			return true
		}
	}
	return false
}

// connected reports whether n has a connection to other. Other peers the
// poisoner met through PEX may keep it company; n is what matters.
func connected(n, other *node) bool {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	for p := range n.t.peers {
		if p.id == other.c.PeerID() {
			return true
		}
	}
	return false
}

// A poisoner alone on the pieces it sends is banned once a second piece of
// its fails (one bad piece could have been bad luck), and the download
// then completes from an honest seeder.
func TestV1LonePoisonerBannedAfterRepeatedFailures(t *testing.T) {
	src := t.TempDir()
	m := v1Content(t, src, "data", v1PoisonFiles, 256<<10)
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	poisoner := startPoisoner(t, m, src, leech, 0)
	waitFor(t, 10*time.Second, "lone poisoner banned", func() bool { return leech.t.Stats().Banned == 1 })
	s := leech.t.Stats()
	// Two failed pieces at least: the short last one may be either.
	least := 2 * m.Info.PieceSize(m.Info.NumPieces-1)
	leech.t.mu.Lock()
	strikes := 0
	for _, n := range leech.t.strikes {
		strikes = max(strikes, n)
	}
	leech.t.mu.Unlock()
	if s.Wasted < least || s.PiecesDone != 0 || strikes < strikesToBan || s.BadBlocks != 0 {
		t.Fatalf("banned after %d bytes wasted, %d strikes, %d pieces done, %d blocks proven; want %d strikes for failed pieces first", s.Wasted, strikes, s.PiecesDone, s.BadBlocks, strikesToBan)
	}
	waitFor(t, 5*time.Second, "poisoner dropped", func() bool { return !connected(leech, poisoner) })
	honest := startNode(t, m, src, Config{}, nil)
	leech.t.AddPeers(honest.addr(), poisoner.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	if s := leech.t.Stats(); s.Banned != 1 {
		t.Fatalf("stats after completing: %+v", s)
	}
}

// swarmHash is a 20-byte hash n's client finds its torrent under, for a
// raw peer's handshake: the first of the torrent's swarm hashes that it
// answers to, else whatever it files the torrent under.
func swarmHash(n *node) [20]byte {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	for _, h := range n.t.info.SwarmHashes() {
		if n.c.torrents[h] == n.t {
			return h
		}
	}
	for h, t := range n.c.torrents {
		if t == n.t {
			return h
		}
	}
	return [20]byte{}
}

// Requests a v1 peer may make are bounded by the v1 piece space: past the
// end of the last piece, or of the torrent, drops the peer; up to the end
// is answered, pad bytes as zeros.
func TestV1HostileRequests(t *testing.T) {
	src := t.TempDir()
	// 24 KiB pieces; 3 pieces, the last short and a pad in piece 1.
	files := []tfile{{path: "a.bin", size: 30000}, {path: ".pad/2000", size: 2000, pad: true}, {path: "b.bin", size: 24 << 10}}
	m := v1Content(t, src, "data", files, 24<<10)
	last := uint32(m.Info.NumPieces - 1)
	lastSize := uint32(m.Info.V1PieceSize(int(last)))
	if m.Info.NumPieces != 3 || lastSize >= 24<<10 {
		t.Fatalf("%d pieces, last of %d bytes", m.Info.NumPieces, lastSize)
	}
	seeder := startNode(t, m, src, Config{}, nil)
	cases := map[string]func(c net.Conn){
		"piece out of range": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, last+1, 0, 1000))
		},
		"past the last piece's end": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, last, 0, lastSize+1))
		},
		"past a piece's end": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, 0, 20<<10, 8<<10))
		},
		"offset past the end": func(c net.Conn) {
			c.Write(wire.AppendRequest(nil, last, lastSize, 1))
		},
	}
	for name, attack := range cases {
		t.Run(name, func(t *testing.T) {
			conn := rawPeer(t, seeder, swarmHash(seeder))
			defer conn.Close()
			conn.Write(wire.AppendInterested(nil))
			attack(conn)
			if !dropped(conn) {
				t.Fatal("hostile peer not dropped")
			}
		})
	}
	t.Run("up to the end, pad as zeros", func(t *testing.T) {
		conn := rawPeer(t, seeder, swarmHash(seeder))
		defer conn.Close()
		conn.Write(wire.AppendInterested(nil))
		r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
		readUntil(t, r, "unchoke", func(msg wire.Message) bool { return msg.ID != wire.Unchoke })
		// Piece 1 holds a.bin's last 5424 bytes, the pad's 2000, then b.bin.
		conn.Write(wire.AppendRequest(nil, 1, 5000, 3000))
		conn.Write(wire.AppendRequest(nil, last, 0, lastSize))
		want := readPieces(t, r, 2)
		a, _ := os.ReadFile(filepath.Join(src, "data", "a.bin"))
		b, _ := os.ReadFile(filepath.Join(src, "data", "b.bin"))
		got := want[[2]uint32{1, 5000}]
		exp := append(append(append([]byte(nil), a[24<<10+5000:]...), make([]byte, 2000)...), b[:3000-(30000-(24<<10+5000))-2000]...)
		if string(got) != string(exp) {
			t.Errorf("block across the pad: got %d bytes, not the data with zeros for the pad", len(got))
		}
		if got := want[[2]uint32{last, 0}]; string(got) != string(b[len(b)-int(lastSize):]) {
			t.Errorf("last piece: %d bytes, not b.bin's end", len(got))
		}
	})
}

// readPieces reads blocks from r until n arrived, keyed by piece and
// offset, skipping other messages.
func readPieces(t *testing.T, r *wire.Reader, n int) map[[2]uint32][]byte {
	t.Helper()
	out := map[[2]uint32][]byte{}
	for len(out) < n {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("after %d blocks: %v", len(out), err)
		}
		if msg.ID == wire.Piece {
			out[[2]uint32{msg.Index, msg.Begin}] = append([]byte(nil), msg.Payload...)
		}
	}
	return out
}

// A v1 peer on a hybrid asks for the last piece of a file up to the piece
// boundary, through the implied pad file: it gets the data, then zeros.
// Past the piece, it is dropped.
func TestHybridPadTailServedAsZeros(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", map[string]int{"a.bin": 40_000, "b.bin": 20_000}, 32<<10)
	fa := fileIndex(t, m, "a.bin")
	pc := m.Info.Files[fa].FirstPiece + m.Info.Files[fa].NumPieces - 1
	data, v1 := uint32(m.Info.PieceSize(pc)), uint32(m.Info.V1PieceSize(pc))
	if data >= piece.BlockSize || v1 != 2*piece.BlockSize {
		t.Fatalf("piece %d: %d bytes of data, %d in v1: no pad", pc, data, v1)
	}
	seeder := startNode(t, m, src, Config{}, nil)
	conn := rawPeer(t, seeder, swarmHash(seeder))
	defer conn.Close()
	conn.Write(wire.AppendInterested(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	readUntil(t, r, "unchoke", func(msg wire.Message) bool { return msg.ID != wire.Unchoke })
	// Two blocks: the data's end then zeros, and zeros to the boundary.
	conn.Write(wire.AppendRequest(nil, uint32(pc), 0, piece.BlockSize))
	conn.Write(wire.AppendRequest(nil, uint32(pc), v1-piece.BlockSize, piece.BlockSize))
	got := readPieces(t, r, 2)
	a, _ := os.ReadFile(filepath.Join(src, "data", "a.bin"))
	head := append(append([]byte(nil), a[len(a)-int(data):]...), make([]byte, piece.BlockSize-data)...)
	if string(got[[2]uint32{uint32(pc), 0}]) != string(head) {
		t.Errorf("block 0: not the file's last %d bytes then zeros", data)
	}
	if tail := got[[2]uint32{uint32(pc), v1 - piece.BlockSize}]; string(tail) != string(make([]byte, piece.BlockSize)) {
		t.Errorf("block at %d: %d bytes, not all zeros", v1-piece.BlockSize, len(tail))
	}
	conn.Write(wire.AppendRequest(nil, uint32(pc), v1-100, 200))
	if !dropped(conn) {
		t.Fatal("request past the piece not refused")
	}
}

// Padding is zeros by definition: a peer that sends a block with data
// where a v1 torrent has a pad file is dropped and struck, and nothing of
// the block is written.
func TestV1PadDataOnWireRefused(t *testing.T) {
	src := t.TempDir()
	files := []tfile{{path: "a.bin", size: 30000}, {path: ".pad/2000", size: 2000, pad: true}, {path: "b.bin", size: 24 << 10}}
	m := v1Content(t, src, "data", files, 24<<10)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	conn := rawPeer(t, leech, swarmHash(leech))
	defer conn.Close()
	conn.Write(wire.AppendHaveAll(nil))
	conn.Write(wire.AppendUnchoke(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	// Piece 1's first block holds the pad, at bytes 5424 to 7424.
	readUntil(t, r, "a request of piece 1's first block", func(msg wire.Message) bool {
		return msg.ID != wire.Request || msg.Index != 1 || msg.Begin != 0
	})
	block := make([]byte, piece.BlockSize)
	block[6000] = 1
	conn.Write(wire.AppendPiece(nil, 1, 0, block))
	if !dropped(conn) {
		t.Fatal("peer sending data in padding not dropped")
	}
	leech.t.mu.Lock()
	defer leech.t.mu.Unlock()
	if len(leech.t.strikes) == 0 || leech.t.partial[1] != nil {
		t.Fatalf("strikes %v, piece 1 partly taken: %v", leech.t.strikes, leech.t.partial[1] != nil)
	}
	if w := leech.t.wasted.Load(); w != piece.BlockSize {
		t.Fatalf("wasted %d, want the block's %d", w, piece.BlockSize)
	}
}

// Smart ban remembers a bounded number of blocks, however many v1 pieces
// fail: the oldest failures are forgotten first, and the list of pieces
// in failure order does not outgrow what is remembered.
func TestSmartBanMemoryBounded(t *testing.T) {
	tor := &Torrent{}
	a, b := &peer{}, &peer{}
	const nb = 1000
	for pc := range 3 * maxBanBlocks / nb {
		pp := &partialPiece{blocks: nb, senders: make([]*peer, nb), sums: make([]uint64, nb)}
		for i := range nb {
			pp.senders[i] = a
			if i%2 == 1 {
				pp.senders[i] = b
			}
		}
		tor.smartBanFailed(pc, pp)
		if tor.ban.blocks > maxBanBlocks {
			t.Fatalf("after %d failed pieces: %d blocks remembered, cap %d", pc+1, tor.ban.blocks, maxBanBlocks)
		}
		if pc%3 == 0 {
			// A piece that passes, with the blocks every sender had sent
			// (so nobody is struck), is forgotten; its place in the order
			// goes too, in time.
			tor.smartBanPassed(pc, &partialPiece{blocks: nb, sums: make([]uint64, nb)})
		}
	}
	sum := 0
	for _, attempts := range tor.ban.failed {
		for _, at := range attempts {
			sum += len(at.sums)
		}
	}
	if sum != tor.ban.blocks || len(tor.ban.order) > 2*len(tor.ban.failed)+16 {
		t.Fatalf("%d blocks counted, %d held; order of %d for %d pieces", tor.ban.blocks, sum, len(tor.ban.order), len(tor.ban.failed))
	}
	if _, ok := tor.ban.failed[1]; ok {
		t.Fatal("the oldest failure is still remembered past the cap")
	}
}

// pieceSpace is the v1 piece space of m as the files under dir hold it,
// padding as zeros.
func pieceSpace(t *testing.T, m *piece.MetaInfo, dir string) []byte {
	t.Helper()
	var space []byte
	for i, f := range m.Info.Files {
		if f.Pad {
			space = append(space, make([]byte, f.Length)...)
			continue
		}
		data, err := os.ReadFile(filepath.Join(append([]string{dir}, m.Info.DiskPath(i)...)...))
		if err != nil {
			t.Fatal(err)
		}
		space = append(space, data...)
	}
	return space
}

// Blocks that reach the disk out of order cannot be hashed as they come:
// the piece is read back for its SHA-1, and verifies.
func TestV1BlocksOutOfOrder(t *testing.T) {
	src := t.TempDir()
	m := v1Content(t, src, "data", []tfile{{path: "a.bin", size: 100_000}}, 64<<10)
	space := pieceSpace(t, m, src)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	conn := rawPeer(t, leech, swarmHash(leech))
	defer conn.Close()
	conn.Write(wire.AppendHaveAll(nil))
	conn.Write(wire.AppendUnchoke(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	var reqs []wire.Message
	want := 0
	for p := range m.Info.NumPieces {
		want += m.Info.BlocksIn(p)
	}
	readUntil(t, r, "a request for every block", func(msg wire.Message) bool {
		if msg.ID == wire.Request {
			reqs = append(reqs, msg)
		}
		return len(reqs) < want
	})
	// Last first: no piece's first block reaches the disk before its others.
	for i := len(reqs) - 1; i >= 0; i-- {
		q := reqs[i]
		off := int(q.Index)*int(m.Info.PieceLength) + int(q.Begin)
		conn.Write(wire.AppendPiece(nil, q.Index, q.Begin, space[off:off+int(q.Length)]))
	}
	waitDone(t, leech, 5*time.Second)
	if s := leech.t.Stats(); s.Wasted != 0 || s.BytesDone != m.Info.TotalLength {
		t.Fatalf("stats %+v", s)
	}
}

// A write that fails in a v1 piece spanning files names the file it
// failed on, not the piece's first: here b.bin, which lies inside one
// block with the end of a.bin and the start of c.bin, is a folder.
func TestV1WriteErrorNamesTheFile(t *testing.T) {
	src := t.TempDir()
	files := []tfile{{path: "a.bin", size: 100_000}, {path: "b.bin", size: 1000}, {path: "c.bin", size: 50_000}}
	m := v1Content(t, src, "data", files, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	dst := t.TempDir()
	bPath := filepath.Join(dst, "data", "b.bin")
	if err := os.MkdirAll(bPath, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	leech := stoppingLeech(t, m, dst, filepath.Join(t.TempDir(), "resume"), 4, &logs, seeder)
	err := waitFailed(t, leech, 10*time.Second)
	var de *DiskError
	if !errors.As(err, &de) || de.Path != bPath || de.Piece != 1 {
		t.Fatalf("Err() = %v; want a DiskError writing %s in piece 1", err, bPath)
	}
}

// What a v1 block costs the reader, looking for data in padding and
// hashing it for smart ban, and feeding it to its piece's SHA-1 after its
// write, allocates nothing once warm.
func TestV1BlockPathAllocatesNothing(t *testing.T) {
	src := t.TempDir()
	m := v1Content(t, src, "data", v1Files, 24<<10)
	tor := &Torrent{info: m.Info, padded: true, banSeed: maphash.MakeSeed()}
	p := &peer{t: tor}
	block := make([]byte, piece.BlockSize)
	// The piece's hasher is set up as feedV1 does at a piece's first
	// block, from a pool, which the race detector's random drops would
	// make allocate.
	pp := &partialPiece{v1: new(piece.V1Hasher)}
	pp.v1.Reset()
	var sink uint64
	n := testing.AllocsPerRun(100, func() {
		if p.padData(1, 0, block) {
			t.Fatal("zeros taken for data in padding")
		}
		sink += tor.blockSum(block)
		pp.feedV1(int(pp.v1.Len()), block)
	})
	if n != 0 {
		t.Fatalf("%v allocations per block", n)
	}
	_ = sink
}

// In a hybrid, blocks are blamed through the merkle tree as in v2: the
// poisoner among honest peers is banned with its bad blocks proven by
// their leaf hashes, and the download completes byte for byte.
func TestHybridPoisonerBanned(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", map[string]int{"a.bin": 1_300_000, "b.bin": 700_000}, 256<<10)
	honest := startNode(t, m, src, Config{MaxUploadRate: 1 << 20}, nil)
	dst := t.TempDir()
	leech := startNode(t, m, dst, Config{}, nil)
	poisoner := startPoisoner(t, m, src, leech, 1<<20)
	leech.t.AddPeers(honest.addr())
	waitDone(t, leech, 30*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	noPadFolder(t, dst)
	if s := leech.t.Stats(); s.Banned != 1 || s.Wasted == 0 || connected(leech, poisoner) {
		t.Fatalf("stats %+v: want the poisoner banned and gone, waste counted", s)
	}
}
