package swarm

// Dialing: the torrent's address book (package addrbook) says whom to
// dial next and when to try again; this file starts the dials and reports
// how they went.

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/addrbook"
)

// newBook returns the address book of a new torrent, with the swarm's
// limits and our listening address for BEP 40 priorities. Listening on
// all interfaces we do not know our IP as peers see it; the book then
// falls back as addrbook.Config.Self says.
func (c *Client) newBook() *addrbook.Book {
	var self netip.AddrPort
	if a, ok := c.lns[0].Addr().(*net.TCPAddr); ok {
		self = a.AddrPort()
		if self.Addr().IsUnspecified() {
			self = netip.AddrPortFrom(netip.Addr{}, self.Port())
		}
	}
	return addrbook.New(addrbook.Config{
		Self:        self,
		MaxAddrs:    maxKnownPeers,
		MaxBanKeys:  maxStrikeEntries,
		FirstRedial: firstRedial,
		MaxRedial:   maxRedialBackoff,
		Redial:      redialBackoff,
	})
}

// AddPeers offers addresses to connect to, from a source it does not
// name; known and banned ones are skipped, and at most MaxPeers
// connections are kept.
func (t *Torrent) AddPeers(addrs ...netip.AddrPort) {
	t.AddPeersFrom(addrbook.SourceUnknown, addrs...)
}

// AddPeersFrom is AddPeers for addresses that src named.
func (t *Torrent) AddPeersFrom(src PeerSource, addrs ...netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addPeersLocked(src, addrs)
}

// addFound is AddPeersFrom for addresses src found under info-hash ih
// (zero when they were not looked up by hash, as --peer's). Those a
// hybrid's v2 hash found are remembered so, and dialed with it.
func (t *Torrent) addFound(src PeerSource, ih [20]byte, addrs []netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v2 := t.info.Format == piece.FormatHybrid && ih == t.ih20
	now := time.Now()
	for _, a := range addrs {
		if !t.c.Reaches(a.Addr()) {
			continue
		}
		if t.addressBook.Add(a, src, now) && v2 {
			t.addressBook.MarkV2(a)
		}
	}
	t.dialMore()
}

// addPeersLocked is AddPeersFrom with t.mu held.
func (t *Torrent) addPeersLocked(src PeerSource, addrs []netip.AddrPort) {
	now := time.Now()
	for _, a := range addrs {
		// A family we do not listen on could not reach us back, and
		// the user kept us to the other one (Client.Reaches).
		if t.c.Reaches(a.Addr()) {
			t.addressBook.Add(a, src, now)
		}
	}
	t.dialMore()
}

// dialMore starts dials, best first, while there is room. Called with
// t.mu held.
func (t *Torrent) dialMore() {
	if t.closing || t.ctx.Err() != nil {
		return
	}
	now := time.Now()
	for t.liveCount()+t.addressBook.NumDialing() < t.maxPeers() && t.addressBook.NumDialing() < maxConcurrentDials {
		addr, ok := t.addressBook.Next(now, t.seeding)
		if !ok {
			return
		}
		t.addressBook.Dialing(addr, now)
		ih, v2bit := t.dialHash(addr)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			// On success the handshake is done and addConn has told the
			// book whether it kept the connection.
			if err := t.c.dial(t.ctx, t, addr, ih, v2bit); err != nil {
				t.mu.Lock()
				t.addressBook.Failed(addr, dialCause(err), time.Now())
				t.mu.Unlock()
				t.log.Debug("dial", "peer", addr, "err", err)
			}
		}()
	}
}

// dialCause strips "dial tcp ADDR:" from a dial error, as the caller names
// the address already.
func dialCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Err != nil {
		return op.Err
	}
	return err
}
