package wire

import (
	"fmt"
	"io"

	"github.com/shoal-p2p/shoal/piece"
)

// Protocol is the handshake's protocol string (BEP 3).
const Protocol = "BitTorrent protocol"

// Handshake sizes. The header is what an accepting side must read before
// it can answer, because it names the torrent.
const (
	HandshakeHeaderLen = 1 + len(Protocol) + 8 + 20
	HandshakeLen       = HandshakeHeaderLen + 20
)

// Reserved is the handshake's 8 reserved bytes, in which each side flags
// the extensions it speaks. An extension is in use only if both sides set
// its bit.
type Reserved [8]byte

// Reserved bits we know, as (byte, mask) pairs in wire order.
const (
	extendedByte, extendedMask = 5, 0x10 // BEP 10
	fastByte, fastMask         = 7, 0x04 // BEP 6
	v2Byte, v2Mask             = 7, 0x10 // BEP 52 (upgrade to v2)
	dhtByte, dhtMask           = 7, 0x01 // BEP 5
)

// Extended reports the BEP 10 extension protocol bit.
func (r Reserved) Extended() bool { return r[extendedByte]&extendedMask != 0 }

// Fast reports the BEP 6 Fast extension bit.
func (r Reserved) Fast() bool { return r[fastByte]&fastMask != 0 }

// V2 reports the BEP 52 bit: the peer speaks v2 and, on a hybrid torrent,
// may answer a v1 info-hash with the v2 one.
func (r Reserved) V2() bool { return r[v2Byte]&v2Mask != 0 }

// DHT reports the BEP 5 bit: the peer will send a port message.
func (r Reserved) DHT() bool { return r[dhtByte]&dhtMask != 0 }

func setBit(b *byte, mask byte, on bool) {
	if on {
		*b |= mask
	} else {
		*b &^= mask
	}
}

// SetExtended sets or clears the BEP 10 bit.
func (r *Reserved) SetExtended(on bool) { setBit(&r[extendedByte], extendedMask, on) }

// SetFast sets or clears the BEP 6 bit.
func (r *Reserved) SetFast(on bool) { setBit(&r[fastByte], fastMask, on) }

// SetV2 sets or clears the BEP 52 bit.
func (r *Reserved) SetV2(on bool) { setBit(&r[v2Byte], v2Mask, on) }

// SetDHT sets or clears the BEP 5 bit.
func (r *Reserved) SetDHT(on bool) { setBit(&r[dhtByte], dhtMask, on) }

// Handshake is the first thing each side sends.
type Handshake struct {
	Reserved Reserved
	// InfoHash is the v1 SHA-1 info-hash, or for v2 the SHA-256 info-hash
	// truncated to 20 bytes (see TruncateV2).
	InfoHash [20]byte
	PeerID   [20]byte
}

// TruncateV2 gives the 20-byte form of a v2 info-hash that BEP 52 puts in
// handshakes (and trackers and the DHT), which only have room for 20 bytes.
// The rule lives with the hash type, as piece.Hash.Truncated; this stays so
// code that speaks only the wire format need not convert.
func TruncateV2(infoHash [32]byte) [20]byte { return piece.Hash(infoHash).Truncated() }

// AppendHandshake appends the full 68-byte handshake.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, byte(len(Protocol)))
	dst = append(dst, Protocol...)
	dst = append(dst, h.Reserved[:]...)
	dst = append(dst, h.InfoHash[:]...)
	return append(dst, h.PeerID[:]...)
}

// WriteHandshake writes the full handshake in one Write.
func WriteHandshake(w io.Writer, h Handshake) error {
	var b [HandshakeLen]byte
	if _, err := w.Write(AppendHandshake(b[:0], h)); err != nil {
		return fmt.Errorf("wire: write handshake: %w", err)
	}
	return nil
}

// ReadHandshakeHeader reads the protocol string, reserved bytes and
// info-hash, exactly HandshakeHeaderLen bytes and no more, leaving the peer
// id unread. The accepting side needs the info-hash to pick the torrent
// (and may refuse) before it sends its own handshake; ReadPeerID finishes.
//
// It checks the length byte before reading on, so a peer speaking something
// else (an encrypted stream, HTTP) is refused after one byte instead of
// when the deadline expires. Deadlines are the caller's job.
func ReadHandshakeHeader(r io.Reader) (reserved Reserved, infoHash [20]byte, err error) {
	var b [HandshakeHeaderLen]byte
	if _, err = io.ReadFull(r, b[:1]); err != nil {
		return reserved, infoHash, fmt.Errorf("wire: read handshake: %w", err)
	}
	if int(b[0]) != len(Protocol) {
		return reserved, infoHash, fmt.Errorf("wire: handshake: protocol string length %d, want %d: %w", b[0], len(Protocol), ErrBadHandshake)
	}
	if _, err = io.ReadFull(r, b[1:]); err != nil {
		return reserved, infoHash, fmt.Errorf("wire: read handshake: %w", noEOF(err))
	}
	if p := b[1 : 1+len(Protocol)]; string(p) != Protocol {
		return reserved, infoHash, fmt.Errorf("wire: handshake: protocol %q, want %q: %w", p, Protocol, ErrBadHandshake)
	}
	copy(reserved[:], b[1+len(Protocol):])
	copy(infoHash[:], b[1+len(Protocol)+8:])
	return reserved, infoHash, nil
}

// ReadPeerID reads the 20-byte peer id that ends a handshake.
func ReadPeerID(r io.Reader) (id [20]byte, err error) {
	if _, err = io.ReadFull(r, id[:]); err != nil {
		return id, fmt.Errorf("wire: read handshake peer id: %w", noEOF(err))
	}
	return id, nil
}

// ReadHandshake reads a whole handshake, for the connecting side, which
// has already sent its own and knows which torrent it asked for.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var h Handshake
	var err error
	if h.Reserved, h.InfoHash, err = ReadHandshakeHeader(r); err != nil {
		return h, err
	}
	h.PeerID, err = ReadPeerID(r)
	return h, err
}
