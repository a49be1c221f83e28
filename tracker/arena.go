package tracker

import (
	"math"
	"unsafe"
)

// arena holds one shard's records of one kind (IPv4 peers, IPv6 peers or
// peer index slots) in a single region from allocRegion, handed out as
// segments by offset: a swarm's list is a segment, so a swarm costs no
// heap object of its own and no pointer, and segments are carved with
// exact sizes rather than rounded up to an allocator's size class.
//
// Segments are bump-allocated from top. A freed segment is dead space
// until rebuild copies the live segments, each with its capacity, into a
// fresh region and drops the old one; rebuild runs when the region is full
// or when the records once used and not live now (dead space, and room
// under the high-water mark that a freed last segment gave back to top,
// whose pages stay resident) pass an eighth of the live, so a shard holds
// at most about 12% of them (and no more than a page in small shards), and
// each copied record is paid for by the freed ones that triggered the
// copy. An emptied arena drops its region.
//
// Offsets are valid only until the next alloc or release, which may move
// every segment; segs must yield every live segment at that moment.
type arena[T any] struct {
	buf  []T
	top  uint32 // buf[:top] is segments or dead space; buf[top:] is free
	high uint32 // the most top has been since the region was made
	live uint32 // records held by segments
	// segs yields every live segment of the arena: a pointer to its
	// offset, how many records of it are in use and its size.
	segs func(yield func(off *uint32, used, size uint32) bool)
}

// deadMin is the dead space, in bytes, an arena tolerates whatever its
// size, so small shards do not rebuild for every few freed records.
const deadMin = pageSize

// alloc returns the offset of a new segment of n records, whose content
// is left over (callers write every record they use).
func (a *arena[T]) alloc(n uint32) uint32 {
	if uint64(a.top)+uint64(n) > uint64(len(a.buf)) {
		a.rebuild(n)
	}
	off := a.top
	a.top += n
	a.high = max(a.high, a.top)
	a.live += n
	return off
}

// extend grows the segment at off from size old to n in place when it is
// the last one and the region has room, and reports whether it did.
func (a *arena[T]) extend(off, old, n uint32) bool {
	if off+old != a.top || uint64(off)+uint64(n) > uint64(len(a.buf)) {
		return false
	}
	a.top = off + n
	a.high = max(a.high, a.top)
	a.live += n - old
	return true
}

// release frees the n records at off, a segment or the tail of one, which
// nothing may use or yield from segs any more. It may rebuild.
func (a *arena[T]) release(off, n uint32) {
	if n == 0 {
		return
	}
	a.live -= n
	if off+n == a.top {
		a.top = off
	}
	if waste := a.high - a.live; waste > a.live/8 && uint64(waste)*uint64(unsafe.Sizeof(*new(T))) >= deadMin || a.live == 0 && a.buf != nil {
		a.rebuild(0)
	}
}

// rebuild moves every live segment into a new region with room for a
// quarter more records plus extra, and frees the old region.
func (a *arena[T]) rebuild(extra uint32) {
	want := uint64(a.live) + uint64(extra)
	size := want + want/4
	if want == 0 {
		size = 0
	}
	if size > math.MaxUint32 {
		// Offsets are 32 bits: 4 billion records, past any cap a
		// shard can be configured with in memory that exists.
		size = math.MaxUint32
	}
	nb := allocRegion[T](int(size))
	var top uint32
	a.segs(func(off *uint32, used, n uint32) bool {
		copy(nb[top:top+used], a.buf[*off:*off+used])
		*off = top
		top += n
		return true
	})
	freeRegion(a.buf)
	a.buf, a.top, a.high, a.live = nb, top, top, top
}

// free drops the region; the arena must hold no live segment.
func (a *arena[T]) free() {
	freeRegion(a.buf)
	*a = arena[T]{segs: a.segs}
}
