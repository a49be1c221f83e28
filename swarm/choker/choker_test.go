package choker

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fake is a peer as the choker sees it, with no connection behind it.
type fake struct {
	t          *testing.T
	name       string
	interested bool
	down, up   float64
	joined     time.Time
	// free is what FreeRiding answers, unless conduct is set: then the
	// real rule judges it, and a snub is recorded as swarm's peer does.
	free    bool
	conduct *Conduct
	asked   int // FreeRiding calls
	choked  bool
}

func (f *fake) Interested() bool  { return f.interested }
func (f *fake) DownRate() float64 { return f.down }
func (f *fake) UpRate() float64   { return f.up }
func (f *fake) Joined() time.Time { return f.joined }
func (f *fake) String() string    { return f.name }

func (f *fake) FreeRiding(now time.Time) bool {
	f.asked++
	if f.conduct == nil {
		return f.free
	}
	free, snubbing := f.conduct.FreeRiding(now)
	if snubbing {
		f.conduct.Snubbed = true
	}
	return free
}

func (f *fake) SetChoked(choked bool) {
	if f.choked == choked {
		f.t.Errorf("%s: SetChoked(%v) without a change", f.name, choked)
	}
	f.choked = choked
}

// t0 is the tests' epoch; old joined long before it.
var (
	t0  = time.Unix(1_000_000, 0)
	old = t0.Add(-time.Hour)
)

// rig is a choker with fake peers.
type rig struct {
	t     *testing.T
	c     *Choker
	peers []*fake
	seed  bool
}

func newRig(t *testing.T, slots int) *rig {
	r := &rig{t: t}
	r.c = New(Config{Slots: slots, Seeding: func() bool { return r.seed }, Rand: rand.New(rand.NewPCG(1, 2))})
	return r
}

// add connects a choked peer joined long ago.
func (r *rig) add(name string, interested bool, down float64) *fake {
	f := &fake{t: r.t, name: name, interested: interested, down: down, joined: old, choked: true}
	r.peers = append(r.peers, f)
	r.c.HandleConnect(f)
	return f
}

// unchoked lists the unchoked peers by name, checking on the way that the
// choker's count and record agree with what the peers were told.
func (r *rig) unchoked() string {
	r.t.Helper()
	var names []string
	n := 0
	for _, f := range r.peers {
		s, ok := r.c.peers[f]
		if ok && s.unchoked == f.choked {
			r.t.Fatalf("%s: choker says unchoked=%v, peer was told choked=%v", f.name, s.unchoked, f.choked)
		}
		if ok && s.unchoked {
			n++
			names = append(names, f.name)
		}
	}
	if n != r.c.unchoked {
		r.t.Fatalf("choker counts %d unchoked, its peers hold %d", r.c.unchoked, n)
	}
	if !r.c.leechOnly && n > r.c.slots+1 {
		r.t.Fatalf("%d unchoked with %d slots and one optimistic", n, r.c.slots)
	}
	return strings.Join(names, " ")
}

func (r *rig) want(want string) {
	r.t.Helper()
	if got := r.unchoked(); got != want {
		r.t.Fatalf("unchoked [%s], want [%s]", got, want)
	}
}

func (r *rig) optimistic() *fake {
	if r.c.optimistic == nil {
		return nil
	}
	return r.c.optimistic.(*fake)
}

// A rechoke gives the regular slots to the peers that give us most, and
// one more, drawn among the rest, the optimistic slot; never a slot to a
// peer that wants nothing.
func TestChokerRegularSlotsByRate(t *testing.T) {
	r := newRig(t, 2)
	a := r.add("a", true, 100)
	r.add("b", true, 900)
	r.add("c", true, 500)
	d := r.add("d", false, 10000)
	e := r.add("e", true, 0)
	f := r.add("f", true, 0)
	r.c.Tick(t0)
	opt := r.optimistic()
	if opt != a && opt != e && opt != f {
		t.Fatalf("optimistic %v: want one of the choked interested a, e, f", opt)
	}
	if got := r.unchoked(); !strings.Contains(got, "b c") || len(strings.Fields(got)) != 3 {
		t.Fatalf("unchoked [%s]: want b and c by rate, and %s", got, opt.name)
	}
	if !d.choked {
		t.Fatal("the uninterested d was unchoked")
	}
}

// A seeder's regular slots go to the peers that take from it fastest.
func TestChokerSeedingRanksByUpload(t *testing.T) {
	r := newRig(t, 2)
	r.seed = true
	a := r.add("a", true, 0)
	b := r.add("b", true, 0)
	c := r.add("c", true, 0)
	a.up, b.up, c.up = 10, 5000, 900
	r.c.Tick(t0)
	if r.optimistic() != a {
		t.Fatalf("optimistic %v: want a, the slowest taker", r.optimistic())
	}
	r.want("a b c")
	// A rechoke within the optimistic round keeps every slot as it is.
	r.c.Tick(t0.Add(RechokeInterval))
	r.want("a b c")
}

