package swarm

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// An empty host listens on both families, one port, each socket taking
// its own family; an address keeps to its family.
func TestListenFamilies(t *testing.T) {
	for _, c := range []struct {
		listen string
		want   []string // families of the listeners, in order
		v4, v6 bool
	}{
		{":0", []string{"4", "6"}, true, true},
		{"0.0.0.0:0", []string{"4"}, true, false},
		{"[::]:0", []string{"6"}, false, true},
		{"127.0.0.1:0", []string{"4"}, true, false},
		{"[::1]:0", []string{"6"}, false, true},
	} {
		cl, err := Listen(context.Background(), Config{ListenAddr: c.listen})
		if err != nil {
			t.Fatalf("listen %s: %v", c.listen, err)
		}
		var got []string
		port := uint16(0)
		for _, a := range cl.Addrs() {
			ap := a.(*net.TCPAddr).AddrPort()
			if ap.Addr().Is4() {
				got = append(got, "4")
			} else {
				got = append(got, "6")
			}
			if port != 0 && ap.Port() != port {
				t.Errorf("listen %s: ports %d and %d, want one", c.listen, port, ap.Port())
			}
			port = ap.Port()
		}
		if len(got) != len(c.want) || got[0] != c.want[0] || len(got) > 1 && got[1] != c.want[1] {
			t.Errorf("listen %s: families %v, want %v", c.listen, got, c.want)
		}
		if cl.Reaches(netip.MustParseAddr("127.0.0.1")) != c.v4 || cl.Reaches(netip.MustParseAddr("::1")) != c.v6 {
			t.Errorf("listen %s: Reaches IPv4, IPv6 = %v, %v; want %v, %v", c.listen,
				cl.Reaches(netip.MustParseAddr("127.0.0.1")), cl.Reaches(netip.MustParseAddr("::1")), c.v4, c.v6)
		}
		// Each family's loopback connects exactly where it should.
		for _, lo := range []string{"127.0.0.1", "::1"} {
			conn, err := net.Dial("tcp", net.JoinHostPort(lo, strconv.Itoa(int(port))))
			want := cl.Reaches(netip.MustParseAddr(lo))
			if (err == nil) != want {
				t.Errorf("listen %s: dial %s: %v, want connected %v", c.listen, lo, err, want)
			}
			if err == nil {
				conn.Close()
			}
		}
		cl.Close()
	}
}
