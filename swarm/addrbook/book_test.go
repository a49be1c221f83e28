package addrbook

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// drain dials every address Next offers at now, in order.
func drain(b *Book, now time.Time, seeding bool) []netip.AddrPort {
	var out []netip.AddrPort
	for {
		a, ok := b.Next(now, seeding)
		if !ok {
			return out
		}
		b.Dialing(a, now)
		out = append(out, a)
	}
}

var errRefused = os.NewSyscallError("connect", syscall.ECONNREFUSED)

// Dials go highest BEP 40 priority first, whatever order the addresses
// came in, and both ends agree: with our address known, the worked
// examples of BEP 40 come out in the order of their hashes.
func TestOrderBEP40(t *testing.T) {
	self := ap("123.213.32.10:6881")
	peers := []netip.AddrPort{
		ap("98.76.54.32:6881"),    // ec2d7224, BEP 40
		ap("123.213.32.234:6881"), // 99568189, BEP 40
		ap("123.213.33.234:6881"), // f61850a9 (same /16)
		ap("10.1.2.3:51413"),
		ap("[2001:db8::1]:6881"),
		ap("203.0.113.9:6881"),
	}
	var want []netip.AddrPort
	for i := range 3 {
		want = append(want, peers[i])
	}
	b1, b2 := New(Config{Self: self}), New(Config{Self: self})
	for i := range peers {
		b1.Add(peers[i], SourceTracker, t0)
		b2.Add(peers[len(peers)-1-i], SourcePEX, t0)
	}
	got1, got2 := drain(b1, t0, false), drain(b2, t0, false)
	if !slices.Equal(got1, got2) {
		t.Fatalf("order depends on insertion: %v vs %v", got1, got2)
	}
	if len(got1) != len(peers) {
		t.Fatalf("dialed %v, want all %d", got1, len(peers))
	}
	for i := 1; i < len(got1); i++ {
		p, q := Priority(selfFor(self, got1[i-1]), got1[i-1]), Priority(selfFor(self, got1[i]), got1[i])
		if p < q {
			t.Errorf("%s (%08x) dialed before %s (%08x)", got1[i-1], p, got1[i], q)
		}
	}
	// The three of known priority, among themselves: f6…, ec…, 99….
	var three []netip.AddrPort
	for _, a := range got1 {
		if slices.Contains(want, a) {
			three = append(three, a)
		}
	}
	if wantOrder := []netip.AddrPort{peers[2], peers[0], peers[1]}; !slices.Equal(three, wantOrder) {
		t.Errorf("order %v, want %v", three, wantOrder)
	}
	if b1.NumDialing() != len(peers) {
		t.Errorf("NumDialing = %d, want %d", b1.NumDialing(), len(peers))
	}
}

// Unknown, our address still gives a fixed order; learning it reorders
// the book to the one the peers agree on.
func TestOrderSelfUnknownThenLearned(t *testing.T) {
	peers := []netip.AddrPort{ap("98.76.54.32:6881"), ap("123.213.32.234:6881"), ap("123.213.33.234:6881"), ap("8.8.4.4:1")}
	b := New(Config{Self: netip.AddrPortFrom(netip.Addr{}, 6881)})
	for _, p := range peers {
		b.Add(p, SourceDHT, t0)
	}
	first, _ := b.Next(t0, false)
	if again, _ := b.Next(t0, false); again != first {
		t.Fatalf("Next without an event changed its answer: %s then %s", first, again)
	}
	b.SetSelf(ap("123.213.32.10:6881"))
	got := drain(b, t0, false)
	want := []netip.AddrPort{peers[2], peers[0], peers[1]}
	var three []netip.AddrPort
	for _, a := range got {
		if slices.Contains(want, a) {
			three = append(three, a)
		}
	}
	if !slices.Equal(three, want) {
		t.Errorf("after SetSelf: %v, want %v first among them", three, want)
	}
}

