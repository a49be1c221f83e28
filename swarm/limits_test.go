package swarm

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
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

// Who gives up a slot to a newcomer: silent connections, oldest first;
// then peers neither side has wanted anything from for a while; then
// peers that snub us; never one that wants our data or has data we want.
func TestEvictionChoice(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tor := &Torrent{peers: map[*peer]struct{}{}}
	mk := func(name string, joined time.Time, spoke bool, lastUseful time.Time) *peer {
		p := &peer{t: tor, id: [20]byte{name[0]}, joined: joined, spoke: spoke, lastUseful: lastUseful.UnixNano(), amChoking: true, peerChoking: true}
		tor.peers[p] = struct{}{}
		return p
	}
	waiting := mk("waiting", ago(time.Hour), true, ago(time.Hour)) // wants our data, choked: a customer
	waiting.peerInterested = true
	source := mk("source", ago(time.Hour), true, ago(time.Hour)) // has data we want
	source.amInterested = true
	fresh := mk("fresh idle", ago(5*time.Second), true, ago(5*time.Second)) // within its grace
	idleOld := mk("idle old", ago(time.Hour), true, ago(50*time.Second))
	idleNew := mk("idle new", ago(time.Hour), true, ago(20*time.Second))
	snub := mk("snubber", ago(time.Minute), true, ago(time.Second))
	snub.amInterested, snub.snubbedUs = true, true // evictable though it has what we want
	silentNew := mk("silent new", ago(time.Millisecond), false, ago(time.Millisecond))
	silentOld := mk("silent old", ago(2*time.Second), false, ago(2*time.Second))
	gone := mk("evicted", ago(time.Hour), false, ago(time.Hour))
	gone.evicted = true

	for _, want := range []*peer{silentOld, silentNew, idleOld, idleNew, snub, nil} {
		got := tor.evictionVictim(now)
		if got != want {
			name := func(p *peer) string {
				if p == nil {
					return "none"
				}
				return string(p.id[0])
			}
			t.Fatalf("victim %s, want %s", name(got), name(want))
		}
		delete(tor.peers, got)
	}
	for _, p := range []*peer{waiting, source, fresh} {
		if _, ok := tor.peers[p]; !ok {
			t.Errorf("peer %c evicted", p.id[0])
		}
	}
}

// handshakeFrom completes a handshake with n from the local address src
// (any 127.x.y.z is this machine on Linux) and returns the connection.
func handshakeFrom(t *testing.T, n *node, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", n.c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := wire.Handshake{InfoHash: n.t.ih20, PeerID: NewPeerID()}
	h.Reserved.SetFast(true)
	if err := wire.WriteHandshake(conn, h); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadHandshake(conn); err != nil {
		t.Fatalf("handshake from %s: %v", src, err)
	}
	conn.SetDeadline(time.Time{})
	return conn
}

// connState tells, after d, whether the other side closed each
// connection, sent something (a torrent's opening messages: the peer
// holds a slot), or neither. What arrived is read and discarded.
func connState(conns []net.Conn, d time.Duration) []string {
	time.Sleep(d)
	out := make([]string, len(conns))
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout() && n > 0:
			out[i] = "admitted"
		case errors.As(err, &ne) && ne.Timeout():
			out[i] = "waiting"
		default:
			out[i] = "closed"
		}
	}
	return out
}

// wantStates compares connState's answer with want, where "open" stands
// for either "admitted" or "waiting".
func wantStates(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] && (want[i] != "open" || got[i] == "closed") {
			t.Errorf("%s: connections %v, want %v", what, got, want)
			return
		}
	}
}

// One host gets a few of a torrent's slots and a few of the pending
// handshakes; this machine's own address (127.0.0.1) is exempt, since
// every local peer connects from it.
func TestPerHostLimits(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{}, nil)

	var same []net.Conn
	for range maxPeersPerIP + 2 {
		c := handshakeFrom(t, seeder, "127.0.0.2")
		c.Write(wire.AppendHaveNone(nil))
		same = append(same, c)
	}
	// Which of them get the slots depends on the order their first
	// messages are handled in; how many must not.
	states := connState(same, 300*time.Millisecond)
	if admitted, closed := count(states, "admitted"), count(states, "closed"); admitted != maxPeersPerIP || closed != 2 {
		t.Errorf("peers from one host: connections %v, want %d admitted and 2 closed", states, maxPeersPerIP)
	}
	other := handshakeFrom(t, seeder, "127.0.0.3")
	var local []net.Conn
	for range maxPeersPerIP + 2 {
		local = append(local, handshakeFrom(t, seeder, "127.0.0.1"))
	}
	wantStates(t, "a peer from another host", connState([]net.Conn{other}, 300*time.Millisecond), "admitted")
	for i, s := range connState(local, 300*time.Millisecond) {
		if s != "admitted" {
			t.Errorf("local peer %d of %d: %s; 127.0.0.1 is exempt", i, len(local), s)
		}
	}

	// Handshakes that never come: one host holds at most maxPendingPerIP,
	// the newest; 127.0.0.1 holds as many as the pool.
	pending := func(src string, n int) []net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var out []net.Conn
		for range n {
			c, err := d.Dial("tcp", seeder.c.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			out = append(out, c)
		}
		return out
	}
	silent := pending("127.0.0.4", maxPendingPerIP+4)
	silentLocal := pending("127.0.0.1", 3*maxPendingPerIP)
	deadline := time.Now().Add(2 * time.Second)
	for seeder.c.pending.len() < maxPendingPerIP+len(silentLocal) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := connState(silent, 300*time.Millisecond)
	for i, s := range st {
		if want := map[bool]string{true: "closed", false: "waiting"}[i < 4]; s != want {
			t.Errorf("pending from one host: %v; want the 4 oldest closed", st)
			break
		}
	}
	for i, s := range connState(silentLocal, 10*time.Millisecond) {
		if s != "waiting" {
			t.Errorf("pending local connection %d: %s; 127.0.0.1 is exempt", i, s)
		}
	}
	// A real peer still gets in meanwhile.
	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 10*time.Second)
}

