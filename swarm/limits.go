package swarm

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits that keep connections which do nothing from shutting real peers
// out: before the handshake, of the client; after it, of a torrent.
const (
	// headerTimeout bounds the wait for an incoming handshake's first 48
	// bytes: the connecting side sends its handshake at once, so a live
	// peer's arrives within a round trip or two.
	headerTimeout = 3 * time.Second
	// maxPendingHandshakes bounds connections whose handshake is not yet
	// done. When it is reached the oldest one is closed for the newcomer:
	// a real handshake takes a round trip, so a flood would have to open
	// this many connections within that time to push one out, whereas
	// turning newcomers away would let a flood that merely holds its
	// connections open lock every real peer out.
	maxPendingHandshakes = 256
	// maxPendingPerIP bounds one host's share of those: a host at its
	// share pushes out its own oldest, never anyone else's.
	maxPendingPerIP = 8
	// maxPeersPerIP caps one host's connections to one torrent: two or
	// three clients behind one NAT are common, a dozen is someone taking
	// the slots.
	maxPeersPerIP = 4
	// idleGrace is how long a connected peer has to show it is of use: to
	// say what it has, want something or ask for something. A live client
	// does one of these within a round trip of the handshake; a peer
	// fetching metadata first still asks for it. It is well above a slow
	// link's round trip, yet short enough that a torrent full of peers
	// that do nothing frees its slots quickly.
	idleGrace = 15 * time.Second
	// idleDropWhenFull is how long a peer that neither wants nor has
	// anything for us may hold a slot while the torrent is full and others
	// could use it.
	idleDropWhenFull = 4 * idleGrace
)

// ipKey names the host a connection comes from for per-IP limits, and
// reports whether the limits apply. IPv6 hosts are keyed by their /64,
// which one subscriber gets whole. The machine itself (127.0.0.1, ::1)
// is exempt: every local peer, as in tests and benchmarks, connects from
// there. Other loopback addresses only ever appear when a process binds
// them on purpose, and count as hosts of their own.
func ipKey(a netip.Addr) (key netip.Addr, limited bool) {
	a = a.Unmap()
	if a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback() || !a.IsValid() {
		return a, false
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr(), true
	}
	return a, true
}

// primedConn is a connection whose first bytes after the handshake were
// read to see that the peer speaks; Read returns them first.
type primedConn struct {
	net.Conn
	pre []byte
}

func (c *primedConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// full reports whether the torrent has no free peer slot.
func (t *Torrent) full() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.liveCount() >= t.maxPeers()
}

// pendingSet holds the incoming connections whose handshake is not done,
// oldest first, to close the oldest when a newcomer needs room.
type pendingSet struct {
	max, maxPerIP int

	mu    sync.Mutex
	order list.List // of *pendingConn
	perIP map[netip.Addr]int
}

// pendingConn is one connection in a pendingSet.
type pendingConn struct {
	conn    net.Conn
	ip      netip.Addr
	limited bool
	elem    *list.Element
}

func newPendingSet(max, maxPerIP int) *pendingSet {
	return &pendingSet{max: max, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{}}
}

// add admits conn from ip, closing the oldest connection of the same host
// if that host is at its share, or else the oldest of all if the set is
// full.
func (s *pendingSet) add(conn net.Conn, ip netip.Addr) *pendingConn {
	key, limited := ipKey(ip)
	pc := &pendingConn{conn: conn, ip: key, limited: limited}
	var victim *pendingConn
	s.mu.Lock()
	if limited && s.perIP[key] >= s.maxPerIP {
		for e := s.order.Front(); e != nil; e = e.Next() {
			if q := e.Value.(*pendingConn); q.limited && q.ip == key {
				victim = q
				break
			}
		}
	}
	if victim == nil && s.order.Len() >= s.max {
		victim = s.order.Front().Value.(*pendingConn)
	}
	if victim != nil {
		s.removeLocked(victim)
	}
	pc.elem = s.order.PushBack(pc)
	if limited {
		s.perIP[key]++
	}
	s.mu.Unlock()
	if victim != nil {
		// Its handshake goroutine sees the read fail and returns.
		victim.conn.Close()
	}
	return pc
}