// Peers on loopback share our IP: their ports decide, as BEP 40 says.
func TestOrderLoopbackByPort(t *testing.T) {
	self := ap("0.0.0.0:6881")
	b := New(Config{Self: self})
	var want []netip.AddrPort
	for port := range uint16(20) {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 7000+port)
		b.Add(a, SourceFixed, t0)
		want = append(want, a)
	}
	slices.SortFunc(want, func(x, y netip.AddrPort) int {
		px, py := Priority(ap("127.0.0.1:6881"), x), Priority(ap("127.0.0.1:6881"), y)
		if px != py {
			return int(int64(py) - int64(px))
		}
		return x.Compare(y)
	})
	if got := drain(b, t0, false); !slices.Equal(got, want) {
		t.Errorf("loopback order %v, want %v", got, want)
	}
}

// A failed address waits 1 s, then 2, 4, … up to 5 min; a connection
// clears its failures, and after a disconnection it waits 5 s.
func TestBackoff(t *testing.T) {
	b := New(Config{})
	a := ap("192.0.2.1:6881")
	b.Add(a, SourceTracker, t0)
	now := t0
	wait := time.Second
	for i := range 12 {
		got, ok := b.Next(now, false)
		if !ok || got != a {
			t.Fatalf("failure %d: not offered at %v", i, now.Sub(t0))
		}
		b.Dialing(a, now)
		if _, ok := b.Next(now, false); ok {
			t.Fatal("offered while being dialed")
		}
		b.Failed(a, errRefused, now)
		if _, ok := b.Next(now.Add(wait-time.Nanosecond), false); ok {
			t.Fatalf("failure %d: offered before %v", i+1, wait)
		}
		now = now.Add(wait)
		wait = min(2*wait, 5*time.Minute)
	}
	if wait != 5*time.Minute {
		t.Fatalf("back-off did not reach its cap: %v", wait)
	}
	if want := "192.0.2.1:6881: connect: connection refused"; b.LastDialErr() != want {
		t.Errorf("LastDialErr = %q, want %q", b.LastDialErr(), want)
	}
	b.Dialing(a, now)
	b.Connected(a, now)
	if b.NumConnected() != 1 || b.NumDialing() != 0 {
		t.Fatalf("connected %d, dialing %d; want 1, 0", b.NumConnected(), b.NumDialing())
	}
	if _, ok := b.Next(now.Add(time.Hour), false); ok {
		t.Fatal("a connected address offered")
	}
	b.Disconnected(a, now)
	if _, ok := b.Next(now.Add(5*time.Second-time.Nanosecond), false); ok {
		t.Fatal("offered sooner than 5 s after a disconnection")
	}
	if got, _ := b.Next(now.Add(5*time.Second), false); got != a {
		t.Fatal("not offered 5 s after a disconnection")
	}
	// Failures were forgotten: the next one waits 1 s again.
	now = now.Add(5 * time.Second)
	b.Dialing(a, now)
	b.Failed(a, errors.New("boom"), now)
	if got, _ := b.Next(now.Add(time.Second), false); got != a {
		t.Fatal("after a connection, a failure did not start the back-off over")
	}
}

// A seeder waits for leechers to come to it: it does not redial
// addresses that failed, but dials fresh ones and reconnects to ones that
// worked.
func TestSeederDoesNotRedialFailed(t *testing.T) {
	b := New(Config{})
	bad, good, fresh := ap("192.0.2.1:1"), ap("192.0.2.2:1"), ap("192.0.2.3:1")
	b.Add(bad, SourceTracker, t0)
	b.Add(good, SourceTracker, t0)
	b.Dialing(bad, t0)
	b.Failed(bad, errRefused, t0)
	b.Dialing(good, t0)
	b.Connected(good, t0)
	b.Disconnected(good, t0)
	b.Add(fresh, SourcePEX, t0)
	later := t0.Add(time.Hour)
	got := drain(b, later, true)
	slices.SortFunc(got, netip.AddrPort.Compare)
	if want := []netip.AddrPort{good, fresh}; !slices.Equal(got, want) {
		t.Errorf("seeder dials %v, want %v", got, want)
	}
	b2 := New(Config{})
	b2.Add(bad, SourceTracker, t0)
	b2.Dialing(bad, t0)
	b2.Failed(bad, errRefused, t0)
	if got, ok := b2.Next(later, false); !ok || got != bad {
		t.Error("a leecher does not redial a failed address after its back-off")
	}
}

