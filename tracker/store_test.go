package tracker

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func storeAnnounce(t *testing.T, s Store, now time.Time, h InfoHash, n int, ev Event) ([]Peer, Swarm) {
	t.Helper()
	a := PeerAnnounce{InfoHash: h, PeerID: pid(n), Addr: netip.AddrPortFrom(loop4, uint16(n)), Event: ev, NumWant: 1000}
	ps, sw, err := s.Announce(now, &a, nil)
	if err != nil {
		t.Fatalf("announce peer %d: %v", n, err)
	}
	return ps, sw
}

func TestMemStorePerTorrentCapEvictsOldest(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1, MaxPeersPerTorrent: 3})
	now := time.Unix(1_700_000_000, 0)
	h := ih(30)
	for i := 1; i <= 3; i++ {
		storeAnnounce(t, s, now.Add(time.Duration(i)*time.Second), h, i, EventNone)
	}
	// Peer 1 re-announces, so peer 2 is now the oldest.
	storeAnnounce(t, s, now.Add(4*time.Second), h, 1, EventNone)
	ps, sw := storeAnnounce(t, s, now.Add(5*time.Second), h, 4, EventNone)
	if sw.Incomplete != 3 {
		t.Fatalf("swarm size %d; want cap 3", sw.Incomplete)
	}
	if got := ports(ps); got[2] || !got[1] || !got[3] {
		t.Fatalf("peers %v; want peer 2 (oldest) evicted", ps)
	}
	if st := s.Stats(); st.EvictedPeers != 1 || st.Peers != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMemStoreTorrentCapEvictsLeastRecent(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1, MaxTorrents: 2})
	now := time.Unix(1_700_000_000, 0)
	storeAnnounce(t, s, now, ih(31), 1, EventNone)
	storeAnnounce(t, s, now, ih(32), 2, EventNone)
	storeAnnounce(t, s, now, ih(31), 3, EventNone) // 31 is fresher than 32
	storeAnnounce(t, s, now, ih(33), 4, EventNone)
	if sw := s.Scrape(now, ih(32)); sw != (Swarm{}) {
		t.Fatalf("least recently announced torrent kept: %+v", sw)
	}
	if sw := s.Scrape(now, ih(31)); sw.Incomplete != 2 {
		t.Fatalf("fresher torrent lost: %+v", sw)
	}
	if st := s.Stats(); st.Torrents != 2 || st.EvictedTorrents != 1 || st.Peers != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMemStoreTotalPeerCap(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1, MaxPeers: 4})
	now := time.Unix(1_700_000_000, 0)
	storeAnnounce(t, s, now, ih(34), 1, EventNone)
	storeAnnounce(t, s, now, ih(34), 2, EventNone)
	storeAnnounce(t, s, now, ih(35), 3, EventNone)
	storeAnnounce(t, s, now, ih(35), 4, EventNone)
	storeAnnounce(t, s, now, ih(36), 5, EventNone)
	if st := s.Stats(); st.Peers != 4 || st.EvictedPeers != 1 {
		t.Fatalf("stats %+v; want 4 peers, 1 evicted", st)
	}
	if sw := s.Scrape(now, ih(34)); sw.Incomplete != 1 {
		t.Fatalf("oldest torrent should lose its oldest peer: %+v", sw)
	}
	// Sharded caps: the total bound holds across shards.
	sh := NewMemStore(MemStoreConfig{Shards: 4, MaxPeers: 8, MaxTorrents: 4})
	for i := range 100 {
		storeAnnounce(t, sh, now, ih(byte(i)), i, EventNone)
	}
	if st := sh.Stats(); st.Peers > 8 || st.Torrents > 4 {
		t.Fatalf("sharded caps exceeded: %+v", st)
	}
}

func TestMemStoreRemovalKeepsIndexConsistent(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1})
	now := time.Unix(1_700_000_000, 0)
	h := ih(37)
	for i := 1; i <= 200; i++ {
		storeAnnounce(t, s, now, h, i, EventNone)
	}
	for i := 1; i <= 200; i += 2 {
		storeAnnounce(t, s, now, h, i, EventStopped)
	}
	ps, sw := storeAnnounce(t, s, now, h, 1000, EventNone)
	if sw.Incomplete != 101 || len(ps) != 100 {
		t.Fatalf("swarm %+v, %d peers; want 101 and 100", sw, len(ps))
	}
	for _, p := range ps {
		if p.Addr.Port()%2 != 0 || p.ID != (PeerID{}) {
			t.Fatalf("stale or mismatched peer %v", p)
		}
	}
	// Every record is found through the index at its own slot, and the
	// index holds nothing else.
	checkPeerList(t, s.shards[0].v4(s.shards[0].lookup(h)))
}

