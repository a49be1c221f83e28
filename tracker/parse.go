package tracker

import (
	"net/netip"
	"strings"
)

// failure is a refusal whose text goes back to the client verbatim as the
// bencoded "failure reason". Keeping the reasons as constants means the
// refusal path allocates nothing and leaks nothing about internals.
type failure string

func (f failure) Error() string { return string(f) }

// Failure reasons. They are part of the wire protocol as users see them in
// their clients, so they stay short and stable.
const (
	errMissingInfoHash failure = "missing info_hash"
	errBadInfoHash     failure = "invalid info_hash: need 20 bytes"
	errMissingPeerID   failure = "missing peer_id"
	errBadPeerID       failure = "invalid peer_id: need 20 bytes"
	errMissingPort     failure = "missing port"
	errBadPort         failure = "invalid port"
	errBadUploaded     failure = "invalid uploaded"
	errBadDownloaded   failure = "invalid downloaded"
	errBadLeft         failure = "invalid left"
	errBadEvent        failure = "invalid event"
	errBadNumWant      failure = "invalid numwant"
	errBadCompact      failure = "invalid compact"
	errBadNoPeerID     failure = "invalid no_peer_id"
	errBadKey          failure = "invalid key"
	errDuplicate       failure = "duplicate parameter"
	errTooManyHashes   failure = "too many info_hash values in scrape"
	errFullScrape      failure = "full scrape is not supported"
	errUnregistered    failure = "unregistered torrent"
	errRateLimited     failure = "rate limited: slow down"
	errBadPasskey      failure = "invalid passkey"
	errMissingPasskey  failure = "missing passkey"
	errPeerIDInUse     failure = "peer_id in use by another peer"
	errQueryTooLong    failure = "query too long"
)

// maxKeyLen bounds the decoded "key" and "ip" parameters; real clients send
// 8 hex digits and an address literal, so anything longer is hostile.
const maxKeyLen = 64

// announceQuery is the parsed form of an announce query string.
type announceQuery struct {
	InfoHash   InfoHash
	PeerID     PeerID
	Port       uint16
	Uploaded   uint64
	Downloaded uint64
	// Left is meaningful only when HasLeft; a client that omits it is
	// treated as a leecher because it has not proved it holds everything.
	Left    uint64
	HasLeft bool
	Event   Event
	// NumWant is -1 when the client did not ask; otherwise it is already
	// clamped to the maxNumWant passed to parseAnnounce.
	NumWant  int
	Compact  bool
	NoPeerID bool
	// Key is a hash of the BEP 7 "key" parameter (0 when absent). Storing a
	// hash keeps the per-peer record fixed-size.
	Key uint32
	// IP is the "ip" parameter when it is a valid address literal; the
	// server decides whether to honour it.
	IP netip.Addr
}

// Bits for the duplicate-parameter check.
const (
	seenInfoHash = 1 << iota
	seenPeerID
	seenPort
	seenUploaded
	seenDownloaded
	seenLeft
	seenEvent
	seenNumWant
	seenCompact
	seenNoPeerID
	seenKey
	seenIP
)