// A full torrent lets a newcomer in only once it has said something, and
// then in place of a connection that never has; peers that speak and
// want something keep their slots.
func TestFullTorrentReplacesSilentPeer(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{MaxPeers: 3}, nil)
	var slots []net.Conn
	for range 3 {
		slots = append(slots, handshakeFrom(t, seeder, "127.0.0.1"))
	}
	wantStates(t, "filling the slots", connState(slots, 300*time.Millisecond), "admitted", "admitted", "admitted")
	newcomer := handshakeFrom(t, seeder, "127.0.0.1")
	wantStates(t, "a silent newcomer", connState([]net.Conn{newcomer}, 300*time.Millisecond), "waiting")
	wantStates(t, "while a silent newcomer waits", connState(slots, 10*time.Millisecond), "open", "open", "open")

	newcomer.Write(wire.AppendHaveNone(nil))
	wantStates(t, "the newcomer, once it speaks", connState([]net.Conn{newcomer}, 300*time.Millisecond), "admitted")
	wantStates(t, "the slot holders", connState(slots, 100*time.Millisecond), "closed", "open", "open")

	// The two left say what they want: nobody is left to replace.
	for _, c := range slots[1:] {
		c.Write(wire.AppendHaveNone(nil))
		c.Write(wire.AppendInterested(nil))
	}
	time.Sleep(100 * time.Millisecond)
	late := handshakeFrom(t, seeder, "127.0.0.1")
	late.Write(wire.AppendHaveNone(nil))
	wantStates(t, "a newcomer to a torrent full of useful peers", connState([]net.Conn{late}, 300*time.Millisecond), "closed")
	wantStates(t, "the useful peers", connState(append(slots[1:], newcomer), 100*time.Millisecond), "open", "open", "open")
	if s := seeder.t.Stats(); s.Peers != 3 {
		t.Fatalf("%d peers, want 3", s.Peers)
	}
}

// A full torrent closes, on its own, connections that never said anything
// and peers that neither want nor have anything for too long, but keeps
// the ones that want its data.
func TestFullTorrentDropsUselessPeers(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	seeder := startNode(t, m, src, Config{MaxPeers: 3}, nil)
	silent := handshakeFrom(t, seeder, "127.0.0.1")
	idle := handshakeFrom(t, seeder, "127.0.0.1")
	idle.Write(wire.AppendHaveNone(nil))
	customer := handshakeFrom(t, seeder, "127.0.0.1")
	customer.Write(wire.AppendHaveNone(nil))
	customer.Write(wire.AppendInterested(nil))
	conns := []net.Conn{silent, idle, customer}
	wantStates(t, "before", connState(conns, 300*time.Millisecond), "admitted", "admitted", "admitted")
	// Two minutes pass for the seeder.
	seeder.t.mu.Lock()
	for p := range seeder.t.peers {
		p.joined = p.joined.Add(-2 * time.Minute)
		p.lastUseful -= int64(2 * time.Minute)
	}
	seeder.t.mu.Unlock()
	wantStates(t, "after a tick", connState(conns, 1500*time.Millisecond), "closed", "closed", "open")
	seeder.t.mu.Lock()
	defer seeder.t.mu.Unlock()
	if len(seeder.t.peers) != 1 || seeder.t.evicting != 0 || seeder.t.speakers != 1 {
		t.Fatalf("%d peers, %d being evicted, %d speakers; want 1, 0, 1", len(seeder.t.peers), seeder.t.evicting, seeder.t.speakers)
	}
}

// count returns how many of states are s.
func count(states []string, s string) int {
	n := 0
	for _, x := range states {
		if x == s {
			n++
		}
	}
	return n
}
