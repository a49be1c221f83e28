package swarm

// Refusal counters: how often each kind of connection, peer or message
// was refused, dropped or discarded, for the status dump (status.go). They
// are atomics in a fixed array indexed by Refusal: counting is one atomic
// add at the refusal site, with no lock and no allocation, so it may sit
// on per-message paths.

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Refusal is a reason a connection, a peer or a message was refused,
// dropped or discarded. Incoming connections are counted by the Client
// until their handshake names a torrent, and by that torrent after.
type Refusal uint8

// The reasons, grouped as the status dump lists them (refusalGroups).
const (
	// Connections refused before a torrent took them; the Client counts
	// these.
	RefusedHandshakeTimeout Refusal = iota // no full handshake within the deadline
	RefusedHandshakeBad                    // not a BitTorrent handshake, plaintext or MSE
	RefusedHandshakeClosed                 // closed or reset by the peer during its handshake
	RefusedUnknownTorrent                  // asked for a torrent we do not serve
	RefusedPushedOut                       // closed for newer handshakes: too many pending (maxPendingHandshakes)
	RefusedSilentWhenFull                  // sent nothing after its handshake to a full torrent
	RefusedEncryptionPolicy                // plaintext while encryption is required
	// Connections refused by a torrent (addConn and dial).
	RefusedClosing       // the torrent was closing
	RefusedOurselves     // we had connected to ourselves
	RefusedBanned        // the peer is banned
	RefusedDuplicate     // the peer was connected already
	RefusedPerHost       // its host has maxPeersPerIP connections
	RefusedPeerLimit     // MaxPeers reached and no peer to evict
	RefusedWrongInfoHash // a peer we dialed answered for another torrent
	RefusedOther         // a reason this list does not name yet
	// Peers closed to make room (limits.go).
	EvictedForNewcomer // replaced by a newcomer in a full torrent
	EvictedSilent      // silent since its handshake while the torrent was full
	EvictedIdle        // of no use while the torrent was full
	// Peers dropped for what they did or did not do.
	DroppedBanned       // proven to send bad data (blame.go)
	DroppedIdle         // nothing received for idleTimeout
	DroppedTimeout      // a read or write timed out
	DroppedSendOverflow // did not read what we sent: send queue overflow
	// Protocol violations; each drops the peer.
	ViolationMalformed        // bad length or oversized message
	ViolationHave             // have or allowed fast for a piece out of range
	ViolationBitfield         // malformed bitfield
	ViolationLateBitfield     // have-none after the first message (a later bitfield or have-all adds pieces)
	ViolationNoFast           // fast-extension message without BEP 6
	ViolationExtension        // malformed extension message
	ViolationBlock            // block outside the torrent or not block-aligned
	ViolationUnrequestedBlock // block nobody asked for (BEP 52)
	ViolationRequest          // request outside the torrent
	ViolationRequestNotHave   // plain peer asked for a piece we do not have
	ViolationRequestFlood     // more requests queued than DefaultRequestQueue
	ViolationUnaskedHashes    // hashes nobody asked for
	ViolationForgedHashes     // leaf hashes that do not hash to the piece
	// Messages refused or ignored; the peer stays.
	RejectedNotHave         // request for a piece we do not have or have not revealed
	RejectedChoked          // request while we choke the peer (rejected, or dropped for a plain peer)
	RejectedServeFault      // request we could not serve: our data failed (serve.go)
	RejectedHashRequest     // hash request we could not answer
	RejectedMetadata        // ut_metadata request for a piece out of range
	DiscardedDuplicateBlock // block we already had (endgame, late answers)
	DiscardedStoppedBlock   // block that arrived after a disk error stopped the download
	IgnoredPex              // PEX sooner than BEP 11 allows

	// NumRefusals is the number of Refusal values.
	NumRefusals
)

// refusalNames are the words a status dump uses for each Refusal, and
// refusalGroups where each kind starts, in the order the dump lists them.
var (
	refusalNames = [NumRefusals]string{
		RefusedHandshakeTimeout:   "handshake timeout",
		RefusedHandshakeBad:       "bad handshake",
		RefusedHandshakeClosed:    "closed in handshake",
		RefusedUnknownTorrent:     "unknown torrent",
		RefusedPushedOut:          "pushed out by newer handshakes",
		RefusedSilentWhenFull:     "silent to a full torrent",
		RefusedEncryptionPolicy:   "against the encryption policy",
		RefusedClosing:            "torrent closing",
		RefusedOurselves:          "ourselves",
		RefusedBanned:             "banned",
		RefusedDuplicate:          "already connected",
		RefusedPerHost:            "per-host limit",
		RefusedPeerLimit:          "peer limit",
		RefusedWrongInfoHash:      "wrong info-hash",
		RefusedOther:              "other",
		EvictedForNewcomer:        "for a newcomer",
		EvictedSilent:             "silent",
		EvictedIdle:               "idle",
		DroppedBanned:             "banned for bad data",
		DroppedIdle:               "idle",
		DroppedTimeout:            "timed out",
		DroppedSendOverflow:       "send queue overflow",
		ViolationMalformed:        "malformed message",
		ViolationHave:             "bad have",
		ViolationBitfield:         "bad bitfield",
		ViolationLateBitfield:     "late have-none",
		ViolationNoFast:           "fast message without BEP 6",
		ViolationExtension:        "bad extension message",
		ViolationBlock:            "bad block",
		ViolationUnrequestedBlock: "unrequested block",
		ViolationRequest:          "bad request",
		ViolationRequestNotHave:   "request for a piece not had",
		ViolationRequestFlood:     "request queue overflow",
		ViolationUnaskedHashes:    "unasked hashes",
		ViolationForgedHashes:     "forged hashes",
		RejectedNotHave:           "request rejected (piece not had)",
		RejectedChoked:            "request while choked",
		RejectedServeFault:        "request refused (our data failed)",
		RejectedHashRequest:       "hash request rejected",
		RejectedMetadata:          "metadata request rejected",
		DiscardedDuplicateBlock:   "duplicate block",
		DiscardedStoppedBlock:     "block after disk error",
		IgnoredPex:                "PEX too soon",
	}
	refusalGroups = []struct {
		title string
		first Refusal
	}{
		{"refused connections", RefusedHandshakeTimeout},
		{"evicted peers", EvictedForNewcomer},
		{"dropped peers", DroppedBanned},
		{"protocol violations", ViolationMalformed},
		{"refused messages", RejectedNotHave},
	}
)

