package dht

import (
	"net"
	"net/netip"

	adht "github.com/anacrolix/dht/v2"
)

// localAddr reports whether ip is on the host or a private network, where
// BEP 42 cannot apply: the node ID is derived from the address other nodes
// see, and a loopback or NATed private address is not the one the world
// sees. Many nodes sharing 127.0.0.1 (tests, a private swarm) could never
// pass the check, so these addresses are exempt; nothing else is.
func localAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

// nodeIDAllowed reports whether a node claiming id from ip may be trusted
// into our routing table or be pinged back. Public addresses keep the BEP 42
// check, which stops one host from planting many IDs next to a target
// info-hash; only loopback and private addresses are relaxed.
func nodeIDAllowed(id [20]byte, ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsUnspecified() {
		return false
	}
	if localAddr(ip) {
		return true
	}
	return adht.NodeIdSecure(id, net.IP(ip.Unmap().AsSlice()))
}

// publicIP returns the address a node bound to a will be seen from, when
// that is knowable from the socket alone: a specific global address.
func publicIP(a net.Addr) (netip.Addr, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || !ip.IsGlobalUnicast() || localAddr(ip) {
		return netip.Addr{}, false
	}
	return ip, true
}
