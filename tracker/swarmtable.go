package tracker

import (
	"hash/maphash"
	"unsafe"
)

// noSlot ends the LRU list and marks a torrent the table does not hold.
const noSlot int32 = -1

// torrentSeed keys the info-hash hash of swarm tables: anyone may announce
// any info-hash (without an allow-list), so an unkeyed hash would let them
// pile torrents onto one probe run.
var torrentSeed = maphash.MakeSeed()

// swarmTable holds one shard's torrents. Their headers live by value in a
// dense slab, so a torrent costs neither a heap object of its own nor a
// map entry and a pointer beside it (about 150 bytes with
// map[InfoHash]*torrent, against 84 plus 5–11 of index here); an
// open-addressing index of slab slots, keyed by a hash of the info-hash,
// finds them. Removal moves the last header into the freed slot, as peer
// lists do, so the slab stays dense and can shrink. The headers are also
// linked by slot into a list by last announce, for eviction and Sweep.
//
// The slab and the index come from allocRegion, outside the Go heap from a
// page up. A *torrent into the slab is valid only until the next insert or
// remove.
type swarmTable struct {
	slab []torrent
	// idx holds slot+1, 0 for empty, with linear probing; its length is
	// a power of two, or 0 while the table is empty.
	idx []uint32
	// oldest and newest are the ends of the list by last announce.
	oldest, newest int32
}

func newSwarmTable() swarmTable { return swarmTable{oldest: noSlot, newest: noSlot} }

func (tb *swarmTable) len() int { return len(tb.slab) }

func (tb *swarmTable) at(i int32) *torrent { return &tb.slab[i] }

func torrentHash(h *InfoHash) uint64 { return maphash.Bytes(torrentSeed, h[:]) }

// find returns h's slot, or noSlot.
func (tb *swarmTable) find(h *InfoHash) int32 {
	if len(tb.idx) == 0 {
		return noSlot
	}
	mask := uint64(len(tb.idx) - 1)
	for j := torrentHash(h) & mask; ; j = (j + 1) & mask {
		v := tb.idx[j]
		if v == 0 {
			return noSlot
		}
		if tb.slab[v-1].hash == *h {
			return int32(v - 1)
		}
	}
}

// insert adds an empty torrent for h, which the table must not hold, as
// the newest, and returns its slot.
func (tb *swarmTable) insert(h InfoHash) int32 {
	if n := len(tb.slab); n == cap(tb.slab) {
		// Grow by an eighth, not append's doubling: a shard's slab is
		// one block, and the slack of doubling (or even of a quarter,
		// about 1.7 bytes per peer at 10,000 torrents of 10 peers) would
		// be a large share of what torrents cost; copying 84 bytes per
		// torrent every eighth growth is cheap.
		tb.realloc(n + max(8, n/8))
	}
	// The index grows before the header goes in: mapping may fail (a
	// panic the front ends recover from), and must leave the table as it
	// was, not holding a header no index or list knows.
	if n := len(tb.slab) + 1; n*4 > len(tb.idx)*3 {
		tb.reindex(n)
	}
	tb.slab = append(tb.slab, torrent{hash: h, older: noSlot, newer: noSlot})
	i := int32(len(tb.slab) - 1)
	tb.indexSlot(i)
	tb.push(i)
	return i
}

