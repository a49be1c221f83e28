package swarm

// The address book of a torrent: the peers we know of, which to dial
// next, back-off for those that failed, and bans.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// candidate is an address we may dial.
type candidate struct {
	connected bool
	dialing   bool
	failures  int
	next      time.Time // earliest next dial
}

// AddPeers offers addresses to connect to; known and banned ones are
// skipped, and at most MaxPeers connections are kept.
func (t *Torrent) AddPeers(addrs ...netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addPeersLocked(addrs)
}

// addPeersLocked is AddPeers with t.mu held.
func (t *Torrent) addPeersLocked(addrs []netip.AddrPort) {
	for _, a := range addrs {
		if !a.IsValid() || a.Port() == 0 {
			continue
		}
		if len(t.known) >= maxKnownPeers && !t.evictKnown() {
			continue
		}
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if _, ok := t.known[a]; !ok {
			t.known[a] = &candidate{}
		}
	}
	t.dialMore()
}

// evictKnown drops one address that is neither connected nor being
// dialed, preferring one that keeps failing, so the list never fills up
// for good with junk (from PEX, say) and shuts out better sources.
// Called with t.mu held.
func (t *Torrent) evictKnown() bool {
	var victim netip.AddrPort
	worst := -1
	for a, cand := range t.known {
		if cand.connected || cand.dialing {
			continue
		}
		if cand.failures > worst {
			victim, worst = a, cand.failures
			if worst > 0 {
				break // map order is random: any failing one will do
			}
		}
	}
	if worst < 0 {
		return false
	}
	delete(t.known, victim)
	return true
}

// dialMore starts dials while there is room. Called with t.mu held.
func (t *Torrent) dialMore() {
	if t.closing || t.ctx.Err() != nil {
		return
	}
	now := time.Now()
	dialing := 0
	for _, cand := range t.known {
		if cand.dialing {
			dialing++
		}
	}
	for addr, cand := range t.known {
		if t.liveCount()+dialing >= t.c.cfg.MaxPeers || dialing >= maxConcurrentDials {
			return
		}
		if cand.connected || cand.dialing || now.Before(cand.next) || t.banned[addr.String()] || t.banned[addr.Addr().String()] {
			continue
		}
		if t.seeding && cand.failures > 0 {
			continue // a seeder waits for leechers to come to it
		}
		cand.dialing = true
		dialing++
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			err := t.c.dial(t.ctx, t, addr)
			t.mu.Lock()
			defer t.mu.Unlock()
			cand.dialing = false
			if err != nil {
				cand.failures++
				cand.next = time.Now().Add(min(maxRedialBackoff, firstRedial<<min(cand.failures-1, 9)))
				t.lastDialErr = fmt.Sprintf("%s: %v", addr, dialCause(err))
				t.log.Debug("dial", "peer", addr, "err", err)
			}
		}()
	}
}

// dialCause strips "dial tcp ADDR:" from a dial error, as the caller names
// the address already.
func dialCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Err != nil {
		return op.Err
	}
	return err
}

// banKeys names what a ban applies to. Peers on loopback share one IP (on
// one machine, in tests, every peer does), so there the ban holds the peer
// id and address instead of the IP.
func banKeys(addr netip.AddrPort, id [20]byte) []string {
	if addr.Addr().IsLoopback() {
		return []string{fmt.Sprintf("id:%x", id), addr.String()}
	}
	return []string{addr.Addr().String()}
}