// TestMemStoreBytesPerPeer holds the store to its documented budget of
// 64 bytes per stored peer (live heap and mapped regions) in swarms of
// 10,000.
func TestMemStoreBytesPerPeer(t *testing.T) {
	const n = 100_000
	now := time.Unix(1_700_000_000, 0)
	before := footprint()
	s := NewMemStore(MemStoreConfig{MaxPeers: 64 * n, MaxPeersPerTorrent: n})
	var a PeerAnnounce
	for i := range n {
		a = PeerAnnounce{InfoHash: ih(byte(i % 10)), Addr: netip.AddrPortFrom(loop4, uint16(i))}
		a.PeerID[0], a.PeerID[1], a.PeerID[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, _, err := s.Announce(now, &a, nil); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(footprint()-before) / n
	t.Logf("%.0f bytes per peer", per)
	if st := s.Stats(); st.Peers != n {
		t.Fatalf("stored %d peers; want %d", st.Peers, n)
	}
	if per > 64 {
		t.Fatalf("%.0f bytes per peer; budget is 64", per)
	}
	runtime.KeepAlive(s)
}

// checkPeerList fails unless l's index, when present, maps exactly its
// records to their slots.
func checkPeerList[A addrBytes](t *testing.T, l listView[A]) {
	t.Helper()
	ps := l.peers()
	if l.l.n > l.l.size {
		t.Fatalf("%d peers in a segment of %d", l.l.n, l.l.size)
	}
	idx := l.index()
	if idx == nil {
		if len(ps) >= indexMin {
			t.Fatalf("%d peers and no index", len(ps))
		}
		return
	}
	n := 0
	for _, v := range idx {
		if v != 0 {
			n++
		}
	}
	if n != len(ps) {
		t.Fatalf("index holds %d slots for %d peers", n, len(ps))
	}
	for i := range ps {
		if got := l.find(ps[i].id); got != int32(i) {
			t.Fatalf("peer at slot %d found at %d", i, got)
		}
	}
}

// TestMemStorePeerCapDropsEmptyTorrentBeforeAnnounced covers the peer cap
// dropping an empty torrent while a new peer joins the torrent in the
// slab's last slot: that header moves into the dropped one's slot, and the
// new peer must land in it, not in the vacated slot.
func TestMemStorePeerCapDropsEmptyTorrentBeforeAnnounced(t *testing.T) {
	s := NewMemStore(MemStoreConfig{Shards: 1, MaxPeers: 2})
	now := time.Unix(1_700_000_000, 0)
	storeAnnounce(t, s, now, ih(37), 1, EventNone)
	storeAnnounce(t, s, now, ih(37), 1, EventStopped) // 37: empty, oldest
	storeAnnounce(t, s, now, ih(38), 2, EventNone)
	storeAnnounce(t, s, now, ih(39), 3, EventNone) // 39: the last slot
	if h := ih(39); s.shards[0].swarms.find(&h) != 2 {
		t.Fatal("torrent 39 is not in the last of 3 slots, which the test needs")
	}
	ps, sw := storeAnnounce(t, s, now, ih(39), 4, EventNone)
	if sw.Incomplete != 2 || len(ps) != 1 || ps[0].Addr.Port() != 3 {
		t.Fatalf("torrent 39 after a second peer: %+v, peers %v; want 2 peers and peer 3 returned", sw, ps)
	}
	if sw := s.Scrape(now, ih(39)); sw.Incomplete != 2 {
		t.Fatalf("torrent 39 scrapes %+v; want 2 peers", sw)
	}
	if sw := s.Scrape(now, ih(38)); sw.Incomplete != 0 {
		t.Fatalf("torrent 38 kept its peer past the cap: %+v", sw)
	}
	if st := s.Stats(); st.Torrents != 2 || st.Peers != 2 || st.EvictedTorrents != 1 || st.EvictedPeers != 1 {
		t.Fatalf("stats %+v; want 2 torrents, 2 peers, 1 torrent and 1 peer evicted", st)
	}
}
