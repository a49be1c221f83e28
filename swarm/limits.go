package swarm

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits that keep connections which do nothing from shutting real peers
// out before the handshake.
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
