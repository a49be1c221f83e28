package portmap

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// local is an IPv4 address of ours that a router may be searched from.
type local struct {
	addr   netip.Addr
	prefix netip.Prefix // its subnet: a router must be on it
	iface  string
}

// scope lists what a listen address lets the mapper talk to: the local
// addresses it may send SSDP searches from, and the NAT-PMP gateways it
// may ask.
type scope struct {
	locals   []local
	gateways []netip.Addr
}

// scopeOf returns the scope of a listener on ip, or why there is none.
func scopeOf(ip netip.Addr) (scope, string) {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return scope{}, "no listen address"
	case ip.IsLoopback():
		return scope{}, "listening on loopback only"
	case ip.Is6() && !ip.IsUnspecified():
		// A listener on an IPv6 address takes no IPv4 connection, and
		// IGD and NAT-PMP map IPv4 ports.
		return scope{}, "listening on IPv6 only; UPnP IGD and NAT-PMP map IPv4"
	}
	locals, err := localAddrs()
	if err != nil {
		return scope{}, "listing interfaces: " + err.Error()
	}
	gws := defaultGateways()
	var sc scope
	if ip.IsUnspecified() {
		// The wildcard address, of either family, covers every IPv4
		// interface (a [::] socket is dual-stack).
		sc.locals = locals
		for _, gw := range gws {
			sc.gateways = append(sc.gateways, gw.addr)
		}
		return sc, ""
	}
	for _, l := range locals {
		if l.addr == ip {
			sc.locals = []local{l}
			break
		}
	}
	if len(sc.locals) == 0 {
		return scope{}, "the listen address " + ip.String() + " is on no multicast-capable interface"
	}
	for _, gw := range gws {
		if gw.iface == sc.locals[0].iface && sc.locals[0].prefix.Contains(gw.addr) {
			sc.gateways = append(sc.gateways, gw.addr)
		}
	}
	return sc, ""
}

// localAddrs lists the IPv4 addresses of the interfaces that are up, not
// loopback and can multicast (SSDP needs it).
func localAddrs() ([]local, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []local
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagMulticast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || !ip.Unmap().Is4() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ip = ip.Unmap()
			out = append(out, local{addr: ip, prefix: netip.PrefixFrom(ip, ones).Masked(), iface: ifc.Name})
		}
	}
	return out, nil
}

// gateway is the next hop of a default route.
type gateway struct {
	addr  netip.Addr
	iface string
}

// defaultGateways reads the IPv4 default routes from Linux's
// /proc/net/route. Elsewhere it finds none, and only UPnP is tried.
func defaultGateways() []gateway {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseRoutes(f)
}

// parseRoutes reads /proc/net/route's table: Iface, Destination, Gateway,
// Flags, …, Mask, with addresses in host (little-endian) byte order.
func parseRoutes(r io.Reader) []gateway {
	const rtfGateway = 0x2
	var out []gateway
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&rtfGateway == 0 {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(b))
		out = append(out, gateway{addr: netip.AddrFrom4(a), iface: f[0]})
	}
	return out
}
