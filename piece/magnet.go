package piece

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Magnet is a BitTorrent v2 magnet link (BEP 9, BEP 52): the info-hash and
// hints for finding the torrent.
type Magnet struct {
	Hash     Hash
	Name     string   // dn
	Trackers []string // tr
	Peers    []string // x.pe, as HOST:PORT
}

// btmhPrefix is the multihash form of a SHA-256 digest as BEP 52 magnets
// carry it: code 0x12 (sha2-256), length 0x20.
const btmhPrefix = "urn:btmh:1220"

// String returns the magnet link: xt first, then dn, tr and x.pe.
func (m Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=")
	b.WriteString(btmhPrefix)
	b.WriteString(hex.EncodeToString(m.Hash[:]))
	if m.Name != "" {
		b.WriteString("&dn=")
		b.WriteString(url.QueryEscape(m.Name))
	}
	for _, t := range m.Trackers {
		b.WriteString("&tr=")
		b.WriteString(url.QueryEscape(t))
	}
	for _, p := range m.Peers {
		// HOST:PORT goes unescaped: ':' and brackets are legal in a query,
		// and libtorrent does not unescape x.pe, so "%3A" would lose the peer.
		b.WriteString("&x.pe=")
		b.WriteString(strings.NewReplacer("%3A", ":", "%5B", "[", "%5D", "]").Replace(url.QueryEscape(p)))
	}
	return b.String()
}

// Magnet returns the torrent's magnet link with its name and trackers.
func (m *MetaInfo) Magnet() Magnet {
	return Magnet{Hash: m.Info.Hash, Name: m.Info.Name, Trackers: m.Trackers()}
}

// ErrBadMagnet is wrapped by every error ParseMagnet returns.
var ErrBadMagnet = errors.New("bad magnet")

// ParseMagnet reads a v2 magnet link, a urn:btmh:1220… URN or a bare 64-hex
// info-hash. Hybrid magnets are read through their btmh part; a v1-only
// magnet (btih alone) is refused, as shoal speaks only v2.
func ParseMagnet(s string) (Magnet, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "magnet:") {
		h, err := parseXT(s)
		return Magnet{Hash: h}, err
	}
	q := strings.TrimPrefix(s, "magnet:")
	q = strings.TrimPrefix(q, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		return Magnet{}, fmt.Errorf("%w: %v", ErrBadMagnet, err)
	}
	var m Magnet
	found, v1 := false, false
	for _, xt := range vals["xt"] {
		if strings.HasPrefix(xt, "urn:btih:") {
			v1 = true
			continue
		}
		h, err := parseXT(xt)
		if err != nil {
			return Magnet{}, err
		}
		if found && h != m.Hash {
			return Magnet{}, fmt.Errorf("%w: two different btmh hashes", ErrBadMagnet)
		}
		m.Hash, found = h, true
	}
	if !found {
		if v1 {
			return Magnet{}, fmt.Errorf("%w: only a v1 hash (urn:btih); shoal needs a v2 urn:btmh hash", ErrBadMagnet)
		}
		return Magnet{}, fmt.Errorf("%w: no xt=urn:btmh:1220… parameter", ErrBadMagnet)
	}
	m.Name = vals.Get("dn")
	m.Trackers = vals["tr"]
	for _, pe := range vals["x.pe"] {
		host, port, err := net.SplitHostPort(pe)
		if err != nil {
			return Magnet{}, fmt.Errorf("%w: x.pe %q: %v", ErrBadMagnet, pe, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return Magnet{}, fmt.Errorf("%w: x.pe %q: bad port", ErrBadMagnet, pe)
		}
		m.Peers = append(m.Peers, net.JoinHostPort(host, port))
	}
	return m, nil
}

// parseXT reads "urn:btmh:1220<64 hex>" or "<64 hex>".
func parseXT(s string) (Hash, error) {
	var h Hash
	hexPart := s
	if strings.HasPrefix(strings.ToLower(s), "urn:btmh:") {
		mh := s[len("urn:btmh:"):]
		if len(mh) < 4 || !strings.EqualFold(mh[:4], "1220") {
			return h, fmt.Errorf("%w: %q: multihash is not sha2-256 of 32 bytes (want prefix 1220)", ErrBadMagnet, s)
		}
		hexPart = mh[4:]
	}
	if len(hexPart) != 64 {
		return h, fmt.Errorf("%w: %q: want 64 hex digits, have %d", ErrBadMagnet, s, len(hexPart))
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return h, fmt.Errorf("%w: %q: %v", ErrBadMagnet, s, err)
	}
	return h, nil
}
