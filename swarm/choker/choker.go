// Package choker decides which peers may download from us: every choke
// and unchoke (BEP 3) and the number of upload slots.
//
// Choking follows the mainstream tit-for-tat scheme (BEP 3, libtorrent's
// "fixed slots" choker): every RechokeInterval the peers that give us the
// most (when downloading), or take from us the fastest (when seeding), get
// the regular upload slots, and one more peer, rotated every
// OptimisticInterval, is unchoked at random so newcomers and peers with
// nothing to give yet get a chance to prove themselves.
//
// Between rechokes a slot never idles: a newly interested peer takes a
// free one at once, and a slot freed by a peer that left or lost interest
// goes to the waiting peer that gives us most. A free-riding peer (see
// Conduct.FreeRiding: it keeps us choked while it has what we want, or
// took a piece and gave nothing back) is owed only the optimistic slot,
// and loses any other within a tick, so on a fast swarm tit-for-tat bites
// in seconds rather than at the next rechoke.
//
// The choker is driven by events named after what happened on the wire
// (HandleConnect, HandleInterested, HandleNotInterested, HandleDisconnect)
// and by Tick; every one is given the time, so it reads no clock and is
// tested without sleeping. It acts on a peer only through Peer.SetChoked.
package choker

import (
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Timing and sizes of tit-for-tat.
const (
	// RechokeInterval is how often the regular slots are handed out anew.
	RechokeInterval = 10 * time.Second
	// OptimisticInterval is how long a peer keeps the optimistic slot.
	OptimisticInterval = 30 * time.Second
	// DefaultSlots is the number of regular unchoke slots.
	DefaultSlots = 4
	// Grace is how long a peer may keep us choked while it has what we
	// want before tit-for-tat stops giving it regular or free slots, and
	// how long a peer we unchoked keeps its slot before it is judged: a
	// new connection needs a moment to unchoke us.
	Grace = 2 * time.Second
	// MinFreeRideAllowance is how much a peer may take from us, this much
	// and at least a piece, before giving almost nothing back marks it a
	// free-rider: a newcomer has to take something before it can give.
	// Every peer it meets grants it this much, so it must stay small.
	MinFreeRideAllowance = 64 << 10
)

// Peer is what the choker needs of a connected peer. Implementations must
// be comparable (pointers): the choker keys its state by them.
type Peer interface {
	// Interested reports whether the peer wants to download from us.
	Interested() bool
	// DownRate is what the peer sends us, UpRate what we send it, in
	// bytes/s.
	DownRate() float64
	UpRate() float64
	// Joined is when the peer connected; newcomers are favoured for the
	// optimistic slot, since they cannot have earned a regular one yet.
	Joined() time.Time
	// FreeRiding reports a peer that tit-for-tat owes only the optimistic
	// slot (Conduct.FreeRiding is the rule). It is asked of every peer at
	// each rechoke, interested or not, so an implementation that records
	// what it finds (a snub) learns of it at least that often.
	FreeRiding(now time.Time) bool
	// SetChoked chokes or unchokes the peer on the wire. The choker calls
	// it only when the state changes, and it must not call the choker
	// back.
	SetChoked(choked bool)
	// String names the peer in WriteStatus.
	String() string
}

// Config is how a Choker is set up.
type Config struct {
	// Slots is the number of regular unchoke slots; 0 means DefaultSlots,
	// and a negative number leech-only: nobody is ever unchoked.
	Slots int
	// Seeding reports whether we have every piece: the regular slots then
	// go to the peers that take from us fastest rather than those that
	// give us most. nil means never.
	Seeding func() bool
	// Rand draws the optimistic peer; nil means a randomly seeded source.
	Rand *rand.Rand
}

// Choker owns the choke state of a torrent's peers. It is not safe for
// concurrent use: the caller serialises its calls (swarm holds the
// torrent's lock).
type Choker struct {
	slots     int
	leechOnly bool
	seeding   func() bool
	rnd       *rand.Rand

	peers    map[Peer]slot
	unchoked int // peers in peers with slot.unchoked
	// optimistic holds the optimistic slot since optSince; nil if nobody.
	// It keeps the title while choked for lost interest, so that it gets
	// the slot back should it want one again before the rotation.
	optimistic  Peer
	optSince    time.Time
	lastRechoke time.Time

	// Reused by rechoke, so that a rechoke allocates nothing once warm.
	cands, rest []candidate
	chosen      map[Peer]bool
}

// slot is the choker's record of one peer.
type slot struct {
	unchoked bool
	since    time.Time // when last unchoked
}

// candidate is an interested peer as a rechoke ranks it.
type candidate struct {
	p    Peer
	rate float64
	free bool
}

// New returns a choker with no peers.
func New(cfg Config) *Choker {
	c := &Choker{
		slots:   cfg.Slots,
		seeding: cfg.Seeding,
		rnd:     cfg.Rand,
		peers:   map[Peer]slot{},
		chosen:  map[Peer]bool{},
	}
	switch {
	case c.slots < 0:
		c.slots, c.leechOnly = 0, true
	case c.slots == 0:
		c.slots = DefaultSlots
	}
	if c.rnd == nil {
		c.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return c
}

// IsOptimistic reports whether p holds the optimistic slot.
func (c *Choker) IsOptimistic(p Peer) bool { return c.optimistic != nil && c.optimistic == p }

// HandleConnect registers a newly connected peer, choked, as every
// connection starts.
func (c *Choker) HandleConnect(p Peer) {
	if _, ok := c.peers[p]; !ok {
		c.peers[p] = slot{}
	}
}

// HandleDisconnect forgets a peer that left. The slot it held goes to the
// waiting peer that gives us most, rather than idling until the next
// rechoke.
func (c *Choker) HandleDisconnect(p Peer, now time.Time) {
	s, ok := c.peers[p]
	if !ok {
		return
	}
	delete(c.peers, p)
	if c.optimistic == p {
		// The next rechoke draws another; the slot meanwhile is handed
		// over below like any other.
		c.optimistic = nil
	}
	if s.unchoked {
		c.unchoked--
		c.unchokeWaiting(now)
	}
}

// HandleInterested gives a newly interested peer a free slot at once
// rather than at the next rechoke, so a fresh swarm starts in
// milliseconds. The optimistic slot counts as free until a rechoke fills
// it. A free-riding peer gets none: tit-for-tat owes it only the
// optimistic slot, which it must be drawn for.
func (c *Choker) HandleInterested(p Peer, now time.Time) {
	s, ok := c.peers[p]
	if !ok || s.unchoked || c.leechOnly || !p.Interested() || c.unchoked >= c.slots+1 || p.FreeRiding(now) {
		return
	}
	c.set(p, s, true, now)
}

// HandleNotInterested chokes a peer that no longer wants anything: a slot
// spent on a peer that asks for nothing is a slot wasted, so it goes to
// one that wants it.
func (c *Choker) HandleNotInterested(p Peer, now time.Time) {
	s, ok := c.peers[p]
	if !ok || !s.unchoked {
		return
	}
	c.set(p, s, false, now)
	c.unchokeWaiting(now)
}

// Choke chokes p outside tit-for-tat: a peer without BEP 6 has no other
// refusal, so this is how it learns we will not serve what it asked,
// through no fault of its own. Its slot is left free until the next
// event or rechoke rather than handed over at once. A peer already
// choked, or gone, is left alone.
func (c *Choker) Choke(p Peer) {
	if s, ok := c.peers[p]; ok && s.unchoked {
		c.set(p, s, false, time.Time{})
	}
}

// Tick is the choker's clock, called about once a second: every
// RechokeInterval it rechokes; in between it takes the regular slots of
// peers found free-riding.
func (c *Choker) Tick(now time.Time) {
	if now.Sub(c.lastRechoke) >= RechokeInterval {
		c.rechoke(now)
		c.lastRechoke = now
		return
	}
	c.chokeFreeRiders(now)
}

// set records and applies a change of p's choke state; s is p's current
// record.
func (c *Choker) set(p Peer, s slot, unchoke bool, now time.Time) {
	if s.unchoked == unchoke {
		return
	}
	s.unchoked = unchoke
	if unchoke {
		c.unchoked++
		s.since = now
	} else {
		c.unchoked--
	}
	c.peers[p] = s
	p.SetChoked(!unchoke)
}

// rechoke applies tit-for-tat. It sorts, but only once per
// RechokeInterval over the connected peers: off every hot path.
func (c *Choker) rechoke(now time.Time) {
	seeding := c.seeding != nil && c.seeding()
	c.cands = c.cands[:0]
	present := false
	for p := range c.peers {
		free := p.FreeRiding(now) // of every peer: see Peer.FreeRiding
		if c.leechOnly || !p.Interested() {
			continue
		}
		rate := p.DownRate()
		if seeding {
			rate = p.UpRate()
		}
		c.cands = append(c.cands, candidate{p: p, rate: rate, free: free})
		if p == c.optimistic {
			present = true
		}
	}
	if c.leechOnly {
		return // everyone is choked already
	}
	slices.SortStableFunc(c.cands, func(a, b candidate) int { return cmp.Compare(b.rate, a.rate) })
	c.rest = c.rest[:0]
	regular := 0
	for _, cd := range c.cands {
		switch {
		case present && cd.p == c.optimistic:
			// Neither a regular slot nor a fresh draw: it keeps the
			// optimistic slot until the rotation, and then yields it.
		case regular < c.slots && !cd.free:
			c.chosen[cd.p] = true
			regular++
		default:
			c.rest = append(c.rest, cd)
		}
	}
	if !present || now.Sub(c.optSince) >= OptimisticInterval {
		c.optimistic = nil
		if len(c.rest) > 0 {
			c.optimistic, c.optSince = c.pickOptimistic(c.rest, now), now
		}
	}
	if c.optimistic != nil {
		c.chosen[c.optimistic] = true
	}
	for p, s := range c.peers {
		c.set(p, s, c.chosen[p], now)
	}
	// Hold no peer past its departure.
	clear(c.chosen)
	clear(c.cands)
	clear(c.rest)
}

// pickOptimistic draws among choked interested peers, giving peers that
// joined within the last optimistic round three tickets instead of one.
func (c *Choker) pickOptimistic(cands []candidate, now time.Time) Peer {
	weight := func(cd candidate) int {
		if now.Sub(cd.p.Joined()) < OptimisticInterval {
			return 3
		}
		return 1
	}
	total := 0
	for _, cd := range cands {
		total += weight(cd)
	}
	n := c.rnd.IntN(total)
	for _, cd := range cands {
		if n -= weight(cd); n < 0 {
			return cd.p
		}
	}
	return cands[len(cands)-1].p
}

// unchokeWaiting hands the free slots (a peer left, lost interest or was
// caught free-riding) to the choked peers that want one and give us the
// most, instead of leaving them idle until the next rechoke. The ranking
// is by what a peer gives us even when seeding, when that is nothing for
// all of them: the slot then goes to whichever waiting peer comes first in
// map order, that is at random.
func (c *Choker) unchokeWaiting(now time.Time) {
	for !c.leechOnly && c.unchoked < c.slots+1 {
		var best Peer
		var bestRate float64
		for q, s := range c.peers {
			if !s.unchoked && q.Interested() && !q.FreeRiding(now) && (best == nil || q.DownRate() > bestRate) {
				best, bestRate = q, q.DownRate()
			}
		}
		if best == nil {
			return
		}
		c.set(best, c.peers[best], true, now)
	}
}

// chokeFreeRiders applies tit-for-tat between rechokes: a peer we unchoke
// that turns out to be free-riding loses its slot to one that
// reciprocates, once it has had Grace to start. Without this a free-rider
// keeps the free slot it got as a newcomer for a whole RechokeInterval,
// which on a fast swarm is the whole download. The optimistic peer keeps
// its slot: that one is owed to anybody.
func (c *Choker) chokeFreeRiders(now time.Time) {
	freed := false
	for p, s := range c.peers {
		if s.unchoked && p != c.optimistic && now.Sub(s.since) > Grace && p.FreeRiding(now) {
			c.set(p, s, false, now)
			freed = true
		}
	}
	if freed {
		c.unchokeWaiting(now)
	}
}

// WriteStatus writes the choker's state for an operator: the slots, who
// holds them and since when, and the optimistic peer. It writes once, so
// a dump of many torrents does not interleave half-lines.
func (c *Choker) WriteStatus(w io.Writer, now time.Time) error {
	var b strings.Builder
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	}
	if c.leechOnly {
		fmt.Fprintf(&b, "choker: leech-only, nobody unchoked; %d peers\n", len(c.peers))
	} else {
		by := "download"
		if c.seeding != nil && c.seeding() {
			by = "upload"
		}
		fmt.Fprintf(&b, "choker: %d/%d slots taken (%d regular + 1 optimistic), ranked by %s rate; %d peers; last rechoke %s\n",
			c.unchoked, c.slots+1, c.slots, by, len(c.peers), ago(c.lastRechoke))
	}
	if c.optimistic != nil {
		state := "unchoked"
		if !c.peers[c.optimistic].unchoked {
			state = "choked, not interested"
		}
		fmt.Fprintf(&b, "  optimistic %s since %s (%s)\n", c.optimistic, ago(c.optSince), state)
	}
	type line struct {
		name  string
		since time.Time
		p     Peer
	}
	var held []line
	for p, s := range c.peers {
		if s.unchoked {
			held = append(held, line{p.String(), s.since, p})
		}
	}
	slices.SortFunc(held, func(a, b line) int { return cmp.Compare(a.name, b.name) })
	for _, l := range held {
		kind := "regular"
		if l.p == c.optimistic {
			kind = "optimistic"
		}
		fmt.Fprintf(&b, "  unchoked %s (%s) since %s, down %.0f B/s, up %.0f B/s\n",
			l.name, kind, ago(l.since), l.p.DownRate(), l.p.UpRate())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
