package addrbook

import "strconv"

// Source is where an address came from. An address learned from several
// places carries each of them.
type Source uint8

// The sources of peer addresses. The zero value is for callers that do
// not say (swarm.Torrent.AddPeers).
const (
	SourceUnknown  Source = iota
	SourceFixed           // named by the user (--peer) or the caller
	SourceMagnet          // a magnet link's x.pe
	SourceTracker         // a tracker's announce reply
	SourceDHT             // a DHT get_peers lookup
	SourcePEX             // a peer's ut_pex message (BEP 11)
	SourceIncoming        // the peer connected to us
	SourceLSD             // local service discovery (BEP 14)
	numSources
)

var sourceNames = [numSources]string{"unknown", "fixed", "magnet", "tracker", "dht", "pex", "incoming", "lsd"}

// String names the source as the status dump shows it.
func (s Source) String() string {
	if s < numSources {
		return sourceNames[s]
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// sourceSet holds one bit per Source.
type sourceSet uint8

func (m sourceSet) has(s Source) bool { return m&(1<<s) != 0 }

// dialable reports whether one of the sources names an address the peer
// listens on. An incoming connection's address alone is the port the peer
// dialed from, seldom one it accepts on.
func (m sourceSet) dialable() bool { return m&^(1<<SourceIncoming) != 0 }

// String lists the sources, comma-separated.
func (m sourceSet) String() string {
	out := ""
	for s := range numSources {
		if m.has(s) {
			if out != "" {
				out += ","
			}
			out += s.String()
		}
	}
	return out
}
