package swarm

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/swarm/superseed"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A super-seeder sends every piece once before any piece twice: when the
// last piece reaches the swarm and super-seeding ends, it has uploaded one
// copy, give or take the blocks its sender had counted but not yet written.
// What it uploaded is read at that moment, on the seeder's own goroutine
// as it logs the end: read by polling afterwards, it would count the
// ordinary seeding that follows at once for as long as a loaded machine
// keeps the test's goroutine from running.
func TestSuperSeedUploadsOneCopyFirst(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 32<<10)
	var seederT atomic.Pointer[Torrent]
	var atEnd atomic.Int64
	atEnd.Store(-1)
	hook := &onLog{next: testLogger(t).Handler(), msg: ssDoneMsg, fn: func() {
		if tor := seederT.Load(); tor != nil {
			atEnd.CompareAndSwap(-1, tor.uploaded.Load())
		}
	}}
	// No peer here hoards, but on a loaded machine one may take longer
	// than SpreadTTL to pass a piece on, or InterestTTL to ask for it, and
	// the piece is then offered again by design (as
	// TestSuperSeedHoarderCannotKeepPieces tests): given time, it is not.
	cfg := Config{MaxUploadRate: 1 << 20, SuperSeed: true, Logger: slog.New(hook), ssTTL: time.Minute}
	seeder := startNode(t, m, src, cfg, nil)
	seederT.Store(seeder.t)
	if !seeder.t.Stats().SuperSeeding {
		t.Fatal("seeder not super-seeding")
	}
	var leeches []*node
	for range 3 {
		leeches = append(leeches, startNode(t, m, t.TempDir(), Config{}, nil))
	}
	for i, n := range leeches {
		n.t.AddPeers(seeder.addr())
		for j, o := range leeches {
			if i != j {
				n.t.AddPeers(o.addr())
			}
		}
	}
	waitFor(t, 30*time.Second, "super-seeding over", func() bool { return !seeder.t.Stats().SuperSeeding })
	up, total := atEnd.Load(), m.Info.TotalLength
	if up < 0 {
		t.Fatalf("super-seeding ended without logging %q", ssDoneMsg)
	}
	if up < total || up > total+2*wire.BlockSize {
		t.Errorf("uploaded %d bytes when the first copy was out, want %d (+ at most 2 blocks)", up, total)
	}
	for _, n := range leeches {
		waitDone(t, n, 30*time.Second)
		sameTree(t, filepath.Join(src, "data"), filepath.Join(n.st.Dir(), "data"))
	}
}

// onLog passes records on to next and calls fn, on the goroutine that
// logs, for each record whose message is msg: a way to read a node's
// state at the very moment it logs an event.
type onLog struct {
	next slog.Handler
	msg  string
	fn   func()
}

func (h *onLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *onLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &onLog{next: h.next.WithAttrs(as), msg: h.msg, fn: h.fn}
}

func (h *onLog) WithGroup(name string) slog.Handler {
	return &onLog{next: h.next.WithGroup(name), msg: h.msg, fn: h.fn}
}

func (h *onLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fn()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// A super-seeder poses as empty (have none), reveals a piece, and refuses
// requests for pieces it has not revealed.
func TestSuperSeedRevealsPiecesOneByOne(t *testing.T) {
	src := t.TempDir()
	// More pieces than a lone peer is shown at once (superseed.MaxOffers).
	m := content(t, src, "data", map[string]int{"big.bin": 2 << 20, "small.txt": 1000}, 16<<10)
	if m.Info.NumPieces <= superseed.MaxOffers {
		t.Fatalf("%d pieces: too few for the test", m.Info.NumPieces)
	}
	seeder := startNode(t, m, src, Config{SuperSeed: true}, nil)
	conn := rawPeer(t, seeder, wire.TruncateV2(m.Info.Hash))
	defer conn.Close()
	conn.Write(wire.AppendHaveNone(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	first, err := r.ReadMessage()
	if err != nil || first.ID != wire.HaveNone {
		t.Fatalf("first message %v, %v; want have none", first, err)
	}
	conn.Write(wire.AppendInterested(nil))
	// Read until unchoked, then a moment more, noting every piece shown.
	revealed := map[int]bool{}
	unchoked := false
	for {
		if unchoked {
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		}
		msg, err := r.ReadMessage()
		if err != nil {
			if unchoked {
				break
			}
			t.Fatalf("not unchoked: %v", err)
		}
		switch msg.ID {
		case wire.Have:
			revealed[int(msg.Index)] = true
		case wire.Unchoke:
			unchoked = true
		}
	}
	if len(revealed) == 0 || len(revealed) == m.Info.NumPieces {
		t.Fatalf("revealed %d of %d pieces; want some, not all", len(revealed), m.Info.NumPieces)
	}
	hidden := 0
	for revealed[hidden] {
		hidden++
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.Write(wire.AppendRequest(nil, uint32(hidden), 0, wire.BlockSize))
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("no reject for a hidden piece: %v", err)
		}
		if msg.ID == wire.Piece {
			t.Fatalf("served piece %d, which it never revealed", msg.Index)
		}
		if msg.ID == wire.Reject && int(msg.Index) == hidden {
			return
		}
	}
}

// A lone downloader has no one to pass pieces on to: super-seeding must
// not hold it to a handful of pieces.
func TestSuperSeedLoneDownloaderNotStarved(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"big.bin": 4 << 20}, 64<<10)
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{SuperSeed: true}, nil)
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 10*time.Second)
}

