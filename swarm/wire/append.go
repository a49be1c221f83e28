package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The Append functions encode one whole message (length prefix included)
// onto dst and return the extended slice, so a send queue can batch many
// messages into one reused buffer and one write. None of them allocate
// unless dst has to grow.

func appendHeader(dst []byte, payloadLen int, id ID) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+payloadLen))
	return append(dst, byte(id))
}

// AppendKeepAlive appends the zero-length keep-alive message.
func AppendKeepAlive(dst []byte) []byte {
	return append(dst, 0, 0, 0, 0)
}

// AppendChoke appends a choke message.
func AppendChoke(dst []byte) []byte { return appendHeader(dst, 0, Choke) }

// AppendUnchoke appends an unchoke message.
func AppendUnchoke(dst []byte) []byte { return appendHeader(dst, 0, Unchoke) }

// AppendInterested appends an interested message.
func AppendInterested(dst []byte) []byte { return appendHeader(dst, 0, Interested) }

// AppendNotInterested appends a not interested message.
func AppendNotInterested(dst []byte) []byte { return appendHeader(dst, 0, NotInterested) }

// AppendHaveAll appends a BEP 6 have all message; only valid if both sides
// set the Fast bit.
func AppendHaveAll(dst []byte) []byte { return appendHeader(dst, 0, HaveAll) }

// AppendHaveNone appends a BEP 6 have none message; only valid if both
// sides set the Fast bit.
func AppendHaveNone(dst []byte) []byte { return appendHeader(dst, 0, HaveNone) }

func appendIndex(dst []byte, id ID, index uint32) []byte {
	dst = appendHeader(dst, lenIndex, id)
	return binary.BigEndian.AppendUint32(dst, index)
}

// AppendHave appends a have message for piece index.
func AppendHave(dst []byte, index uint32) []byte { return appendIndex(dst, Have, index) }

// AppendSuggest appends a BEP 6 suggest piece message.
func AppendSuggest(dst []byte, index uint32) []byte { return appendIndex(dst, Suggest, index) }

// AppendAllowedFast appends a BEP 6 allowed fast message.
func AppendAllowedFast(dst []byte, index uint32) []byte {
	return appendIndex(dst, AllowedFast, index)
}

func appendBlockRef(dst []byte, id ID, index, begin, length uint32) []byte {
	dst = appendHeader(dst, lenRequest, id)
	dst = binary.BigEndian.AppendUint32(dst, index)
	dst = binary.BigEndian.AppendUint32(dst, begin)
	return binary.BigEndian.AppendUint32(dst, length)
}

// AppendRequest appends a request for length bytes at begin in piece index.
// Keep length ≤ MaxRequestLength or peers will disconnect.
func AppendRequest(dst []byte, index, begin, length uint32) []byte {
	return appendBlockRef(dst, Request, index, begin, length)
}

// AppendCancel appends a cancel for an earlier request.
func AppendCancel(dst []byte, index, begin, length uint32) []byte {
	return appendBlockRef(dst, Cancel, index, begin, length)
}

// AppendReject appends a BEP 6 reject request message.
func AppendReject(dst []byte, index, begin, length uint32) []byte {
	return appendBlockRef(dst, Reject, index, begin, length)
}

// PieceHeaderSize is how many bytes AppendPieceHeader appends: the length
// prefix, the id, the index and the offset.
const PieceHeaderSize = 4 + 1 + lenPieceHdr

// AppendPieceHeader appends a piece message's prefix, id, index and begin
// but not the block, for a sender that writes the block straight from
// storage (writev, sendfile) instead of copying it into the queue. The
// blockLen bytes must follow on the wire.
func AppendPieceHeader(dst []byte, index, begin uint32, blockLen int) []byte {
	dst = appendHeader(dst, lenPieceHdr+blockLen, Piece)
	dst = binary.BigEndian.AppendUint32(dst, index)
	return binary.BigEndian.AppendUint32(dst, begin)
}

// AppendPiece appends a whole piece message carrying block.
func AppendPiece(dst []byte, index, begin uint32, block []byte) []byte {
	return append(AppendPieceHeader(dst, index, begin, len(block)), block...)
}

// AppendBitfield appends a bitfield message; bits must be exactly
// ceil(numPieces/8) bytes with the spare low bits of the last byte clear.
func AppendBitfield(dst []byte, bits []byte) []byte {
	return append(appendHeader(dst, len(bits), Bitfield), bits...)
}

