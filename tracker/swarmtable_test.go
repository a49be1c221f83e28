package tracker

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// checkSwarmTable fails unless tb matches model (info-hash to the
// torrent's seen, which tells headers apart), every header is found at its
// own slot through the index, the index holds nothing else, and the list
// by last announce visits every header once, in both directions, in order
// (order lists the hashes oldest first).
func checkSwarmTable(t *testing.T, tb *swarmTable, model map[InfoHash]uint32, order []InfoHash) {
	t.Helper()
	if tb.len() != len(model) {
		t.Fatalf("table holds %d torrents; model %d", tb.len(), len(model))
	}
	for h, seen := range model {
		i := tb.find(&h)
		if i == noSlot {
			t.Fatalf("%x missing", h[:4])
		}
		if got := tb.at(i); got.hash != h || got.seen != seen {
			t.Fatalf("%x found at slot %d holding %x (seen %d, want %d)", h[:4], i, got.hash[:4], got.seen, seen)
		}
	}
	n := 0
	for _, v := range tb.idx {
		if v != 0 {
			n++
			if int(v-1) >= tb.len() {
				t.Fatalf("index entry %d past the slab (%d)", v-1, tb.len())
			}
		}
	}
	if n != tb.len() {
		t.Fatalf("index holds %d entries for %d torrents", n, tb.len())
	}
	if tb.len() > 0 && n*4 > len(tb.idx)*3 {
		t.Fatalf("index of %d entries over 3/4 full with %d", len(tb.idx), n)
	}
	// Walk the list both ways.
	prev := noSlot
	k := 0
	for i := tb.oldest; i != noSlot; i = tb.at(i).newer {
		if k >= len(order) {
			t.Fatalf("list longer than the %d torrents", len(order))
		}
		if tb.at(i).older != prev {
			t.Fatalf("slot %d: older %d; want %d", i, tb.at(i).older, prev)
		}
		if tb.at(i).hash != order[k] {
			t.Fatalf("list position %d holds %x; want %x", k, tb.at(i).hash[:4], order[k][:4])
		}
		prev = i
		k++
	}
	if k != len(order) || tb.newest != prev {
		t.Fatalf("list has %d torrents ending at %d; want %d ending at newest %d", k, prev, len(order), tb.newest)
	}
}

func tableHash(n uint64) InfoHash {
	var h InfoHash
	binary.LittleEndian.PutUint64(h[:], n)
	h[19] = 0xa5
	return h
}

// TestSwarmTableGrowRemoveShrink fills a table past several index and
// slab growths, removes from the front, the back and the middle (so the
// moved header's list neighbours and index entry are fixed up), and
// empties it, checking it against the model at each step; the slab and
// index must shrink once it is nearly empty.
func TestSwarmTableGrowRemoveShrink(t *testing.T) {
	st := newSwarmTable()
	tb := &st
	model := map[InfoHash]uint32{}
	var order []InfoHash
	const n = 1000
	for k := range n {
		h := tableHash(uint64(k))
		if tb.find(&h) != noSlot {
			t.Fatalf("%d found before insert", k)
		}
		tb.at(tb.insert(h)).seen = uint32(k)
		model[h] = uint32(k)
		order = append(order, h)
		if k%97 == 0 {
			checkSwarmTable(t, tb, model, order)
		}
	}
	checkSwarmTable(t, tb, model, order)
	peakSlab, peakIdx := cap(tb.slab), len(tb.idx)
	if peakSlab > n+n/8+8 {
		t.Errorf("slab capacity %d for %d torrents: grows by more than an eighth", peakSlab, n)
	}
	remove := func(h InfoHash) {
		t.Helper()
		i := tb.find(&h)
		last := int32(tb.len() - 1)
		moved := tb.remove(i)
		if (i == last) != (moved == noSlot) || (moved != noSlot && moved != last) {
			t.Fatalf("remove(%d) of %d reported a move from %d", i, last+1, moved)
		}
		delete(model, h)
		for j, o := range order {
			if o == h {
				order = append(order[:j], order[j+1:]...)
				break
			}
		}
	}
	// The slot holding the oldest, the one in the last slot, and one in
	// the middle of the list.
	remove(order[0])
	checkSwarmTable(t, tb, model, order)
	remove(tb.at(int32(tb.len() - 1)).hash)
	checkSwarmTable(t, tb, model, order)
	remove(order[len(order)/2])
	checkSwarmTable(t, tb, model, order)
	r := rand.New(rand.NewPCG(1, 2))
	for len(order) > 0 {
		remove(order[r.IntN(len(order))])
		if len(order)%53 == 0 {
			checkSwarmTable(t, tb, model, order)
		}
		if len(order) == 20 && (cap(tb.slab) >= peakSlab/4 || len(tb.idx) >= peakIdx/4) {
			t.Fatalf("20 torrents left in a slab of %d (peak %d) and an index of %d (peak %d)", cap(tb.slab), peakSlab, len(tb.idx), peakIdx)
		}
	}
	checkSwarmTable(t, tb, model, order)
	if tb.oldest != noSlot || tb.newest != noSlot || len(tb.idx) != 0 {
		t.Fatalf("empty table keeps list ends %d, %d and an index of %d", tb.oldest, tb.newest, len(tb.idx))
	}
}