// A peer that keeps what the super-seeder gives it (it never unchokes
// anyone) cannot keep those pieces from the swarm: once they sit with it
// too long they are offered to others, and super-seeding does not end
// until they are out. So the honest peers finish even though the seeder
// leaves the moment super-seeding ends.
func TestSuperSeedHoarderCannotKeepPieces(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"big.bin": 3 << 20}, 32<<10)
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{MaxUploadRate: 1 << 20, SuperSeed: true}, nil)
	hoarder := startNode(t, m, t.TempDir(), Config{UploadSlots: -1}, nil)
	hoarder.t.AddPeers(seeder.addr())
	// The hoarder is in first and takes its share of offers.
	time.Sleep(300 * time.Millisecond)
	var honest []*node
	for range 2 {
		n := startNode(t, m, t.TempDir(), Config{}, nil)
		n.t.AddPeers(seeder.addr(), hoarder.addr())
		honest = append(honest, n)
	}
	honest[0].t.AddPeers(honest[1].addr())
	deadline := time.Now().Add(30 * time.Second)
	for seeder.t.Stats().SuperSeeding {
		if time.Now().After(deadline) {
			t.Fatalf("still super-seeding after 30s: %+v", seeder.t.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if hoarder.t.Stats().PiecesDone == 0 {
		t.Fatal("the hoarder got nothing: the test proves nothing")
	}
	seeder.t.Close()
	for _, n := range honest {
		waitDone(t, n, 20*time.Second)
	}
	if up := hoarder.t.Stats().Uploaded; up != 0 {
		t.Fatalf("the hoarder uploaded %d bytes", up)
	}
}

// connectSilentPeer connects to n as a peer that has nothing and never asks for
// anything (one whose download stopped, say), and reads what n sends
// until the test ends. It returns once n has revealed a piece to it.
func connectSilentPeer(t *testing.T, n *node, numPieces int) {
	t.Helper()
	conn := rawPeer(t, n, wire.TruncateV2(n.t.meta.Info.Hash))
	t.Cleanup(func() { conn.Close() })
	conn.Write(wire.AppendHaveNone(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: numPieces})
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("silent peer: no piece revealed: %v", err)
		}
		if !msg.KeepAlive && msg.ID == wire.Have {
			break
		}
	}
	conn.SetDeadline(time.Time{})
	go io.Copy(io.Discard, conn)
}

// A piece revealed to a peer that does not want it (it never says it is
// interested) is not kept from the peers that do: the downloaders finish
// in moments, not once the offer runs out (superSeedOfferTTL, 20s). In
// TestPoisonAtScale the poisoner, which does not serve what it found bad
// and never downloads, held the swarm's last piece that way.
func TestSuperSeedOfferToUninterestedPeerLapses(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"big.bin": 1 << 20}, 32<<10)
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{SuperSeed: true}, nil)
	connectSilentPeer(t, seeder, m.Info.NumPieces)
	began := time.Now()
	var leeches []*node
	for range 2 {
		leeches = append(leeches, startNode(t, m, t.TempDir(), Config{}, nil))
	}
	leeches[0].t.AddPeers(seeder.addr(), leeches[1].addr())
	leeches[1].t.AddPeers(seeder.addr())
	for _, n := range leeches {
		waitDone(t, n, 3*superseed.InterestTTL)
	}
	t.Logf("both done in %v", time.Since(began).Round(time.Millisecond))
}

// A lone downloader beside a peer that never downloads is still lone: once
// the silent peer's offer lapses it no longer counts as someone to pass
// pieces on to, so the downloader is not held to what it has spread (it
// reached 9 of 32 pieces in 30 s when it was).
func TestSuperSeedLoneBesideSilentPeer(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"big.bin": 1 << 20}, 32<<10)
	seeder := startNode(t, m, filepath.Join(src, "data"), Config{SuperSeed: true}, nil)
	connectSilentPeer(t, seeder, m.Info.NumPieces)
	began := time.Now()
	n := startNode(t, m, t.TempDir(), Config{}, nil)
	n.t.AddPeers(seeder.addr())
	waitDone(t, n, 4*superseed.InterestTTL)
	t.Logf("done in %v", time.Since(began).Round(time.Millisecond))
}
