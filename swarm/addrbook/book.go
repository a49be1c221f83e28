// Package addrbook is a torrent's address book: the peers it knows of and
// where it learned of each, which to dial next, back-off for addresses
// that failed, and bans.
//
// A Book is driven by events (Add, Dialing, Connected, Failed,
// Disconnected, …), each given the time, so it needs no network and no
// clock of its own. It is not safe for concurrent use: the torrent's lock
// guards it.
//
// Addresses are dialed in BEP 40 canonical peer priority order (see
// Priority), not in the random order of a Go map: peers of a swarm that
// agree on whom to connect to first leave a newcomer room to join, and a
// flood of addresses from one subnet does not crowd out the rest.
package addrbook

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"
)

// Defaults for Config's zero values; they are the numbers the swarm has
// always used.
const (
	DefaultMaxAddrs   = 2000
	DefaultMaxBanKeys = 10000
	// DefaultFirstRedial is the wait after a first failed dial, doubled
	// with each further failure up to DefaultMaxRedial: a peer named on
	// the command line that is not up yet (a seeder starting a second
	// later) is tried again within seconds, a dead PEX address soon
	// rarely.
	DefaultFirstRedial = time.Second
	DefaultMaxRedial   = 5 * time.Minute
	// DefaultRedial is the wait before redialing a peer whose connection
	// ended.
	DefaultRedial = 5 * time.Second
)

// Config configures a Book. The zero value uses the defaults and knows
// nothing of our own address.
type Config struct {
	// Self is our address as peers see it, for BEP 40 priorities. An
	// invalid or unspecified IP means we do not know it; the port still
	// counts (see selfFor). SetSelf changes it later.
	Self netip.AddrPort
	// MaxAddrs bounds the dialable addresses kept (DefaultMaxAddrs). A
	// full book makes room by forgetting one that is neither connected
	// nor being dialed, one that keeps failing first.
	MaxAddrs int
	// MaxBanKeys bounds the ban list (DefaultMaxBanKeys).
	MaxBanKeys int
	// FirstRedial and MaxRedial set the back-off after failed dials
	// (DefaultFirstRedial, DefaultMaxRedial); Redial the wait after a
	// connection ends (DefaultRedial).
	FirstRedial, MaxRedial, Redial time.Duration
}

// Book is one torrent's address book.
type Book struct {
	cfg  Config
	self netip.AddrPort
	// byAddr holds every entry; order holds them too, highest priority
	// first (then by address, so that equal priorities have one order).
	byAddr map[netip.AddrPort]*entry
	order  []*entry
	// dialable counts the entries Next may return some day (see
	// sourceSet.dialable); it is what MaxAddrs bounds and Len reports.
	dialable, dialing, connected int

	bans    map[Key]bool
	numBans int
	lastErr string
}

// entry is what the book knows of one address.
type entry struct {
	addr      netip.AddrPort
	prio      uint32
	sources   sourceSet
	added     time.Time
	connected bool
	dialing   bool
	ourselves bool // the address reached us: never dial it again
	v2        bool // found under the torrent's v2 info-hash (MarkV2)
	failures  int  // failed dials since the last connection
	next      time.Time
	lastErr   error
}

// New returns an empty book.
func New(cfg Config) *Book {
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = DefaultMaxAddrs
	}
	if cfg.MaxBanKeys <= 0 {
		cfg.MaxBanKeys = DefaultMaxBanKeys
	}
	if cfg.FirstRedial <= 0 {
		cfg.FirstRedial = DefaultFirstRedial
	}
	if cfg.MaxRedial <= 0 {
		cfg.MaxRedial = DefaultMaxRedial
	}
	if cfg.Redial <= 0 {
		cfg.Redial = DefaultRedial
	}
	return &Book{cfg: cfg, self: cfg.Self, byAddr: map[netip.AddrPort]*entry{}, bans: map[Key]bool{}}
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// before orders entries: higher priority first, then by address.
func before(a, b *entry) int {
	if c := cmp.Compare(b.prio, a.prio); c != 0 {
		return c
	}
	return a.addr.Compare(b.addr)
}

// Add records that src named addr, and reports whether the book holds the
// address now. Invalid addresses, port 0, banned addresses and, when the
// book is full and nothing can make room, new ones are left out.
func (b *Book) Add(addr netip.AddrPort, src Source, now time.Time) bool {
	if !addr.IsValid() || addr.Port() == 0 || src >= numSources {
		return false
	}
	addr = unmap(addr)
	if b.bannedAddr(addr) {
		return false
	}
	bit := sourceSet(1) << src
	e := b.byAddr[addr]
	if e != nil {
		if !e.sources.dialable() && (bit.dialable() && !b.makeRoom()) {
			return true // known still, as an incoming connection only
		}
		b.setSources(e, e.sources|bit)
		return true
	}
	if bit.dialable() && !b.makeRoom() {
		return false
	}
	e = &entry{addr: addr, prio: Priority(selfFor(b.self, addr), addr), added: now}
	b.setSources(e, bit)
	b.byAddr[addr] = e
	i, _ := slices.BinarySearchFunc(b.order, e, before)
	b.order = slices.Insert(b.order, i, e)
	return true
}

