// Package bitfield implements the fixed-length piece bitfield of the
// BitTorrent wire protocol (BEP 3): bit i is the (7 - i%8)-th bit of byte
// i/8, so piece 0 is the high bit of the first byte.
//
// A Bitfield is not safe for concurrent use; methods panic on an index out of
// range, as slice indexing does, because a bad index is a programming error
// once FromBytes has validated what came off the wire.
package bitfield

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrLength is wrapped by FromBytes when the byte length does not match the
// number of pieces.
var ErrLength = errors.New("bitfield: wrong length")

// ErrSpareBits is wrapped by FromBytes when a bit past the last piece is set;
// BEP 3 says a client receiving such a bitfield should drop the connection.
var ErrSpareBits = errors.New("bitfield: spare bits set")

// Bitfield is a set of piece indices in [0, Len()). The zero value is an
// empty bitfield of length 0. Use pointers: a copied Bitfield shares its bytes
// with the original but not its count.
type Bitfield struct {
	b     []byte
	n     int
	count int // kept incrementally so Count and All are O(1)
}

// New returns an all-clear bitfield of n bits. It panics if n is negative.
func New(n int) *Bitfield {
	if n < 0 {
		panic("bitfield: negative length")
	}
	return &Bitfield{b: make([]byte, (n+7)/8), n: n}
}

// FromBytes validates a wire bitfield for n pieces and returns a copy of it,
// so the caller may reuse b (typically a read buffer).
func FromBytes(b []byte, n int) (*Bitfield, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative piece count %d", ErrLength, n)
	}
	if want := (n + 7) / 8; len(b) != want {
		return nil, fmt.Errorf("%w: %d bytes for %d pieces, want %d", ErrLength, len(b), n, want)
	}
	if r := n % 8; r != 0 && b[len(b)-1]&(0xff>>r) != 0 {
		return nil, ErrSpareBits
	}
	f := &Bitfield{b: append([]byte(nil), b...), n: n}
	for _, x := range f.b {
		f.count += bits.OnesCount8(x)
	}
	return f, nil
}

// Len returns the number of bits (pieces).
func (f *Bitfield) Len() int { return f.n }

// Count returns the number of set bits.
func (f *Bitfield) Count() int { return f.count }

// All reports whether every bit is set (a seeder). An empty bitfield is
// trivially complete.
func (f *Bitfield) All() bool { return f.count == f.n }

func (f *Bitfield) check(i int) {
	if uint(i) >= uint(f.n) {
		panic(fmt.Sprintf("bitfield: index %d out of range [0,%d)", i, f.n))
	}
}

// Has reports whether bit i is set.
func (f *Bitfield) Has(i int) bool {
	f.check(i)
	return f.b[i>>3]&(0x80>>(i&7)) != 0
}

// Set sets bit i and reports whether it was previously clear, which lets
// callers count availability exactly once per peer and piece.
func (f *Bitfield) Set(i int) bool {
	f.check(i)
	m := byte(0x80) >> (i & 7)
	if f.b[i>>3]&m != 0 {
		return false
	}
	f.b[i>>3] |= m
	f.count++
	return true
}

// Clear clears bit i and reports whether it was previously set.
func (f *Bitfield) Clear(i int) bool {
	f.check(i)
	m := byte(0x80) >> (i & 7)
	if f.b[i>>3]&m == 0 {
		return false
	}
	f.b[i>>3] &^= m
	f.count--
	return true
}

// SetAll sets every bit, leaving the spare bits of the last byte clear so
// that Bytes stays a valid wire bitfield.
func (f *Bitfield) SetAll() {
	for i := range f.b {
		f.b[i] = 0xff
	}
	if r := f.n % 8; r != 0 {
		f.b[len(f.b)-1] = 0xff << (8 - r)
	}
	f.count = f.n
}

// ClearAll clears every bit, so a Bitfield can be recycled without
// reallocating.
func (f *Bitfield) ClearAll() {
	clear(f.b)
	f.count = 0
}

// NextSet returns the smallest set index >= i, or -1 if there is none. It
// reads eight bytes at a time, so iterating a sparse bitfield costs about
// Len()/64 steps plus one per set bit.
func (f *Bitfield) NextSet(i int) int {
	if i < 0 {
		i = 0
	}
	if i >= f.n {
		return -1
	}
	k := i >> 3
	// Partial first byte.
	if x := f.b[k] & (0xff >> (i & 7)); x != 0 {
		return k<<3 + bits.LeadingZeros8(x)
	}
	k++
	for ; k+8 <= len(f.b); k += 8 {
		if w := binary.BigEndian.Uint64(f.b[k:]); w != 0 {
			return k<<3 + bits.LeadingZeros64(w)
		}
	}
	for ; k < len(f.b); k++ {
		if x := f.b[k]; x != 0 {
			return k<<3 + bits.LeadingZeros8(x)
		}
	}
	return -1 // spare bits are always clear, so no index >= n is reported
}

// Bytes returns the wire encoding in a fresh slice; it is a copy so that a
// caller writing it out cannot desynchronise Count or set spare bits.
func (f *Bitfield) Bytes() []byte {
	return append([]byte(nil), f.b...)
}

// Clone returns an independent copy.
func (f *Bitfield) Clone() *Bitfield {
	return &Bitfield{b: append([]byte(nil), f.b...), n: f.n, count: f.count}
}