// done takes pc out of the set, its handshake finished or failed. It is
// a no-op if pc was already pushed out.
func (s *pendingSet) done(pc *pendingConn) {
	s.mu.Lock()
	s.removeLocked(pc)
	s.mu.Unlock()
}

func (s *pendingSet) removeLocked(pc *pendingConn) {
	if pc.elem == nil {
		return
	}
	s.order.Remove(pc.elem)
	pc.elem = nil
	if pc.limited {
		if s.perIP[pc.ip]--; s.perIP[pc.ip] <= 0 {
			delete(s.perIP, pc.ip)
		}
	}
}

// len reports how many connections are pending.
func (s *pendingSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// Eviction ranks, most evictable first.
const (
	keepPeer    = iota
	snubbedPeer // has what we want, keeps us choked, wants nothing of ours
	idlePeer    // neither side wants anything, nothing useful for idleGrace
	silentPeer  // has sent nothing but keep-alives since its handshake
)

// evictRank says how readily p gives up its slot to a newcomer, and since
// when it has been that way (older goes first). Peers that want our data
// or have data we want are kept: a seeder's interested peers waiting for
// an upload slot are its customers, not idlers. Called with t.mu held.
func (p *peer) evictRank(now time.Time) (int, int64) {
	switch {
	case p.evicted:
		return keepPeer, 0
	case !p.spoke:
		// A live client sends its bitfield or extension handshake at
		// once, and only a newcomer that has spoken may take a slot from
		// another (handleIncoming), so there is no grace here.
		return silentPeer, p.joined.UnixNano()
	case !p.peerInterested && !p.amInterested && now.UnixNano()-p.lastUseful > int64(idleGrace):
		return idlePeer, p.lastUseful
	case p.snubbedUs && !p.unchokedUs && !p.peerInterested:
		return snubbedPeer, p.joined.UnixNano()
	}
	return keepPeer, 0
}

// evictionVictim picks the peer a newcomer may replace in a full torrent:
// the highest rank, the longest so. nil means every peer is worth its
// slot. One pass over the peers. Called with t.mu held.
func (t *Torrent) evictionVictim(now time.Time) *peer {
	var victim *peer
	bestRank, bestSince := keepPeer, int64(0)
	for p := range t.peers {
		r, since := p.evictRank(now)
		if r > bestRank || r == bestRank && r != keepPeer && since < bestSince {
			victim, bestRank, bestSince = p, r, since
		}
	}
	return victim
}

// evict closes p to make room. It stays in t.peers until its reader
// unregisters it, but no longer counts against the limit. Logged at debug
// level only: under a flood there is one eviction per connection.
// Called with t.mu held.
func (t *Torrent) evict(p *peer, why string) {
	t.log.Debug("evicting peer", "peer", p.addr, "client", clientName(p.id), "reason", why)
	p.evicted = true
	t.evicting++
	p.close(nil)
}

// liveCount is the number of peers that count against MaxPeers. Called
// with t.mu held.
func (t *Torrent) liveCount() int { return len(t.peers) - t.evicting }

// dropUseless frees slots of a full torrent from peers that hold them
// for nothing, so that dials can proceed even when no newcomer arrives:
// those silent since the handshake for idleGrace, and those neither side
// has wanted anything from for idleDropWhenFull. Called with t.mu held,
// once a tick.
func (t *Torrent) dropUseless(now time.Time) {
	if t.liveCount() < t.maxPeers() {
		return
	}
	for p := range t.peers {
		switch r, since := p.evictRank(now); {
		case r == silentPeer && now.UnixNano()-since > int64(idleGrace):
			t.refused.add(EvictedSilent)
			t.evict(p, "silent since the handshake while the torrent is full")
		case r == idlePeer && now.UnixNano()-since > int64(idleDropWhenFull):
			t.refused.add(EvictedIdle)
			t.evict(p, "of no use while the torrent is full")
		}
	}
}
