package tracker

import (
	"encoding/binary"
	"errors"
)

// The UDP tracker protocol (BEP 15) with the option area of BEP 41. All
// integers are big-endian. Every request starts with a 16-byte header:
// connection_id (the protocol magic on connect), action, transaction_id;
// every answer with action and transaction_id.

// udpProtocolID is the magic a connect request carries as connection_id.
const udpProtocolID uint64 = 0x41727101980

// BEP 15 actions.
const (
	udpConnect  uint32 = 0
	udpAnnounce uint32 = 1
	udpScrape   uint32 = 2
	udpError    uint32 = 3
)

// Sizes of the fixed parts of the packets.
const (
	udpHeaderLen       = 16 // connection_id, action, transaction_id
	udpConnectLen      = 16
	udpAnnounceLen     = 98 // a BEP 15 announce without BEP 41 options
	udpAnnounceRespLen = 20 // action, transaction_id, interval, leechers, seeders
	udpScrapeRespLen   = 8  // action, transaction_id
	udpScrapeEntryLen  = 12 // seeders, completed, leechers
)

// Limits of the server.
const (
	// udpMaxPacket is the largest request the server reads; anything
	// longer is dropped unanswered. A BEP 15 announce is 98 bytes and a
	// scrape of udpMaxScrapeHashes is 1,496; the rest leaves room for BEP
	// 41 URL data.
	udpMaxPacket = 2048
	// udpMaxScrapeHashes is the most info-hashes one scrape may ask for:
	// what fits in a 1,500-byte packet, the number BEP 15 gives.
	udpMaxScrapeHashes = 74
	// udpMaxPeers4 and udpMaxPeers6 cap the peers of one announce answer
	// so that it stays under 1,220 bytes, within one Ethernet frame: a
	// fragmented answer is lost whole when any fragment is.
	udpMaxPeers4 = 200
	udpMaxPeers6 = 66
	// udpMaxReply is the largest answer the server builds.
	udpMaxReply = udpAnnounceRespLen + udpMaxPeers4*6
)

// BEP 41 option types. Every other type has a length byte and is skipped.
const (
	udpOptEnd     = 0
	udpOptNOP     = 1
	udpOptURLData = 2
)

// BEP 15 announce events, which number them differently from Event.
const (
	udpEventNone      = 0
	udpEventCompleted = 1
	udpEventStarted   = 2
	udpEventStopped   = 3
)

var errUDPShort = errors.New("udp tracker packet too short")

// udpAnnounceReq is a parsed announce request. URLData aliases the packet
// when the URL came in one option, else urlBuf.
type udpAnnounceReq struct {
	InfoHash   InfoHash
	PeerID     PeerID
	Downloaded uint64
	Left       uint64
	Uploaded   uint64
	Event      Event
	IP         [4]byte // 0.0.0.0: the sender's address
	Key        uint32
	NumWant    int32 // negative: the tracker's default
	Port       uint16
	URLData    []byte

	urlBuf [udpMaxPacket]byte
}

// parseUDPAnnounce decodes an announce request (header included) into a. It
// never allocates: the server parses one per packet.
func parseUDPAnnounce(b []byte, a *udpAnnounceReq) error {
	if len(b) < udpAnnounceLen {
		return errUDPShort
	}
	be := binary.BigEndian
	copy(a.InfoHash[:], b[16:36])
	copy(a.PeerID[:], b[36:56])
	a.Downloaded = be.Uint64(b[56:])
	a.Left = be.Uint64(b[64:])
	a.Uploaded = be.Uint64(b[72:])
	switch be.Uint32(b[80:]) {
	case udpEventNone:
		a.Event = EventNone
	case udpEventCompleted:
		a.Event = EventCompleted
	case udpEventStarted:
		a.Event = EventStarted
	case udpEventStopped:
		a.Event = EventStopped
	default:
		return errBadEvent
	}
	copy(a.IP[:], b[84:88])
	a.Key = be.Uint32(b[88:])
	a.NumWant = int32(be.Uint32(b[92:]))
	a.Port = be.Uint16(b[96:])
	a.URLData = parseUDPOptions(b[udpAnnounceLen:], a.urlBuf[:0])
	return nil
}

