package piece

import (
	"crypto/sha256"
	"math/bits"
)

// BlockSize is the size of a merkle leaf in BitTorrent v2 (BEP 52): every
// file is hashed in 16 KiB blocks, and the leaf is the SHA-256 of the block
// (the last block of a file may be shorter).
const BlockSize = 16 << 10

// Hash is a SHA-256 digest: a merkle node, a pieces root or a v2 info-hash.
type Hash [32]byte

// Truncated returns the 20-byte form of a v2 info-hash: its first 20
// bytes. BEP 52 puts this form wherever the protocol has room for only a
// SHA-1 sized hash: the peer handshake, tracker announces and the DHT.
// Only the full hash identifies a torrent; the short form finds peers.
func (h Hash) Truncated() (short [20]byte) {
	copy(short[:], h[:20])
	return short
}

// maxDepth bounds the padding table: 2^48 leaves of 16 KiB is 4 EiB, more
// than any file a torrent can describe.
const maxDepth = 48

// padHashes[d] is the root of a subtree of 2^d zero leaves. BEP 52 pads a
// file's tree with zero leaves, so a missing piece in a layer above the
// leaves stands for padHashes[layer], not for zero.
var padHashes = func() (t [maxDepth + 1]Hash) {
	for d := 1; d <= maxDepth; d++ {
		t[d] = hashPair(t[d-1], t[d-1])
	}
	return t
}()

// PadHash returns the root of a merkle subtree of 2^depth zero leaves.
func PadHash(depth int) Hash { return padHashes[depth] }

func hashPair(a, b Hash) Hash {
	var buf [64]byte
	copy(buf[:32], a[:])
	copy(buf[32:], b[:])
	return sha256.Sum256(buf[:])
}

// BlockHash returns the leaf hash of one block of file data.
func BlockHash(block []byte) Hash { return sha256.Sum256(block) }

// log2 returns the base-2 logarithm of a power of two.
func log2(n int) int { return bits.TrailingZeros64(uint64(n)) }

// ceilPow2 returns the smallest power of two ≥ n (1 for n ≤ 1).
func ceilPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len64(uint64(n-1))
}

// reduce folds a layer in place into its root. The layer holds the real
// nodes; it is padded with padHashes[depth] up to width, a power of two,
// where depth is the height of the nodes above the leaves. It overwrites
// layer.
func reduce(layer []Hash, width, depth int) Hash {
	n := len(layer)
	if n == 0 {
		return padHashes[depth+log2(width)]
	}
	for width > 1 {
		pad := padHashes[depth]
		half := (n + 1) / 2
		for i := 0; i < half; i++ {
			l := layer[2*i]
			r := pad
			if 2*i+1 < n {
				r = layer[2*i+1]
			}
			layer[i] = hashPair(l, r)
		}
		n = half
		width /= 2
		depth++
	}
	return layer[0]
}

// RootOf returns the merkle root of nodes at height depth above the leaves,
// padded to width (a power of two ≥ len(nodes)) with zero subtrees. It does
// not modify nodes.
func RootOf(nodes []Hash, width, depth int) Hash {
	tmp := make([]Hash, len(nodes))
	copy(tmp, nodes)
	return reduce(tmp, width, depth)
}

// FileRoot returns a file's pieces root from its piece layer: the piece
// hashes padded, as BEP 52 requires, with the roots of all-zero pieces up to
// a power of two.
func FileRoot(layer []Hash, pieceLength int) Hash {
	return RootOf(layer, ceilPow2(len(layer)), log2(pieceLength/BlockSize))
}

// VerifyProof reports whether node, at position index in the layer of height
// depth, belongs to the tree with the given root, using the uncle hashes in
// proof, lowest first. A proof must reach exactly to the root.
func VerifyProof(node Hash, index int, proof []Hash, root Hash) bool {
	if index < 0 || index>>len(proof) != 0 {
		return false
	}
	h := node
	for _, u := range proof {
		if index&1 == 0 {
			h = hashPair(h, u)
		} else {
			h = hashPair(u, h)
		}
		index >>= 1
	}
	return h == root
}

// ProofFor returns the uncle hashes that link nodes[index] to the root of
// nodes padded to width with zero subtrees of height depth. It serves BEP 52
// hash requests and tests VerifyProof.
func ProofFor(nodes []Hash, index, width, depth int) []Hash {
	layer := make([]Hash, len(nodes))
	copy(layer, nodes)
	var proof []Hash
	n := len(layer)
	for width > 1 {
		sib := index ^ 1
		if sib < n {
			proof = append(proof, layer[sib])
		} else {
			proof = append(proof, padHashes[depth])
		}
		half := (n + 1) / 2
		for i := 0; i < half; i++ {
			r := padHashes[depth]
			if 2*i+1 < n {
				r = layer[2*i+1]
			}
			layer[i] = hashPair(layer[2*i], r)
		}
		layer = layer[:half]
		n = half
		index >>= 1
		width /= 2
		depth++
	}
	return proof
}
