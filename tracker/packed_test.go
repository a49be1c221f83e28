package tracker

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

var loop6 = netip.MustParseAddr("::1")

// announceAt announces peer n of h from addr and fails the test on error.
func announceAt(t testing.TB, s *MemStore, now time.Time, h InfoHash, n int, addr netip.Addr, seeder bool, ev Event, numWant int) ([]Peer, Swarm) {
	t.Helper()
	a := PeerAnnounce{InfoHash: h, PeerID: pid(n), Addr: netip.AddrPortFrom(addr, uint16(n)), Event: ev, Seeder: seeder, NumWant: numWant}
	ps, sw, err := s.Announce(now, &a, nil)
	if err != nil {
		t.Fatalf("announce peer %d: %v", n, err)
	}
	return ps, sw
}

// checkTorrent checks h's lists and index and that it holds exactly the
// peers want (by number), each with its own ID.
func checkTorrent(t *testing.T, s *MemStore, h InfoHash, want map[int]bool) {
	t.Helper()
	sh := s.shard(h)
	checkArenas(t, sh)
	tor := sh.lookup(h)
	if tor == nil {
		if len(want) != 0 {
			t.Fatalf("torrent gone; want %d peers", len(want))
		}
		return
	}
	checkPeerList(t, sh.v4(tor))
	checkPeerList(t, sh.v6(tor))
	if tor.v6.n == 0 && tor.v6.size != 0 {
		t.Fatal("empty IPv6 list kept")
	}
	got := map[int]bool{}
	for i, p := range sh.v4(tor).peers() {
		got[int(p.port)] = true
		if id := pid(int(p.port)); p.id != keyOf(&id) {
			t.Fatalf("slot %d: port %d with the ID of another peer", i, p.port)
		}
	}
	for _, p := range sh.v6(tor).peers() {
		got[int(p.port)] = true
	}
	if len(got) != len(want) || tor.count() != len(want) {
		t.Fatalf("torrent holds %d peers (%d records); want %d", len(got), tor.count(), len(want))
	}
	for n := range want {
		if !got[n] {
			t.Fatalf("peer %d missing", n)
		}
	}
	// s's cleanup would unmap the regions read above.
	runtime.KeepAlive(s)
}

// TestMemStoreSwapRemove removes first, middle and last records, of a
// swarm small enough to scan and of one that has an index, and checks the
// record moved into each hole is still found where it now is.
func TestMemStoreSwapRemove(t *testing.T) {
	for _, size := range []int{5, indexMin, 200} {
		s := NewMemStore(MemStoreConfig{Shards: 1})
		now := time.Unix(1_700_000_000, 0)
		h := ih(40)
		want := map[int]bool{}
		for n := 1; n <= size; n++ {
			announceAt(t, s, now, h, n, loop4, false, EventNone, 0)
			want[n] = true
		}
		checkTorrent(t, s, h, want)
		ps := s.shards[0].v4(s.shards[0].lookup(h)).peers()
		// First, last and middle slot, then random ones down to one peer.
		victims := []int{int(ps[0].port), int(ps[size-1].port), int(ps[size/2].port)}
		for n := range want {
			victims = append(victims, n)
		}
		for _, n := range victims {
			if !want[n] || len(want) == 1 {
				continue
			}
			_, sw := announceAt(t, s, now, h, n, loop4, false, EventStopped, 0)
			delete(want, n)
			if sw.Incomplete != len(want) {
				t.Fatalf("size %d: %d peers after stopping %d; want %d", size, sw.Incomplete, n, len(want))
			}
			checkTorrent(t, s, h, want)
		}
		if st := s.Stats(); st.Peers != 1 {
			t.Fatalf("size %d: stats %+v; want 1 peer", size, st)
		}
	}
}

