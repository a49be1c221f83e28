package tracker

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// checkArenas fails unless each of sh's arenas accounts for exactly the
// segments its torrents hold, those segments lie within its top without
// overlapping, and its dead space is within the bound rebuild keeps.
func checkArenas(t *testing.T, sh *memShard) {
	t.Helper()
	checkArena(t, "IPv4", &sh.a4)
	checkArena(t, "IPv6", &sh.a6)
	checkArena(t, "index", &sh.ai)
}

func checkArena[T any](t *testing.T, name string, a *arena[T]) {
	t.Helper()
	type seg struct{ off, used, size uint32 }
	var segs []seg
	a.segs(func(off *uint32, used, size uint32) bool {
		segs = append(segs, seg{*off, used, size})
		return true
	})
	slices.SortFunc(segs, func(x, y seg) int { return int(x.off) - int(y.off) })
	var live, end uint32
	for _, s := range segs {
		if s.used > s.size || s.size == 0 {
			t.Fatalf("%s arena: segment at %d uses %d of %d records", name, s.off, s.used, s.size)
		}
		if s.off < end {
			t.Fatalf("%s arena: segment at %d overlaps the one ending at %d", name, s.off, end)
		}
		end = s.off + s.size
		live += s.size
	}
	if end > a.top || a.top > uint32(len(a.buf)) {
		t.Fatalf("%s arena: segments end at %d, top %d, region of %d", name, end, a.top, len(a.buf))
	}
	if live != a.live {
		t.Fatalf("%s arena: segments hold %d records; arena counts %d", name, live, a.live)
	}
	if a.high < a.top || a.high > uint32(len(a.buf)) {
		t.Fatalf("%s arena: high-water mark %d, top %d, region of %d", name, a.high, a.top, len(a.buf))
	}
	waste := a.high - a.live
	if size := uint32(unsafe.Sizeof(*new(T))); waste > a.live/8 && waste*size >= deadMin {
		t.Fatalf("%s arena: %d records used once and not now beside %d live", name, waste, a.live)
	}
	if a.live == 0 && a.buf != nil {
		t.Fatalf("%s arena: empty and keeps a region of %d", name, len(a.buf))
	}
}

// testSegs is a set of segments of a bare arena, for the tests below.
type testSegs struct {
	a    arena[uint32]
	segs []*[3]uint32 // off, used, size
}

func newTestSegs() *testSegs {
	ts := &testSegs{}
	ts.a.segs = func(yield func(*uint32, uint32, uint32) bool) {
		for _, s := range ts.segs {
			if !yield(&s[0], s[1], s[2]) {
				return
			}
		}
	}
	return ts
}

// add allocates a segment of size records and fills its used ones with
// tag, so moves can be checked.
func (ts *testSegs) add(used, size, tag uint32) *[3]uint32 {
	off := ts.a.alloc(size)
	s := &[3]uint32{off, used, size}
	ts.segs = append(ts.segs, s)
	for i := range used {
		ts.a.buf[off+i] = tag<<16 | i
	}
	return s
}

func (ts *testSegs) drop(s *[3]uint32) {
	for i, x := range ts.segs {
		if x == s {
			ts.segs = append(ts.segs[:i], ts.segs[i+1:]...)
			break
		}
	}
	ts.a.release(s[0], s[2])
}

func (ts *testSegs) check(t *testing.T, tags map[*[3]uint32]uint32) {
	t.Helper()
	checkArena(t, "test", &ts.a)
	for s, tag := range tags {
		for i := range s[1] {
			if got := ts.a.buf[s[0]+i]; got != tag<<16|i {
				t.Fatalf("segment %d record %d holds %#x; want %#x", tag, i, got, tag<<16|i)
			}
		}
	}
}

// TestArenaReuseGrowthAndRebuild covers the allocator on its own: a freed
// last segment is reused in place, the region grows when full with every
// segment's content moved intact, dead space past an eighth of the live is
// squeezed out, and an emptied arena gives its region back.
func TestArenaReuseGrowthAndRebuild(t *testing.T) {
	ts := newTestSegs()
	tags := map[*[3]uint32]uint32{}
	a := ts.add(10, 12, 1)
	tags[a] = 1
	b := ts.add(5, 5, 2)
	tags[b] = 2
	ts.check(t, tags)
	// The last segment freed: the next allocation takes its place.
	off := b[0]
	ts.drop(b)
	delete(tags, b)
	if c := ts.add(3, 4, 3); c[0] != off {
		t.Fatalf("segment after freeing the last went to %d; want its place %d", c[0], off)
	} else {
		tags[c] = 3
	}
	// The last segment grows in place while the region has room.
	last := ts.segs[len(ts.segs)-1]
	if !ts.a.extend(last[0], last[2], last[2]+2) {
		t.Fatal("last segment not extended in place")
	}
	last[2] += 2
	ts.check(t, tags)
	// Fill past the first region: it grows, and contents follow.
	region := len(ts.a.buf)
	for i := uint32(4); len(ts.a.buf) == region; i++ {
		tags[ts.add(i%7+1, i%7+3, i)] = i
	}
	ts.check(t, tags)
	if ts.a.top != ts.a.live {
		t.Fatalf("after growing: top %d, live %d; want no dead space", ts.a.top, ts.a.live)
	}
	// Free every other segment: dead space is squeezed out as it passes
	// an eighth, and contents follow.
	i := 0
	for s := range tags {
		if i++; i%2 == 0 {
			ts.drop(s)
			delete(tags, s)
			ts.check(t, tags)
		}
	}
	for s := range tags {
		ts.drop(s)
		delete(tags, s)
		ts.check(t, tags)
	}
	if ts.a.buf != nil || ts.a.top != 0 {
		t.Fatalf("emptied arena keeps a region of %d, top %d", len(ts.a.buf), ts.a.top)
	}
}

