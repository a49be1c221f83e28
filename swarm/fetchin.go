package swarm

// Incoming connections for a metadata fetch. While a magnet's metadata is
// fetched no Torrent is registered for its hashes, yet peers that learned
// of us (an LSD announce, a tracker, the DHT) dial us for it, and a
// seeder among them is the quickest way to the info dict: the Client
// hands such connections to the fetch, which asks them as it asks the
// peers it dials. The fetch registers an inbox under every hash of its
// link and removes it when it ends.

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// maxFetchIncoming bounds the incoming connections one fetch asks at
// once, as fetchConcurrency bounds those it dials: peers that dial in and
// stall can hold no more than this many for fetchPeerTimeout each.
const maxFetchIncoming = fetchConcurrency

// fetchInbox is where the Client hands a fetch the connections that
// named one of its hashes. Admission (admit, release) is counted under mu
// so that a connection over the bounds is refused before we answer its
// handshake.
type fetchInbox struct {
	// v2 is the link's truncated v2 hash, zero if it has none.
	v2    [20]byte
	conns chan incomingFetch // unbuffered: taken only by a running fetch
	done  chan struct{}      // closed when the fetch ends

	mu      sync.Mutex
	active  int
	perHost map[netip.Addr]int
}

// incomingFetch is a connection whose BitTorrent handshake is done, on
// its way to the fetch.
type incomingFetch struct {
	conn     net.Conn
	addr     netip.AddrPort
	reserved wire.Reserved
	v2conn   bool // the handshake settled on the v2 hash
}

// registerFetch makes incoming connections for mg's hashes go to the
// returned inbox until unregisterFetch. A hash another fetch has
// registered stays with that one.
func (c *Client) registerFetch(mg piece.Magnet) *fetchInbox {
	in := &fetchInbox{conns: make(chan incomingFetch), done: make(chan struct{}), perHost: map[netip.Addr]int{}}
	if mg.HasV2() {
		in.v2 = mg.Hash.Truncated()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetches == nil {
		c.fetches = map[[20]byte]*fetchInbox{}
	}
	for _, ih := range magnetHashes(mg) {
		if c.fetches[ih] == nil {
			c.fetches[ih] = in
		}
	}
	return in
}

// unregisterFetch removes in from the client: connections whose
// handshake is under way see done and go to the torrent, if it has been
// added meanwhile, or are closed.
func (c *Client) unregisterFetch(in *fetchInbox) {
	c.mu.Lock()
	for ih, f := range c.fetches {
		if f == in {
			delete(c.fetches, ih)
		}
	}
	c.mu.Unlock()
	close(in.done)
}

// admit counts a connection from ip, or says why there is no room for it.
func (in *fetchInbox) admit(ip netip.Addr) (Refusal, bool) {
	key, limited := ipKey(ip)
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.active >= maxFetchIncoming:
		return RefusedPeerLimit, false
	case limited && in.perHost[key] >= maxPeersPerIP:
		return RefusedPerHost, false
	}
	in.active++
	if limited {
		in.perHost[key]++
	}
	return 0, true
}

// release uncounts a connection admit let in.
func (in *fetchInbox) release(ip netip.Addr) {
	key, limited := ipKey(ip)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.active--
	if limited {
		if in.perHost[key]--; in.perHost[key] <= 0 {
			delete(in.perHost, key)
		}
	}
}

// accept is Torrent.accept for a link: its v2 hash, or its v1 hash with
// the v2 bit when it has a v2 hash, makes a v2 connection; anything else
// a v1 one. A btih-only link cannot know that the torrent has v2, and so
// never takes the upgrade.
func (in *fetchInbox) accept(ih [20]byte, r wire.Reserved) ident {
	if in.v2 != ([20]byte{}) && (ih == in.v2 || r.V2()) {
		return ident{ih: in.v2, v2: true}
	}
	return ident{ih: ih}
}

// fetchIncoming completes the handshake of conn, whose header named ih,
// one of in's hashes, and hands it to the fetch. It runs in
// handleIncoming, so the pending-handshake bounds hold until the
// handshake is done; after it, the fetch's per-peer bounds take over.
func (c *Client) fetchIncoming(conn net.Conn, pc *pendingConn, in *fetchInbox, ih [20]byte, reserved wire.Reserved) {
	addr, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	if why, ok := in.admit(addr.Addr()); !ok {
		c.log.Debug("incoming metadata peer refused", "peer", addr, "why", why)
		c.refused.add(why)
		conn.Close()
		return
	}
	handed := false
	defer func() {
		if !handed {
			in.release(addr.Addr())
		}
	}()
	idn := in.accept(ih, reserved)
	id, ok := c.answerHandshake(conn, pc, idn.ih, in.v2 != [20]byte{})
	if !ok {
		return
	}
	if id == c.peerID {
		c.refused.add(RefusedOurselves)
		conn.Close()
		return
	}
	c.pending.done(pc)
	select {
	case in.conns <- incomingFetch{conn: conn, addr: addr, reserved: reserved, v2conn: idn.v2}:
		handed = true // the fetch releases it
		return
	case <-in.done:
	case <-c.ctx.Done():
		conn.Close() // the client is closing: Close waits for us
		return
	}
	// The fetch ended while the handshake was under way: if that was
	// because it succeeded, the torrent may have been added by now, and
	// the connection is its peer's; else nobody wants it.
	c.mu.Lock()
	t := c.torrents[ih]
	c.mu.Unlock()
	if t == nil {
		c.log.Debug("incoming handshake for a fetch that has ended", "peer", addr)
		c.refused.add(RefusedUnknownTorrent)
		conn.Close()
		return
	}
	// Under the hash our handshake answered with, whatever the torrent
	// would have chosen: the peer has it already.
	tid := ident{ih: idn.ih, v2: t.speaksV2() && idn.ih == t.ih20}
	if idn.ih != t.ih20 && idn.ih != t.v1 {
		c.refused.add(RefusedWrongInfoHash)
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	t.addConn(conn, addr, reserved, id, tid, false)
}

// fetchFromIncoming asks a peer that dialed in for the metadata, as
// fetchFrom asks one we dial, with the same checks and per-peer timeout.
func (c *Client) fetchFromIncoming(ctx context.Context, mg piece.Magnet, known *piece.MetaInfo, ic incomingFetch) (*piece.MetaInfo, error) {
	f := &fetch{conn: ic.conn, stop: context.AfterFunc(ctx, func() { ic.conn.Close() })}
	ic.conn.SetDeadline(time.Now().Add(fetchPeerTimeout))
	if err := c.startFetch(f, ic.reserved); err != nil {
		f.close()
		return nil, err
	}
	return c.fetchOver(ctx, f, ic.v2conn, false, mg, known, ic.addr)
}