// TestMemStoreExpiry checks that peers past the TTL go on the next touch
// of their swarm (and only they), that fresh peers are kept through the
// scan, and that Sweep drops torrents nobody touched.
func TestMemStoreExpiry(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1, PeerTTL: 10 * time.Second})
	t0 := time.Unix(1_700_000_000, 0)
	busy, idle := ih(41), ih(42)
	for n := 1; n <= 40; n++ {
		announceAt(t, s, t0, busy, n, loop4, n%3 == 0, EventNone, 0)
	}
	for n := 41; n <= 45; n++ {
		announceAt(t, s, t0, busy, n, loop6, false, EventNone, 0)
	}
	announceAt(t, s, t0, idle, 100, loop4, false, EventNone, 0)
	// Even peers and one IPv6 peer re-announce 6 s later.
	want := map[int]bool{}
	for n := 2; n <= 40; n += 2 {
		announceAt(t, s, t0.Add(6*time.Second), busy, n, loop4, n%3 == 0, EventNone, 0)
		want[n] = true
	}
	announceAt(t, s, t0.Add(6*time.Second), busy, 44, loop6, false, EventNone, 0)
	want[44] = true
	// At 9 s nobody is due yet.
	if sw := s.Scrape(t0.Add(9*time.Second), busy); sw.Complete+sw.Incomplete != 45 {
		t.Fatalf("at 9 s: %+v; want all 45 peers", sw)
	}
	sw := s.Scrape(t0.Add(10*time.Second), busy)
	seeders := 0
	for n := range want {
		if n%3 == 0 && n <= 40 {
			seeders++
		}
	}
	if sw.Complete != seeders || sw.Incomplete != len(want)-seeders {
		t.Fatalf("at 10 s: %+v; want %d seeders of %d", sw, seeders, len(want))
	}
	checkTorrent(t, s, busy, want)
	if st := s.Stats(); st.ExpiredPeers != 24 || st.Seeders != seeders {
		t.Fatalf("stats %+v; want 24 expired, %d seeders", st, seeders)
	}
	// The idle torrent was not touched: only Sweep removes it.
	if st := s.Stats(); st.Torrents != 2 {
		t.Fatalf("stats %+v; want the idle torrent still counted", st)
	}
	s.Sweep(t0.Add(11 * time.Second))
	if st := s.Stats(); st.Torrents != 1 || st.ExpiredPeers != 25 || st.Peers != len(want) {
		t.Fatalf("after sweep: %+v", st)
	}
	// The re-announced peers are due at 16 s: a touch then drops them all
	// (so the scan's bound on the oldest announce was not too late).
	if sw := s.Scrape(t0.Add(16*time.Second), busy); sw.Complete+sw.Incomplete != 0 {
		t.Fatalf("at 16 s: %+v; want every peer expired", sw)
	}
	if st := s.Stats(); st.ExpiredPeers != 25+uint64(len(want)) {
		t.Fatalf("at 16 s: %+v", st)
	}
	s.Sweep(t0.Add(16 * time.Second))
	if st := s.Stats(); st.Torrents != 0 || st.Peers != 0 || st.Seeders != 0 {
		t.Fatalf("after the last sweep: %+v", st)
	}
}

// TestMemStoreReannounceChangesSeeder flips a peer between leecher and
// seeder and checks the counts, the completed count and that a seeder is
// given only leechers.
func TestMemStoreReannounceChangesSeeder(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1})
	now := time.Unix(1_700_000_000, 0)
	h := ih(43)
	announceAt(t, s, now, h, 1, loop4, true, EventNone, 0)  // seeder
	announceAt(t, s, now, h, 2, loop4, false, EventNone, 0) // leecher
	_, sw := announceAt(t, s, now, h, 3, loop4, false, EventStarted, 0)
	if sw != (Swarm{Complete: 1, Incomplete: 2}) {
		t.Fatalf("swarm %+v", sw)
	}
	_, sw = announceAt(t, s, now, h, 3, loop4, true, EventCompleted, 0)
	if sw != (Swarm{Complete: 2, Incomplete: 1, Downloaded: 1}) {
		t.Fatalf("after completing: %+v", sw)
	}
	// A repeated completed event from a seeder counts nothing more.
	_, sw = announceAt(t, s, now, h, 3, loop4, true, EventCompleted, 0)
	if sw.Downloaded != 1 || sw.Complete != 2 {
		t.Fatalf("repeated completed: %+v", sw)
	}
	ps, _ := announceAt(t, s, now, h, 3, loop4, true, EventNone, 10)
	if len(ps) != 1 || ps[0].Addr.Port() != 2 {
		t.Fatalf("seeder got %v; want only leecher 2", ps)
	}
	// Back to leecher (a client that lost data), now from IPv6.
	ps, sw = announceAt(t, s, now, h, 3, loop6, false, EventNone, 10)
	if sw != (Swarm{Complete: 1, Incomplete: 2, Downloaded: 1}) || len(ps) != 2 {
		t.Fatalf("after going back to leecher: %+v, %v", sw, ps)
	}
	if st := s.Stats(); st.Seeders != 1 || st.Leechers != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkTorrent(t, s, h, map[int]bool{1: true, 2: true, 3: true})
}