// The optimistic peer keeps its slot through the rechokes of its round,
// then yields it to another; over the rounds every choked interested
// peer has its turn.
func TestChokerOptimisticRotation(t *testing.T) {
	r := newRig(t, 1)
	r.add("reg", true, 100)
	r.add("x", true, 0)
	r.add("y", true, 0)
	r.add("z", true, 0)
	r.add("idle", false, 0)
	r.c.Tick(t0)
	first := r.optimistic()
	if first == nil || first.name == "reg" || first.name == "idle" {
		t.Fatalf("optimistic %v: want one of x, y, z", first)
	}
	for i := 1; i < 3; i++ {
		now := t0.Add(time.Duration(i) * RechokeInterval)
		r.c.Tick(now)
		if r.optimistic() != first || first.choked {
			t.Fatalf("at %v the optimistic %s lost its slot to %v within its round", now.Sub(t0), first.name, r.optimistic())
		}
	}
	seen := map[string]int{}
	prev := first
	for i := 1; i <= 30; i++ {
		r.c.Tick(t0.Add(time.Duration(i) * OptimisticInterval))
		opt := r.optimistic()
		if opt == prev {
			t.Fatalf("round %d: %s drawn twice in a row", i, opt.name)
		}
		if opt.choked {
			t.Fatalf("round %d: optimistic %s is choked", i, opt.name)
		}
		if got := r.unchoked(); got != "reg "+opt.name {
			t.Fatalf("round %d: unchoked [%s], want reg and %s", i, got, opt.name)
		}
		seen[opt.name]++
		prev = opt
	}
	for _, n := range []string{"x", "y", "z"} {
		if seen[n] == 0 {
			t.Errorf("%s never drawn: %v", n, seen)
		}
	}
	if seen["reg"]+seen["idle"] > 0 {
		t.Errorf("a regular or an uninterested peer drawn: %v", seen)
	}
}

// A peer that joined within the last optimistic round has three tickets
// in the draw to the others' one.
func TestChokerOptimisticFavoursNewcomers(t *testing.T) {
	r := newRig(t, 1)
	now := t0
	cands := []candidate{
		{p: &fake{name: "new", joined: now.Add(-OptimisticInterval / 2)}},
		{p: &fake{name: "old1", joined: old}},
		{p: &fake{name: "old2", joined: old}},
		{p: &fake{name: "old3", joined: now.Add(-OptimisticInterval)}},
	}
	const draws = 6000
	got := map[string]int{}
	for range draws {
		got[r.c.pickOptimistic(cands, now).String()]++
	}
	// Expected: new 1/2, each other 1/6.
	if f := float64(got["new"]) / draws; f < 0.45 || f > 0.55 {
		t.Errorf("newcomer drawn %.2f of the time, want about 0.5: %v", f, got)
	}
	for _, n := range []string{"old1", "old2", "old3"} {
		if f := float64(got[n]) / draws; f < 0.13 || f > 0.20 {
			t.Errorf("%s drawn %.2f of the time, want about 0.17: %v", n, f, got)
		}
	}
}

// A free-rider never gets a regular slot however fast it gives, but may
// be drawn for the optimistic one, and keeps that one between rechokes.
func TestChokerFreeRiderOnlyOptimistic(t *testing.T) {
	r := newRig(t, 2)
	fr := r.add("fr", true, 9000)
	fr.free = true
	r.add("b", true, 10)
	r.add("c", true, 5)
	r.c.Tick(t0)
	if r.optimistic() != fr {
		t.Fatalf("optimistic %v: want fr, the only choked interested peer", r.optimistic())
	}
	r.want("fr b c")
	// Past the grace, between rechokes: the optimistic slot is owed to
	// anybody, so it stays.
	r.c.Tick(t0.Add(5 * time.Second))
	r.want("fr b c")
}

// A peer that turns out to be free-riding loses a regular slot it holds
// at the first tick past its grace, not at the next rechoke, and the slot
// goes to a waiting peer that reciprocates.
func TestChokerFreeRiderLosesSlotBetweenRechokes(t *testing.T) {
	r := newRig(t, 1)
	r.c.Tick(t0) // a rechoke with nobody interested
	a, b, c := r.add("a", false, 0), r.add("b", false, 0), r.add("c", false, 50)
	for _, f := range []*fake{a, b, c} {
		f.interested = true
		r.c.HandleInterested(f, t0.Add(time.Second))
	}
	r.want("a b") // the regular and the optimistic slot, both free
	a.free = true
	r.c.Tick(t0.Add(2 * time.Second))
	r.want("a b") // within its grace
	r.c.Tick(t0.Add(time.Second + Grace + time.Millisecond))
	r.want("b c")
}

