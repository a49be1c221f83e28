package swarm

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// lyingPieces returns m re-made with its info dict's pieces replaced by
// edit's result: a hybrid whose v1 half says something else than its v2
// half. The info-hashes change with it, as for any hand-made torrent.
func lyingPieces(t *testing.T, m *piece.MetaInfo, edit func(pieces []byte)) *piece.MetaInfo {
	t.Helper()
	var info map[string]any
	if err := bencode.Unmarshal(m.Info.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	pieces := []byte(info["pieces"].(string))
	edit(pieces)
	info["pieces"] = string(pieces)
	return parsedInfo(t, info, m.Layers)
}

// A hybrid piece whose data matches its merkle tree, block by block, but
// not the torrent's SHA-1 for it shows the torrent's two halves disagree:
// the download stops with an error naming the piece, the seeder is not
// blamed, and the piece is not fetched again and again.
func TestHybridChecksBothHashes(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", map[string]int{"a.bin": 100_000, "b.bin": 40_000}, 32<<10)
	const wrong = 2
	m = lyingPieces(t, m, func(p []byte) { p[wrong*20] ^= 1 })
	seeder := startNode(t, m, src, Config{}, allHave(m.Info.NumPieces))
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	select {
	case <-leech.t.Failed():
	case <-time.After(10 * time.Second):
		t.Fatalf("no stop; stats %+v", leech.t.Stats())
	}
	var ie *InconsistentError
	if err := leech.t.Err(); !errors.As(err, &ie) || ie.Piece != wrong || !ie.V2OK || !strings.Contains(err.Error(), "v1 and v2 hashes disagree") {
		t.Fatalf("stopped with %v, want piece %d matching v2 only", err, wrong)
	}
	leech.t.mu.Lock()
	have := leech.t.picker.Have(wrong)
	leech.t.mu.Unlock()
	// Whatever was in flight lands and is dropped; then nothing more.
	time.Sleep(300 * time.Millisecond)
	before := leech.t.Stats()
	time.Sleep(time.Second)
	s := leech.t.Stats()
	if have || s.Banned != 0 || s.Peers != 1 || s.Wasted == 0 || s.Downloaded != before.Downloaded {
		t.Fatalf("piece %d verified %v; stats %+v (a second earlier %d downloaded): want it refused, its bytes wasted, the seeder kept, nothing more asked", wrong, have, s, before.Downloaded)
	}
}

// The reverse: data that has the SHA-1 the torrent gives but not its
// merkle root. No peer can forge a SHA-1, so nobody is blamed; fetched
// again with the same outcome, the torrent is inconsistent.
func TestHybridV1MatchV2MismatchStops(t *testing.T) {
	src := t.TempDir()
	m := reverseLying(t, src)
	seeder := startNode(t, m, src, Config{NoServeChecks: true}, allHave(m.Info.NumPieces))
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	select {
	case <-leech.t.Failed():
	case <-time.After(10 * time.Second):
		t.Fatalf("no stop; stats %+v", leech.t.Stats())
	}
	var ie *InconsistentError
	if err := leech.t.Err(); !errors.As(err, &ie) || ie.Piece != 0 || ie.V2OK {
		t.Fatalf("stopped with %v, want piece 0 matching v1 only", err)
	}
	if s := leech.t.Stats(); s.Banned != 0 || s.Peers != 1 || s.Wasted < 2*(32<<10) {
		t.Fatalf("stats %+v: want the piece fetched twice, nobody banned", s)
	}
}

// stripLayers is m without its piece layers, as a btih fetch from v1-only
// peers or a .torrent that left them out gives it.
func stripLayers(m *piece.MetaInfo) *piece.MetaInfo {
	return &piece.MetaInfo{Info: m.Info}
}

// A hybrid reached by btih in a swarm of v1-only peers: the metadata
// comes without piece layers, as no peer can send them, and the download
// still completes, every piece checked by its SHA-1. A hash request for a
// file whose layer we lack is rejected, never answered with hashes
// nothing proved.
func TestHybridByBtihFromV1OnlyPeers(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", multiFiles, 32<<10)
	seeder := startNode(t, m, src, Config{TestV1Only: true}, nil)
	// A v1-only client knows nothing of the v2 hash.
	conn, err := net.Dial("tcp", seeder.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := wire.Handshake{InfoHash: m.Info.Hash.Truncated(), PeerID: NewPeerID()}
	h.Reserved.SetV2(true)
	wire.WriteHandshake(conn, h)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadHandshake(conn); err == nil {
		t.Fatal("the v1-only seeder took a handshake under the v2 hash")
	}
	conn.Close()
	if _, h := dialRaw(t, seeder.addr(), m.Info.V1Hash, true); h.InfoHash != [20]byte(m.Info.V1Hash) || h.Reserved.V2() {
		t.Fatalf("the v1-only seeder answered %x v2-bit=%v", h.InfoHash, h.Reserved.V2())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := fetcher(t).FetchInfo(ctx, piece.Magnet{V1Hash: m.Info.V1Hash}, addrs(seeder.addr()))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Info.Bytes) != string(m.Info.Bytes) {
		t.Fatal("fetched another info dict")
	}
	missing := 0
	for i := range got.Info.Files {
		if got.Info.Files[i].NumPieces > 1 && (i >= len(got.Layers) || got.Layers[i] == nil) {
			missing++
		}
	}
	if missing == 0 {
		t.Fatal("layers came from a v1-only peer, or the content has no file of several pieces")
	}

	dst := t.TempDir()
	leech := startNode(t, got, dst, Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 20*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	noPadFolder(t, dst)
	leech.t.mu.Lock()
	still := len(leech.t.layers)
	leech.t.mu.Unlock()
	if still != missing {
		t.Fatalf("%d layers still missing, want %d: no v2 peer was there to give them", still, missing)
	}
	var dump strings.Builder
	leech.t.WriteStatus(&dump)
	if !strings.Contains(dump.String(), fmt.Sprintf("piece layers: %d file(s) still missing", missing)) {
		t.Errorf("status dump does not say the layers are missing:\n%s", dump.String())
	}
	if s := leech.t.Stats(); s.Wasted != 0 || s.Banned != 0 {
		t.Fatalf("stats %+v", s)
	}

	// A v2 peer asks the complete leech for a layer it does not have.
	fi := -1
	for i := range m.Info.Files {
		if m.Info.Files[i].NumPieces > 1 {
			fi = i
			break
		}
	}
	conn, _ = dialRaw(t, leech.addr(), m.Info.Hash.Truncated(), true)
	r := m.Info.LayerRequest(fi, 0, maxLayerRequest)
	root := m.Info.Files[fi].PiecesRoot
	if _, err := conn.Write(wire.AppendHashRequest(nil, root, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))); err != nil {
		t.Fatal(err)
	}
	rd := wire.NewReader(conn, wire.Limits{})
	for {
		msg, err := rd.ReadMessage()
		if errors.Is(err, wire.ErrUnknownID) {
			continue
		}
		if err != nil {
			t.Fatalf("waiting for the answer to a layer request: %v", err)
		}
		if msg.ID == wire.Hashes {
			t.Fatal("hashes served for a file whose layer the leech never had")
		}
		if msg.ID == wire.HashReject && msg.PiecesRoot == root {
			break
		}
	}
}

// A hybrid whose layers are missing fetches them from a v2 peer as soon
// as one connects, in a swarm that has a v1-only peer too, and keeps
// them: its pieces are checked against both hashes from then on.
func TestHybridLayersFetchedFromV2Peer(t *testing.T) {
	src := t.TempDir()
	m := hybridContent(t, src, "data", multiFiles, 32<<10)
	v1seeder := startNode(t, m, src, Config{TestV1Only: true}, nil)
	v2seeder := startNode(t, m, src, Config{}, nil)
	dst := t.TempDir()
	leech := startNode(t, stripLayers(m), dst, Config{}, nil)
	leech.t.mu.Lock()
	missing := len(leech.t.layers)
	leech.t.mu.Unlock()
	if missing == 0 {
		t.Fatal("nothing missing")
	}
	leech.t.AddPeers(v1seeder.addr(), v2seeder.addr())
	waitDone(t, leech, 20*time.Second)
	waitFor(t, 10*time.Second, "every layer fetched", func() bool {
		leech.t.mu.Lock()
		defer leech.t.mu.Unlock()
		return len(leech.t.layers) == 0
	})
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	leech.t.mu.Lock()
	defer leech.t.mu.Unlock()
	for i := range m.Layers {
		if len(m.Layers[i]) != len(leech.t.meta.Layers[i]) {
			t.Fatalf("file %d: layer of %d hashes, want %d", i, len(leech.t.meta.Layers[i]), len(m.Layers[i]))
		}
		for j := range m.Layers[i] {
			if m.Layers[i][j] != leech.t.meta.Layers[i][j] {
				t.Fatalf("file %d: hash %d differs", i, j)
			}
		}
	}
}

// A v2 torrent whose layers are missing has nothing else to check its
// pieces by: it is not added until they are fetched.
func TestV2WithoutLayersRefused(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 32<<10)
	c := fetcher(t)
	st, err := storage.OpenWith(t.TempDir(), m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := c.Add(stripLayers(m), st, nil); err == nil || !strings.Contains(err.Error(), "piece layers") {
		t.Fatalf("added a v2 torrent without its layers: %v", err)
	}
}

// reverseLying writes a hybrid's files under src/data and returns a torrent
// of them whose piece 0 SHA-1 is of the data on disk, while its merkle
// tree is of other data: a hybrid whose halves disagree the other way.
func reverseLying(t *testing.T, src string) *piece.MetaInfo {
	t.Helper()
	m := hybridContent(t, src, "data", map[string]int{"a.bin": 100_000, "b.bin": 40_000}, 32<<10)
	path := filepath.Join(src, "data", "a.bin")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[1000] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return lyingPieces(t, m, func(p []byte) {
		sum := sha1.Sum(data[:32<<10])
		copy(p, sum[:])
	})
}

// Pieces verified by SHA-1 alone before their file's layer arrived are
// checked against it once it does: one that matches its SHA-1 but not its
// merkle root shows the torrent inconsistent, and the download stops.
func TestHybridLayerArrivalRechecks(t *testing.T) {
	src := t.TempDir()
	m := reverseLying(t, src)
	dst := t.TempDir()
	// The leech verified piece 0 by SHA-1 earlier (its resume record
	// says so); a peer with the layers and no piece comes along.
	if err := os.CopyFS(filepath.Join(dst, "data"), os.DirFS(filepath.Join(src, "data"))); err != nil {
		t.Fatal(err)
	}
	have := make([]byte, (m.Info.NumPieces+7)/8)
	have[0] = 0x80
	leech := startNode(t, stripLayers(m), dst, Config{}, have)
	layers := startNode(t, m, t.TempDir(), Config{}, make([]byte, len(have)))
	leech.t.AddPeers(layers.addr())
	select {
	case <-leech.t.Failed():
	case <-time.After(10 * time.Second):
		t.Fatalf("no stop; stats %+v", leech.t.Stats())
	}
	var ie *InconsistentError
	if err := leech.t.Err(); !errors.As(err, &ie) || ie.Piece != 0 || ie.V2OK {
		t.Fatalf("stopped with %v, want piece 0 matching v1 only", err)
	}
}

// Without piece layers a hybrid's pieces are checked by SHA-1 under v1's
// rules: a poisoner among honest peers, all of them v1-only so no layer
// ever comes, is found out by smart ban over the blocks' leaf hashes and
// banned, and the download completes byte for byte.
func TestHybridWithoutLayersSmartBans(t *testing.T) {
	src := t.TempDir()
	files := map[string]int{}
	for _, f := range v1PoisonFiles {
		files[f.path] = f.size
	}
	m := hybridContent(t, src, "data", files, 256<<10)
	v1only := Config{TestV1Only: true, MaxUploadRate: 1 << 20}
	honest := []*node{startNode(t, m, src, v1only, nil), startNode(t, m, src, v1only, nil)}
	dst := t.TempDir()
	leech := startNode(t, stripLayers(m), dst, Config{}, nil)
	// Some blocks of each piece (blockPoisoner): a full poisoner, first
	// in, was sent whole pieces alone and banned for them, not by smart ban.
	poisoner := startBlockPoisoner(t, m, src, leech)
	leech.t.AddPeers(honest[0].addr(), honest[1].addr())
	waitDone(t, leech, 30*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
	noPadFolder(t, dst)
	s := leech.t.Stats()
	if s.Banned != 1 || s.Wasted == 0 || s.BadBlocks == 0 {
		t.Fatalf("stats %+v: want the poisoner banned through its blocks' hashes and waste counted", s)
	}
	if poisoner.served.Load() == 0 {
		t.Fatal("the poisoner served nothing: the test proved nothing")
	}
	leech.t.mu.Lock()
	still := len(leech.t.layers)
	leech.t.mu.Unlock()
	if still == 0 {
		t.Fatal("layers arrived from v1-only peers: the test proved nothing")
	}
}