// The book is bounded: a new address takes the place of one that keeps
// failing, else of an idle one, lowest priority first; never of a
// connected one or one being dialed.
func TestBoundsEviction(t *testing.T) {
	const max = 50
	self := ap("198.51.100.1:6881")
	b := New(Config{Self: self, MaxAddrs: max})
	var all []netip.AddrPort
	for i := range max {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}), 6881)
		if !b.Add(a, SourcePEX, t0) {
			t.Fatalf("address %d of %d refused", i, max)
		}
		all = append(all, a)
	}
	if b.Len() != max {
		t.Fatalf("Len = %d, want %d", b.Len(), max)
	}
	// Known addresses are no new entries, even when full.
	if !b.Add(all[3], SourceTracker, t0) || b.Len() != max {
		t.Fatalf("re-adding a known address: Len = %d", b.Len())
	}
	// One failing: it goes first, whatever its priority.
	order := drain(b, t0, false)
	for _, a := range order {
		b.Refused(a, t0)
	}
	failing := order[0] // the highest in priority
	b.Dialing(failing, t0)
	b.Failed(failing, errRefused, t0)
	fresh1 := ap("172.16.0.1:1")
	if !b.Add(fresh1, SourceTracker, t0) {
		t.Fatal("full book refused a new address with a failing one to drop")
	}
	if b.Has(failing) || b.Len() != max {
		t.Fatalf("failing %s not the one dropped (Len %d)", failing, b.Len())
	}
	// None failing: the idle one of lowest priority goes.
	var lowest netip.AddrPort
	for i := len(b.order) - 1; i >= 0; i-- {
		if e := b.order[i]; e.addr != fresh1 {
			lowest = e.addr
			break
		}
	}
	fresh2 := ap("172.16.0.2:1")
	if !b.Add(fresh2, SourceTracker, t0) || b.Has(lowest) || !b.Has(fresh1) {
		t.Fatalf("lowest %s not dropped for a new address", lowest)
	}
	// All connected or dialing: nothing to drop, the newcomer is left out.
	for _, a := range drain(b, t0, false) {
		b.Connected(a, t0)
	}
	if b.Add(ap("172.16.0.3:1"), SourceDHT, t0) {
		t.Fatal("a full book of connected peers took a new address")
	}
	if b.Len() != max || len(b.order) != max || b.NumConnected() != max {
		t.Fatalf("Len %d, entries %d, connected %d; want %d each", b.Len(), len(b.order), b.NumConnected(), max)
	}
}

// An incoming connection's address is recorded but never dialed: it is
// the port the peer dialed from. It is forgotten when the connection
// ends, and does not take a place among the dialable ones.
func TestIncomingNotDialed(t *testing.T) {
	b := New(Config{MaxAddrs: 1})
	in := ap("192.0.2.7:50123")
	b.Add(in, SourceIncoming, t0)
	b.Connected(in, t0)
	if b.Len() != 0 || b.Sources()[SourceIncoming] != 1 || b.NumConnected() != 1 {
		t.Fatalf("Len %d, sources %v, connected %d", b.Len(), b.Sources(), b.NumConnected())
	}
	if !b.Add(ap("192.0.2.8:6881"), SourceTracker, t0) {
		t.Fatal("an incoming connection took the one dialable place")
	}
	b.Disconnected(in, t0)
	if b.Has(in) || b.NumConnected() != 0 {
		t.Fatal("incoming address kept after its connection ended")
	}
	if got := drain(b, t0.Add(time.Hour), false); len(got) != 1 || got[0] != ap("192.0.2.8:6881") {
		t.Fatalf("dialed %v", got)
	}
	// Named by a tracker too, it is a dialable address like any other.
	b2 := New(Config{})
	b2.Add(in, SourceIncoming, t0)
	b2.Add(in, SourceTracker, t0)
	if got, ok := b2.Next(t0, false); !ok || got != in || b2.Len() != 1 {
		t.Fatal("an incoming address also named by a tracker is not dialable")
	}
}

