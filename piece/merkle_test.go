package piece

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// naiveRoot is the textbook construction: pad the leaves with zero hashes
// to a power of two, then hash pairs up to the root.
func naiveRoot(leaves []Hash, width int) Hash {
	layer := make([]Hash, width)
	copy(layer, leaves)
	for len(layer) > 1 {
		next := make([]Hash, len(layer)/2)
		for i := range next {
			next[i] = sha256.Sum256(append(append([]byte{}, layer[2*i][:]...), layer[2*i+1][:]...))
		}
		layer = next
	}
	return layer[0]
}

func randLeaves(r *rand.Rand, n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		for j := range out[i] {
			out[i][j] = byte(r.Uint32())
		}
	}
	return out
}

func TestRootOfMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 33; n++ {
		leaves := randLeaves(r, n)
		width := ceilPow2(n)
		if got, want := RootOf(leaves, width, 0), naiveRoot(leaves, width); got != want {
			t.Errorf("%d leaves: root %x, want %x", n, got, want)
		}
		// Padding further must equal the naive tree of the larger width.
		if got, want := RootOf(leaves, 4*width, 0), naiveRoot(leaves, 4*width); got != want {
			t.Errorf("%d leaves in width %d: root %x, want %x", n, 4*width, got, want)
		}
	}
}

func TestPadHashIsZeroSubtree(t *testing.T) {
	if PadHash(0) != (Hash{}) {
		t.Fatal("a zero leaf is 32 zero bytes")
	}
	for d := 1; d < 6; d++ {
		if got, want := PadHash(d), naiveRoot(nil, 1<<d); got != want {
			t.Errorf("depth %d: %x, want %x", d, got, want)
		}
	}
}

// The piece-layer construction must give the same root as hashing every
// leaf of the file at once: a missing piece stands for a subtree of zero
// leaves, not for a zero hash.
func TestFileRootFromLayerEqualsLeafRoot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const pl = 4 * BlockSize
	for _, blocks := range []int{5, 8, 9, 13, 17, 31} {
		leaves := randLeaves(r, blocks)
		var layer []Hash
		for p := 0; p*4 < blocks; p++ {
			layer = append(layer, RootOf(leaves[p*4:min(p*4+4, blocks)], 4, 0))
		}
		if got, want := FileRoot(layer, pl), naiveRoot(leaves, ceilPow2(blocks)); got != want {
			t.Errorf("%d blocks: layer root %x, want %x", blocks, got, want)
		}
		if FileRoot(layer, pl) == RootOf(layer, ceilPow2(len(layer)), 0) && len(layer) != ceilPow2(len(layer)) {
			t.Errorf("%d blocks: padding with zero hashes gave the same root; the test cannot tell", blocks)
		}
	}
}

func TestProofRoundTripAndForgery(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 7, 8, 12} {
		nodes := randLeaves(r, n)
		width := ceilPow2(n)
		root := RootOf(nodes, width, 2)
		for i := range n {
			proof := ProofFor(nodes, i, width, 2)
			if !VerifyProof(nodes[i], i, proof, root) {
				t.Fatalf("n=%d i=%d: honest proof refused", n, i)
			}
			bad := nodes[i]
			bad[0] ^= 1
			if VerifyProof(bad, i, proof, root) {
				t.Fatalf("n=%d i=%d: forged node accepted", n, i)
			}
			if width > 1 && VerifyProof(nodes[i], i^1, proof, root) && nodes[i] != nodes[i^1%n] {
				t.Fatalf("n=%d i=%d: node accepted at the wrong index", n, i)
			}
			if len(proof) > 0 && VerifyProof(nodes[i], i, proof[:len(proof)-1], root) {
				t.Fatalf("n=%d i=%d: short proof accepted", n, i)
			}
		}
	}
	if VerifyProof(Hash{}, -1, nil, Hash{}) || VerifyProof(Hash{}, 2, []Hash{{}}, Hash{}) {
		t.Fatal("index outside the tree accepted")
	}
}

func TestPieceRootOfShortData(t *testing.T) {
	data := bytes.Repeat([]byte{7}, BlockSize+100)
	leaves := []Hash{BlockHash(data[:BlockSize]), BlockHash(data[BlockSize:])}
	scratch := make([]Hash, 4)
	if got, want := PieceRoot(data, 4, scratch), naiveRoot(leaves, 4); got != want {
		t.Fatalf("root %x, want %x", got, want)
	}
}

// A single 16 KiB block of a real file is verified against the file's
// pieces root with a proof, as a peer's hashes reply allows.
func TestVerifyBlockAgainstFileRoot(t *testing.T) {
	m, _ := sample(t)
	f := m.Info.Files[0] // big.bin: 5 blocks and 123 bytes, pieces of 2 blocks
	data := make([]byte, f.Length)
	seed := uint32(len("big.bin")*7919 + int(f.Length))
	for i := range data {
		seed = seed*1664525 + 1013904223
		data[i] = byte(seed >> 24)
	}
	var leaves []Hash
	for b := 0; b < len(data); b += BlockSize {
		leaves = append(leaves, BlockHash(data[b:min(b+BlockSize, len(data))]))
	}
	width := ceilPow2(len(leaves))
	for i := range leaves {
		proof := ProofFor(leaves, i, width, 0)
		if !VerifyProof(leaves[i], i, proof, f.PiecesRoot) {
			t.Fatalf("block %d does not verify against the pieces root", i)
		}
	}
	bad := append([]byte(nil), data[BlockSize:2*BlockSize]...)
	bad[100] ^= 1
	if VerifyProof(BlockHash(bad), 1, ProofFor(leaves, 1, width, 0), f.PiecesRoot) {
		t.Fatal("a corrupted block verified")
	}
}

// The 20-byte form BEP 52 puts in handshakes, announces and the DHT is the
// hash's first 20 bytes.
func TestTruncated(t *testing.T) {
	h := Hash(sha256.Sum256([]byte("info")))
	got := h.Truncated()
	if !bytes.Equal(got[:], h[:20]) {
		t.Fatalf("Truncated = %x, want %x", got, h[:20])
	}
}
