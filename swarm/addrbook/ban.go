package addrbook

import (
	"fmt"
	"net/netip"
)

// Key names what a ban (or a strike) applies to: a peer id, an address
// with its port, or an IP. It is comparable, for use as a map key.
type Key struct {
	kind keyKind
	addr netip.AddrPort // the IP alone has port 0
	id   [20]byte
}

type keyKind uint8

const (
	keyIP keyKind = iota
	keyAddrPort
	keyID
)

// String is the key as the status dump and logs show it: "id:HEX",
// "IP:PORT" or "IP".
func (k Key) String() string {
	switch k.kind {
	case keyID:
		return fmt.Sprintf("id:%x", k.id)
	case keyAddrPort:
		return k.addr.String()
	}
	return k.addr.Addr().String()
}

func ipKey(ip netip.Addr) Key          { return Key{kind: keyIP, addr: netip.AddrPortFrom(ip.Unmap(), 0)} }
func addrPortKey(a netip.AddrPort) Key { return Key{kind: keyAddrPort, addr: unmap(a)} }

// Keys names what a ban of the peer at addr with id holds. A peer is
// banned by its IP; but peers on loopback share one IP (on one machine,
// in tests, every peer does), so there the ban holds the peer id and the
// address instead. The first key is the one that tells whether the peer
// is banned already.
func Keys(addr netip.AddrPort, id [20]byte) []Key {
	if addr.Addr().Unmap().IsLoopback() {
		return []Key{{kind: keyID, id: id}, addrPortKey(addr)}
	}
	return []Key{ipKey(addr.Addr())}
}

// Ban bans keys (from Keys) and reports whether the peer is newly banned,
// so that a peer struck again by bad pieces still in flight counts once.
// The list is bounded by Config.MaxBanKeys: once full it takes no more
// keys, and the oldest bans stay.
func (b *Book) Ban(keys ...Key) bool {
	if len(keys) == 0 {
		return false
	}
	fresh := !b.bans[keys[0]]
	for _, k := range keys {
		if len(b.bans) < b.cfg.MaxBanKeys {
			b.bans[k] = true
		}
	}
	if fresh {
		b.numBans++
	}
	return fresh
}

// Banned reports whether the peer at addr with id is banned.
func (b *Book) Banned(addr netip.AddrPort, id [20]byte) bool {
	if len(b.bans) == 0 {
		return false
	}
	for _, k := range Keys(addr, id) {
		if b.bans[k] {
			return true
		}
	}
	return false
}

// bannedAddr reports whether dialing addr would reach a banned peer as
// far as the address can tell (the id is known only after the handshake).
func (b *Book) bannedAddr(addr netip.AddrPort) bool {
	if len(b.bans) == 0 {
		return false
	}
	return b.bans[addrPortKey(addr)] || b.bans[ipKey(addr.Addr())]
}

// NumBans counts the peers banned, each once however many keys its ban
// holds.
func (b *Book) NumBans() int { return b.numBans }