// TestSwarmTableCollisions fills a small index with hashes that share
// their home position, so lookups, inserts and the backward shift on
// removal run over long probe runs that wrap around the index's end.
func TestSwarmTableCollisions(t *testing.T) {
	st := newSwarmTable()
	tb := &st
	model := map[InfoHash]uint32{}
	var order []InfoHash
	// Five torrents give a 16-entry index; collect hashes whose home in
	// it is 14 or 15, so their runs wrap past the end.
	var same []InfoHash
	for k := uint64(0); len(same) < 11; k++ {
		h := tableHash(k)
		if torrentHash(&h)&15 >= 14 {
			same = append(same, h)
		}
	}
	for k, h := range same {
		tb.at(tb.insert(h)).seen = uint32(k)
		model[h] = uint32(k)
		order = append(order, h)
		checkSwarmTable(t, tb, model, order)
	}
	if len(tb.idx) != 16 {
		t.Fatalf("index of %d for %d torrents; the test wants 16", len(tb.idx), tb.len())
	}
	miss := tableHash(1 << 40)
	if tb.find(&miss) != noSlot {
		t.Fatal("absent hash found")
	}
	// Remove from the head of the run, then its middle, then the rest.
	for _, j := range []int{0, 4, 0, 3, 2, 0, 1, 0, 0, 1, 0} {
		h := order[j]
		tb.remove(tb.find(&h))
		delete(model, h)
		order = append(order[:j], order[j+1:]...)
		checkSwarmTable(t, tb, model, order)
	}
}

// TestSwarmTableTouch checks that touch moves a torrent to the newest end
// and keeps the list whole.
func TestSwarmTableTouch(t *testing.T) {
	st := newSwarmTable()
	tb := &st
	model := map[InfoHash]uint32{}
	var order []InfoHash
	for k := range 6 {
		h := tableHash(uint64(k))
		tb.insert(h)
		model[h] = 0
		order = append(order, h)
	}
	for _, k := range []int{0, 5, 3, 3, 1} {
		h := tableHash(uint64(k))
		tb.touch(tb.find(&h))
		for j, o := range order {
			if o == h {
				order = append(append(order[:j:j], order[j+1:]...), h)
				break
			}
		}
		checkSwarmTable(t, tb, model, order)
	}
}

// FuzzSwarmTable runs a sequence of inserts, touches and removes decoded
// from the input against a map and a slice as the model. Hashes are drawn
// from a small set so the same torrent comes back after removal.
func FuzzSwarmTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x41, 0x82, 0xc3, 4, 5, 0x44})
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x80\x81\x82\x83\x84\x85\x86\x87\x00\x01\x02"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		st := newSwarmTable()
		tb := &st
		model := map[InfoHash]uint32{}
		var order []InfoHash
		for step, op := range ops {
			h := tableHash(uint64(op & 0x3f))
			i := tb.find(&h)
			if _, ok := model[h]; ok != (i != noSlot) {
				t.Fatalf("step %d: find(%d) = %d; model has it: %v", step, op&0x3f, i, ok)
			}
			pos := -1
			for j, o := range order {
				if o == h {
					pos = j
				}
			}
			switch op >> 6 {
			case 0, 1: // insert, or touch when present
				if i == noSlot {
					tb.at(tb.insert(h)).seen = uint32(step)
					model[h] = uint32(step)
				} else {
					tb.touch(i)
					order = append(order[:pos], order[pos+1:]...)
				}
				order = append(order, h)
			default: // remove when present
				if i != noSlot {
					tb.remove(i)
					delete(model, h)
					order = append(order[:pos], order[pos+1:]...)
				}
			}
			checkSwarmTable(t, tb, model, order)
		}
	})
}
