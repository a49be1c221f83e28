package addrbook

import (
	"encoding/hex"
	"hash/crc32"
	"net/netip"
	"testing"
)

func crc32cHex(t *testing.T, s string) uint32 {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return crc32.Checksum(b, castagnoli)
}

// The two examples BEP 40 gives, with the hashes it states, and the
// other mask and port cases worked out from its rules: each pair must
// hash the bytes written next to it, in either order.
func TestPriorityBEP40Vectors(t *testing.T) {
	// The BEP's own numbers, to be sure the CRC is CRC-32C as it means.
	if got := crc32cHex(t, "624C14007BD50000"); got != 0xec2d7224 {
		t.Fatalf("crc32-c(624C14007BD50000) = %08x, BEP 40 says ec2d7224", got)
	}
	if got := crc32cHex(t, "7BD5200A7BD520EA"); got != 0x99568189 {
		t.Fatalf("crc32-c(7BD5200A7BD520EA) = %08x, BEP 40 says 99568189", got)
	}
	cases := []struct {
		a, b  string
		bytes string // what BEP 40 hashes for the pair
		want  uint32 // 0: check the bytes only
	}{
		// BEP 40: different /16, mask FF.FF.55.55.
		{"123.213.32.10:0", "98.76.54.32:0", "624C14007BD50000", 0xec2d7224},
		// BEP 40: same /24, the whole address.
		{"123.213.32.10:0", "123.213.32.234:0", "7BD5200A7BD520EA", 0x99568189},
		// Same /16, mask FF.FF.FF.55.
		{"123.213.32.10:51413", "123.213.33.234:6881", "7BD520007BD52140", 0},
		// Same IP: the ports, sorted, big-endian (6881 = 1AE1, 51413 = C8D5).
		{"123.213.32.10:51413", "123.213.32.10:6881", "1AE1C8D5", 0},
		// IPv6, different /48: mask FFFF:FFFF:FFFF:5555:….
		{"[2a03:2880:f277:1cd:face:b00c:0:167]:1", "[2a03:2880:f177:185:face:b00c:0:25de]:2",
			"2A032880F177010550441004000005542A032880F27701455044100400000145", 0},
		// IPv6, same /48: mask FFFF:FFFF:FFFF:FF55:….
		{"[2a03:2880:f177:f1cd:face:b00c:0:167]:1", "[2a03:2880:f177:f285:face:b00c:0:25de]:2",
			"2A032880F177F14550441004000001452A032880F177F2055044100400000554", 0},
		// IPv6, same /56: mask FFFF:FFFF:FFFF:FFFF:5555:….
		{"[2a03:2880:f177:1cd:face:b00c:0:167]:1", "[2a03:2880:f177:185:face:b00c:0:25de]:2",
			"2A032880F177018550441004000005542A032880F17701CD5044100400000145", 0},
		// An IPv4-mapped address is its IPv4 one.
		{"[::ffff:123.213.32.10]:0", "98.76.54.32:0", "624C14007BD50000", 0xec2d7224},
	}
	for _, c := range cases {
		a, b := netip.MustParseAddrPort(c.a), netip.MustParseAddrPort(c.b)
		want := crc32cHex(t, c.bytes)
		if c.want != 0 && want != c.want {
			t.Fatalf("%s: crc32-c = %08x, want %08x", c.bytes, want, c.want)
		}
		if got := Priority(a, b); got != want {
			t.Errorf("Priority(%s, %s) = %08x, want crc32-c(%s) = %08x", a, b, got, c.bytes, want)
		}
		if got := Priority(b, a); got != want {
			t.Errorf("Priority(%s, %s) = %08x, want %08x: not symmetric", b, a, got, want)
		}
	}
}

// Our end of the connection, as selfFor fills it in when unknown.
func TestSelfFor(t *testing.T) {
	port := uint16(6881)
	unknown := netip.AddrPortFrom(netip.Addr{}, port)
	anyV4 := netip.MustParseAddrPort("0.0.0.0:6881")
	known := netip.MustParseAddrPort("203.0.113.7:6881")
	cases := []struct {
		self, peer, want string
	}{
		{known.String(), "98.76.54.32:1", "203.0.113.7:6881"},
		{known.String(), "127.0.0.1:1", "127.0.0.1:6881"},
		{known.String(), "[::1]:1", "[::1]:6881"},
		{known.String(), "[2001:db8::1]:1", "[::]:6881"},
		{anyV4.String(), "98.76.54.32:1", "0.0.0.0:6881"},
		{"[::]:6881", "98.76.54.32:1", "0.0.0.0:6881"},
	}
	for _, c := range cases {
		got := selfFor(netip.MustParseAddrPort(c.self), netip.MustParseAddrPort(c.peer))
		if got.String() != c.want {
			t.Errorf("selfFor(%s, %s) = %s, want %s", c.self, c.peer, got, c.want)
		}
	}
	if got := selfFor(unknown, netip.MustParseAddrPort("98.76.54.32:1")); got != anyV4 {
		t.Errorf("selfFor(unknown, IPv4 peer) = %s, want %s", got, anyV4)
	}
}