// TestMemStoreIPv6 mixes families in one swarm: replies carry both with
// their addresses, a peer that changes family moves (not duplicates), a
// v4-mapped address is stored as IPv4, and the IPv6 list goes with its
// last peer.
func TestMemStoreIPv6(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1})
	now := time.Unix(1_700_000_000, 0)
	h := ih(44)
	v6 := netip.MustParseAddr("2001:db8::7")
	for n := 1; n <= 20; n++ {
		addr := loop4
		if n%2 == 0 {
			addr = v6
		}
		announceAt(t, s, now, h, n, addr, false, EventNone, 0)
	}
	ps, _ := announceAt(t, s, now, h, 99, loop4, false, EventNone, 100)
	if len(ps) != 20 {
		t.Fatalf("%d peers; want 20", len(ps))
	}
	for _, p := range ps {
		want := loop4
		if p.Addr.Port()%2 == 0 {
			want = v6
		}
		if p.Addr.Addr() != want || p.ID != (PeerID{}) {
			t.Fatalf("peer %v; want address %v and no peer ID (the store keeps only its hash)", p, want)
		}
	}
	tor := s.shards[0].lookup(h)
	if tor.v4.n != 11 || tor.v6.n != 10 {
		t.Fatalf("lists hold %d IPv4 and %d IPv6 peers", tor.v4.n, tor.v6.n)
	}
	// Peer 2 moves to a v4-mapped address: it is an IPv4 peer now.
	mapped := netip.AddrFrom16(loop4.As16())
	announceAt(t, s, now, h, 2, mapped, false, EventNone, 0)
	if tor.v4.n != 12 || tor.v6.n != 9 {
		t.Fatalf("after the move: %d IPv4, %d IPv6", tor.v4.n, tor.v6.n)
	}
	ps, _ = announceAt(t, s, now, h, 99, loop4, false, EventNone, 100)
	for _, p := range ps {
		if p.Addr.Port() == 2 && p.Addr.Addr() != loop4 {
			t.Fatalf("moved peer at %v; want %v", p.Addr, loop4)
		}
	}
	// The peer at the mapped address may stop from the plain address.
	a := PeerAnnounce{InfoHash: h, PeerID: pid(2), Addr: netip.AddrPortFrom(loop4, 2), Key: 7, Event: EventNone}
	if _, _, err := s.Announce(now, &a, nil); err != nil {
		t.Fatal(err)
	}
	b := PeerAnnounce{InfoHash: h, PeerID: pid(2), Addr: netip.AddrPortFrom(mapped, 2), Event: EventStopped}
	if _, _, err := s.Announce(now, &b, nil); err != nil {
		t.Fatalf("stop from the same address in mapped form: %v", err)
	}
	// Another address without the key may not.
	if _, _, err := s.Announce(now, &a, nil); err != nil {
		t.Fatal(err)
	}
	c := PeerAnnounce{InfoHash: h, PeerID: pid(2), Addr: netip.AddrPortFrom(v6, 2), Event: EventStopped}
	if _, _, err := s.Announce(now, &c, nil); err != ErrPeerIDInUse {
		t.Fatalf("stop from another address without the key: %v; want ErrPeerIDInUse", err)
	}
	for n := 4; n <= 20; n += 2 {
		announceAt(t, s, now, h, n, v6, false, EventStopped, 0)
	}
	if tor.v6.n != 0 || tor.v6.size != 0 {
		t.Fatalf("IPv6 list kept with %d peers in %d records", tor.v6.n, tor.v6.size)
	}
	want := map[int]bool{99: true, 2: true}
	for n := 1; n <= 20; n += 2 {
		want[n] = true
	}
	checkTorrent(t, s, h, want)
}

// TestMemStorePickSample checks numwant sampling: never the requester,
// never a peer twice, min(numwant, others) peers, every peer reachable,
// and no allocation when dst has room.
func TestMemStorePickSample(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1})
	now := time.Unix(1_700_000_000, 0)
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, size := range []int{1, 2, 3, 17, 100} {
		h := ih(byte(50 + size))
		for n := 1; n <= size; n++ {
			addr := loop4
			if n%4 == 0 {
				addr = v6
			}
			announceAt(t, s, now, h, n, addr, false, EventNone, 0)
		}
		for _, numWant := range []int{0, 1, size - 1, size, 2 * size} {
			seen := map[uint16]int{}
			for range 50 {
				self := 1 + rand.IntN(size)
				addr := loop4
				if self%4 == 0 {
					addr = v6
				}
				ps, _ := announceAt(t, s, now, h, self, addr, false, EventNone, numWant)
				if want := max(0, min(numWant, size-1)); len(ps) != want {
					t.Fatalf("size %d numwant %d: %d peers; want %d", size, numWant, len(ps), want)
				}
				got := map[uint16]bool{}
				for _, p := range ps {
					port := p.Addr.Port()
					if int(port) == self {
						t.Fatalf("size %d numwant %d: requester %d given itself", size, numWant, self)
					}
					if got[port] {
						t.Fatalf("size %d numwant %d: peer %d twice in %v", size, numWant, port, ps)
					}
					got[port] = true
					seen[port]++
				}
			}
			if numWant >= size-1 && size > 1 && len(seen) != size {
				t.Fatalf("size %d numwant %d: only %d of %d peers ever given", size, numWant, len(seen), size)
			}
			// 50 samples of 1 in 100 see about 40 distinct peers; a
			// sample biased to part of the swarm sees far fewer.
			if size == 100 && numWant == 1 && len(seen) < 25 {
				t.Fatalf("numwant 1 of 100: only %d distinct peers in 50 samples", len(seen))
			}
		}
	}
	h := ih(50 + 100)
	a := PeerAnnounce{InfoHash: h, PeerID: pid(7), Addr: netip.AddrPortFrom(loop4, 7), NumWant: 50}
	dst := make([]Peer, 0, 50)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = s.Announce(now, &a, dst[:0]) }); n != 0 {
		t.Fatalf("re-announce with numwant 50 allocates %.1f times; want 0", n)
	}
}

