package tracker

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// footprint returns the live heap after a collection plus the bytes of
// store regions mapped outside it (all of each mapping, touched or not, so
// an upper bound of what they add to RSS).
func footprint() int64 {
	// Stores dropped earlier unmap their regions in cleanups that run
	// after a collection, on their own goroutine: wait for that to
	// settle.
	var m runtime.MemStats
	last := int64(-1)
	for range 20 {
		runtime.GC()
		time.Sleep(time.Millisecond)
		runtime.ReadMemStats(&m)
		n := int64(m.HeapAlloc) + regionMapped.Load()
		if n == last {
			break
		}
		last = n
	}
	return last
}

// storeBytesPerPeer fills a MemStore with torrents×perTorrent peers, the
// shape of the load benchmark, and returns its bytes per peer: live heap
// and mapped regions.
func storeBytesPerPeer(torrents, perTorrent int) float64 {
	before := footprint()
	s := NewMemStore(MemStoreConfig{})
	now := time.Unix(1_700_000_000, 0)
	var dst []Peer
	for i := range torrents * perTorrent {
		var a PeerAnnounce
		t := i % torrents
		a.InfoHash[0], a.InfoHash[1], a.InfoHash[2] = byte(t), byte(t>>8), byte(t>>16)
		a.PeerID[0], a.PeerID[1], a.PeerID[2] = byte(i), byte(i>>8), byte(i>>16)
		a.Addr = netipAddrPort(uint16(1024 + i/torrents))
		a.NumWant = 50
		dst, _, _ = s.Announce(now, &a, dst[:0])
	}
	after := footprint()
	runtime.KeepAlive(s)
	return float64(after-before) / float64(torrents*perTorrent)
}

// Issue 16 aims at 64 bytes per stored peer; the packed store reaches it
// for swarms of 10 peers or more (a lone peer still pays for its torrent's
// header and index slot).
func TestMemStoreBytesPerPeerSmallSwarms(t *testing.T) {
	for _, per := range []int{1, 10, 100} {
		b := storeBytesPerPeer(10_000/per*10, per)
		t.Logf("%d peers per torrent: %.0f bytes per peer (heap and mapped)", per, b)
		if per >= 10 && b > 64 {
			t.Errorf("%d peers per torrent: %.0f bytes per peer; want at most 64", per, b)
		}
	}
}

func netipAddrPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(loop4, port) }
