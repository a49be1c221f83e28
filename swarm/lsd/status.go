package lsd

import (
	"fmt"
	"io"
	"sync/atomic"
)

// counters count what the service sent and what it took in or dropped,
// by reason, for the status dump.
type counters struct {
	sent, sendFailed, announced atomic.Uint64
	received, peers, own        atomic.Uint64
	outOfScope, rateLimited     atomic.Uint64
	huge, malformed, unknown    atomic.Uint64
	queueFull                   atomic.Uint64
}

// Stats are the service's counters.
type Stats struct {
	// Sent and SendFailed count datagrams multicast and failed to;
	// Announced counts torrents announced, once per round.
	Sent, SendFailed, Announced uint64
	// Received counts every datagram read; Peers those that named a
	// torrent we announce; Own our own, looped back.
	Received, Peers, Own uint64
	// The datagrams dropped: from another interface or not to the group,
	// too many from one source, longer than MaxDatagram, malformed, or for
	// no torrent we announce; QueueFull counts peers dropped because a
	// consumer fell behind.
	OutOfScope, RateLimited, Huge, Malformed, Unknown, QueueFull uint64
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	c := &s.stats
	return Stats{
		Sent: c.sent.Load(), SendFailed: c.sendFailed.Load(), Announced: c.announced.Load(),
		Received: c.received.Load(), Peers: c.peers.Load(), Own: c.own.Load(),
		OutOfScope: c.outOfScope.Load(), RateLimited: c.rateLimited.Load(), Huge: c.huge.Load(),
		Malformed: c.malformed.Load(), Unknown: c.unknown.Load(), QueueFull: c.queueFull.Load(),
	}
}

// WriteStatus writes the service's part of the status dump: where it runs,
// what it announces, and its counters.
func (s *Service) WriteStatus(w io.Writer) {
	s.mu.Lock()
	n := len(s.torrents)
	s.mu.Unlock()
	st := s.Stats()
	fmt.Fprintf(w, "lsd: on %s, port %d, announcing %d info-hashes\n", s.scope, s.cfg.Port, n)
	fmt.Fprintf(w, "  sent %d datagrams (%d failed), %d announces\n", st.Sent, st.SendFailed, st.Announced)
	fmt.Fprintf(w, "  received %d datagrams: %d named our torrents, %d our own\n", st.Received, st.Peers, st.Own)
	fmt.Fprintf(w, "  dropped: out of scope %d, rate-limited %d, huge %d, malformed %d, unknown torrent %d, queue full %d\n",
		st.OutOfScope, st.RateLimited, st.Huge, st.Malformed, st.Unknown, st.QueueFull)
}