// String names the reason as the status dump does.
func (r Refusal) String() string {
	if r < NumRefusals {
		return refusalNames[r]
	}
	return fmt.Sprintf("refusal %d", r)
}

// RefusalCounts holds a count for each Refusal.
type RefusalCounts [NumRefusals]int64

// refusals counts refusals as they happen; safe for concurrent use.
type refusals struct{ n [NumRefusals]atomic.Int64 }

func (r *refusals) add(k Refusal) { r.n[k].Add(1) }

func (r *refusals) counts() (c RefusalCounts) {
	for i := range r.n {
		c[i] = r.n[i].Load()
	}
	return c
}

// dropped counts why a peer's connection ended, if it was for a reason
// worth counting: a violation, a ban, a timeout. A peer that left or that
// we closed in an orderly way (nil, EOF) is not counted.
func (r *refusals) dropped(err error) {
	if k, ok := dropReason(err); ok {
		r.add(k)
	}
}

// Causes of peer closes that the counters tell apart; their texts are
// what the log has always said.
var (
	errIdle         = errors.New("idle")
	errSendOverflow = errors.New("peer does not read: send queue overflow")
	errBanned       = errors.New("banned")
)

// violation is a protocol violation (protocolError) and its kind.
type violation struct {
	kind Refusal
	err  error
}

func (v *violation) Error() string { return v.err.Error() }
func (v *violation) Unwrap() error { return v.err }

// dropReason classifies the error that ended a peer's connection.
func dropReason(err error) (Refusal, bool) {
	var v *violation
	var ne net.Error
	switch {
	case err == nil:
		return 0, false
	case errors.As(err, &v):
		return v.kind, true
	case errors.Is(err, errBanned):
		return DroppedBanned, true
	case errors.Is(err, errIdle):
		return DroppedIdle, true
	case errors.Is(err, errSendOverflow):
		return DroppedSendOverflow, true
	case errors.Is(err, wire.ErrMessageTooLong), errors.Is(err, wire.ErrBadLength):
		return ViolationMalformed, true
	case errors.As(err, &ne) && ne.Timeout():
		return DroppedTimeout, true
	}
	return 0, false
}

// connRefusal names the reason addConn gives for refusing a connection.
// TestConnRefusalsNamed keeps it in step with addConn's strings.
func connRefusal(reason string) Refusal {
	switch reason {
	case "torrent closing":
		return RefusedClosing
	case "connected to ourselves":
		return RefusedOurselves
	case "banned":
		return RefusedBanned
	case "already connected":
		return RefusedDuplicate
	case "too many connections from one host":
		return RefusedPerHost
	case "peer limit":
		return RefusedPeerLimit
	}
	return RefusedOther
}

// handshakeRefusal classifies an incoming handshake that failed with err.
func (c *Client) handshakeRefusal(pc *pendingConn, err error) Refusal {
	var ne net.Error
	switch {
	case c.pending.pushedOut(pc):
		return RefusedPushedOut
	case errors.Is(err, wire.ErrBadHandshake):
		return RefusedHandshakeBad
	case errors.As(err, &ne) && ne.Timeout():
		return RefusedHandshakeTimeout
	case errors.Is(err, errPlaintextRefused):
		return RefusedEncryptionPolicy
	case errors.Is(err, ErrUnknownSKey):
		return RefusedUnknownTorrent
	}
	if me := (*mseError)(nil); errors.As(err, &me) {
		// Garbage, padding past its limit: what a bad plaintext
		// handshake is to MSE.
		return RefusedHandshakeBad
	}
	return RefusedHandshakeClosed
}

// silentRefusal classifies a newcomer to a full torrent that sent nothing
// after its handshake: silent, unless newer handshakes pushed it out.
func (c *Client) silentRefusal(pc *pendingConn) Refusal {
	if c.pending.pushedOut(pc) {
		return RefusedPushedOut
	}
	return RefusedSilentWhenFull
}

// pushedOut reports whether pc was closed to make room for newer
// handshakes. Meaningful only before pc is done.
func (s *pendingSet) pushedOut(pc *pendingConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pc.elem == nil
}

// Refused returns the client's counts of incoming connections refused
// before a torrent took them; each Torrent's Refused has the rest.
func (c *Client) Refused() RefusalCounts { return c.refused.counts() }

// Refused returns the torrent's counts of peers, connections and messages
// refused, dropped or discarded, by reason. It is apart from Stats, which
// progress displays poll many times a second and need none of this for.
func (t *Torrent) Refused() RefusalCounts { return t.refused.counts() }