// A ban holds the IP, except on loopback, where every peer shares one IP
// and the ban holds the peer id and the address instead. Banned addresses
// are not dialed nor added; a ban counts once.
func TestBans(t *testing.T) {
	var id1, id2 [20]byte
	id1[0], id2[0] = 1, 2
	b := New(Config{})
	remote := ap("192.0.2.1:6881")
	other := ap("192.0.2.2:6881")
	b.Add(remote, SourceTracker, t0)
	b.Add(ap("192.0.2.1:7000"), SourcePEX, t0)
	b.Add(other, SourceTracker, t0)
	keys := Keys(remote, id1)
	if len(keys) != 1 || keys[0].String() != "192.0.2.1" {
		t.Fatalf("keys of a remote peer: %v", keys)
	}
	if !b.Ban(keys...) || b.Ban(keys...) || b.NumBans() != 1 {
		t.Fatalf("Ban twice: %d bans, want 1", b.NumBans())
	}
	if !b.Banned(ap("192.0.2.1:9999"), id2) {
		t.Error("ban of a remote IP does not hold its other ports and ids")
	}
	if got := drain(b, t0, false); !slices.Equal(got, []netip.AddrPort{other}) {
		t.Errorf("dialed %v, want only %s", got, other)
	}
	if b.Add(ap("192.0.2.1:8000"), SourceDHT, t0) {
		t.Error("an address of a banned IP was added")
	}

	lo := ap("127.0.0.1:7001")
	keys = Keys(lo, id1)
	if len(keys) != 2 || keys[0].String() != fmt.Sprintf("id:%x", id1) || keys[1].String() != "127.0.0.1:7001" {
		t.Fatalf("keys of a loopback peer: %v", keys)
	}
	b.Add(lo, SourceFixed, t0)
	b.Add(ap("127.0.0.1:7002"), SourceFixed, t0)
	b.Ban(keys...)
	switch {
	case !b.Banned(lo, id2):
		t.Error("banned loopback address let in under another id")
	case !b.Banned(ap("127.0.0.1:7003"), id1):
		t.Error("banned id let in from another loopback port")
	case b.Banned(ap("127.0.0.1:7002"), id2):
		t.Error("a loopback ban holds the whole IP")
	}
	if got := drain(b, t0, false); !slices.Equal(got, []netip.AddrPort{ap("127.0.0.1:7002")}) {
		t.Errorf("dialed %v, want only 127.0.0.1:7002", got)
	}
	if b.NumBans() != 2 {
		t.Errorf("NumBans = %d, want 2", b.NumBans())
	}
}

// The ban list is bounded; once full, Hold still keeps a banned peer's
// address from being dialed for a while.
func TestBanListBounded(t *testing.T) {
	b := New(Config{MaxBanKeys: 3})
	for i := range 5 {
		b.Ban(Keys(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 1), [20]byte{})...)
	}
	if len(b.bans) != 3 {
		t.Fatalf("%d keys held, want the bound 3", len(b.bans))
	}
	if b.NumBans() != 5 {
		t.Errorf("NumBans = %d, want 5: a full list still counts bans", b.NumBans())
	}
	late := ap("192.0.2.4:1")
	if b.Banned(late, [20]byte{}) {
		t.Fatal("a full list took a key")
	}
	b.Add(late, SourceTracker, t0)
	b.Hold(late, t0.Add(24*time.Hour))
	if _, ok := b.Next(t0.Add(23*time.Hour), false); ok {
		t.Error("a held address was offered")
	}
	if got, _ := b.Next(t0.Add(24*time.Hour), false); got != late {
		t.Error("a held address not offered once the hold ended")
	}
}

// An address that reached ourselves is never dialed again; a refused
// connection is no failure.
func TestOurselvesAndRefused(t *testing.T) {
	b := New(Config{})
	me, busy := ap("192.0.2.1:6881"), ap("192.0.2.2:6881")
	b.Add(me, SourceTracker, t0)
	b.Add(busy, SourceTracker, t0)
	drain(b, t0, false)
	b.Ourselves(me, t0)
	b.Refused(busy, t0)
	if b.NumDialing() != 0 {
		t.Fatalf("NumDialing = %d after both dials ended", b.NumDialing())
	}
	if got := drain(b, t0.Add(48*time.Hour), false); !slices.Equal(got, []netip.AddrPort{busy}) {
		t.Errorf("dialed %v, want only %s", got, busy)
	}
	if b.get(busy).failures != 0 {
		t.Error("a refused connection counted as a failure")
	}
}

