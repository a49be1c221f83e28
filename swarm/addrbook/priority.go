package addrbook

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// castagnoli is the CRC-32C table BEP 40 hashes with.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Priority is the BEP 40 canonical peer priority of the connection
// between a and b: the CRC-32C of the two IPs, masked and sorted, or of
// the two ports when the IPs are equal. Both ends of a connection compute
// the same number, so every peer of a swarm agrees on which connections
// matter most; higher means dial (and keep) first.
//
// The mask keeps the leading bytes the two addresses share and one more,
// at least the first two bytes of an IPv4 address (FF.FF.55.55) and six
// of an IPv6 one (FFFF:FFFF:FFFF:5555:…), and ANDs the rest with 0x55, so
// that within a subnet an attacker picking addresses gains little. The
// BEP leaves a pair of different families undefined; here the IPv4 one
// is taken as its IPv4-mapped IPv6 form.
func Priority(a, b netip.AddrPort) uint32 {
	ia, ib := a.Addr().Unmap(), b.Addr().Unmap()
	if ia == ib {
		pa, pb := min(a.Port(), b.Port()), max(a.Port(), b.Port())
		var buf [4]byte
		binary.BigEndian.PutUint16(buf[0:], pa)
		binary.BigEndian.PutUint16(buf[2:], pb)
		return crc32.Checksum(buf[:], castagnoli)
	}
	var x, y [16]byte
	n, base := 4, 2
	if ia.Is4() && ib.Is4() {
		x4, y4 := ia.As4(), ib.As4()
		copy(x[:], x4[:])
		copy(y[:], y4[:])
	} else {
		x, y = ia.As16(), ib.As16()
		n, base = 16, 6
	}
	shared := 0
	for shared < n && x[shared] == y[shared] {
		shared++
	}
	for i := max(base, shared+1); i < n; i++ {
		x[i] &= 0x55
		y[i] &= 0x55
	}
	var buf [32]byte
	lo, hi := x[:n], y[:n]
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	copy(buf[:], lo)
	copy(buf[n:], hi)
	return crc32.Checksum(buf[:2*n], castagnoli)
}

// selfFor is our end of the connection to peer, as BEP 40 needs it: our
// address as the peer sees it. We seldom know that for sure, so:
//   - a peer on loopback sees us on loopback (the kernel picks 127.0.0.1
//     or ::1 as the source of a loopback connection);
//   - otherwise the configured address serves if it is known (valid, not
//     unspecified) and of the peer's family;
//   - otherwise the unspecified address of the peer's family stands in:
//     the order is then not the one the peer computes, but still a fixed
//     spread over subnets rather than map order, and it changes to the
//     agreed one once SetSelf learns our address.
func selfFor(self, peer netip.AddrPort) netip.AddrPort {
	pa := peer.Addr().Unmap()
	sa := self.Addr().Unmap()
	switch {
	case pa.IsLoopback():
		if pa.Is4() {
			sa = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			sa = netip.IPv6Loopback()
		}
	case sa.IsValid() && !sa.IsUnspecified() && sa.Is4() == pa.Is4():
	case pa.Is4():
		sa = netip.IPv4Unspecified()
	default:
		sa = netip.IPv6Unspecified()
	}
	return netip.AddrPortFrom(sa, self.Port())
}
