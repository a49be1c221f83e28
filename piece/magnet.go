package piece

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Magnet is a magnet link (BEP 9, BEP 52): the info-hashes and hints for
// finding the torrent. A v2 link carries Hash, a v1 link V1Hash, a hybrid
// link both; the zero hash means absent.
type Magnet struct {
	Hash     Hash     // urn:btmh, the v2 info-hash
	V1Hash   V1Hash   // urn:btih, the v1 info-hash
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
	// btmh first, then btih, as CLI.md shows a hybrid's link.
	b.WriteString("magnet:?")
	sep := ""
	if m.HasV2() {
		b.WriteString("xt=")
		b.WriteString(btmhPrefix)
		b.WriteString(hex.EncodeToString(m.Hash[:]))
		sep = "&"
	}
	if m.HasV1() {
		b.WriteString(sep + "xt=urn:btih:")
		b.WriteString(m.V1Hash.String())
	}
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

// HasV1 reports whether the link carries a v1 info-hash.
func (m Magnet) HasV1() bool { return m.V1Hash != V1Hash{} }

// HasV2 reports whether the link carries a v2 info-hash.
func (m Magnet) HasV2() bool { return m.Hash != Hash{} }

// Magnet returns the torrent's magnet link with every info-hash it has,
// its name and its trackers.
func (m *MetaInfo) Magnet() Magnet {
	return Magnet{Hash: m.Info.Hash, V1Hash: m.Info.V1Hash, Name: m.Info.Name, Trackers: m.Trackers()}
}

// Matches reports whether info is the torrent the link names: every hash
// the link carries must be info's. A v1 link fetched as a hybrid matches;
// an info dict without v1 pieces never matches a btih link.
func (m Magnet) Matches(info *Info) bool {
	if m.HasV2() && (!info.HasV2() || info.Hash != m.Hash) {
		return false
	}
	if m.HasV1() && (!info.HasV1() || info.V1Hash != m.V1Hash) {
		return false
	}
	return m.HasV1() || m.HasV2()
}

// ErrBadMagnet is wrapped by every error ParseMagnet returns.
var ErrBadMagnet = errors.New("bad magnet")

// ParseMagnet reads a magnet link with a urn:btmh (v2), a urn:btih (v1, 40
// hex digits or 32 base32 letters) or both (hybrid), a bare URN, or a bare
// info-hash: 64 hex digits for v2, 40 for v1.
func ParseMagnet(s string) (Magnet, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "magnet:") {
		var m Magnet
		err := m.addXT(s)
		return m, err
	}
	q := strings.TrimPrefix(s, "magnet:")
	q = strings.TrimPrefix(q, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		return Magnet{}, fmt.Errorf("%w: %v", ErrBadMagnet, err)
	}
	var m Magnet
	for _, xt := range vals["xt"] {
		l := strings.ToLower(xt)
		if !strings.HasPrefix(l, "urn:btih:") && !strings.HasPrefix(l, "urn:btmh:") {
			continue // another network's URN (ed2k, sha1): not ours to read
		}
		if err := m.addXT(xt); err != nil {
			return Magnet{}, err
		}
	}
	if !m.HasV1() && !m.HasV2() {
		return Magnet{}, fmt.Errorf("%w: no xt=urn:btih:… or xt=urn:btmh:1220… parameter", ErrBadMagnet)
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

// addXT reads one hash: "urn:btmh:1220<64 hex>", "urn:btih:<40 hex or 32
// base32>", or a bare 64- or 40-hex hash. A second, different hash of a
// kind already seen is an error: the link would name two torrents.
func (m *Magnet) addXT(s string) error {
	l := strings.ToLower(s)
	switch {
	case strings.HasPrefix(l, "urn:btih:"):
		return m.setV1(s, s[len("urn:btih:"):], true)
	case strings.HasPrefix(l, "urn:btmh:"):
		mh := s[len("urn:btmh:"):]
		if len(mh) < 4 || !strings.EqualFold(mh[:4], "1220") {
			return fmt.Errorf("%w: %q: multihash is not sha2-256 of 32 bytes (want prefix 1220)", ErrBadMagnet, s)
		}
		return m.setV2(s, mh[4:])
	case len(s) == 40:
		return m.setV1(s, s, false)
	case len(s) == 64:
		return m.setV2(s, s)
	}
	return fmt.Errorf("%w: %q: want a magnet link, 64 hex digits (v2) or 40 (v1), have %d characters", ErrBadMagnet, s, len(s))
}

func (m *Magnet) setV2(s, hexPart string) error {
	var h Hash
	if len(hexPart) != 64 {
		return fmt.Errorf("%w: %q: want 64 hex digits, have %d", ErrBadMagnet, s, len(hexPart))
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadMagnet, s, err)
	}
	if h == (Hash{}) {
		// Zero stands for "absent" in a Magnet; no torrent hashes to it.
		return fmt.Errorf("%w: %q: an all-zero hash", ErrBadMagnet, s)
	}
	if m.HasV2() && m.Hash != h {
		return fmt.Errorf("%w: two different btmh hashes", ErrBadMagnet)
	}
	m.Hash = h
	return nil
}

func (m *Magnet) setV1(s, enc string, base32OK bool) error {
	var h V1Hash
	switch {
	case len(enc) == 40:
		if _, err := hex.Decode(h[:], []byte(enc)); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrBadMagnet, s, err)
		}
	case len(enc) == 32 && base32OK:
		n, err := base32.StdEncoding.Decode(h[:], []byte(strings.ToUpper(enc)))
		if err != nil || n != 20 {
			return fmt.Errorf("%w: %q: not base32: %v", ErrBadMagnet, s, err)
		}
	default:
		return fmt.Errorf("%w: %q: a btih hash is 40 hex digits or 32 base32 letters, have %d characters", ErrBadMagnet, s, len(enc))
	}
	if h == (V1Hash{}) {
		return fmt.Errorf("%w: %q: an all-zero hash", ErrBadMagnet, s)
	}
	if m.HasV1() && m.V1Hash != h {
		return fmt.Errorf("%w: two different btih hashes", ErrBadMagnet)
	}
	m.V1Hash = h
	return nil
}
