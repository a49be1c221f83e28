// Package wire is the BitTorrent peer wire protocol codec: the handshake
// (BEP 3), the core messages (BEP 3), the Fast extension (BEP 6), the DHT
// port message (BEP 5), the extension protocol (BEP 10) with its ut_metadata
// (BEP 9) and ut_pex (BEP 11) payloads, and the v2 hash messages (BEP 52).
//
// The package only frames, encodes and decodes. It keeps no session state:
// which messages are legal when (a request while choked, a second bitfield,
// a block nobody asked for) is the session's business. Decoding is bounded so
// a hostile peer cannot make it allocate more than the configured limits, and
// the hot path (reading blocks, writing requests) does not allocate.
package wire

import (
	"errors"
	"fmt"
)

// ID is a message id, the first byte of every message except keep-alive.
type ID uint8

// Message ids. The numbering comes from the BEPs named on each group; ids
// are shared across extensions, so they live in one space.
const (
	// BEP 3.
	Choke         ID = 0
	Unchoke       ID = 1
	Interested    ID = 2
	NotInterested ID = 3
	Have          ID = 4
	Bitfield      ID = 5
	Request       ID = 6
	Piece         ID = 7
	Cancel        ID = 8
	// Port is the BEP 5 DHT port announcement; DHT-enabled peers send it
	// unprompted, so a codec that refused it would drop good peers.
	Port ID = 9
	// BEP 6 (Fast extension).
	Suggest     ID = 13
	HaveAll     ID = 14
	HaveNone    ID = 15
	Reject      ID = 16
	AllowedFast ID = 17
	// BEP 10 (extension protocol).
	Extended ID = 20
	// BEP 52 (v2 hash transfer).
	HashRequest ID = 21
	Hashes      ID = 22
	HashReject  ID = 23
)

var idNames = [...]string{
	Choke: "choke", Unchoke: "unchoke", Interested: "interested",
	NotInterested: "not interested", Have: "have", Bitfield: "bitfield",
	Request: "request", Piece: "piece", Cancel: "cancel", Port: "port",
	Suggest: "suggest piece", HaveAll: "have all", HaveNone: "have none",
	Reject: "reject request", AllowedFast: "allowed fast",
	Extended: "extended", HashRequest: "hash request", Hashes: "hashes",
	HashReject: "hash reject",
}

// String names the message for errors and logs.
func (id ID) String() string {
	if int(id) < len(idNames) && idNames[id] != "" {
		return idNames[id]
	}
	return fmt.Sprintf("message %d", uint8(id))
}

// Known reports whether the codec understands id, so a caller can decide
// before sending whether AppendMessage would refuse it.
func (id ID) Known() bool {
	return int(id) < len(idNames) && idNames[id] != ""
}

// Sizes fixed by the protocol.
const (
	// BlockSize is the unit every client requests data in (BEP 3, BEP 52:
	// v2 merkle leaves are 16 KiB too).
	BlockSize = 16384
	// MaxRequestLength is the largest request length peers honour; BEP 3
	// notes that clients close connections asking for more. The session
	// must enforce it (and the block's range) on incoming requests.
	MaxRequestLength = BlockSize
	// HashSize is the length of a BEP 52 SHA-256 hash.
	HashSize = 32
	// ExtendedHandshakeID is the extended message id of the BEP 10
	// handshake; other ids are chosen by each peer in its "m" dictionary.
	ExtendedHandshakeID = 0
)

// Payload lengths (after the id byte) of the fixed-size messages.
const (
	lenIndex    = 4              // have, suggest, allowed fast
	lenRequest  = 12             // request, cancel, reject
	lenPort     = 2              // port
	lenPieceHdr = 8              // piece, before the block
	lenHashHdr  = HashSize + 4*4 // hash request/reject, hashes before the hashes
)

// Message is one decoded (or to-be-encoded) message. It is a flat struct
// rather than an interface per message type so that reading and writing
// never box values on the heap: the session switches on ID and reads the
// fields that message uses.
//
// Field use by ID:
//
//	Have, Suggest, AllowedFast      Index
//	Request, Cancel, Reject         Index, Begin, Length
//	Piece                           Index, Begin, Payload (the block)
//	Bitfield                        Payload (the bits, MSB first)
//	Port                            Port
//	Extended                        ExtendedID, Payload (after the id byte)
//	HashRequest, HashReject         PiecesRoot, BaseLayer, Index, Length, ProofLayers
//	Hashes                          as HashRequest, plus Payload (n×32-byte hashes)
//
// A Message returned by Reader.ReadMessage has Payload pointing into the
// reader's buffer; see ReadMessage for how long it stays valid.
type Message struct {
	// KeepAlive marks the zero-length message; ID is meaningless then.
	// It is a separate flag because every id value, including 0 (choke),
	// is taken.
	KeepAlive bool
	ID        ID
	// ExtendedID is the BEP 10 extended message id (0 is the handshake).
	ExtendedID uint8
	Port       uint16
	Index      uint32
	Begin      uint32
	Length     uint32
	// BaseLayer and ProofLayers are the BEP 52 hash-request fields.
	BaseLayer   uint32
	ProofLayers uint32
	PiecesRoot  [HashSize]byte
	Payload     []byte
}

// Hash returns the i'th 32-byte hash of a Hashes message; it panics if i is
// out of range, like a slice index would.
func (m *Message) Hash(i int) (h [HashSize]byte) {
	copy(h[:], m.Payload[i*HashSize:(i+1)*HashSize])
	return h
}

// NumHashes is the number of 32-byte hashes in a Hashes message's payload.
func (m *Message) NumHashes() int { return len(m.Payload) / HashSize }

// Errors the codec returns. They are wrapped with details; compare with
// errors.Is.
var (
	// ErrMessageTooLong means a length prefix exceeded the reader's limit
	// for that message. The body has not been read, so the stream is out
	// of step and the connection must be dropped.
	ErrMessageTooLong = errors.New("message too long")
	// ErrBadLength means a message's length does not fit its id (a have
	// with 3 bytes, hashes not a multiple of 32). The stream is out of
	// step; drop the connection.
	ErrBadLength = errors.New("bad message length")
	// ErrBadHandshake means the peer did not speak "BitTorrent protocol".
	ErrBadHandshake = errors.New("bad handshake")
	// ErrUnknownID is matched (via errors.Is) by UnknownIDError.
	ErrUnknownID = errors.New("unknown message id")
)

// UnknownIDError reports a message id the codec does not know. The reader
// has consumed the whole message, so the stream is still in step and the
// caller may ignore the message and keep reading (BEP 10 peers may send
// ids from extensions we never heard of) or drop the peer.
//
// It is a byte-sized value type so returning it does not allocate.
type UnknownIDError ID

// Error describes the id.
func (e UnknownIDError) Error() string {
	return fmt.Sprintf("wire: unknown message id %d", uint8(e))
}

// Is makes errors.Is(err, ErrUnknownID) true.
func (e UnknownIDError) Is(target error) bool { return target == ErrUnknownID }