// AppendPort appends a BEP 5 port message announcing our DHT port.
func AppendPort(dst []byte, port uint16) []byte {
	dst = appendHeader(dst, lenPort, Port)
	return binary.BigEndian.AppendUint16(dst, port)
}

// AppendExtended appends a BEP 10 extended message. extID must be the id
// the receiving peer advertised for the extension (ExtendedHandshakeID for
// the handshake); payload is the extension's bytes, e.g. from
// ExtendedHandshake.Marshal.
func AppendExtended(dst []byte, extID uint8, payload []byte) []byte {
	dst = appendHeader(dst, 1+len(payload), Extended)
	dst = append(dst, extID)
	return append(dst, payload...)
}

func appendHashHdr(dst []byte, id ID, extra int, root *[HashSize]byte, baseLayer, index, length, proofLayers uint32) []byte {
	dst = appendHeader(dst, lenHashHdr+extra, id)
	dst = append(dst, root[:]...)
	dst = binary.BigEndian.AppendUint32(dst, baseLayer)
	dst = binary.BigEndian.AppendUint32(dst, index)
	dst = binary.BigEndian.AppendUint32(dst, length)
	return binary.BigEndian.AppendUint32(dst, proofLayers)
}

// AppendHashRequest appends a BEP 52 hash request for length hashes from
// index in layer baseLayer of the file tree rooted at root, plus the
// uncle hashes for proofLayers layers above it.
func AppendHashRequest(dst []byte, root [HashSize]byte, baseLayer, index, length, proofLayers uint32) []byte {
	return appendHashHdr(dst, HashRequest, 0, &root, baseLayer, index, length, proofLayers)
}

// AppendHashReject appends a BEP 52 hash reject, echoing the request's
// fields so the requester can match it.
func AppendHashReject(dst []byte, root [HashSize]byte, baseLayer, index, length, proofLayers uint32) []byte {
	return appendHashHdr(dst, HashReject, 0, &root, baseLayer, index, length, proofLayers)
}

// AppendHashes appends a BEP 52 hashes message answering a hash request;
// hashes is the base-layer hashes followed by the proof hashes, 32 bytes
// each. It panics if len(hashes) is not a multiple of HashSize, as that is
// a bug in the caller, not a peer's fault.
func AppendHashes(dst []byte, root [HashSize]byte, baseLayer, index, length, proofLayers uint32, hashes []byte) []byte {
	if len(hashes)%HashSize != 0 {
		panic(fmt.Sprintf("wire: AppendHashes: %d bytes of hashes, not a multiple of %d", len(hashes), HashSize))
	}
	dst = appendHashHdr(dst, Hashes, len(hashes), &root, baseLayer, index, length, proofLayers)
	return append(dst, hashes...)
}

// AppendMessage appends m, dispatching on m.ID (or KeepAlive). It is the
// generic form of the Append functions for callers that hold Messages,
// e.g. a relay or a test; it refuses ids the codec does not know and a
// Hashes payload that is not whole hashes.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	if m.KeepAlive {
		return AppendKeepAlive(dst), nil
	}
	switch m.ID {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return appendHeader(dst, 0, m.ID), nil
	case Have, Suggest, AllowedFast:
		return appendIndex(dst, m.ID, m.Index), nil
	case Request, Cancel, Reject:
		return appendBlockRef(dst, m.ID, m.Index, m.Begin, m.Length), nil
	case Piece:
		return AppendPiece(dst, m.Index, m.Begin, m.Payload), nil
	case Bitfield:
		return AppendBitfield(dst, m.Payload), nil
	case Port:
		return AppendPort(dst, m.Port), nil
	case Extended:
		return AppendExtended(dst, m.ExtendedID, m.Payload), nil
	case HashRequest, HashReject:
		return appendHashHdr(dst, m.ID, 0, &m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers), nil
	case Hashes:
		if len(m.Payload)%HashSize != 0 {
			return dst, fmt.Errorf("wire: encode hashes: %d payload bytes, not a multiple of %d: %w", len(m.Payload), HashSize, ErrBadLength)
		}
		dst = appendHashHdr(dst, Hashes, len(m.Payload), &m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers)
		return append(dst, m.Payload...), nil
	}
	return dst, fmt.Errorf("wire: encode: %w", UnknownIDError(m.ID))
}

// WriteMessage encodes m and writes it with a single Write. It allocates a
// buffer for messages with a payload; the send path should batch with the
// Append functions instead.
func WriteMessage(w io.Writer, m Message) error {
	var small [64]byte
	b, err := AppendMessage(small[:0], m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("wire: write %v: %w", m.ID, err)
	}
	return nil
}
