package tracker

import (
	"net/netip"
	"sync"
	"time"
)

// ipLimiter is a per-address token bucket. IPv6 addresses are bucketed by
// their /64, because one host usually owns a whole /64 and could otherwise
// rotate addresses to escape its budget. The number of tracked addresses is
// capped; a full shard forgets an arbitrary entry, which at worst hands one
// address a fresh budget.
type ipLimiter struct {
	rate     float64 // tokens per second
	burst    float64
	maxAddrs int // per shard
	shards   [16]limShard
}

type limShard struct {
	mu sync.Mutex
	m  map[netip.Addr]bucket
}

type bucket struct {
	tokens float64
	last   int64 // UnixNano of the last refill
}

func newIPLimiter(rate float64, burst, maxAddrs int) *ipLimiter {
	l := &ipLimiter{rate: rate, burst: float64(burst), maxAddrs: max(1, maxAddrs/16)}
	for i := range l.shards {
		l.shards[i].m = make(map[netip.Addr]bucket)
	}
	return l
}

// allow spends one token of ip's budget, reporting false when it is spent.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) bool {
	if ip.Is6() && !ip.Is4In6() {
		ip = netip.PrefixFrom(ip.WithZone(""), 64).Masked().Addr()
	}
	b16 := ip.As16()
	sh := &l.shards[(b16[15]^b16[7])&15]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.m[ip]
	if !ok {
		if len(sh.m) >= l.maxAddrs {
			for k := range sh.m {
				delete(sh.m, k)
				break
			}
		}
		b = bucket{tokens: l.burst, last: t}
	} else if t > b.last {
		b.tokens = min(l.burst, b.tokens+float64(t-b.last)*l.rate/1e9)
		b.last = t
	}
	if b.tokens < 1 {
		sh.m[ip] = b
		return false
	}
	b.tokens--
	sh.m[ip] = b
	return true
}