// A newly interested peer takes a free slot at once; when they are all
// taken it waits, and a free-rider never takes one this way.
func TestChokerFastUnchoke(t *testing.T) {
	r := newRig(t, 1)
	now := t0
	fr := r.add("fr", true, 0)
	fr.free = true
	r.c.HandleInterested(fr, now)
	r.want("")
	idle := r.add("idle", false, 0)
	r.c.HandleInterested(idle, now) // it said so, then changed its mind
	r.want("")
	a, b, c := r.add("a", true, 0), r.add("b", true, 0), r.add("c", true, 0)
	for _, f := range []*fake{a, b, c} {
		r.c.HandleInterested(f, now)
	}
	r.want("a b") // a regular slot and the optimistic one
	r.c.HandleInterested(a, now)
	r.want("a b")
	stranger := &fake{t: t, name: "stranger", interested: true, choked: true}
	r.c.HandleInterested(stranger, now)
	if !stranger.choked || stranger.asked != 0 {
		t.Fatal("a peer never connected was unchoked or judged")
	}
}

// A slot freed by a peer that lost interest or left goes at once to the
// waiting peer that gives us most and does not free-ride; a refusal choke
// leaves its slot free.
func TestChokerSlotHandOver(t *testing.T) {
	r := newRig(t, 1)
	now := t0
	a, b := r.add("a", true, 0), r.add("b", true, 0)
	r.c.HandleInterested(a, now)
	r.c.HandleInterested(b, now)
	r.want("a b")
	r.add("c", true, 10)
	d := r.add("d", true, 50)
	e := r.add("e", true, 99)
	e.free = true
	r.add("g", false, 1000)

	a.interested = false
	r.c.HandleNotInterested(a, now)
	r.want("b d")
	r.c.HandleDisconnect(b, now)
	r.want("c d")
	r.c.HandleDisconnect(e, now) // choked: nothing to hand over
	r.want("c d")

	h := r.add("h", true, 5)
	r.c.Choke(d)
	r.want("c")
	if !h.choked {
		t.Fatal("a refusal choke handed its slot over")
	}
	r.c.Choke(d) // already choked: no second choke on the wire
	r.c.Choke(b) // gone
	r.want("c")
	// The next event fills it.
	r.c.HandleInterested(h, now)
	r.want("c h")
}

// The optimistic peer leaving frees its title as well as its slot.
func TestChokerOptimisticLeaves(t *testing.T) {
	r := newRig(t, 1)
	r.add("reg", true, 100)
	o := r.add("o", true, 0)
	w := r.add("w", false, 7)
	w.free = true
	r.c.Tick(t0)
	if r.optimistic() != o {
		t.Fatalf("optimistic %v: want o, the only choked interested peer", r.optimistic())
	}
	r.want("reg o")
	w.interested = true
	r.c.HandleInterested(w, t0.Add(time.Second))
	r.want("reg o") // no free slot, and it free-rides anyway
	r.c.HandleDisconnect(o, t0.Add(time.Second))
	if r.c.optimistic != nil {
		t.Fatalf("the departed o is still optimistic")
	}
	r.want("reg") // the only waiting peer free-rides: it waits for a draw
	r.c.Tick(t0.Add(2 * RechokeInterval))
	if r.optimistic() != w {
		t.Fatalf("optimistic %v after o left: want w", r.optimistic())
	}
	r.want("reg w")
}

// A peer that has what we want and keeps us choked past the grace is
// snubbing us: it loses its regular slot at the next tick, and stays a
// free-rider until it unchokes us; then a rechoke ranks it like anyone.
func TestChokerSnubbing(t *testing.T) {
	r := newRig(t, 1)
	r.c.Tick(t0)
	s := r.add("snubber", false, 0)
	s.joined = t0
	s.conduct = &Conduct{Joined: t0, WeWant: true, ChokesUs: true}
	s.interested = true
	r.c.HandleInterested(s, t0.Add(time.Second))
	r.want("snubber") // within its grace
	r.c.Tick(t0.Add(4 * time.Second))
	r.want("")
	if !s.conduct.Snubbed {
		t.Fatal("snub not recorded")
	}
	s.interested = false
	r.c.HandleNotInterested(s, t0.Add(5*time.Second))
	s.interested = true
	r.c.HandleInterested(s, t0.Add(6*time.Second))
	r.want("") // still free-riding: no free slot for it
	s.conduct.ChokesUs, s.conduct.UnchokedUs = false, true
	s.down = 1000
	r.c.Tick(t0.Add(RechokeInterval))
	r.want("snubber")
	if r.optimistic() == s {
		t.Fatal("the reformed snubber got the optimistic slot, want a regular one")
	}
}

