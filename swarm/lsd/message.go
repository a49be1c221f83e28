// Package lsd is BitTorrent Local Service Discovery (BEP 14): it announces
// the torrents a client serves to the LSD multicast groups of the local
// network and hears the announces of its neighbours, so peers on one LAN
// find each other with no tracker, DHT or internet.
//
// It multicasts only on the interfaces that the peer listener's address
// covers (see selectScope): a client listening on 127.0.0.1 or [::1] never
// sends a datagram to another interface. Datagrams are sent with a TTL
// (hop limit) of 1, so they never pass a router.
package lsd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// The LSD multicast groups and port (BEP 14): org-local IPv4 and
// site-local IPv6.
var (
	GroupV4 = netip.MustParseAddrPort("239.192.152.143:6771")
	GroupV6 = netip.MustParseAddrPort("[ff15::efc0:988f]:6771")
)

const (
	// MaxDatagram is the longest announce accepted; a longer datagram is
	// dropped unread. An announce fits one Ethernet frame.
	MaxDatagram = 1500
	// maxPacket is the longest announce we send: BEP 14 asks for 1400
	// bytes at most, to stay clear of fragmentation.
	maxPacket = 1400
	// maxCookie bounds the cookie we keep from a datagram.
	maxCookie = 64
)

// Announce is one parsed BT-SEARCH datagram.
type Announce struct {
	// Port is the announcing peer's BitTorrent port; its address is the
	// datagram's source.
	Port uint16
	// Hashes are the 20-byte info-hashes announced, in order.
	Hashes [][20]byte
	// Cookie is the sender's opaque cookie, empty if none; we skip our
	// own announces by it when multicast loops them back.
	Cookie string
}

// Errors of Parse; every one means the datagram is dropped.
var (
	errRequestLine = errors.New("not a BT-SEARCH request")
	errHeader      = errors.New("header line without a colon")
	errPort        = errors.New("bad or missing Port")
	errInfohash    = errors.New("bad Infohash")
	errNoInfohash  = errors.New("no Infohash")
	errTooLong     = errors.New("datagram too long")
)

var requestLine = []byte("BT-SEARCH * HTTP/1.1")

// Parse reads a BT-SEARCH announce. Header names are matched without
// regard to case and unknown headers are ignored, as in HTTP; lines may
// end in CRLF or a bare LF. A datagram longer than MaxDatagram, without
// the request line, without a valid Port or without an Infohash, or with
// a malformed one, is refused.
func Parse(b []byte) (Announce, error) {
	var a Announce
	if len(b) > MaxDatagram {
		return a, errTooLong
	}
	line, rest := nextLine(b)
	if !bytes.Equal(line, requestLine) {
		return a, errRequestLine
	}
	havePort := false
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the blank line that ends the headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return a, errHeader
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "port"):
			n, err := strconv.ParseUint(string(value), 10, 16)
			if err != nil || n == 0 {
				return a, errPort
			}
			a.Port, havePort = uint16(n), true
		case asciiEqualFold(name, "infohash"):
			var ih [20]byte
			if len(value) != 40 {
				return a, errInfohash
			}
			if _, err := hex.Decode(ih[:], value); err != nil {
				return a, errInfohash
			}
			a.Hashes = append(a.Hashes, ih)
		case asciiEqualFold(name, "cookie"):
			if len(value) > maxCookie {
				value = value[:maxCookie]
			}
			a.Cookie = string(value)
		}
	}
	if !havePort {
		return a, errPort
	}
	if len(a.Hashes) == 0 {
		return a, errNoInfohash
	}
	return a, nil
}

// nextLine splits b after its first line, dropping the line's CRLF or LF.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// asciiEqualFold reports whether b is s, ignoring ASCII case; s is lower
// case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// packets renders announces of hashes for group, port and cookie, as many
// as it takes to keep each within maxPacket bytes.
func packets(group netip.AddrPort, port uint16, cookie string, hashes [][20]byte) [][]byte {
	head := fmt.Sprintf("BT-SEARCH * HTTP/1.1\r\nHost: %s\r\nPort: %d\r\n", group, port)
	tail := "cookie: " + cookie + "\r\n\r\n\r\n"
	const perHash = len("Infohash: \r\n") + 40
	var out [][]byte
	for len(hashes) > 0 {
		n := max(1, (maxPacket-len(head)-len(tail))/perHash)
		n = min(n, len(hashes))
		b := make([]byte, 0, len(head)+n*perHash+len(tail))
		b = append(b, head...)
		for _, ih := range hashes[:n] {
			b = append(b, "Infohash: "...)
			b = hex.AppendEncode(b, ih[:])
			b = append(b, "\r\n"...)
		}
		b = append(b, tail...)
		out = append(out, b)
		hashes = hashes[n:]
	}
	return out
}
