package swarm

import "time"

// Stats is a snapshot of a torrent's progress.
type Stats struct {
	Pieces, PiecesDone int
	BytesTotal         int64 // size of the content
	BytesDone          int64 // verified
	Downloaded         int64 // payload received, wasted included
	Uploaded           int64
	Wasted             int64 // received but discarded: duplicates, bad pieces, unasked-for blocks, blocks dropped on a disk error
	Peers              int
	// Encrypted counts the peers of Peers whose stream is RC4 (MSE);
	// PeersSeen and EncryptedSeen count the connections of the session,
	// closed ones too.
	Encrypted, PeersSeen, EncryptedSeen int
	Banned                              int // peers banned for bad data
	// BadBlocks counts blocks proven bad, when a failed piece came from
	// several peers: through their leaf hashes (v2, hybrid), or by smart
	// ban (v1), against the data that passed once the piece did.
	BadBlocks        int
	DownRate, UpRate float64 // bytes/s
	Seeding          bool
	// SuperSeeding reports BEP 16 super-seeding still under way.
	SuperSeeding bool
	// FirstPiece is when this session verified its first piece; zero
	// until then.
	FirstPiece time.Time
	// KnownAddrs counts peer addresses known to dial, connected ones
	// included, and LastDialError is the last failed dial ("ADDR: why"),
	// so a torrent with no peers can say what it is waiting for.
	KnownAddrs    int
	LastDialError string
}

// Stats returns the torrent's current figures.
func (t *Torrent) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{
		Pieces:        t.info.NumPieces,
		PiecesDone:    t.info.NumPieces - t.picker.Missing(),
		BytesTotal:    t.info.TotalLength,
		BytesDone:     t.verifiedBytes.Load(),
		Downloaded:    t.downloaded.Load(),
		Uploaded:      t.uploaded.Load(),
		Wasted:        t.wasted.Load(),
		Peers:         len(t.peers),
		Encrypted:     t.encryptedPeers,
		PeersSeen:     t.peersSeen,
		EncryptedSeen: t.encryptedSeen,
		Banned:        t.addressBook.NumBans(),
		BadBlocks:     t.provenBlocks,
		FirstPiece:    t.firstPiece,
		Seeding:       t.seeding,
		SuperSeeding:  t.ss != nil,
	}
	s.KnownAddrs, s.LastDialError = t.addressBook.Len(), t.addressBook.LastDialErr()
	s.DownRate, s.UpRate = t.downRate, t.upRate
	return s
}

// sumRates totals the peers' rates for Stats, once a tick, after each peer
// updated its own. Called with t.mu held.
func (t *Torrent) sumRates() {
	t.downRate, t.upRate = 0, 0
	for p := range t.peers {
		t.downRate += p.downRate
		t.upRate += p.upRate
	}
}
