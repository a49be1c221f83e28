package lsd

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Iface is a network interface as the scope rule sees it.
type Iface struct {
	Index int
	Name  string
	Flags net.Flags
	// Addrs are the interface's addresses, without zones.
	Addrs []netip.Addr
	// Source is the address announces on this interface go out from, set
	// by SelectScope: the listen address if it is this interface's, else
	// one of the interface's own. The kernel would pick one by scope and
	// may pick none (0.0.0.0 on a loopback) or another interface's.
	Source netip.Addr
}

func (i Iface) has(a netip.Addr) bool { return slices.Contains(i.Addrs, a) }

func (i Iface) hasFamily(v6 bool) bool { return i.source(v6).IsValid() }

// source picks the interface's address to announce from in a family: one
// that is not link-local if there is one, as it needs no zone to dial.
func (i Iface) source(v6 bool) netip.Addr {
	var ll netip.Addr
	for _, a := range i.Addrs {
		if a.Is6() != v6 {
			continue
		}
		if !a.IsLinkLocalUnicast() {
			return a
		}
		if !ll.IsValid() {
			ll = a
		}
	}
	return ll
}

// Scope is where LSD runs: the interfaces it multicasts on and listens
// on, for each family.
type Scope struct {
	V4, V6 []Iface
}

// Empty reports whether the scope holds no interface.
func (s Scope) Empty() bool { return len(s.V4) == 0 && len(s.V6) == 0 }

// String names the interfaces, "lo (ipv4), eth0 (ipv4, ipv6)".
func (s Scope) String() string {
	out := ""
	for _, f := range []struct {
		list []Iface
		name string
	}{{s.V4, "ipv4"}, {s.V6, "ipv6"}} {
		for _, i := range f.list {
			if out != "" {
				out += ", "
			}
			out += i.Name + " (" + f.name + ")"
		}
	}
	if out == "" {
		return "no interface"
	}
	return out
}

// SystemInterfaces lists the host's interfaces with their addresses.
func SystemInterfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	out := make([]Iface, 0, len(ifs))
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		i := Iface{Index: ifi.Index, Name: ifi.Name, Flags: ifi.Flags}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok {
					i.Addrs = append(i.Addrs, ip.Unmap())
				}
			}
		}
		out = append(out, i)
	}
	return out, nil
}

// SelectScope applies the scope rule: LSD runs only on the interfaces
// that the peer listener's addresses cover, and only those that are up
// and can multicast.
//   - 0.0.0.0: every such interface with an IPv4 address, for IPv4.
//   - [::]: every such interface with an IPv6 address, for IPv6. The
//     swarm's listeners keep to one family each (a dual-stack default
//     listens on 0.0.0.0 and [::] both), so [::] promises no IPv4 port.
//   - a loopback address: the loopback interface only, in that family;
//     never another interface, whatever addresses it holds.
//   - any other address: the interface holding it, in its family.
func SelectScope(listen []netip.Addr, ifs []Iface) Scope {
	var s Scope
	// add puts i in the family's list, announcing from src, or from the
	// interface's own address when src is not given.
	add := func(v6 bool, i Iface, src netip.Addr) {
		list := &s.V4
		if v6 {
			list = &s.V6
		}
		for _, have := range *list {
			if have.Index == i.Index {
				return
			}
		}
		i.Source = src
		if !src.IsValid() {
			i.Source = i.source(v6)
		}
		*list = append(*list, i)
	}
	for _, l := range listen {
		l = l.Unmap().WithZone("")
		for _, i := range ifs {
			if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagMulticast == 0 {
				continue
			}
			loop := i.Flags&net.FlagLoopback != 0
			switch {
			case l.IsUnspecified() && l.Is4():
				if i.hasFamily(false) {
					add(false, i, netip.Addr{})
				}
			case l.IsUnspecified():
				if i.hasFamily(true) {
					add(true, i, netip.Addr{})
				}
			case l.IsLoopback():
				// All of 127/8 routes to lo though only 127.0.0.1 is
				// listed on it.
				if loop && i.hasFamily(l.Is6()) {
					add(l.Is6(), i, l)
				}
			case i.has(l) && !loop:
				add(l.Is6(), i, l)
			}
		}
	}
	return s
}
