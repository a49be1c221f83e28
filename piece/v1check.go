package piece

// The v1 piece check: SHA-1 over a piece's bytes in the v1 piece space,
// where padding counts as zeros. Every caller that checks a v1 piece (the
// download, serving checks, tests) goes through here, so they agree on
// where the piece ends and what the padding holds.

import (
	"crypto/sha1"
	"hash"
	"sync"
)

// zeroBlock feeds padding to a hash without allocating per piece.
var zeroBlock [BlockSize]byte

// V1Hasher computes v1 piece hashes, fed a run of bytes at a time, one
// piece after another with the same state: a downloader hashes a piece as
// its blocks reach the disk, in order, and checks it once the last is
// there. The zero value is ready to use; it is not safe for concurrent use.
type V1Hasher struct {
	h   hash.Hash
	n   int64 // bytes written since Reset
	sum [sha1.Size]byte
}

// Reset starts a new piece.
func (v *V1Hasher) Reset() {
	if v.h == nil {
		v.h = sha1.New()
	} else {
		v.h.Reset()
	}
	v.n = 0
}

// Write adds the next bytes of the piece.
func (v *V1Hasher) Write(b []byte) {
	if v.h == nil {
		v.Reset()
	}
	v.h.Write(b) // a hash.Hash never fails to write
	v.n += int64(len(b))
}

// Len returns the bytes written since Reset: where the next Write goes in
// the piece.
func (v *V1Hasher) Len() int64 { return v.n }

// Check completes piece p of in with zeros up to its V1PieceSize and
// reports whether its SHA-1 is the torrent's. It is false for a torrent
// without v1 hashes, a piece out of range, and more bytes written than the
// piece holds. Reset before hashing another piece.
func (v *V1Hasher) Check(in *Info, p int) bool {
	if !in.HasV1() || p < 0 || p >= in.NumPieces || 20*(p+1) > len(in.Pieces) {
		return false
	}
	if v.h == nil {
		v.Reset()
	}
	size := in.V1PieceSize(p)
	if v.n > size {
		return false
	}
	for pad := size - v.n; pad > 0; {
		k := min(pad, int64(len(zeroBlock)))
		v.Write(zeroBlock[:k])
		pad -= k
	}
	v.h.Sum(v.sum[:0])
	return v.sum == in.PieceHash(p)
}

// v1Hashers recycles hashers for CheckV1, so a check allocates nothing.
var v1Hashers = sync.Pool{New: func() any { return new(V1Hasher) }}

// CheckV1 reports whether data, the first bytes of piece p (PieceSize of
// them, or up to V1PieceSize), hashes to the piece's v1 SHA-1 once
// completed with zeros to V1PieceSize: in a hybrid torrent a file's last
// piece runs on through its implied pad file. False for a torrent without
// v1 hashes.
func (in *Info) CheckV1(p int, data []byte) bool {
	v := v1Hashers.Get().(*V1Hasher)
	v.Reset()
	v.Write(data)
	ok := v.Check(in, p)
	v1Hashers.Put(v)
	return ok
}
