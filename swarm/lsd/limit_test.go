package lsd

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiterPerSource(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(now)
	flood, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	taken := 0
	for range 1000 {
		if l.allow(flood, now) {
			taken++
		}
	}
	if taken != perSourceBurst {
		t.Fatalf("a flood of 1000 from one source: %d taken, want the burst of %d", taken, perSourceBurst)
	}
	// The flood does not cost another source its turn.
	if !l.allow(other, now) {
		t.Fatal("a second source refused during the first one's flood")
	}
	// The flooder gets one datagram per perSourceEvery after that.
	now = now.Add(perSourceEvery)
	if !l.allow(flood, now) || l.allow(flood, now) {
		t.Fatal("after perSourceEvery the flooder should get exactly one more")
	}
}

// Spoofed floods from ever-new addresses are capped overall, and memory
// stays bounded: sources beyond maxSources are refused until the
// remembered ones go quiet.
func TestLimiterAllSourcesBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(now)
	taken := 0
	for i := range 10000 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if l.allow(src, now) {
			taken++
		}
	}
	if taken != allBurst {
		t.Errorf("10000 sources at one instant: %d taken, want the overall burst of %d", taken, allBurst)
	}
	if len(l.sources) > maxSources {
		t.Errorf("remembers %d sources, bound %d", len(l.sources), maxSources)
	}
	// Once the remembered sources have been quiet long enough, a new one
	// is taken again.
	now = now.Add(perSourceBurst * perSourceEvery)
	if !l.allow(netip.MustParseAddr("192.0.2.200"), now) {
		t.Error("a new source refused after the others went quiet")
	}
}
