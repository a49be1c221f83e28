package swarm

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

func addrs(list ...netip.AddrPort) <-chan netip.AddrPort {
	ch := make(chan netip.AddrPort, len(list))
	for _, a := range list {
		ch <- a
	}
	close(ch)
	return ch
}

func fetcher(t *testing.T) *Client {
	c, err := Listen(context.Background(), Config{ListenAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFetchInfoAndLayers(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 16<<10) // many pieces: layers in several requests
	seeder := startNode(t, m, src, Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := fetcher(t).FetchInfo(ctx, m.Magnet(), addrs(seeder.addr()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Info.Hash != m.Info.Hash || len(got.Layers) != len(m.Layers) {
		t.Fatalf("fetched %x with %d layers", got.Info.Hash, len(got.Layers))
	}
	for i := range m.Layers {
		if len(got.Layers[i]) != len(m.Layers[i]) {
			t.Fatalf("layer %d: %d hashes, want %d", i, len(got.Layers[i]), len(m.Layers[i]))
		}
		for j := range m.Layers[i] {
			if got.Layers[i][j] != m.Layers[i][j] {
				t.Fatalf("layer %d hash %d differs", i, j)
			}
		}
	}
}

// liar is a fake peer that completes the handshake for ih20 and answers
// metadata requests with the given size and bytes.
func liar(t *testing.T, ih20 [20]byte, size int64, data func(piece int) []byte) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := wire.ReadHandshake(conn); err != nil {
					return
				}
				h := wire.Handshake{InfoHash: ih20, PeerID: NewPeerID()}
				h.Reserved.SetExtended(true)
				wire.WriteHandshake(conn, h)
				lie(conn, size, data)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// lie answers a metadata fetch on conn, whose BitTorrent handshake is
// done, with the given size and bytes, and forges every piece hash asked.
func lie(conn net.Conn, size int64, data func(piece int) []byte) {
	hs := wire.ExtendedHandshake{M: map[string]uint8{wire.ExtMetadata: 3}, MetadataSize: size}
	b, _ := hs.Marshal()
	conn.Write(wire.AppendExtended(nil, 0, b))
	r := wire.NewReader(conn, wire.Limits{})
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return
		}
		if m.ID == wire.HashRequest {
			// Forged: the right count of hashes, all wrong.
			r := piece.HashRequest{BaseLayer: int(m.BaseLayer), Index: int(m.Index), Length: int(m.Length), ProofLayers: int(m.ProofLayers)}
			forged := make([]byte, 32*r.ReplyLen())
			for i := range forged {
				forged[i] = byte(i)
			}
			conn.Write(wire.AppendHashes(nil, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers, forged))
			continue
		}
		if m.ID != wire.Extended || m.ExtendedID != 3 { // the id it announced
			continue
		}
		req, err := wire.ParseMetadataMsg(m.Payload)
		if err != nil {
			return
		}
		out := wire.MetadataMsg{Type: wire.MetadataData, Piece: req.Piece, TotalSize: size, Data: data(req.Piece)}
		b, _ := out.Marshal()
		conn.Write(wire.AppendExtended(nil, extMetadataID, b))
	}
}

func TestFetchInfoRefusesLiars(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	ih20 := wire.TruncateV2(m.Info.Hash)
	size := int64(len(m.Info.Bytes))
	wrong := liar(t, ih20, size, func(p int) []byte {
		n, _ := wire.MetadataPieceLen(size, p)
		return make([]byte, n) // zeros: right size, wrong bytes
	})
	huge := liar(t, ih20, 1<<40, func(int) []byte { return nil })
	// Right metadata, forged piece layers.
	forger := liar(t, ih20, size, func(p int) []byte {
		n, _ := wire.MetadataPieceLen(size, p)
		return m.Info.Bytes[p*wire.MetadataPieceSize : p*wire.MetadataPieceSize+n]
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []netip.AddrPort{wrong, huge, forger} {
		_, err := fetcher(t).FetchInfo(ctx, m.Magnet(), addrs(a))
		if err == nil || !(strings.Contains(err.Error(), "does not match the magnet") || strings.Contains(err.Error(), "does not hash") || strings.Contains(err.Error(), "metadata size")) {
			t.Fatalf("liar %v: %v", a, err)
		}
	}
	// With an honest peer among the liars, the fetch succeeds.
	seeder := startNode(t, m, src, Config{}, nil)
	got, err := fetcher(t).FetchInfo(ctx, m.Magnet(), addrs(wrong, huge, forger, seeder.addr()))
	if err != nil || got.Info.Hash != m.Info.Hash {
		t.Fatalf("with an honest peer: %v", err)
	}
}

// freePort returns a loopback address nothing listens on (for now).
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return a
}

// The only peer a magnet names comes up a moment after the fetch starts:
// the fetch keeps asking it, with back-off, and says why it waits, rather
// than giving up when its list of addresses runs out.
func TestFetchInfoRetriesUnreachablePeer(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	a := freePort(t)
	var mu sync.Mutex
	var seen []FetchStatus
	type res struct {
		m   *piece.MetaInfo
		err error
	}
	got := make(chan res, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	began := time.Now()
	go func() {
		m, err := fetcher(t).FetchInfoStatus(ctx, m.Magnet(), addrs(a), func(s FetchStatus) {
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
		})
		got <- res{m, err}
	}()
	time.Sleep(1200 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("fetch gave up before the peer came up: %v", r.err)
	default:
	}
	st, err := storage.OpenWith(src, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	have, err := st.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	seeder, err := Listen(context.Background(), Config{ListenAddr: a.String(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	if _, err := seeder.Add(m, st, have); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.m.Info.Hash != m.Info.Hash {
		t.Fatalf("fetch after the peer came up: %v", r.err)
	}
	if d := time.Since(began); d > 8*time.Second {
		t.Errorf("fetch took %v: the retry came late", d)
	}
	mu.Lock()
	defer mu.Unlock()
	// First the address arrives, then its first attempt fails.
	if len(seen) < 2 || seen[0] != (FetchStatus{Known: 1}) || seen[1].Known != 1 || seen[1].Retrying != 1 ||
		!strings.Contains(seen[1].LastError, a.String()+": ") || !strings.Contains(seen[1].LastError, "refused") {
		t.Fatalf("status reports: %+v", seen)
	}
}

// Nobody ever answers: the fetch waits out its context, not 15 ms, and
// its error says whom it tried and why that failed.
func TestFetchInfoUnreachableUntilTimeout(t *testing.T) {
	a := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := fetcher(t).FetchInfo(ctx, piece.Magnet{Hash: piece.Hash{1}}, addrs(a))
	if d := time.Since(began); d < 1400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("returned after %v, want the 1.5s timeout: %v", d, err)
	}
	if err == nil || !strings.Contains(err.Error(), a.String()) || !strings.Contains(err.Error(), "refused") ||
		!strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v", err)
	}
}

// A .torrent whose piece layers were left out gets them from peers as a
// magnet does: a peer that forges them is passed over, an honest one
// completes the torrent.
func TestFetchLayersForTorrent(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 16<<10)
	stripped := &piece.MetaInfo{Info: m.Info}
	if len(stripped.MissingLayers()) == 0 {
		t.Fatal("test content has no file of several pieces")
	}
	size := int64(len(m.Info.Bytes))
	forger := liar(t, wire.TruncateV2(m.Info.Hash), size, func(p int) []byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fetcher(t).FetchLayersFrom(ctx, stripped, []Source{FixedPeers(forger)}, nil); err == nil || !strings.Contains(err.Error(), "piece layers not found") {
		t.Fatalf("forged layers: %v", err)
	}
	if stripped.Layers != nil {
		t.Fatal("a failed fetch changed the torrent")
	}
	seeder := startNode(t, m, src, Config{}, nil)
	if err := fetcher(t).FetchLayersFrom(ctx, stripped, []Source{FixedPeers(forger, seeder.addr())}, nil); err != nil {
		t.Fatal(err)
	}
	if got := stripped.MissingLayers(); len(got) != 0 {
		t.Fatalf("still missing %v", got)
	}
	for i := range m.Layers {
		if !slices.Equal(stripped.Layers[i], m.Layers[i]) {
			t.Fatalf("layer %d differs from the torrent's", i)
		}
	}

	// A hybrid's layers come over a v2 connection, whichever hash the
	// peer is dialed with.
	hsrc := t.TempDir()
	content(t, hsrc, "multi", multiFiles, 16<<10)
	hm, err := piece.Build(context.Background(), filepath.Join(hsrc, "multi"), piece.BuildOptions{PieceLength: 16 << 10, Format: piece.FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	hseeder := startNode(t, hm, hsrc, Config{}, allHave(hm.Info.NumPieces))
	hbare := &piece.MetaInfo{Info: hm.Info}
	if err := fetcher(t).FetchLayersFrom(ctx, hbare, []Source{FixedPeers(hseeder.addr())}, nil); err != nil {
		t.Fatalf("hybrid: %v", err)
	}
	for i := range hm.Layers {
		if !slices.Equal(hbare.Layers[i], hm.Layers[i]) {
			t.Fatalf("hybrid: layer %d differs from the torrent's", i)
		}
	}
}
