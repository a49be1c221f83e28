package piece

import (
	"errors"
	"fmt"
)

// MaxHashesPerRequest caps the base hashes one BEP 52 hash request may ask
// for. The BEP says requests SHOULD NOT exceed 512; libtorrent refuses more
// than 8192, which we follow so that its largest pieces (128 MiB) work.
const MaxHashesPerRequest = 8192

// HashRequest is the payload of a BEP 52 hash request, reject or reply:
// Length hashes of the layer BaseLayer levels above the leaves, starting at
// Index, plus the uncle hashes of ProofLayers ancestor layers.
type HashRequest struct {
	PiecesRoot  Hash
	BaseLayer   int
	Index       int
	Length      int
	ProofLayers int
}

// treeHeight returns the number of layers above the leaves in a file's
// tree: log2 of its block count rounded up to a power of two.
func treeHeight(length int64) int {
	return log2(ceilPow2(numBlocks(length)))
}

// numUncles is how many uncle hashes answer req: BEP 52 omits the proof
// layers that the base hashes cover themselves (the first log2(length)-1),
// so uncles start at the sibling of the subtree the base hashes span.
func (r HashRequest) numUncles() int {
	return max(0, r.ProofLayers-log2(r.Length)+1)
}

// ReplyLen returns the number of hashes a valid reply to r carries.
func (r HashRequest) ReplyLen() int { return r.Length + r.numUncles() }

// Validate checks a hash request against a file of the given length, with
// the limits libtorrent applies, so a hostile peer cannot make us build or
// send more than MaxHashesPerRequest hashes.
func (r HashRequest) Validate(fileLength int64) error {
	h := treeHeight(fileLength)
	switch {
	case fileLength <= 0:
		return errors.New("hash request for an empty file")
	case r.BaseLayer < 0 || r.BaseLayer >= max(h, 1):
		return fmt.Errorf("hash request: base layer %d outside a tree of height %d", r.BaseLayer, h)
	case r.Length < 1 || r.Length > MaxHashesPerRequest || r.Length&(r.Length-1) != 0:
		return fmt.Errorf("hash request: length %d is not a power of two up to %d", r.Length, MaxHashesPerRequest)
	case r.Index < 0 || r.Index%r.Length != 0:
		return fmt.Errorf("hash request: index %d is not a multiple of length %d", r.Index, r.Length)
	case r.Index+r.Length > 1<<(h-r.BaseLayer):
		return fmt.Errorf("hash request: nodes %d-%d past the %d of layer %d", r.Index, r.Index+r.Length-1, 1<<(h-r.BaseLayer), r.BaseLayer)
	case r.ProofLayers < 0 || r.ProofLayers >= max(h-r.BaseLayer, 1):
		return fmt.Errorf("hash request: %d proof layers above layer %d of %d", r.ProofLayers, r.BaseLayer, h)
	}
	return nil
}

// FileTree holds the layers of one file's merkle tree from its piece layer
// up to the root, to answer BEP 52 hash requests. Layers below the piece
// layer come from the data itself, through the leaves function passed to
// Hashes.
type FileTree struct {
	pieceHeight int      // height of layers[0] above the leaves
	layers      [][]Hash // layers[0] is padded to a power of two; the last is [root]
}

// NewFileTree builds the tree of file f from its piece layer (nil for a
// file no larger than one piece, whose root is its only node we know).
func NewFileTree(in *Info, f int, layer []Hash) (*FileTree, error) {
	file := &in.Files[f]
	if file.Length == 0 {
		return nil, fmt.Errorf("file %d is empty and has no tree", f)
	}
	bpp := int(in.PieceLength / BlockSize)
	if file.NumPieces == 1 {
		return &FileTree{pieceHeight: treeHeight(file.Length), layers: [][]Hash{{file.PiecesRoot}}}, nil
	}
	if err := in.CheckLayer(f, layer); err != nil {
		return nil, err
	}
	t := &FileTree{pieceHeight: log2(bpp)}
	width := ceilPow2(len(layer))
	cur := make([]Hash, width)
	copy(cur, layer)
	for i := len(layer); i < width; i++ {
		cur[i] = padHashes[t.pieceHeight]
	}
	t.layers = append(t.layers, cur)
	for len(cur) > 1 {
		next := make([]Hash, len(cur)/2)
		for i := range next {
			next[i] = hashPair(cur[2*i], cur[2*i+1])
		}
		t.layers = append(t.layers, next)
		cur = next
	}
	return t, nil
}

