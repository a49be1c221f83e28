package daemon

import (
	"testing"
	"time"
)

// TestStaggerSpacesAnnounces asks for many turns at once: each comes
// spacing after the one before, and a turn asked for after a quiet spell
// is at once.
func TestStaggerSpacesAnnounces(t *testing.T) {
	g := &stagger{spacing: 100 * time.Millisecond}
	now := time.Now()
	for i := range 1000 {
		if got, want := g.wait(now), time.Duration(i)*100*time.Millisecond; got != want {
			t.Fatalf("turn %d waits %v, want %v", i, got, want)
		}
	}
	if got := g.wait(now.Add(time.Hour)); got != 0 {
		t.Fatalf("turn after a quiet hour waits %v", got)
	}
}
