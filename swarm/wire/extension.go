package wire

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/anacrolix/torrent/bencode"
)

// Extension names we speak, as they appear in the "m" dictionary.
const (
	ExtMetadata = "ut_metadata" // BEP 9
	ExtPex      = "ut_pex"      // BEP 11
)

// ExtendedHandshake is the BEP 10 handshake dictionary (extended message
// id 0). Fields other peers send that we do not model are ignored.
type ExtendedHandshake struct {
	// M maps extension names to the extended message id this side wants
	// to receive them on. An id of 0 in a later handshake disables the
	// extension, so 0 entries are kept rather than dropped.
	M map[string]uint8
	// V is the client name and version, for logs.
	V string
	// Port is the sender's listen port ("p"), 0 if not sent.
	Port uint16
	// Reqq is how many outstanding requests the sender queues, 0 if not
	// sent.
	Reqq int
	// YourIP is our address as the sender sees it, invalid if not sent.
	YourIP netip.Addr
	// IPv4 and IPv6 are the sender's own addresses, invalid if not sent.
	IPv4, IPv6 netip.Addr
	// MetadataSize is the info dictionary's size in bytes (BEP 9), 0 if
	// the sender does not have it yet.
	MetadataSize int64
	// UploadOnly says the sender is a seed or partial seed (BEP 21).
	UploadOnly bool
}

// extHandshakeWire is the bencoded shape. Cosmetic fields tolerate a wrong
// type so a client with a quirk in, say, "v" is still usable; the fields we
// act on are strict.
type extHandshakeWire struct {
	M            map[string]int64 `bencode:"m"`
	V            string           `bencode:"v,omitempty,ignore_unmarshal_type_error"`
	P            int64            `bencode:"p,omitempty"`
	Reqq         int64            `bencode:"reqq,omitempty,ignore_unmarshal_type_error"`
	YourIP       []byte           `bencode:"yourip,omitempty,ignore_unmarshal_type_error"`
	IPv4         []byte           `bencode:"ipv4,omitempty,ignore_unmarshal_type_error"`
	IPv6         []byte           `bencode:"ipv6,omitempty,ignore_unmarshal_type_error"`
	MetadataSize int64            `bencode:"metadata_size,omitempty"`
	UploadOnly   int64            `bencode:"upload_only,omitempty,ignore_unmarshal_type_error"`
}

// Marshal encodes the handshake dictionary, the payload for
// AppendExtended(dst, ExtendedHandshakeID, payload).
func (h *ExtendedHandshake) Marshal() ([]byte, error) {
	w := extHandshakeWire{
		M:            make(map[string]int64, len(h.M)),
		V:            h.V,
		P:            int64(h.Port),
		Reqq:         int64(h.Reqq),
		YourIP:       addrBytes(h.YourIP),
		IPv4:         addrBytes(h.IPv4),
		IPv6:         addrBytes(h.IPv6),
		MetadataSize: h.MetadataSize,
	}
	for k, v := range h.M {
		w.M[k] = int64(v)
	}
	if h.UploadOnly {
		w.UploadOnly = 1
	}
	b, err := bencode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode extended handshake: %w", err)
	}
	return b, nil
}

func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

// ParseExtendedHandshake decodes a BEP 10 handshake payload. Unknown keys
// are ignored; trailing bytes after the dictionary, ids outside 0..255,
// ports outside 0..65535, negative sizes and addresses that are neither 4
// nor 16 bytes are errors, because acting on them would be guesswork.
func ParseExtendedHandshake(payload []byte) (ExtendedHandshake, error) {
	var w extHandshakeWire
	if err := unmarshalDict(payload, &w); err != nil {
		return ExtendedHandshake{}, fmt.Errorf("wire: extended handshake: %w", err)
	}
	h := ExtendedHandshake{
		V:          w.V,
		UploadOnly: w.UploadOnly != 0,
	}
	if len(w.M) > 0 {
		h.M = make(map[string]uint8, len(w.M))
	}
	for k, v := range w.M {
		if v < 0 || v > 255 {
			return ExtendedHandshake{}, fmt.Errorf("wire: extended handshake: m[%q] = %d, want 0..255", k, v)
		}
		h.M[k] = uint8(v)
	}
	if w.P < 0 || w.P > 65535 {
		return ExtendedHandshake{}, fmt.Errorf("wire: extended handshake: p = %d, want 0..65535", w.P)
	}
	h.Port = uint16(w.P)
	if w.Reqq > 0 {
		h.Reqq = int(min(w.Reqq, 1<<31-1))
	}
	if w.MetadataSize < 0 {
		return ExtendedHandshake{}, fmt.Errorf("wire: extended handshake: metadata_size = %d, want ≥ 0", w.MetadataSize)
	}
	h.MetadataSize = w.MetadataSize
	var err error
	if h.YourIP, err = parseAddr("yourip", w.YourIP, 0); err != nil {
		return ExtendedHandshake{}, err
	}
	if h.IPv4, err = parseAddr("ipv4", w.IPv4, 4); err != nil {
		return ExtendedHandshake{}, err
	}
	if h.IPv6, err = parseAddr("ipv6", w.IPv6, 16); err != nil {
		return ExtendedHandshake{}, err
	}
	return h, nil
}

// parseAddr decodes a compact address of 4 or 16 bytes (only want, if
// non-zero); empty means absent.
func parseAddr(key string, b []byte, want int) (netip.Addr, error) {
	if len(b) == 0 {
		return netip.Addr{}, nil
	}
	if want == 0 && len(b) != 4 && len(b) != 16 {
		return netip.Addr{}, fmt.Errorf("wire: extended handshake: %s is %d bytes, want 4 or 16", key, len(b))
	}
	if want != 0 && len(b) != want {
		return netip.Addr{}, fmt.Errorf("wire: extended handshake: %s is %d bytes, want %d", key, len(b), want)
	}
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}

// unmarshalDict decodes payload, which must be exactly one bencoded
// dictionary, into v.
func unmarshalDict(payload []byte, v any) error {
	n, err := decodePrefix(payload, v)
	if err != nil {
		return err
	}
	if n != len(payload) {
		return fmt.Errorf("%d trailing bytes after the dictionary", len(payload)-n)
	}
	return nil
}

// decodePrefix decodes the bencoded dictionary at the start of payload
// into v and returns its length, so a caller can find data that follows
// it (ut_metadata pieces).
func decodePrefix(payload []byte, v any) (int, error) {
	if len(payload) == 0 || payload[0] != 'd' {
		return 0, errors.New("payload is not a bencoded dictionary")
	}
	err := bencode.Unmarshal(payload, v)
	var trailing bencode.ErrUnusedTrailingBytes
	switch {
	case err == nil:
		return len(payload), nil
	case errors.As(err, &trailing):
		// The bencode package documents the value as complete in this
		// case; the trailing bytes are the caller's.
		return len(payload) - trailing.NumUnusedBytes, nil
	default:
		return 0, err
	}
}