// node returns the node at height h (≥ the piece layer) and index i.
func (t *FileTree) node(h, i int) Hash { return t.layers[h-t.pieceHeight][i] }

// Hashes answers a validated hash request: the base hashes, then the
// uncles from the lowest to the one nearest the root. For requests below
// the piece layer, leaves(p) must return the leaf hashes of the file's
// piece p (relative to the file), padded to the piece's width; they are
// checked against the piece layer before being sent.
func (t *FileTree) Hashes(r HashRequest, leaves func(p int) ([]Hash, error)) ([]Hash, error) {
	out := make([]Hash, 0, r.ReplyLen())
	top := t.pieceHeight + len(t.layers) - 1
	var sub [][]Hash // layers of the piece subtree when base < pieceHeight
	var p int        // the piece that subtree covers
	switch {
	case r.BaseLayer >= t.pieceHeight:
		for i := r.Index; i < r.Index+r.Length; i++ {
			out = append(out, t.node(r.BaseLayer, i))
		}
	default:
		// Below the piece layer the request must lie within one piece.
		span := 1 << (t.pieceHeight - r.BaseLayer) // base nodes per piece
		if r.Length > span {
			return nil, fmt.Errorf("hash request: %d nodes of layer %d span more than one piece", r.Length, r.BaseLayer)
		}
		p = r.Index / span
		lv, err := leaves(p)
		if err != nil {
			return nil, err
		}
		if len(lv) != 1<<t.pieceHeight {
			return nil, fmt.Errorf("piece %d: %d leaves, want %d", p, len(lv), 1<<t.pieceHeight)
		}
		sub = [][]Hash{lv}
		for cur := lv; len(cur) > 1; {
			next := make([]Hash, len(cur)/2)
			for i := range next {
				next[i] = hashPair(cur[2*i], cur[2*i+1])
			}
			sub = append(sub, next)
			cur = next
		}
		if sub[len(sub)-1][0] != t.node(t.pieceHeight, p) {
			return nil, fmt.Errorf("piece %d: data on disk does not match its hash", p)
		}
		base := sub[r.BaseLayer]
		off := r.Index - p*span
		out = append(out, base[off:off+r.Length]...)
	}
	// Uncles: siblings of the ancestors of the base hashes' subtree root.
	h := r.BaseLayer + log2(r.Length)
	idx := r.Index >> log2(r.Length)
	for k := 0; k < r.numUncles(); k++ {
		if h >= top {
			return nil, fmt.Errorf("hash request: proof above the root")
		}
		var n Hash
		if h < t.pieceHeight {
			// sub holds only piece p's subtree: index within it.
			n = sub[h][(idx^1)-p<<(t.pieceHeight-h)]
		} else {
			n = t.node(h, idx^1)
		}
		out = append(out, n)
		h++
		idx >>= 1
	}
	return out, nil
}

// CheckHashes verifies a hashes reply to r whose subtree root must equal
// anchor: the node at height BaseLayer+log2(Length)+numUncles above the
// leaves, index Index>>(log2(Length)+numUncles) — the piece hash for a
// request of one whole piece's leaves, the file root for a piece layer
// request with full proof. It returns the base hashes.
func CheckHashes(r HashRequest, hashes []Hash, anchor Hash) ([]Hash, error) {
	if len(hashes) != r.ReplyLen() {
		return nil, fmt.Errorf("hashes: %d hashes, want %d", len(hashes), r.ReplyLen())
	}
	base := hashes[:r.Length]
	tmp := make([]Hash, r.Length)
	copy(tmp, base)
	root := reduce(tmp, r.Length, r.BaseLayer)
	idx := r.Index >> log2(r.Length)
	for _, u := range hashes[r.Length:] {
		if idx&1 == 0 {
			root = hashPair(root, u)
		} else {
			root = hashPair(u, root)
		}
		idx >>= 1
	}
	if root != anchor {
		return nil, errors.New("hashes: reply does not hash to the known node")
	}
	return base, nil
}

// RootOfLeaves returns the root of leaves padded with zero leaves to width
// (a power of two ≥ len(leaves)). It works in place and overwrites leaves,
// which spares a copy on the per-piece path.
func RootOfLeaves(leaves []Hash, width int) Hash { return reduce(leaves, width, 0) }