// FuzzMemStoreArenas drives a one-shard store with announces, stops,
// family moves and expiry read from the input, against a model, checking
// after every step that the arenas account for exactly the swarms' lists
// and that every swarm holds its model's peers.
func FuzzMemStoreArenas(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(bytes.Repeat([]byte{0x10, 0x51, 0x92, 0xd3, 0x24, 0x65}, 80))
	seed := make([]byte, 1200)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range seed {
		seed[i] = byte(r.Uint32())
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := NewMemStore(MemStoreConfig{Shards: 1, PeerTTL: 100 * time.Second, MaxPeersPerTorrent: 300})
		now := time.Unix(1_700_000_000, 0)
		// model: torrent -> peer number -> IPv6?
		model := map[byte]map[int]bool{}
		for i, op := range ops {
			h := ih(op & 3)
			n := 1 + int(op>>2)%48 + 48*(i%5)
			switch {
			case op&0x80 != 0 && i%7 == 0:
				// Past the TTL: every peer expires.
				now = now.Add(200 * time.Second)
				for _, ps := range model {
					clear(ps)
				}
			case op&0x40 != 0:
				announceAt(t, s, now, h, n, loop4, false, EventStopped, 0)
				delete(model[op&3], n)
			default:
				v6 := op&0x10 != 0
				addr := loop4
				if v6 {
					addr = loop6
				}
				announceAt(t, s, now, h, n, addr, n%3 == 0, EventNone, 5)
				if model[op&3] == nil {
					model[op&3] = map[int]bool{}
				}
				model[op&3][n] = v6
			}
			if op&0x80 != 0 && i%7 == 0 {
				// Re-announce one peer so the expired swarm is touched.
				announceAt(t, s, now, h, n, loop4, false, EventNone, 0)
				if model[op&3] == nil {
					model[op&3] = map[int]bool{}
				}
				model[op&3][n] = false
				s.Sweep(now)
			}
			for k, ps := range model {
				want := map[int]bool{}
				for p := range ps {
					want[p] = true
				}
				if s.Scrape(now, ih(k)); len(want) > 0 || s.shards[0].lookup(ih(k)) != nil {
					checkTorrent(t, s, ih(k), want)
				}
			}
		}
		for k, ps := range model {
			for p := range ps {
				announceAt(t, s, now, ih(k), p, loop4, false, EventStopped, 0)
			}
		}
		sh := &s.shards[0]
		if sh.a4.buf != nil || sh.a6.buf != nil || sh.ai.buf != nil {
			t.Fatalf("every peer gone and the arenas keep %d, %d and %d records", len(sh.a4.buf), len(sh.a6.buf), len(sh.ai.buf))
		}
		runtime.KeepAlive(s)
	})
}

// TestMemStoreUnmapsWhenUnreachable checks that a store's mapped regions
// go back to the kernel once the store is garbage: they are outside the
// heap, so nothing else would free them.
func TestMemStoreUnmapsWhenUnreachable(t *testing.T) {
	footprint() // lets earlier stores' cleanups run first
	mapped := regionMapped.Load()
	func() {
		s := NewMemStore(MemStoreConfig{})
		now := time.Unix(1_700_000_000, 0)
		for i := range 20_000 {
			a := PeerAnnounce{InfoHash: ih(byte(i % 200)), PeerID: pid(i), Addr: netip.AddrPortFrom(loop4, uint16(i))}
			if _, _, err := s.Announce(now, &a, nil); err != nil {
				t.Fatal(err)
			}
		}
		if grown := regionMapped.Load() - mapped; grown < 20_000*20 {
			t.Fatalf("store of 20,000 peers maps %d bytes; want at least their records' %d", grown, 20_000*20)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for regionMapped.Load() > mapped {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still mapped 5 s after the store became unreachable", regionMapped.Load()-mapped)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestArenaLastFreedGivesRegionBack frees segments last first, which only
// lowers top and leaves no dead space: the pages under the old top are
// still resident, so the arena must rebuild into a smaller region all the
// same.
func TestArenaLastFreedGivesRegionBack(t *testing.T) {
	ts := newTestSegs()
	tags := map[*[3]uint32]uint32{}
	first := ts.add(100, 100, 1)
	tags[first] = 1
	var rest []*[3]uint32
	for i := range uint32(200) {
		s := ts.add(50, 50, i+2)
		rest = append(rest, s)
		tags[s] = i + 2
	}
	peak := len(ts.a.buf)
	for i := len(rest) - 1; i >= 0; i-- {
		ts.drop(rest[i])
		delete(tags, rest[i])
		ts.check(t, tags)
	}
	if len(ts.a.buf) >= peak/4 {
		t.Fatalf("one segment of 100 left in a region of %d (peak %d), high-water mark %d", len(ts.a.buf), peak, ts.a.high)
	}
}
