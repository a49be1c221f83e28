package tracker

import (
	"encoding/hex"
	"fmt"
	"net/netip"
)

// InfoHash is the 20-byte info-hash a client announces: the SHA-1 info-hash
// of a v1 torrent, or the SHA-256 v2 info-hash truncated to 20 bytes (BEP 52).
type InfoHash [20]byte

// String returns the hash in lower-case hex, the form operators grep logs for.
func (h InfoHash) String() string { return hex.EncodeToString(h[:]) }

// PeerID is the 20-byte peer_id a client picks for itself.
type PeerID [20]byte

// Event is the announce event of BEP 3. The zero value is a regular
// (periodic) announce.
type Event uint8

// Announce events. EventNone is the periodic re-announce that carries no
// event parameter.
const (
	EventNone Event = iota
	EventStarted
	EventStopped
	EventCompleted
)

// String returns the wire spelling of the event ("" for EventNone).
func (e Event) String() string {
	switch e {
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	case EventCompleted:
		return "completed"
	case EventNone:
		return ""
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Peer is one swarm member as a tracker reports it. ID is zero when the
// tracker did not send peer ids (compact or no_peer_id responses).
type Peer struct {
	ID   PeerID
	Addr netip.AddrPort
}

// Swarm holds the counts a tracker reports for a torrent in announce and
// scrape answers.
type Swarm struct {
	// Complete is the number of seeders (peers with left=0).
	Complete int
	// Incomplete is the number of leechers.
	Incomplete int
	// Downloaded counts completed events seen since the torrent was first
	// tracked (BEP 48 "downloaded").
	Downloaded int
}
