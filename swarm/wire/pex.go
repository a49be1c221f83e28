package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/anacrolix/torrent/bencode"
)

// PexFlags describe a peer in a ut_pex added list (BEP 11).
type PexFlags uint8

// PEX flag bits (BEP 11).
const (
	PexEncryption PexFlags = 0x01 // prefers encryption
	PexSeed       PexFlags = 0x02 // is a seed or upload-only
	PexUTP        PexFlags = 0x04 // supports uTP
	PexHolepunch  PexFlags = 0x08 // supports ut_holepunch
	PexReachable  PexFlags = 0x10 // the sender connected out to it
)

// PexPeer is one added peer.
type PexPeer struct {
	Addr  netip.AddrPort
	Flags PexFlags
}

// PexMsg is a ut_pex (BEP 11) payload. IPv4 and IPv6 peers share one list
// each way; Marshal splits them into added/added6 and dropped/dropped6 by
// address family, so callers never juggle the parallel lists.
type PexMsg struct {
	Added   []PexPeer
	Dropped []netip.AddrPort
}

type pexWire struct {
	Added    []byte `bencode:"added,omitempty"`
	AddedF   []byte `bencode:"added.f,omitempty"`
	Added6   []byte `bencode:"added6,omitempty"`
	Added6F  []byte `bencode:"added6.f,omitempty"`
	Dropped  []byte `bencode:"dropped,omitempty"`
	Dropped6 []byte `bencode:"dropped6,omitempty"`
}

// Marshal encodes the payload. IPv4-mapped IPv6 addresses are sent as
// IPv4, which is what they are. A peer without a valid address is an
// error: it would encode to garbage.
func (p *PexMsg) Marshal() ([]byte, error) {
	var w pexWire
	for i, a := range p.Added {
		ip := a.Addr.Addr().Unmap()
		switch {
		case !a.Addr.IsValid():
			return nil, fmt.Errorf("wire: encode ut_pex: added[%d] has no address", i)
		case ip.Is4():
			w.Added = appendCompact(w.Added, ip, a.Addr.Port())
			w.AddedF = append(w.AddedF, byte(a.Flags))
		default:
			w.Added6 = appendCompact(w.Added6, ip, a.Addr.Port())
			w.Added6F = append(w.Added6F, byte(a.Flags))
		}
	}
	for i, a := range p.Dropped {
		ip := a.Addr().Unmap()
		switch {
		case !a.IsValid():
			return nil, fmt.Errorf("wire: encode ut_pex: dropped[%d] has no address", i)
		case ip.Is4():
			w.Dropped = appendCompact(w.Dropped, ip, a.Port())
		default:
			w.Dropped6 = appendCompact(w.Dropped6, ip, a.Port())
		}
	}
	b, err := bencode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode ut_pex: %w", err)
	}
	return b, nil
}

func appendCompact(dst []byte, ip netip.Addr, port uint16) []byte {
	dst = append(dst, ip.AsSlice()...)
	return binary.BigEndian.AppendUint16(dst, port)
}

// ParsePex decodes a ut_pex payload. A compact list whose length is not a
// whole number of addresses is an error. A flags list whose length does
// not match its address list is ignored (all flags zero), as libtorrent
// does, because flags are only hints.
func ParsePex(payload []byte) (PexMsg, error) {
	var w pexWire
	if err := unmarshalDict(payload, &w); err != nil {
		return PexMsg{}, fmt.Errorf("wire: ut_pex: %w", err)
	}
	var p PexMsg
	var err error
	if p.Added, err = parseAdded(p.Added, "added", w.Added, w.AddedF, 4); err != nil {
		return PexMsg{}, err
	}
	if p.Added, err = parseAdded(p.Added, "added6", w.Added6, w.Added6F, 16); err != nil {
		return PexMsg{}, err
	}
	if p.Dropped, err = parseCompact(p.Dropped, "dropped", w.Dropped, 4); err != nil {
		return PexMsg{}, err
	}
	if p.Dropped, err = parseCompact(p.Dropped, "dropped6", w.Dropped6, 16); err != nil {
		return PexMsg{}, err
	}
	return p, nil
}

func parseAdded(dst []PexPeer, key string, b, flags []byte, ipLen int) ([]PexPeer, error) {
	addrs, err := parseCompact(nil, key, b, ipLen)
	if err != nil {
		return nil, err
	}
	if len(flags) != len(addrs) {
		flags = nil
	}
	for i, a := range addrs {
		var f PexFlags
		if flags != nil {
			f = PexFlags(flags[i])
		}
		dst = append(dst, PexPeer{Addr: a, Flags: f})
	}
	return dst, nil
}

func parseCompact(dst []netip.AddrPort, key string, b []byte, ipLen int) ([]netip.AddrPort, error) {
	step := ipLen + 2
	if len(b)%step != 0 {
		return nil, fmt.Errorf("wire: ut_pex: %s is %d bytes, not a multiple of %d", key, len(b), step)
	}
	for ; len(b) > 0; b = b[step:] {
		ip, _ := netip.AddrFromSlice(b[:ipLen])
		dst = append(dst, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[ipLen:])))
	}
	return dst, nil
}
