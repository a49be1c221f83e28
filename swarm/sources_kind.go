package swarm

import "github.com/shoal-p2p/shoal/swarm/addrbook"

// PeerSource is where a peer address came from (AddPeersFrom); the
// address book keeps it with the address for the status dump.
type PeerSource = addrbook.Source

// The peer sources, as the address book names them.
const (
	SourceFixed    = addrbook.SourceFixed
	SourceMagnet   = addrbook.SourceMagnet
	SourceTracker  = addrbook.SourceTracker
	SourceDHT      = addrbook.SourceDHT
	SourcePEX      = addrbook.SourcePEX
	SourceIncoming = addrbook.SourceIncoming
	SourceLSD      = addrbook.SourceLSD
)
