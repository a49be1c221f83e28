package swarm

// Which swarm a connection is in. A hybrid torrent (BEP 52) has two
// 20-byte info-hashes, the truncated v2 one and the v1 one, and so two
// swarms that share one set of pieces: the Client finds the Torrent under
// either, and each connection remembers the hash it speaks under, which
// says whether BEP 52 hash messages may pass on it and over which hash
// the allowed-fast set (BEP 6) is computed.
//
// BEP 52's upgrade, as libtorrent does it: a v2-capable peer that knows a
// hybrid torrent by its v1 hash sends that hash with the v2 bit (reserved
// byte 7, 0x10); the side that has the torrent answers with the truncated
// v2 hash, and from then on both treat the connection as a v2 one. A peer
// without the bit is a v1 peer: it gets the same pieces, never a hash
// message.

import (
	"net/netip"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// ident is a connection's place in the torrent's swarms.
type ident struct {
	// ih is the info-hash the handshake settled on, after any upgrade.
	ih [20]byte
	// v2 reports that ih is the truncated v2 hash: the peer speaks BEP 52
	// for this torrent, hash requests and hashes included.
	v2 bool
}

// accept works out the identity of an incoming connection whose handshake
// named ih, one of t's swarm hashes, with reserved bits r: the v2 hash
// makes a v2 connection; the v1 hash of a hybrid with the v2 bit is
// upgraded to one (we answer with the v2 hash); any other v1 handshake is
// a v1 connection. A v1-only torrent ignores the bit: the peer may well
// speak v2 in general, and it asked for a torrent that has only v1.
func (t *Torrent) accept(ih [20]byte, r wire.Reserved) ident {
	if t.speaksV2() && (ih == t.ih20 || r.V2()) {
		return ident{ih: t.ih20, v2: true}
	}
	return ident{ih: ih}
}

// dialHash returns the info-hash to dial addr with and whether to set the
// v2 bit: the truncated v2 hash for a v2 torrent and for a hybrid's peer
// found under that hash; the v1 hash, with the bit that offers the
// upgrade, for a hybrid's other peers (a v1-only client knows only the v1
// hash); the v1 hash alone for a v1 torrent. Called with t.mu held.
func (t *Torrent) dialHash(addr netip.AddrPort) (ih [20]byte, v2bit bool) {
	switch t.info.Format {
	case piece.FormatV2:
		return t.ih20, true
	case piece.FormatV1:
		return t.v1, false
	}
	if !t.speaksV2() {
		return t.v1, false // playing a v1-only client (Config.TestV1Only)
	}
	if t.addressBook.FoundV2(addr) {
		return t.ih20, true
	}
	return t.v1, true
}

// answered checks the info-hash a peer we dialed with sent answered with:
// the same hash, or for a hybrid dialed by its v1 hash the truncated v2
// hash, which is the peer taking up BEP 52's upgrade. It returns the
// connection's identity and whether the answer is acceptable.
func (t *Torrent) answered(sent, got [20]byte) (ident, bool) {
	switch {
	case got == sent:
		return ident{ih: got, v2: t.info.HasV2() && got == t.ih20}, true
	case t.info.Format == piece.FormatHybrid && t.speaksV2() && sent == t.v1 && got == t.ih20:
		return ident{ih: got, v2: true}, true
	}
	return ident{}, false
}
