package tracker

import (
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
)

// TestSwarmTableSurvivesFailedMappings makes mappings fail at random while
// a table grows and shrinks, as a kernel out of memory would: the insert
// or remove that needed the mapping panics (the front ends recover an
// announce's panic), and the table must be left as before that insert, or
// with that torrent removed, and usable: never an index on unmapped
// memory, nor a header no index or list knows.
func TestSwarmTableSurvivesFailedMappings(t *testing.T) {
	real := mapAnon
	t.Cleanup(func() { mapAnon = real })
	rnd := rand.New(rand.NewPCG(7, 11))
	failing := false
	mapAnon = func(n int) ([]byte, error) {
		if failing && rnd.IntN(2) == 0 {
			return nil, syscall.ENOMEM
		}
		return real(n)
	}
	panicked := func(f func()) (p bool) {
		defer func() { p = recover() != nil }()
		f()
		return false
	}
	st := newSwarmTable()
	tb := &st
	model := map[InfoHash]uint32{}
	var order []InfoHash
	fails := 0
	for k := range 600 {
		h := tableHash(uint64(k))
		failing = true
		var slot int32
		if panicked(func() { slot = tb.insert(h) }) {
			failing = false
			fails++
			if tb.find(&h) != noSlot {
				t.Fatalf("insert %d failed but its torrent is in the table", k)
			}
		} else {
			failing = false
			tb.at(slot).seen = uint32(k)
			model[h] = uint32(k)
			order = append(order, h)
		}
		checkSwarmTable(t, tb, model, order)
	}
	for len(order) > 0 {
		h := order[rnd.IntN(len(order))]
		failing = true
		p := panicked(func() { tb.remove(tb.find(&h)) })
		failing = false
		if p {
			fails++
		}
		// Removed whether or not giving memory back failed.
		delete(model, h)
		order = slices.DeleteFunc(order, func(x InfoHash) bool { return x == h })
		checkSwarmTable(t, tb, model, order)
	}
	if fails == 0 {
		t.Fatal("no mapping failed: the test tested nothing")
	}
	t.Logf("%d inserts and removes met a failed mapping", fails)
	tb.free()
}
