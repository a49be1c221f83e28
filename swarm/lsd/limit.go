package lsd

import (
	"net/netip"
	"time"
)

// Pace of the datagrams taken in. An honest neighbour announces each of
// its torrents every few minutes, a batch per interface and family, so a
// burst of perSourceBurst and one more every perSourceEvery is plenty;
// a flood from one address is cut down to that. allBurst and allEvery cap
// the datagrams parsed from all sources together, against a flood with
// spoofed, changing source addresses.
const (
	perSourceBurst = 10
	perSourceEvery = 3 * time.Second
	allBurst       = 100
	allEvery       = 10 * time.Millisecond
	// maxSources bounds the sources the limiter remembers.
	maxSources = 256
)

// bucket is a token bucket: tokens refill one per every, up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills the bucket for the time since its last use and takes a
// token if there is one.
func (b *bucket) take(now time.Time, burst int, every time.Duration) bool {
	b.refill(now, burst, every)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, burst int, every time.Duration) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)/float64(every))
		b.last = now
	}
}

// limiter rate-limits datagrams per source address and overall. It is
// not safe for concurrent use: each receiving socket has its own.
type limiter struct {
	sources map[netip.Addr]*bucket
	all     bucket
}

func newLimiter(now time.Time) *limiter {
	return &limiter{sources: make(map[netip.Addr]*bucket), all: bucket{tokens: allBurst, last: now}}
}

// allow reports whether a datagram from src may be read now.
func (l *limiter) allow(src netip.Addr, now time.Time) bool {
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= maxSources {
			l.forgetIdle(now)
			if len(l.sources) >= maxSources {
				// Too many talkers at once: a newcomer waits until some
				// have gone quiet, so memory stays bounded.
				return false
			}
		}
		b = &bucket{tokens: perSourceBurst, last: now}
		l.sources[src] = b
	}
	if !b.take(now, perSourceBurst, perSourceEvery) {
		return false
	}
	return l.all.take(now, allBurst, allEvery)
}

// forgetIdle drops the sources whose bucket has refilled: they have been
// quiet long enough that forgetting them costs nothing.
func (l *limiter) forgetIdle(now time.Time) {
	for a, b := range l.sources {
		b.refill(now, perSourceBurst, perSourceEvery)
		if b.tokens >= perSourceBurst {
			delete(l.sources, a)
		}
	}
}
