package lsd

import (
	"net/netip"
	"testing"
	"time"
)

// The IPv6 group, between two namespaces joined by a veth pair (a
// loopback does not loop IPv6 multicast back): each side finds the other
// at its link-local address, zone included so it can be dialed.
func TestServicesFindEachOtherIPv6(t *testing.T) {
	a, b := netns(t), netns(t)
	for _, ns := range []string{a, b} {
		// No duplicate address detection: the link-local addresses are
		// usable at once.
		ip(t, "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
	}
	ip(t, "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
	// Only the addresses given here, none made from the MAC.
	ip(t, "-n", a, "link", "set", "va", "addrgenmode", "none")
	ip(t, "-n", b, "link", "set", "vb", "addrgenmode", "none")
	ip(t, "-n", a, "addr", "add", "fe80::a/64", "dev", "va")
	ip(t, "-n", b, "addr", "add", "fe80::b/64", "dev", "vb")
	ip(t, "-n", a, "link", "set", "va", "up")
	ip(t, "-n", b, "link", "set", "vb", "up")
	sa := newService(t, a, Config{Listen: addrs("::"), Port: 1111})
	sb := newService(t, b, Config{Listen: addrs("::"), Port: 2222})
	if got := sa.Scope().String(); got != "lo (ipv6), va (ipv6)" {
		t.Fatalf("scope of [::]: %s", got)
	}
	fa, fb := find(t, sa, ih1), find(t, sb, ih1)
	wantA, wantB := netip.MustParseAddrPort("[fe80::b%va]:2222"), netip.MustParseAddrPort("[fe80::a%vb]:1111")
	if !eventually(5*time.Second, func() bool { return fa.has(wantA) && fb.has(wantB) }) {
		t.Fatalf("a found %v, b found %v; a %+v", fa.list(), fb.list(), sa.Stats())
	}
}
