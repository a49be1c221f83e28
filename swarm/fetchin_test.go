package swarm

import (
	"context"
	"errors"
	"io"
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

// fetchResult is what a fetch run in the background returned.
type fetchResult struct {
	m   *piece.MetaInfo
	err error
}

// fetchNobody starts a fetch of mg on c that dials nobody: its peers
// channel stays open and empty, so only peers that dial c can serve it.
// It returns once c takes incoming connections for every hash of mg.
func fetchNobody(t *testing.T, ctx context.Context, c *Client, mg piece.Magnet, status func(FetchStatus)) <-chan fetchResult {
	t.Helper()
	got := make(chan fetchResult, 1)
	go func() {
		m, err := c.FetchInfoStatus(ctx, mg, make(chan netip.AddrPort), status)
		got <- fetchResult{m, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c.mu.Lock()
		n := 0
		for _, ih := range magnetHashes(mg) {
			if c.fetches[ih] != nil {
				n++
			}
		}
		c.mu.Unlock()
		if n == len(magnetHashes(mg)) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatal("the fetch never registered its hashes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFetch waits for a background fetch's result.
func waitFetch(t *testing.T, got <-chan fetchResult, d time.Duration) *piece.MetaInfo {
	t.Helper()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("fetch: %v", r.err)
		}
		return r.m
	case <-time.After(d):
		t.Fatalf("fetch still running after %v", d)
		return nil
	}
}

func (c *Client) addrPort() netip.AddrPort { return netip.MustParseAddrPort(c.Addr().String()) }

// refusedHandshake dials c with a handshake for ih and reports whether c
// closed the connection without answering it.
func refusedHandshake(t *testing.T, c *Client, ih [20]byte) bool {
	t.Helper()
	conn, err := net.Dial("tcp", c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
	h.Reserved.SetExtended(true)
	if err := wire.WriteHandshake(conn, h); err != nil {
		t.Fatal(err)
	}
	_, err = wire.ReadHandshake(conn)
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		err != nil && strings.Contains(err.Error(), "reset")
}

// A fetch that dials nobody completes because a seeder dials in, with
// every piece layer; once it has ended, a handshake for the hash is
// refused as one for an unknown torrent, and the fetch has left nothing
// registered behind.
func TestFetchInfoFromIncomingSeeder(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 16<<10)
	c := fetcher(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := fetchNobody(t, ctx, c, m.Magnet(), nil)
	seeder := startNode(t, m, src, Config{}, nil)
	seeder.t.AddPeers(c.addrPort())
	fm := waitFetch(t, got, 10*time.Second)
	if fm.Info.Hash != m.Info.Hash || len(fm.MissingLayers()) != 0 {
		t.Fatalf("fetched %x, missing layers %v", fm.Info.Hash, fm.MissingLayers())
	}
	for i := range m.Layers {
		if !slices.Equal(fm.Layers[i], m.Layers[i]) {
			t.Fatalf("layer %d differs from the torrent's", i)
		}
	}
	c.mu.Lock()
	left := len(c.fetches)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d hashes still registered after the fetch", left)
	}
	before := c.Refused()[RefusedUnknownTorrent]
	if !refusedHandshake(t, c, m.Info.Hash.Truncated()) {
		t.Fatal("a handshake for the fetched hash was answered after the fetch ended")
	}
	// The seeder may dial again meanwhile: at least ours is counted.
	if after := c.Refused()[RefusedUnknownTorrent]; after <= before {
		t.Fatalf("unknown-torrent refusals %d, then %d", before, after)
	}
}

// A hybrid link is fetched over an incoming v1 connection from a v1-only
// client: the dict comes, its layers are left to the download. A
// v2-capable seeder that dials in under the v1 hash is upgraded to v2
// (BEP 52) and gives the layers too.
func TestFetchHybridFromIncomingV1(t *testing.T) {
	src := t.TempDir()
	content(t, src, "multi", multiFiles, 16<<10)
	hm, err := piece.Build(context.Background(), filepath.Join(src, "multi"), piece.BuildOptions{PieceLength: 16 << 10, Format: piece.FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := fetcher(t)
	got := fetchNobody(t, ctx, c, hm.Magnet(), nil)
	v1only := startNode(t, hm, src, Config{TestV1Only: true}, allHave(hm.Info.NumPieces))
	v1only.t.AddPeers(c.addrPort())
	fm := waitFetch(t, got, 10*time.Second)
	if fm.Info.Hash != hm.Info.Hash || fm.Info.V1Hash != hm.Info.V1Hash {
		t.Fatalf("fetched %x / %x", fm.Info.Hash, fm.Info.V1Hash)
	}
	if len(fm.MissingLayers()) == 0 {
		t.Fatal("layers came over a v1 connection")
	}

	c2 := fetcher(t)
	got = fetchNobody(t, ctx, c2, hm.Magnet(), nil)
	hybrid := startNode(t, hm, src, Config{}, allHave(hm.Info.NumPieces))
	hybrid.t.AddPeers(c2.addrPort())
	fm = waitFetch(t, got, 10*time.Second)
	if fm.Info.Hash != hm.Info.Hash || len(fm.MissingLayers()) != 0 {
		t.Fatalf("fetched %x from a v2-capable seeder, missing layers %v", fm.Info.Hash, fm.MissingLayers())
	}
}

// dialLiar dials c as a peer that asks for torrent ih and then answers its
// metadata requests with the given size and bytes. It returns a channel
// closed once the conversation is over, c having dropped it.
func dialLiar(t *testing.T, c *Client, ih [20]byte, size int64, data func(piece int) []byte) <-chan struct{} {
	conn, err := net.Dial("tcp", c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
		h.Reserved.SetExtended(true)
		if err := wire.WriteHandshake(conn, h); err != nil {
			return
		}
		if _, err := wire.ReadHandshake(conn); err != nil {
			return
		}
		lie(conn, size, data)
	}()
	return done
}

// A peer that dials in and sends a wrong info dict is dropped with the
// error a dialed one gets; the fetch goes on and completes from an honest
// peer that dials in after.
func TestFetchInfoIncomingLiarDropped(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	c := fetcher(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var lastErr string
	got := fetchNobody(t, ctx, c, m.Magnet(), func(s FetchStatus) {
		mu.Lock()
		lastErr = s.LastError
		mu.Unlock()
	})
	size := int64(len(m.Info.Bytes))
	dropped := dialLiar(t, c, m.Info.Hash.Truncated(), size, func(p int) []byte {
		n, _ := wire.MetadataPieceLen(size, p)
		return make([]byte, n) // zeros: right size, wrong bytes
	})
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Fatal("the lying peer was not dropped")
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		mu.Lock()
		e := lastErr
		mu.Unlock()
		if strings.Contains(e, "does not match the magnet") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last error %q, want the liar's dict refused", e)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-got:
		t.Fatalf("the fetch ended with the liar: %v", r.err)
	default:
	}
	seeder := startNode(t, m, src, Config{}, nil)
	seeder.t.AddPeers(c.addrPort())
	if fm := waitFetch(t, got, 10*time.Second); fm.Info.Hash != m.Info.Hash {
		t.Fatalf("fetched %x", fm.Info.Hash)
	}
}

// A connection whose handshake was answered for a fetch that then ended
// joins the torrent if it has been added by then, under the hash our
// handshake named; with no torrent it is closed and counted as one for
// an unknown torrent. Nothing reads the inbox here, as a fetch that has
// just ended no longer does.
func TestFetchEndedHandsOverOrCloses(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	ih := m.Info.Hash.Truncated()
	// handshaken dials c for ih and reads its answer: c's handshake goroutine
	// then waits to hand the connection over.
	handshaken := func(c *Client) net.Conn {
		conn, err := net.Dial("tcp", c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
		h.Reserved.SetExtended(true)
		if err := wire.WriteHandshake(conn, h); err != nil {
			t.Fatal(err)
		}
		got, err := wire.ReadHandshake(conn)
		if err != nil || got.InfoHash != ih {
			t.Fatalf("handshake answered with %x: %v", got.InfoHash, err)
		}
		return conn
	}

	c := fetcher(t)
	in := c.registerFetch(m.Magnet())
	conn := handshaken(c)
	before := c.Refused()[RefusedUnknownTorrent]
	c.unregisterFetch(in)
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection for an ended fetch and no torrent was kept")
	}
	if after := c.Refused()[RefusedUnknownTorrent]; after != before+1 {
		t.Fatalf("unknown-torrent refusals %d, then %d", before, after)
	}

	c = fetcher(t)
	in = c.registerFetch(m.Magnet())
	conn = handshaken(c)
	st, err := storage.OpenWith(src, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tor, err := c.Add(m, st, allHave(m.Info.NumPieces))
	if err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	c.unregisterFetch(in)
	// The torrent speaks first: its bitfield (have all) and extension
	// handshake.
	msg, err := wire.NewReader(conn, wire.Limits{}).ReadMessage()
	if err != nil {
		t.Fatalf("the torrent said nothing to the handed-over peer: %v", err)
	}
	if msg.ID != wire.HaveAll && msg.ID != wire.Bitfield && msg.ID != wire.Extended {
		t.Fatalf("first message %v", msg.ID)
	}
	if n := tor.Stats().Peers; n != 1 {
		t.Fatalf("torrent has %d peers, want the handed-over one", n)
	}
}

// Peers that dial in and then say nothing hold at most maxFetchIncoming
// of the fetch's slots: one more is refused before its handshake is
// answered, counted under the peer limit. When the fetch ends they are
// all closed and nothing of it stays registered.
func TestFetchIncomingStallersBounded(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	ih := m.Info.Hash.Truncated()
	c := fetcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := fetchNobody(t, ctx, c, m.Magnet(), nil)
	var stallers []net.Conn
	for range maxFetchIncoming {
		conn, err := net.Dial("tcp", c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
		h.Reserved.SetExtended(true)
		if err := wire.WriteHandshake(conn, h); err != nil {
			t.Fatal(err)
		}
		if _, err := wire.ReadHandshake(conn); err != nil {
			t.Fatalf("staller %d: %v", len(stallers), err)
		}
		stallers = append(stallers, conn)
	}
	before := c.Refused()[RefusedPeerLimit]
	if !refusedHandshake(t, c, ih) {
		t.Fatalf("a handshake beyond the %d incoming slots was answered", maxFetchIncoming)
	}
	if after := c.Refused()[RefusedPeerLimit]; after != before+1 {
		t.Fatalf("peer-limit refusals %d, then %d", before, after)
	}
	cancel()
	select {
	case r := <-got:
		if r.err == nil {
			t.Fatal("the fetch succeeded with nobody to give the metadata")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fetch did not end with its context")
	}
	for i, conn := range stallers {
		// Our extension handshake may come first; then the close.
		if _, err := io.Copy(io.Discard, conn); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("staller %d not closed when the fetch ended: %v", i, err)
		}
	}
	c.mu.Lock()
	left := len(c.fetches)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d hashes still registered after the fetch", left)
	}
}
