package dht

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
)

// Limits on what other nodes can make us store. The library's in-memory
// store keeps one peer per IP (so every loopback peer collapses into one)
// and never forgets, which a long-running public node cannot afford.
const (
	peerTTL         = 45 * time.Minute // three missed 15-minute re-announces
	maxStoredHashes = 20000
	maxPeersPerHash = 500
	maxValues       = 50 // keeps a get_peers reply inside one UDP datagram
)

// peerStore keeps the peers that announced themselves to us, by info-hash.
type peerStore struct {
	mu     sync.Mutex
	hashes map[peer_store.InfoHash]map[netip.AddrPort]time.Time
	now    func() time.Time
}

var _ peer_store.Interface = (*peerStore)(nil)

func newPeerStore() *peerStore {
	return &peerStore{hashes: make(map[peer_store.InfoHash]map[netip.AddrPort]time.Time), now: time.Now}
}

// AddPeer records an announce_peer the library has already checked the
// token of.
func (ps *peerStore) AddPeer(ih peer_store.InfoHash, na krpc.NodeAddr) {
	ap, ok := addrPort(na)
	if !ok {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	peers := ps.hashes[ih]
	if peers == nil {
		if len(ps.hashes) >= maxStoredHashes {
			ps.sweep(now)
			if len(ps.hashes) >= maxStoredHashes {
				return
			}
		}
		peers = make(map[netip.AddrPort]time.Time)
		ps.hashes[ih] = peers
	}
	if _, known := peers[ap]; !known && len(peers) >= maxPeersPerHash {
		expire(peers, now)
		if len(peers) >= maxPeersPerHash {
			return
		}
	}
	peers[ap] = now
}

// GetPeers answers a get_peers query with up to maxValues live peers; map
// order makes the choice vary between queries.
func (ps *peerStore) GetPeers(ih peer_store.InfoHash) []krpc.NodeAddr {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	peers := ps.hashes[ih]
	if peers == nil {
		return nil
	}
	expire(peers, ps.now())
	if len(peers) == 0 {
		delete(ps.hashes, ih)
		return nil
	}
	out := make([]krpc.NodeAddr, 0, min(len(peers), maxValues))
	for ap := range peers {
		if len(out) == maxValues {
			break
		}
		out = append(out, krpc.NodeAddr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())})
	}
	return out
}

func (ps *peerStore) sweep(now time.Time) {
	for ih, peers := range ps.hashes {
		if expire(peers, now); len(peers) == 0 {
			delete(ps.hashes, ih)
		}
	}
}

func expire(peers map[netip.AddrPort]time.Time, now time.Time) {
	for ap, seen := range peers {
		if now.Sub(seen) > peerTTL {
			delete(peers, ap)
		}
	}
}

// addrPort converts a KRPC address, refusing ones no peer can listen on.
func addrPort(na krpc.NodeAddr) (netip.AddrPort, bool) {
	ip, ok := netip.AddrFromSlice(na.IP)
	if !ok || na.Port <= 0 || na.Port > 65535 {
		return netip.AddrPort{}, false
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, uint16(na.Port)), true
}