// setSources updates e's sources, and the dialable count with them.
func (b *Book) setSources(e *entry, s sourceSet) {
	if s.dialable() && !e.sources.dialable() {
		b.dialable++
	}
	e.sources = s
}

// makeRoom reports whether a dialable address may be added, forgetting
// one to make room if the book is full: the lowest in priority among
// those that keep failing (or are banned, or reached ourselves), or else
// the lowest of those neither connected nor being dialed. The book so
// never fills up for good with junk (from PEX, say) and shuts out better
// sources.
func (b *Book) makeRoom() bool {
	if b.dialable < b.cfg.MaxAddrs {
		return true
	}
	var victim *entry
	for i := len(b.order) - 1; i >= 0; i-- {
		e := b.order[i]
		if e.connected || e.dialing || !e.sources.dialable() {
			continue
		}
		if e.failures > 0 || e.ourselves || b.bannedAddr(e.addr) {
			victim = e
			break
		}
		if victim == nil {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	b.remove(victim)
	return true
}

// remove forgets e.
func (b *Book) remove(e *entry) {
	if i, ok := slices.BinarySearchFunc(b.order, e, before); ok {
		b.order = slices.Delete(b.order, i, i+1)
	}
	delete(b.byAddr, e.addr)
	if e.sources.dialable() {
		b.dialable--
	}
	if e.dialing {
		b.dialing--
	}
	if e.connected {
		b.connected--
	}
}

// SetSelf sets our address as peers see it (Config.Self), and reorders
// the book by the priorities it gives.
func (b *Book) SetSelf(self netip.AddrPort) {
	if self == b.self {
		return
	}
	b.self = self
	for _, e := range b.order {
		e.prio = Priority(selfFor(self, e.addr), e.addr)
	}
	slices.SortFunc(b.order, before)
}

// Next returns the address to dial next: the one of highest priority that
// is dialable, not banned, neither connected nor being dialed, and not
// waiting out a back-off at now. A seeder waits for leechers to come to
// it: it does not redial addresses that failed. The caller decides how
// many dials may run (NumDialing) and reports each with Dialing.
func (b *Book) Next(now time.Time, seeding bool) (netip.AddrPort, bool) {
	for _, e := range b.order {
		if e.connected || e.dialing || e.ourselves || !e.sources.dialable() || now.Before(e.next) {
			continue
		}
		if seeding && e.failures > 0 {
			continue
		}
		if b.bannedAddr(e.addr) {
			continue
		}
		return e.addr, true
	}
	return netip.AddrPort{}, false
}

// get returns the entry for addr, nil if there is none.
func (b *Book) get(addr netip.AddrPort) *entry { return b.byAddr[unmap(addr)] }

// MarkV2 records that addr was found under the torrent's v2 info-hash
// (BEP 52): a hybrid torrent dials it with that hash rather than the v1
// one. An address the book does not hold is ignored.
func (b *Book) MarkV2(addr netip.AddrPort) {
	if e := b.get(addr); e != nil {
		e.v2 = true
	}
}

// FoundV2 reports whether addr was found under the v2 info-hash (MarkV2).
func (b *Book) FoundV2(addr netip.AddrPort) bool {
	e := b.get(addr)
	return e != nil && e.v2
}

// setDialing and setConnected keep the counts in step with the flags.
func (b *Book) setDialing(e *entry, v bool) {
	if e.dialing != v {
		e.dialing = v
		if v {
			b.dialing++
		} else {
			b.dialing--
		}
	}
}

func (b *Book) setConnected(e *entry, v bool) {
	if e.connected != v {
		e.connected = v
		if v {
			b.connected++
		} else {
			b.connected--
		}
	}
}

// Dialing records that a dial to addr has started.
func (b *Book) Dialing(addr netip.AddrPort, now time.Time) {
	if e := b.get(addr); e != nil {
		b.setDialing(e, true)
	}
}

// Connected records a connection to or from addr that the torrent took:
// the address works, so its failures are forgotten.
func (b *Book) Connected(addr netip.AddrPort, now time.Time) {
	if e := b.get(addr); e != nil {
		b.setDialing(e, false)
		b.setConnected(e, true)
		e.failures, e.lastErr = 0, nil
	}
}

// Refused records that a dial to addr reached a peer whose connection the
// torrent then refused (banned, full, already connected): the address is
// not at fault, so it is free to be dialed again.
func (b *Book) Refused(addr netip.AddrPort, now time.Time) {
	if e := b.get(addr); e != nil {
		b.setDialing(e, false)
	}
}

// Failed records that a dial to addr failed with err: the address waits
// FirstRedial after its first failure, doubling with each further one up
// to MaxRedial. "addr: err" becomes LastDialErr, so err need not name the
// address.
func (b *Book) Failed(addr netip.AddrPort, err error, now time.Time) {
	b.lastErr = fmt.Sprintf("%s: %v", addr, err)
	e := b.get(addr)
	if e == nil {
		return
	}
	b.setDialing(e, false)
	e.failures++
	e.lastErr = err
	e.next = now.Add(min(b.cfg.MaxRedial, b.cfg.FirstRedial<<min(e.failures-1, 9)))
}

// Disconnected records that the connection with addr ended; it may be
// dialed again after Config.Redial. An address known only from its
// incoming connection is forgotten: nobody listens there.
func (b *Book) Disconnected(addr netip.AddrPort, now time.Time) {
	e := b.get(addr)
	if e == nil {
		return
	}
	if !e.sources.dialable() {
		b.remove(e)
		return
	}
	b.setConnected(e, false)
	b.setDialing(e, false)
	e.next = now.Add(b.cfg.Redial)
}

// Ourselves records that a dial to addr reached us: it is never dialed
// again.
func (b *Book) Ourselves(addr netip.AddrPort, now time.Time) {
	if e := b.get(addr); e != nil {
		b.setDialing(e, false)
		e.ourselves = true
	}
}

// Hold keeps addr from being dialed before until (a banned peer's address
// stays off even when the ban list is full).
func (b *Book) Hold(addr netip.AddrPort, until time.Time) {
	if e := b.get(addr); e != nil && until.After(e.next) {
		e.next = until
	}
}

// Has reports whether the book holds addr.
func (b *Book) Has(addr netip.AddrPort) bool { return b.get(addr) != nil }

// Len counts the dialable addresses known, connected ones included: what
// a torrent waiting for peers can say it has to try.
func (b *Book) Len() int { return b.dialable }

// NumDialing counts the dials under way.
func (b *Book) NumDialing() int { return b.dialing }

// NumConnected counts the addresses with a connection.
func (b *Book) NumConnected() int { return b.connected }

// Sources counts the addresses known from each source; an address named
// by several sources counts for each.
func (b *Book) Sources() map[Source]int {
	n := map[Source]int{}
	for _, e := range b.order {
		for s := range numSources {
			if e.sources.has(s) {
				n[s]++
			}
		}
	}
	return n
}

// LastDialErr is the last failed dial, "ADDR: why", for a user asking why
// there are no peers; empty if none failed.
func (b *Book) LastDialErr() string { return b.lastErr }

// statusEntries caps the addresses WriteStatus lists: the first in dial
// order are the ones that matter, and a full book would be 2,000 lines.
const statusEntries = 64

// WriteStatus writes the book for an operator or a bug report: counts,
// sources, bans, the last dial error, and the first statusEntries
// addresses in dial order with their state.
func (b *Book) WriteStatus(w io.Writer) {
	self := "unknown"
	if b.self.Addr().IsValid() && !b.self.Addr().IsUnspecified() {
		self = b.self.String()
	}
	fmt.Fprintf(w, "address book: %d dialable of at most %d, %d entries, %d connected, %d dialing; self %s\n",
		b.dialable, b.cfg.MaxAddrs, len(b.order), b.connected, b.dialing, self)
	fmt.Fprintf(w, "  sources:")
	srcs := b.Sources()
	for s := range numSources {
		if srcs[s] > 0 {
			fmt.Fprintf(w, " %s %d", s, srcs[s])
		}
	}
	fmt.Fprintf(w, "\n  banned: %d peers (%d keys of at most %d)\n", b.numBans, len(b.bans), b.cfg.MaxBanKeys)
	if b.lastErr != "" {
		fmt.Fprintf(w, "  last dial error: %s\n", b.lastErr)
	}
	for i, e := range b.order {
		if i == statusEntries {
			fmt.Fprintf(w, "  ... and %d more\n", len(b.order)-i)
			break
		}
		fmt.Fprintf(w, "  %08x %-21s %-9s failures %d from %s since %s", e.prio, e.addr, e.state(b), e.failures, e.sources, e.added.Format(time.TimeOnly))
		if !e.next.IsZero() {
			fmt.Fprintf(w, " next %s", e.next.Format(time.TimeOnly))
		}
		if e.lastErr != nil {
			fmt.Fprintf(w, " last error: %v", e.lastErr)
		}
		fmt.Fprintln(w)
	}
}

// state names what e is doing, for WriteStatus.
func (e *entry) state(b *Book) string {
	switch {
	case e.connected:
		return "connected"
	case e.dialing:
		return "dialing"
	case e.ourselves:
		return "ourselves"
	case b.bannedAddr(e.addr):
		return "banned"
	case !e.sources.dialable():
		return "incoming"
	case e.failures > 0:
		return "failing"
	}
	return "idle"
}
