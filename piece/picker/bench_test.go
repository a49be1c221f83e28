package picker

import (
	"math/rand/v2"
	"testing"

	"github.com/shoal-p2p/shoal/piece/bitfield"
)

const (
	benchPieces = 100_000
	benchPeers  = 50
	benchBlocks = 16 // 256 KiB pieces
)

// benchSwarm returns a picker with benchPeers unchoked peers, each having
// about half the pieces at random.
func benchSwarm(b *testing.B, density float64) *Picker {
	rng := rand.New(rand.NewPCG(1, 2))
	p, err := New(Config{Pieces: benchPieces, BlocksIn: constBlocks(benchBlocks), Rand: rand.New(rand.NewPCG(3, 4))})
	if err != nil {
		b.Fatal(err)
	}
	bf := bitfield.New(benchPieces)
	for id := range PeerID(benchPeers) {
		bf.ClearAll()
		for i := range benchPieces {
			if rng.Float64() < density {
				bf.Set(i)
			}
		}
		if err := p.HandleBitfield(id, bf); err != nil {
			b.Fatal(err)
		}
		p.HandleUnchoke(id)
	}
	return p
}

// BenchmarkPickFor measures one request-queue refill of 16 blocks, followed
// by the arrival of those blocks and piece verification, so the picker stays
// in a realistic steady state (a few started pieces, rarest-first selection
// of new ones) instead of filling up with outstanding requests.
func BenchmarkPickFor(b *testing.B) {
	p := benchSwarm(b, 0.5)
	reqs := make([]Request, 0, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := PeerID(i % benchPeers)
		reqs = p.PickFor(id, reqs[:0], 16)
		for _, r := range reqs {
			p.HandleBlock(id, r.Piece, r.Block)
			if p.Downloaded(r.Piece) {
				p.HandlePieceVerified(r.Piece)
			}
		}
		if p.Complete() {
			b.StopTimer()
			p = benchSwarm(b, 0.5)
			b.StartTimer()
		}
	}
}

// BenchmarkPickForSparse is the worst case for a bucket scan: peers that
// each have 1% of the pieces.
func BenchmarkPickForSparse(b *testing.B) {
	p := benchSwarm(b, 0.01)
	reqs := make([]Request, 0, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := PeerID(i % benchPeers)
		reqs = p.PickFor(id, reqs[:0], 16)
		for _, r := range reqs {
			p.HandleBlock(id, r.Piece, r.Block)
			if p.Downloaded(r.Piece) {
				p.HandlePieceVerified(r.Piece)
			}
		}
		if p.freeBlocks == 0 { // every piece any peer has is done
			b.StopTimer()
			p = benchSwarm(b, 0.01)
			b.StartTimer()
		}
	}
}

// BenchmarkHandleHave measures have messages spread over the torrent, each
// moving a piece up one availability bucket.
func BenchmarkHandleHave(b *testing.B) {
	p := benchSwarm(b, 0)
	// 7919 is coprime with benchPieces, so the walk visits every piece
	// before repeating and each have is new.
	const stride = 7919
	x := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := PeerID(i % benchPeers)
		if id == 0 && i > 0 {
			x = (x + stride) % benchPieces
			if i%(benchPeers*benchPieces) == 0 {
				b.StopTimer()
				p = benchSwarm(b, 0)
				b.StartTimer()
			}
		}
		if err := p.HandleHave(id, x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeepQueue measures one block arriving at a peer that keeps 2000
// requests outstanding (a fast peer on loopback or a fat link) and the one
// request that replaces it: the per-block path of a fast download.
func BenchmarkDeepQueue(b *testing.B) {
	p := benchSwarm(b, 1)
	const id, depth = PeerID(0), 2000
	queue := p.PickFor(id, make([]Request, 0, depth), depth)
	reqs := make([]Request, 0, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := queue[0]
		queue = queue[1:]
		p.HandleBlock(id, r.Piece, r.Block)
		if p.Downloaded(r.Piece) {
			p.HandlePieceVerified(r.Piece)
		}
		reqs = p.PickFor(id, reqs[:0], 1)
		queue = append(queue, reqs...)
		if len(queue) == 0 || p.Complete() {
			b.StopTimer()
			p = benchSwarm(b, 1)
			queue = p.PickFor(id, queue[:0], depth)
			b.StartTimer()
		}
	}
}