// BenchmarkMemStoreAnnounce fills a store the shape of cmd/trackerbench's
// load (10,000 torrents × 10 peers), reports its bytes per peer (live heap
// and mapped regions),
// then measures re-announces with numwant 50.
func BenchmarkMemStoreAnnounce(b *testing.B) {
	const torrents, per = 10_000, 10
	before := footprint()
	s := NewMemStore(MemStoreConfig{})
	now := time.Unix(1_700_000_000, 0)
	anns := make([]PeerAnnounce, torrents*per)
	for i := range anns {
		a := &anns[i]
		t := i % torrents
		a.InfoHash[0], a.InfoHash[1], a.InfoHash[2] = byte(t), byte(t>>8), byte(t>>16)
		a.PeerID = pid(i)
		a.Addr = netip.AddrPortFrom(loop4, uint16(1024+i/torrents))
		a.Seeder = i%5 == 0
		a.NumWant = 50
	}
	dst := make([]Peer, 0, 50)
	for i := range anns {
		dst, _, _ = s.Announce(now, &anns[i], dst[:0])
	}
	annsBytes := int64(len(anns)) * int64(unsafe.Sizeof(PeerAnnounce{}))
	perPeer := float64(footprint()-before-annsBytes) / float64(len(anns))
	b.ReportAllocs()
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		dst, _, _ = s.Announce(now, &anns[r.IntN(len(anns))], dst[:0])
	}
	// After the loop: the timer reset at its start drops earlier metrics.
	b.ReportMetric(perPeer, "bytes/peer")
}

// The records are what the memory figures rest on: a padding byte more
// per field would cost every stored peer.
func TestPackedRecordSizes(t *testing.T) {
	if n := unsafe.Sizeof(packedPeer[[4]byte]{}); n != 20 {
		t.Errorf("IPv4 record is %d bytes; want 20", n)
	}
	if n := unsafe.Sizeof(packedPeer[[16]byte]{}); n != 32 {
		t.Errorf("IPv6 record is %d bytes; want 32", n)
	}
}

// lookup returns h's header, or nil: valid until the shard next gains or
// loses a torrent.
func (sh *memShard) lookup(h InfoHash) *torrent {
	i := sh.swarms.find(&h)
	if i == noSlot {
		return nil
	}
	return sh.swarms.at(i)
}

// TestMemStoreKeySharesWordWithSeeder checks that the BEP 7 key hash and
// the seeder flag, packed into one word, stay apart: a key hash with the
// top bit set does not make a leecher a seeder, and one whose other 31
// bits are zero still guards its peer ID.
func TestMemStoreKeySharesWordWithSeeder(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := ih(43)
	for _, key := range []uint32{0x8000_0000, 0xffff_ffff, 1} {
		s := NewMemStore(MemStoreConfig{Shards: 1})
		a := PeerAnnounce{InfoHash: h, PeerID: pid(1), Addr: netip.AddrPortFrom(loop4, 1), Key: key}
		_, sw, err := s.Announce(now, &a, nil)
		if err != nil || sw.Complete != 0 || sw.Incomplete != 1 {
			t.Fatalf("key %#x: leecher announce gives %+v, %v; want one leecher", key, sw, err)
		}
		// Another address, no key or another key: refused. (Hashes equal
		// in their low 31 bits are one key to the store.)
		for _, other := range []uint32{0, key ^ 0x4000_0000, key ^ 2} {
			b := PeerAnnounce{InfoHash: h, PeerID: pid(1), Addr: netip.AddrPortFrom(loop6, 1), Key: other, Seeder: true}
			if _, _, err := s.Announce(now, &b, nil); err != ErrPeerIDInUse {
				t.Fatalf("key %#x: announce from another address with key %#x: %v; want ErrPeerIDInUse", key, other, err)
			}
		}
		// The key from another address: the peer moves and becomes a seeder.
		b := PeerAnnounce{InfoHash: h, PeerID: pid(1), Addr: netip.AddrPortFrom(loop6, 1), Key: key, Seeder: true}
		if _, sw, err := s.Announce(now, &b, nil); err != nil || sw.Complete != 1 || sw.Incomplete != 0 {
			t.Fatalf("key %#x: announce with the key gives %+v, %v; want one seeder", key, sw, err)
		}
	}
}
