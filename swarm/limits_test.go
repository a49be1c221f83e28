package swarm

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestIPKey(t *testing.T) {
	cases := []struct {
		in      string
		key     string
		limited bool
	}{
		{"127.0.0.1", "127.0.0.1", false},
		{"::1", "::1", false},
		{"::ffff:127.0.0.1", "127.0.0.1", false},
		{"127.0.0.2", "127.0.0.2", true},
		{"::ffff:10.1.2.3", "10.1.2.3", true},
		{"2001:db8::1", "2001:db8::", true},
		{"2001:db8::ffff:2", "2001:db8::", true},
		{"2001:db8:0:1::1", "2001:db8:0:1::", true},
	}
	for _, c := range cases {
		key, limited := ipKey(netip.MustParseAddr(c.in))
		if key.String() != c.key || limited != c.limited {
			t.Errorf("ipKey(%s) = %s, %v; want %s, %v", c.in, key, limited, c.key, c.limited)
		}
	}
}

// tcpPairs returns n accepted loopback connections (the server ends).
func tcpPairs(t *testing.T, n int) []net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out []net.Conn
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		out = append(out, s)
	}
	return out
}

// closedHere reports whether conn was closed on this side.
func closedHere(conn net.Conn) bool {
	conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := conn.Read(make([]byte, 1))
	return errors.Is(err, net.ErrClosed)
}

// A full set of pending handshakes closes the oldest for a newcomer; a
// host at its share closes its own oldest, not someone else's.
func TestPendingSetPushesOutOldest(t *testing.T) {
	conns := tcpPairs(t, 6)
	s := newPendingSet(4, 2)
	host, other, local := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("127.0.0.1")
	ips := []netip.Addr{host, host, host, other, local, local}
	var pcs []*pendingConn
	for i, ip := range ips {
		pcs = append(pcs, s.add(conns[i], ip))
	}
	// 2 pushed out 0 (same host, at its share of 2); 5 pushed out 1, the
	// oldest when the set of 4 was full.
	for i, want := range []bool{true, true, false, false, false, false} {
		if got := closedHere(conns[i]); got != want {
			t.Errorf("connection %d (%s): closed %v, want %v", i, ips[i], got, want)
		}
	}
	if s.len() != 4 || s.perIP[host] != 1 || s.perIP[other] != 1 || len(s.perIP) != 2 {
		t.Fatalf("after pushing out: %d pending, per host %v", s.len(), s.perIP)
	}
	s.done(pcs[0]) // already gone: no effect
	s.done(pcs[2])
	s.done(pcs[4])
	if s.len() != 2 || len(s.perIP) != 1 || s.perIP[other] != 1 {
		t.Fatalf("after done: %d pending, per host %v", s.len(), s.perIP)
	}
}