// parseAnnounce parses a raw (still percent-encoded) announce query into a.
// It walks the string once and decodes into fixed arrays, because
// url.ParseQuery would allocate a map and a string per parameter on the
// tracker's hottest path. Unknown parameters are ignored, as BEP 3 expects
// clients to send extensions; repeated known parameters are refused since a
// tracker and a client could read them differently.
func parseAnnounce(q string, a *announceQuery, maxNumWant int) error {
	*a = announceQuery{NumWant: -1, Compact: true}
	var seen uint16
	mark := func(bit uint16) bool {
		dup := seen&bit != 0
		seen |= bit
		return dup
	}
	for q != "" {
		var kv string
		if i := strings.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, ""
		}
		if kv == "" {
			continue
		}
		k, v := kv, ""
		if i := strings.IndexByte(kv, '='); i >= 0 {
			k, v = kv[:i], kv[i+1:]
		}
		var ok bool
		switch k {
		case "info_hash":
			if mark(seenInfoHash) {
				return errDuplicate
			}
			if !unescape20(v, (*[20]byte)(&a.InfoHash)) {
				return errBadInfoHash
			}
		case "peer_id":
			if mark(seenPeerID) {
				return errDuplicate
			}
			if !unescape20(v, (*[20]byte)(&a.PeerID)) {
				return errBadPeerID
			}
		case "port":
			if mark(seenPort) {
				return errDuplicate
			}
			p, ok := parseUint(v)
			if !ok || p == 0 || p > 65535 {
				return errBadPort
			}
			a.Port = uint16(p)
		case "uploaded":
			if mark(seenUploaded) {
				return errDuplicate
			}
			if a.Uploaded, ok = parseUint(v); !ok {
				return errBadUploaded
			}
		case "downloaded":
			if mark(seenDownloaded) {
				return errDuplicate
			}
			if a.Downloaded, ok = parseUint(v); !ok {
				return errBadDownloaded
			}
		case "left":
			if mark(seenLeft) {
				return errDuplicate
			}
			if a.Left, ok = parseUint(v); !ok {
				return errBadLeft
			}
			a.HasLeft = true
		case "event":
			if mark(seenEvent) {
				return errDuplicate
			}
			switch v {
			case "", "empty", "paused": // BEP 21 "paused" changes nothing here.
				a.Event = EventNone
			case "started":
				a.Event = EventStarted
			case "stopped":
				a.Event = EventStopped
			case "completed":
				a.Event = EventCompleted
			default:
				return errBadEvent
			}
		case "numwant":
			if mark(seenNumWant) {
				return errDuplicate
			}
			n, ok := parseUintSaturating(v, uint64(maxNumWant))
			if !ok {
				return errBadNumWant
			}
			a.NumWant = int(n)
		case "compact":
			if mark(seenCompact) {
				return errDuplicate
			}
			if a.Compact, ok = parseBool(v); !ok {
				return errBadCompact
			}
		case "no_peer_id":
			if mark(seenNoPeerID) {
				return errDuplicate
			}
			if a.NoPeerID, ok = parseBool(v); !ok {
				return errBadNoPeerID
			}
		case "key":
			if mark(seenKey) {
				return errDuplicate
			}
			var buf [maxKeyLen]byte
			n, ok := unescape(v, buf[:])
			if !ok {
				return errBadKey
			}
			a.Key = keyHash(buf[:n])
		case "ip":
			if mark(seenIP) {
				return errDuplicate
			}
			// A hostname or garbage is ignored rather than refused: the
			// address the connection came from is always a usable fallback.
			var buf [maxKeyLen]byte
			if n, ok := unescape(v, buf[:]); ok && n > 0 {
				if ip, err := netip.ParseAddr(string(buf[:n])); err == nil && ip.Zone() == "" {
					a.IP = ip.Unmap()
				}
			}
		}
	}
	switch {
	case seen&seenInfoHash == 0:
		return errMissingInfoHash
	case seen&seenPeerID == 0:
		return errMissingPeerID
	case seen&seenPort == 0:
		return errMissingPort
	}
	return nil
}

// parseScrape appends the info_hash values of a scrape query to dst. An empty
// list is refused: BEP 48 allows a "full scrape", but on a public tracker it
// is an unbounded answer anyone can ask for.
func parseScrape(q string, dst []InfoHash, max int) ([]InfoHash, error) {
	for q != "" {
		var kv string
		if i := strings.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, ""
		}
		v, ok := strings.CutPrefix(kv, "info_hash=")
		if !ok {
			continue
		}
		var h InfoHash
		if !unescape20(v, (*[20]byte)(&h)) {
			return dst, errBadInfoHash
		}
		dup := false
		for _, o := range dst {
			if o == h {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if len(dst) >= max {
			return dst, errTooManyHashes
		}
		dst = append(dst, h)
	}
	if len(dst) == 0 {
		return dst, errFullScrape
	}
	return dst, nil
}

// keyHash folds the BEP 7 key into 32 bits (FNV-1a). Zero is reserved for
// "no key", so a hash of zero is nudged to one.
func keyHash(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	if h == 0 {
		h = 1
	}
	return h
}

// unescape20 decodes v into exactly 20 bytes.
func unescape20(v string, dst *[20]byte) bool {
	n, ok := unescape(v, dst[:])
	if !ok || n != len(dst) {
		return false
	}
	// unescape stops with ok=false when dst is too small, so n==20 with
	// ok==true means the whole value fit exactly.
	return true
}

// unescape percent-decodes a query value (with '+' as space, the form
// encoding clients use) into dst. It reports false on a malformed escape or
// when the decoded value does not fit, so a hostile length costs at most
// len(dst) steps past the limit.
func unescape(v string, dst []byte) (int, bool) {
	n := 0
	for i := 0; i < len(v); i++ {
		if n == len(dst) {
			return n, false
		}
		c := v[i]
		switch c {
		case '%':
			if i+2 >= len(v) {
				return n, false
			}
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return n, false
			}
			c = hi<<4 | lo
			i += 2
		case '+':
			c = ' '
		}
		dst[n] = c
		n++
	}
	return n, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseUint parses a non-empty decimal without sign, refusing overflow.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseUintSaturating parses a decimal of any length, clamping it to max, so
// that an absurd numwant is served (with max peers) instead of refused.
func parseUintSaturating(s string, max uint64) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= max {
			n = n*10 + uint64(c-'0')
		}
	}
	return min(n, max), true
}

func parseBool(s string) (bool, bool) {
	switch s {
	case "1":
		return true, true
	case "0":
		return false, true
	}
	return false, false
}
