package lsd

import (
	"net"
	"net/netip"
	"testing"
)

func TestSelectScope(t *testing.T) {
	up := net.FlagUp | net.FlagMulticast
	a := netip.MustParseAddr
	ifs := []Iface{
		{Index: 1, Name: "lo", Flags: up | net.FlagLoopback, Addrs: []netip.Addr{a("127.0.0.1"), a("::1")}},
		{Index: 2, Name: "eth0", Flags: up, Addrs: []netip.Addr{a("192.0.2.10"), a("fe80::1"), a("2001:db8::10")}},
		{Index: 3, Name: "wlan0", Flags: up, Addrs: []netip.Addr{a("198.51.100.7")}},
		{Index: 4, Name: "down0", Flags: net.FlagMulticast, Addrs: []netip.Addr{a("203.0.113.1")}},
		{Index: 5, Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint, Addrs: []netip.Addr{a("203.0.113.9")}},
		{Index: 6, Name: "v6only", Flags: up, Addrs: []netip.Addr{a("fe80::6")}},
	}
	cases := []struct {
		listen string
		want   string
	}{
		// The wildcard covers every interface that is up and can
		// multicast, in the listener's family.
		{"0.0.0.0", "lo (ipv4), eth0 (ipv4), wlan0 (ipv4)"},
		// An IPv6 wildcard listener takes no IPv4 connections: no IPv4 LSD.
		{"::", "lo (ipv6), eth0 (ipv6), v6only (ipv6)"},
		// Loopback stays on loopback: never eth0, though it is the one a
		// route would pick.
		{"127.0.0.1", "lo (ipv4)"},
		{"127.0.0.2", "lo (ipv4)"},
		{"::1", "lo (ipv6)"},
		{"::ffff:127.0.0.1", "lo (ipv4)"},
		// A specific address: the interface that holds it.
		{"192.0.2.10", "eth0 (ipv4)"},
		{"2001:db8::10", "eth0 (ipv6)"},
		{"198.51.100.7", "wlan0 (ipv4)"},
		// Down, cannot multicast, or on no interface: nothing.
		{"203.0.113.1", "no interface"},
		{"203.0.113.9", "no interface"},
		{"192.0.2.99", "no interface"},
	}
	for _, c := range cases {
		got := SelectScope([]netip.Addr{a(c.listen)}, ifs).String()
		if got != c.want {
			t.Errorf("listen %s: %s, want %s", c.listen, got, c.want)
		}
	}
	// A loopback without multicast (the usual host's lo) leaves a
	// loopback listener with no LSD at all rather than another interface.
	noMcast := append([]Iface(nil), ifs...)
	noMcast[0].Flags &^= net.FlagMulticast
	if s := SelectScope([]netip.Addr{a("127.0.0.1")}, noMcast); !s.Empty() {
		t.Errorf("loopback without multicast: %s, want none", s)
	}
	// Several listen addresses add up, each interface once.
	if got := SelectScope([]netip.Addr{a("192.0.2.10"), a("0.0.0.0")}, ifs).String(); got != "eth0 (ipv4), lo (ipv4), wlan0 (ipv4)" {
		t.Errorf("two listen addresses: %s", got)
	}
}
