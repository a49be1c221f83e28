package swarm

import (
	"context"
	"errors"
	"slices"

	"golang.org/x/time/rate"

	"github.com/shoal-p2p/shoal/piece/picker"
)

// ErrComplete is SetPriorities' refusal to select pieces not had in a
// torrent that has completed: Done cannot be undone, so the caller closes
// the torrent and adds it again with the new selection.
var ErrComplete = errors.New("torrent already complete; add it again to want more")

// SetRateLimits caps this torrent's payload bytes per second, down and up,
// within the client's caps over all torrents; 0 means no cap of its own.
func (t *Torrent) SetRateLimits(down, up int64) {
	t.downLimit.Store(newLimiter(down))
	t.upLimit.Store(newLimiter(up))
}

// waitLimits waits until n bytes fit every non-nil limiter, the
// torrent's before the client's.
func waitLimits(ctx context.Context, n int, lims ...*rate.Limiter) error {
	for _, l := range lims {
		if l == nil {
			continue
		}
		if err := l.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// SetPriorities changes which pieces the running torrent downloads and in
// what order, as AddOptions does at Add: prio is per piece (nil: every
// piece), PiecePriorities maps file priorities to it. Peers hear at once
// whether we are still interested, and requests follow the new order. A
// change that leaves nothing missing completes the download (Done). A
// complete torrent takes no new pieces: ErrComplete, and nothing changes.
func (t *Torrent) SetPriorities(prio []picker.Priority, sequential bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seeding {
		for p := range t.info.NumPieces {
			if (prio == nil || prio[p] != picker.Skip) && !t.picker.Have(p) {
				return ErrComplete
			}
		}
	}
	if err := t.picker.SetPriorities(prio); err != nil {
		return err
	}
	t.picker.SetSequential(sequential)
	t.selective = slices.Contains(prio, picker.Skip)
	if t.picker.Complete() && !t.seeding {
		t.seeding = true
		close(t.done)
		t.log.Info("download complete", "selection", "changed")
	}
	for p := range t.peers {
		p.fill()
	}
	return nil
}