// Sources and the status dump say where addresses came from and what
// each is doing.
func TestSourcesAndStatus(t *testing.T) {
	b := New(Config{Self: ap("123.213.32.10:6881")})
	b.Add(ap("98.76.54.32:6881"), SourceTracker, t0)
	b.Add(ap("98.76.54.32:6881"), SourcePEX, t0)
	b.Add(ap("192.0.2.5:1"), SourceDHT, t0)
	b.Add(ap("192.0.2.6:1"), SourceMagnet, t0)
	b.Add(ap("192.0.2.7:50000"), SourceIncoming, t0)
	b.Connected(ap("192.0.2.7:50000"), t0)
	b.Dialing(ap("192.0.2.5:1"), t0)
	b.Failed(ap("192.0.2.5:1"), errRefused, t0)
	b.Ban(Keys(ap("192.0.2.9:1"), [20]byte{})...)
	want := map[Source]int{SourceTracker: 1, SourcePEX: 1, SourceDHT: 1, SourceMagnet: 1, SourceIncoming: 1}
	if got := b.Sources(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Sources = %v, want %v", got, want)
	}
	var sb strings.Builder
	b.WriteStatus(&sb)
	out := sb.String()
	for _, s := range []string{
		"3 dialable of at most 2000, 4 entries, 1 connected, 0 dialing; self 123.213.32.10:6881",
		"sources: magnet 1 tracker 1 dht 1 pex 1 incoming 1",
		"banned: 1 peers",
		"last dial error: 192.0.2.5:1: connect: connection refused",
		"ec2d7224 98.76.54.32:6881",
		"from tracker,pex",
		"failing   failures 1 from dht since 03:04:05 next 03:04:06 last error: connect: connection refused",
		"connected failures 0 from incoming",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	if SourceLSD.String() != "lsd" || Source(200).String() != "source(200)" {
		t.Errorf("names: %s, %s", SourceLSD, Source(200))
	}
}

// A banned address is junk: a full book drops it before an idle one.
func TestEvictBannedFirst(t *testing.T) {
	b := New(Config{MaxAddrs: 3, Self: ap("198.51.100.1:6881")})
	addrs := []netip.AddrPort{ap("10.0.0.1:1"), ap("10.1.0.1:1"), ap("10.2.0.1:1")}
	for _, a := range addrs {
		b.Add(a, SourceTracker, t0)
	}
	banned := b.order[0].addr // the highest: no victim by priority alone
	b.Ban(Keys(banned, [20]byte{})...)
	if !b.Add(ap("10.3.0.1:1"), SourceTracker, t0) || b.Has(banned) {
		t.Fatalf("banned %s kept while a new address was let in or left out", banned)
	}
}

// An address found under a hybrid's v2 hash is remembered so (MarkV2),
// in its IPv4-mapped form too; an address the book does not hold cannot
// be marked, and one forgotten loses the mark.
func TestMarkV2(t *testing.T) {
	b := New(Config{MaxAddrs: 1})
	a := ap("10.0.0.1:1")
	b.MarkV2(a)
	if b.FoundV2(a) {
		t.Fatal("an unknown address was marked")
	}
	b.Add(a, SourceDHT, t0)
	if b.FoundV2(a) {
		t.Fatal("marked before MarkV2")
	}
	b.MarkV2(ap("[::ffff:10.0.0.1]:1"))
	if !b.FoundV2(a) {
		t.Fatal("not marked after MarkV2")
	}
	// A full book makes room for a newcomer by forgetting a; come back,
	// a is new to it.
	b.Add(ap("10.0.0.2:2"), SourceDHT, t0)
	if b.FoundV2(a) {
		t.Fatal("a forgotten address is still marked")
	}
	b.Add(a, SourceTracker, t0)
	if b.FoundV2(a) {
		t.Fatal("the mark outlived the address")
	}
}
