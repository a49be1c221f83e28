package piece

import "math/bits"

// This file holds the arithmetic of blocks and of BEP 52 hash requests, so
// that the swarm asks for blocks and hashes with the same numbers that the
// hashing engine and FileTree use.

// numBlocks returns the number of 16 KiB blocks in size bytes, the last one
// short when size is not a multiple of BlockSize.
func numBlocks(size int64) int { return int((size + BlockSize - 1) / BlockSize) }

// BlocksIn returns the number of 16 KiB blocks in piece p, the units peers
// request: the piece length over BlockSize, fewer in a file's last piece.
// p must be a piece of the torrent.
func (in *Info) BlocksIn(p int) int { return numBlocks(in.PieceSize(p)) }

// BlockLen returns the length of block b of piece p: BlockSize, less for
// the last block of a file, 0 for a block past the end of the piece. p must
// be a piece of the torrent.
func (in *Info) BlockLen(p, b int) int {
	return int(max(0, min(BlockSize, in.PieceSize(p)-int64(b)*BlockSize)))
}

// LeafRequest returns the BEP 52 hash request for every leaf of piece p (a
// torrent-wide index): the piece's width of hashes on the base layer and no
// uncles, since the piece's root, which CheckHashes is given as the anchor,
// proves them. blame asks for it to tell which block of a failed piece was
// bad. p must be a piece of the torrent, of at least two blocks: a
// one-block piece's only leaf is its root, and there is nothing to ask.
func (in *Info) LeafRequest(p int) HashRequest {
	fi := in.FileOfPiece(p)
	f := &in.Files[fi]
	width := in.PieceWidth(fi)
	return HashRequest{
		PiecesRoot: f.PiecesRoot,
		BaseLayer:  0,
		Index:      (p - f.FirstPiece) * width,
		Length:     width,
		// Proof layers that the base hashes span themselves add no uncles.
		ProofLayers: max(0, log2(width)-1),
	}
}

// LayerRequest returns the BEP 52 hash request for the piece hashes of file
// f from index on: at most limit of them (rounded down to a power of two,
// and no more than the padded layer holds), with the uncles that prove them
// up to the file's pieces root, which CheckHashes is given as the anchor.
// Fetching a layer asks from index 0 and advances by the returned Length
// until the file's NumPieces. A file of one piece has no layer to ask for:
// its request fails Validate.
func (in *Info) LayerRequest(f, index, limit int) HashRequest {
	file := &in.Files[f]
	pieceHeight := log2(int(in.PieceLength / BlockSize))
	levels := max(0, treeHeight(file.Length)-pieceHeight) // above the piece layer
	length := 1 << levels
	if limit >= 1 {
		length = min(length, 1<<(bits.Len(uint(limit))-1))
	}
	return HashRequest{
		PiecesRoot:  file.PiecesRoot,
		BaseLayer:   pieceHeight,
		Index:       index,
		Length:      length,
		ProofLayers: max(0, levels-1),
	}
}
