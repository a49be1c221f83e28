package swarm

import (
	"net/netip"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Our ids for the BEP 10 extensions we speak: peers send us these
// messages on these ids.
const (
	extMetadataID = 1
	extPexID      = 2
)

// PEX (BEP 11) pacing: the first message soon after the handshake so a new
// peer learns the swarm at once, then at most one a minute as the BEP asks.
const (
	firstPexDelay = time.Second
	pexInterval   = time.Minute
	maxPexAdded   = 50 // addresses taken from one message
)

// handleExtension dispatches an extended message sent to one of our ids.
// Called with t.mu held.
func (p *peer) handleExtension(id uint8, payload []byte) error {
	t := p.t
	switch id {
	case extMetadataID:
		msg, err := wire.ParseMetadataMsg(payload)
		if err != nil {
			return protocolError(ViolationExtension, "ut_metadata: %v", err)
		}
		if msg.Type != wire.MetadataRequest {
			return nil // we have the metadata; data and rejects are stale
		}
		info := t.info.Bytes
		n, ok := wire.MetadataPieceLen(int64(len(info)), msg.Piece)
		out := wire.MetadataMsg{Type: wire.MetadataReject, Piece: msg.Piece}
		if ok && p.metaID != 0 {
			off := msg.Piece * wire.MetadataPieceSize
			out = wire.MetadataMsg{Type: wire.MetadataData, Piece: msg.Piece, TotalSize: int64(len(info)), Data: info[off : off+n]}
		}
		if p.metaID == 0 {
			return nil // it never told us where to send the answer
		}
		if !ok {
			t.refused.add(RejectedMetadata)
		}
		b, err := out.Marshal()
		if err != nil {
			return err
		}
		p.enqueue(func(dst []byte) []byte { return wire.AppendExtended(dst, p.metaID, b) })
	case extPexID:
		if t.info.Private {
			return nil // BEP 27: peers of a private torrent come from trackers only
		}
		msg, err := wire.ParsePex(payload)
		if err != nil {
			return protocolError(ViolationExtension, "ut_pex: %v", err)
		}
		// BEP 11 allows one message a minute; more are ignored, so a peer
		// cannot flood the address list.
		now := time.Now()
		if now.Sub(p.lastPexIn) < pexInterval/2 {
			t.refused.add(IgnoredPex)
			return nil
		}
		p.lastPexIn = now
		var addrs []netip.AddrPort
		for i, a := range msg.Added {
			if i >= maxPexAdded {
				break
			}
			addrs = append(addrs, a.Addr)
		}
		t.addPeersLocked(SourcePEX, addrs)
	}
	return nil
}

// listenAddr is where the peer accepts connections: the address we dialed,
// or its IP with the port from its extension handshake.
func (p *peer) listenAddr() (netip.AddrPort, bool) {
	if p.outgoing {
		return p.addr, true
	}
	if p.listenPort != 0 {
		return netip.AddrPortFrom(p.addr.Addr(), p.listenPort), true
	}
	return netip.AddrPort{}, false
}

// maybeSendPex tells the peer which peers joined and left since the last
// message. Called with t.mu held, once a second.
func (p *peer) maybeSendPex(now time.Time) {
	if p.pexID == 0 || p.t.info.Private || now.Before(p.nextPex) {
		return
	}
	p.nextPex = now.Add(pexInterval)
	if p.pexSent == nil {
		p.pexSent = map[netip.AddrPort]bool{}
	}
	var msg wire.PexMsg
	current := map[netip.AddrPort]bool{}
	for q := range p.t.peers {
		if q == p {
			continue
		}
		a, ok := q.listenAddr()
		if !ok {
			continue
		}
		current[a] = true
		if !p.pexSent[a] && len(msg.Added) < maxPexAdded {
			msg.Added = append(msg.Added, wire.PexPeer{Addr: a})
			p.pexSent[a] = true
		}
	}
	for a := range p.pexSent {
		if !current[a] {
			msg.Dropped = append(msg.Dropped, a)
			delete(p.pexSent, a)
		}
	}
	if len(msg.Added) == 0 && len(msg.Dropped) == 0 {
		return
	}
	b, err := msg.Marshal()
	if err != nil {
		return
	}
	p.enqueue(func(dst []byte) []byte { return wire.AppendExtended(dst, p.pexID, b) })
}
