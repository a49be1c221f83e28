package swarm

// Allowed-fast pieces (BEP 6), both ways: pieces a peer that chokes us
// lets us request (the picker asks for them; see PickFor), and pieces we
// let a newcomer we choke request, so that it has something to trade
// before any tit-for-tat slot comes its way.

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// allowedFastSetSize is how many pieces we allow a peer we choke: BEP 6's
// suggested 10, as libtorrent sends.
const allowedFastSetSize = 10

// allowedFastSet appends to dst the canonical allowed-fast set of BEP 6:
// k pieces of a torrent of n pieces, derived from the peer's address and
// the 20-byte info-hash, so a peer gets the same set from us on every
// connection and from every address of its /24. An IPv6 address counts by
// its /48, which BEP 6 leaves open: a site is commonly given that much.
// With k ≥ n it is every piece.
func allowedFastSet(dst []uint32, addr netip.Addr, ih [20]byte, n, k int) []uint32 {
	if n <= 0 || k <= 0 {
		return dst
	}
	if k >= n {
		for pc := range n {
			dst = append(dst, uint32(pc))
		}
		return dst
	}
	var x []byte
	if addr = addr.Unmap(); addr.Is4() {
		a := addr.As4()
		x = append(a[:3:3], 0)
	} else {
		a := addr.As16()
		clear(a[6:])
		x = a[:]
	}
	x = append(x, ih[:]...)
	start := len(dst)
	for len(dst)-start < k {
		h := sha1.Sum(x)
		x = h[:]
		for i := 0; i < 5 && len(dst)-start < k; i++ {
			pc := binary.BigEndian.Uint32(h[4*i:]) % uint32(n)
			if !slices.Contains(dst[start:], pc) {
				dst = append(dst, pc)
			}
		}
	}
	return dst
}

// offerFast sends a fast peer that has just said what it has our allowed-
// fast set, if it is a newcomer with fewer pieces than the set, which is
// whom BEP 6 means it for: a peer with pieces to trade earns a slot the
// usual way, and so a free-rider gets at most a few pieces from us. Not
// while super-seeding, whose point is to reveal pieces one at a time, nor
// when we are set never to upload. Called with t.mu held.
func (p *peer) offerFast(has int) {
	t := p.t
	if !p.fast || has >= allowedFastSetSize || t.ss != nil || t.c.cfg.UploadSlots < 0 || !p.addr.IsValid() {
		return
	}
	// BEP 6 computes the set over the info-hash of the connection: a v1
	// peer of a hybrid knows only the v1 one.
	p.fastOut = allowedFastSet(p.fastOut[:0], p.addr.Addr(), p.ih, t.info.NumPieces, allowedFastSetSize)
	p.enqueue(func(b []byte) []byte {
		for _, pc := range p.fastOut {
			b = wire.AppendAllowedFast(b, pc)
		}
		return b
	})
}

// grantedFast reports whether we allowed the peer piece pc while we choke
// it. Called with t.mu held.
func (p *peer) grantedFast(pc uint32) bool { return slices.Contains(p.fastOut, pc) }