// The free-rider rule itself.
func TestChokerConduct(t *testing.T) {
	const piece = 256 << 10
	join := t0
	late := t0.Add(Grace + time.Second)
	cases := []struct {
		name           string
		c              Conduct
		now            time.Time
		free, snubbing bool
	}{
		{"new, chokes us, within grace", Conduct{WeWant: true, ChokesUs: true}, t0.Add(Grace), false, false},
		{"chokes us past grace", Conduct{WeWant: true, ChokesUs: true}, late, true, true},
		{"chokes us, has nothing we want", Conduct{ChokesUs: true}, late, false, false},
		{"snubbed, never unchoked us", Conduct{Snubbed: true}, late, true, false},
		{"snubbed, never unchoked us, we seed", Conduct{Snubbed: true, Seeding: true}, late, true, false},
		{"snubbed once, unchoked us since", Conduct{Snubbed: true, UnchokedUs: true}, late, false, false},
		{"we seed, it chokes us", Conduct{Seeding: true, WeWant: true, ChokesUs: true}, late, false, false},
		{"we seed, it took all", Conduct{Seeding: true, Taken: 1 << 30}, late, false, false},
		{"took a piece, gave nothing", Conduct{Taken: piece, PieceLength: piece}, late, true, false},
		{"took a piece, gave an eighth", Conduct{Taken: piece, Given: piece / 8, PieceLength: piece}, late, false, false},
		{"took less than a piece", Conduct{Taken: piece - 1, PieceLength: piece}, late, false, false},
		{"took the allowance of small pieces", Conduct{Taken: MinFreeRideAllowance, PieceLength: 16 << 10}, late, true, false},
		{"took less than the allowance", Conduct{Taken: MinFreeRideAllowance - 1, PieceLength: 16 << 10}, late, false, false},
		{"took a piece, but unchoked us once", Conduct{Taken: piece, PieceLength: piece, UnchokedUs: true}, late, false, false},
	}
	for _, tc := range cases {
		tc.c.Joined = join
		free, snubbing := tc.c.FreeRiding(tc.now)
		if free != tc.free || snubbing != tc.snubbing {
			t.Errorf("%s: free=%v snubbing=%v, want %v %v", tc.name, free, snubbing, tc.free, tc.snubbing)
		}
	}
}

// A leech-only choker (negative slots) unchokes nobody, however keen, yet
// still judges every peer at a rechoke, so snubs are recorded.
func TestChokerLeechOnly(t *testing.T) {
	r := newRig(t, -1)
	a := r.add("a", true, 100)
	b := r.add("b", false, 0)
	b.joined = t0
	r.c.HandleInterested(a, t0)
	r.c.Tick(t0)
	r.c.Tick(t0.Add(RechokeInterval))
	r.c.HandleNotInterested(a, t0)
	r.c.HandleDisconnect(b, t0)
	r.want("")
	if a.asked == 0 || b.asked == 0 {
		t.Fatalf("FreeRiding asked %d and %d times at rechokes, want every peer judged", a.asked, b.asked)
	}
	var sb strings.Builder
	if err := r.c.WriteStatus(&sb, t0); err != nil || !strings.Contains(sb.String(), "leech-only") {
		t.Fatalf("status %q, %v: want leech-only", sb.String(), err)
	}
}

// Nobody interested: nobody unchoked, no optimistic peer.
func TestChokerNoInterest(t *testing.T) {
	r := newRig(t, 0)
	r.add("a", false, 100)
	r.c.Tick(t0)
	r.want("")
	if r.optimistic() != nil || r.c.slots != DefaultSlots {
		t.Fatalf("optimistic %v, %d slots", r.optimistic(), r.c.slots)
	}
}

// The status names the slots, their holders and the optimistic peer with
// its age.
func TestChokerWriteStatus(t *testing.T) {
	r := newRig(t, 1)
	r.add("10.0.0.1:6881", true, 100)
	r.add("10.0.0.2:6881", true, 0)
	r.add("10.0.0.3:6881", false, 0)
	r.c.Tick(t0)
	var sb strings.Builder
	if err := r.c.WriteStatus(&sb, t0.Add(12*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := sb.String()
	for _, want := range []string{
		"2/2 slots taken (1 regular + 1 optimistic), ranked by download rate; 3 peers; last rechoke 12s ago",
		"optimistic 10.0.0.2:6881 since 12s ago (unchoked)",
		"unchoked 10.0.0.1:6881 (regular) since 12s ago, down 100 B/s",
		"unchoked 10.0.0.2:6881 (optimistic)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.0.0.3") {
		t.Errorf("status names the choked peer:\n%s", got)
	}
}