// remove deletes the torrent at slot i. The last header moves into i; the
// slot it came from is returned (noSlot when i was the last), so a caller
// holding that slot can follow it.
func (tb *swarmTable) remove(i int32) (movedFrom int32) {
	tb.unlink(i)
	tb.unindex(tb.indexPos(i))
	last := int32(len(tb.slab) - 1)
	movedFrom = noSlot
	if i != last {
		tb.idx[tb.indexPos(last)] = uint32(i) + 1
		m := &tb.slab[last]
		if m.older != noSlot {
			tb.slab[m.older].newer = i
		} else {
			tb.oldest = i
		}
		if m.newer != noSlot {
			tb.slab[m.newer].older = i
		} else {
			tb.newest = i
		}
		tb.slab[i] = *m
		movedFrom = last
	}
	tb.slab[last] = torrent{}
	tb.slab = tb.slab[:last]
	// Give memory back once the shard has shrunk well below its
	// capacity, so a burst of torrents cannot pin its peak for good.
	// (A region is whole pages: below one there is nothing to give.)
	if c := cap(tb.slab); c > 32 && len(tb.slab) < c/4 && c*int(unsafe.Sizeof(torrent{})) > pageSize {
		tb.realloc(len(tb.slab) + len(tb.slab)/4)
	}
	if len(tb.slab) == 0 || len(tb.idx) > 8 && len(tb.slab)*8 < len(tb.idx) {
		tb.reindex(len(tb.slab))
	}
	return movedFrom
}

// realloc moves the slab to a region of room for c headers (at least its
// length).
func (tb *swarmTable) realloc(c int) {
	grown := allocRegion[torrent](c)[:len(tb.slab)]
	copy(grown, tb.slab)
	freeRegion(tb.slab)
	tb.slab = grown
}

// free gives back the slab and the index; the table is empty after.
func (tb *swarmTable) free() {
	freeRegion(tb.slab)
	freeRegion(tb.idx)
	*tb = newSwarmTable()
}

// reindex rebuilds the index of the slab's headers with room for n at a
// load between a quarter and a half. The new index is mapped before the
// old one is freed, so a failed mapping leaves the old one in use.
func (tb *swarmTable) reindex(n int) {
	old := tb.idx
	if n == 0 {
		tb.idx = nil
		freeRegion(old)
		return
	}
	size := 8
	for size < 2*n {
		size *= 2
	}
	tb.idx = allocRegion[uint32](size)[:size]
	freeRegion(old)
	for i := range tb.slab {
		tb.indexSlot(int32(i))
	}
}

func (tb *swarmTable) indexSlot(i int32) {
	mask := uint64(len(tb.idx) - 1)
	j := torrentHash(&tb.slab[i].hash) & mask
	for tb.idx[j] != 0 {
		j = (j + 1) & mask
	}
	tb.idx[j] = uint32(i) + 1
}

// indexPos returns the index position holding slot i.
func (tb *swarmTable) indexPos(i int32) uint64 {
	mask := uint64(len(tb.idx) - 1)
	j := torrentHash(&tb.slab[i].hash) & mask
	for tb.idx[j] != uint32(i)+1 {
		j = (j + 1) & mask
	}
	return j
}

// unindex empties index position i and shifts later entries of its probe
// run back, so lookups need no tombstones.
func (tb *swarmTable) unindex(i uint64) {
	mask := uint64(len(tb.idx) - 1)
	j := i
	for {
		j = (j + 1) & mask
		v := tb.idx[j]
		if v == 0 {
			break
		}
		k := torrentHash(&tb.slab[v-1].hash) & mask
		// Entry j stays if its home k lies cyclically in (i, j].
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		tb.idx[i] = v
		i = j
	}
	tb.idx[i] = 0
}

// push links slot i in as the newest torrent.
func (tb *swarmTable) push(i int32) {
	t := &tb.slab[i]
	t.older, t.newer = tb.newest, noSlot
	if tb.newest != noSlot {
		tb.slab[tb.newest].newer = i
	} else {
		tb.oldest = i
	}
	tb.newest = i
}

func (tb *swarmTable) unlink(i int32) {
	t := &tb.slab[i]
	if t.older != noSlot {
		tb.slab[t.older].newer = t.newer
	} else {
		tb.oldest = t.newer
	}
	if t.newer != noSlot {
		tb.slab[t.newer].older = t.older
	} else {
		tb.newest = t.older
	}
	t.older, t.newer = noSlot, noSlot
}

// touch makes slot i the newest torrent.
func (tb *swarmTable) touch(i int32) {
	if tb.newest == i {
		return
	}
	tb.unlink(i)
	tb.push(i)
}
