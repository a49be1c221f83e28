package swarm

import (
	"context"
	"errors"
	"net/netip"
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

// SetMaxPeers caps this torrent's connections at n in place of the
// client's MaxPeers; 0 goes back to the client's. Peers above a lowered
// cap are not dropped, only not replaced.
func (t *Torrent) SetMaxPeers(n int) {
	t.peerLimit.Store(int64(max(n, 0)))
}

// maxPeers is the torrent's connection cap.
func (t *Torrent) maxPeers() int {
	if n := t.peerLimit.Load(); n > 0 {
		return int(n)
	}
	return t.c.cfg.MaxPeers
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

// PeerInfo is one connected peer, as Peers reports it.
type PeerInfo struct {
	Addr     netip.AddrPort
	Client   string  // from the peer id's Azureus-style prefix
	Progress float64 // 0..1: the pieces it announced
	// DownRate and UpRate are payload bytes per second, from it and to it.
	DownRate, UpRate                                     float64
	Encrypted, Incoming                                  bool
	AmChoking, AmInterested, PeerChoking, PeerInterested bool
}

// Peers lists the connected peers, those being evicted left out.
func (t *Torrent) Peers() []PeerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PeerInfo, 0, len(t.peers))
	for p := range t.peers {
		if p.evicted {
			continue
		}
		out = append(out, PeerInfo{
			Addr:           p.addr,
			Client:         clientName(p.id),
			Progress:       float64(t.picker.PeerPieces(p.pid)) / float64(max(t.info.NumPieces, 1)),
			DownRate:       p.downRate,
			UpRate:         p.upRate,
			Encrypted:      p.encrypted,
			Incoming:       !p.outgoing,
			AmChoking:      p.amChoking,
			AmInterested:   p.amInterested,
			PeerChoking:    p.peerChoking,
			PeerInterested: p.peerInterested,
		})
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return a.Addr.Compare(b.Addr) })
	return out
}
