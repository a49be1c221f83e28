package swarm

import "time"

// withholdFor is how long a piece a peer refused is not asked of it again,
// unless it announces the piece anew or unchokes us anew first. Long enough
// that a seeder that cannot read a file sees a few requests a minute from
// us, not a ping-pong of requests and rejects; short enough that a peer
// whose refusal had another cause is asked again soon.
const withholdFor = 15 * time.Second

// withhold handles a reject for piece pc. A reject that follows a choke
// is BEP 6 housekeeping and says nothing of the piece; one from a peer
// that unchokes us says it cannot serve the piece, and asking again at
// once would only be refused again. So the piece is taken out of what we
// ask this peer for, for now: others may serve it, and a seeder whose file
// comes back announces it again with a have. Called with t.mu held.
func (p *peer) withhold(pc uint32) {
	t := p.t
	if p.peerChoking || !t.picker.PeerHas(p.pid, int(pc)) {
		return
	}
	t.picker.HandleWithdraw(p.pid, int(pc))
	if p.withheld == nil {
		p.withheld = map[uint32]time.Time{}
	}
	p.withheld[pc] = time.Now()
}

// restoreWithheld asks the peer again for the pieces withheld from it for
// withholdFor, or all of them. Called with t.mu held.
func (p *peer) restoreWithheld(now time.Time, all bool) {
	if len(p.withheld) == 0 {
		return
	}
	back := false
	for pc, at := range p.withheld {
		if all || now.Sub(at) >= withholdFor {
			delete(p.withheld, pc)
			p.t.picker.HandleHave(p.pid, int(pc))
			back = true
		}
	}
	if back && !all {
		p.fill() // on an unchoke, the caller fills
	}
}
