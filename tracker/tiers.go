package tracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
)

// Tiers is a BEP 12 announce-list: tiers are tried in order, trackers
// within a tier in an order shuffled once, and a tracker that answers moves
// to the front of its tier so the next announce starts there. It is safe for
// concurrent use.
type Tiers struct {
	mu    sync.Mutex
	tiers [][]string
}

// NewTiers builds tiers from a torrent's announce-list, falling back to the
// single announce URL when the list names none (BEP 12 says clients ignore
// "announce" when "announce-list" is present). Empty URLs, repeats and
// empty tiers are dropped, as piece.AnnounceTiers merges them; the order
// within each tier is then shuffled once.
func NewTiers(announceList [][]string, announce string) *Tiers {
	t := &Tiers{tiers: piece.AnnounceTiers(announceList, announce)}
	for _, ts := range t.tiers {
		rand.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	}
	return t
}

// URLs returns every tracker in the order to try them.
func (t *Tiers) URLs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, tier := range t.tiers {
		out = append(out, tier...)
	}
	return out
}

// Tiers returns a copy of the current tiers.
func (t *Tiers) Tiers() [][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]string, len(t.tiers))
	for i, tier := range t.tiers {
		out[i] = slices.Clone(tier)
	}
	return out
}

// Promote moves url to the front of its tier after it answered.
func (t *Tiers) Promote(url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tier := range t.tiers {
		if i := slices.Index(tier, url); i > 0 {
			copy(tier[1:i+1], tier[:i])
			tier[0] = url
			return
		}
	}
}

// AnnounceTiers announces to the trackers of t in BEP 12 order until one
// answers, promotes that one, and returns its answer and URL. When none
// answers, the error joins every tracker's error, each naming its URL.
func (c *Client) AnnounceTiers(ctx context.Context, t *Tiers, req AnnounceRequest) (*AnnounceResponse, string, error) {
	var errs []error
	for _, u := range t.URLs() {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		resp, err := c.Announce(ctx, u, req)
		if err == nil {
			t.Promote(u)
			return resp, u, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, "", errors.New("announce: no trackers")
	}
	return nil, "", fmt.Errorf("announce to %d trackers failed: %w", len(errs), errors.Join(errs...))
}