// parseUDPOptions returns the concatenated URLData of the BEP 41 options
// in opts, appending to buf only when the URL is split over several
// options. A truncated option ends the list rather than failing the
// announce: the options are optional, and a URL cut short only matters to
// a private tracker, which then refuses the passkey.
func parseUDPOptions(opts, buf []byte) []byte {
	var url []byte
	parts := 0
	for len(opts) > 0 {
		typ := opts[0]
		switch typ {
		case udpOptEnd:
			return url
		case udpOptNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return url
		}
		data := opts[2 : 2+int(opts[1])]
		opts = opts[2+int(opts[1]):]
		if typ != udpOptURLData {
			continue
		}
		parts++
		switch parts {
		case 1:
			url = data
		case 2:
			buf = append(append(buf, url...), data...)
			url = buf
		default:
			url = append(url, data...)
		}
	}
	return url
}

// udpEventCode is e in BEP 15 numbering.
func udpEventCode(e Event) uint32 {
	switch e {
	case EventCompleted:
		return udpEventCompleted
	case EventStarted:
		return udpEventStarted
	case EventStopped:
		return udpEventStopped
	}
	return udpEventNone
}

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendUDPHeader appends a request header.
func appendUDPHeader(b []byte, connID uint64, action, tx uint32) []byte {
	return appendU32(appendU32(appendU64(b, connID), action), tx)
}

// appendUDPConnectReq appends a connect request.
func appendUDPConnectReq(b []byte, tx uint32) []byte {
	return appendUDPHeader(b, udpProtocolID, udpConnect, tx)
}

// appendUDPAnnounceReq appends an announce request carrying urlData (the
// tracker URL's path and query) in BEP 41 URLData options of at most 255
// bytes each.
func appendUDPAnnounceReq(b []byte, connID uint64, tx uint32, r *AnnounceRequest, urlData string) []byte {
	b = appendUDPHeader(b, connID, udpAnnounce, tx)
	b = append(b, r.InfoHash[:]...)
	b = append(b, r.PeerID[:]...)
	b = appendU64(b, r.Downloaded)
	b = appendU64(b, r.Left)
	b = appendU64(b, r.Uploaded)
	b = appendU32(b, udpEventCode(r.Event))
	var ip uint32
	if r.IP.Is4() {
		ip = binary.BigEndian.Uint32(r.IP.AsSlice())
	}
	b = appendU32(b, ip)
	b = appendU32(b, r.Key)
	numWant := int32(-1)
	switch {
	case r.NumWant > 0:
		numWant = int32(min(r.NumWant, 1<<31-1))
	case r.NumWant < 0:
		numWant = 0
	}
	b = appendU32(b, uint32(numWant))
	b = binary.BigEndian.AppendUint16(b, r.Port)
	for len(urlData) > 0 {
		n := min(len(urlData), 255)
		b = append(b, udpOptURLData, byte(n))
		b = append(b, urlData[:n]...)
		urlData = urlData[n:]
	}
	return b
}

// appendUDPScrapeReq appends a scrape request for hashes.
func appendUDPScrapeReq(b []byte, connID uint64, tx uint32, hashes []InfoHash) []byte {
	b = appendUDPHeader(b, connID, udpScrape, tx)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// appendUDPConnectResp appends a connect answer.
func appendUDPConnectResp(b []byte, tx uint32, connID uint64) []byte {
	return appendU64(appendU32(appendU32(b, udpConnect), tx), connID)
}

// appendUDPAnnounceResp appends the fixed part of an announce answer; the
// peers follow, 6 bytes each for IPv4 and 18 for IPv6.
func appendUDPAnnounceResp(b []byte, tx uint32, interval uint32, sw Swarm) []byte {
	b = appendU32(appendU32(b, udpAnnounce), tx)
	b = appendU32(b, interval)
	b = appendU32(b, clampU32(sw.Incomplete))
	return appendU32(b, clampU32(sw.Complete))
}

// appendUDPScrapeEntry appends one torrent's counts to a scrape answer.
func appendUDPScrapeEntry(b []byte, sw Swarm) []byte {
	return appendU32(appendU32(appendU32(b, clampU32(sw.Complete)), clampU32(sw.Downloaded)), clampU32(sw.Incomplete))
}

// appendUDPError appends an error answer with msg cut to at most limit
// bytes in all, so that the answer to a packet nobody proved to have sent
// can be kept no larger than that packet.
func appendUDPError(b []byte, tx uint32, msg string, limit int) []byte {
	b = appendU32(appendU32(b, udpError), tx)
	if room := limit - 8; len(msg) > room {
		msg = msg[:max(room, 0)]
	}
	return append(b, msg...)
}

func clampU32(n int) uint32 {
	return uint32(min(max(n, 0), 1<<31-1))
}
