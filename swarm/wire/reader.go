package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Default limits for a Reader; see Limits.
const (
	// DefaultMaxBitfield allows 8M pieces while the piece count is still
	// unknown (a magnet download gets the bitfield before the metadata).
	DefaultMaxBitfield = 1 << 20
	// DefaultMaxExtended is far above any legitimate extension message
	// (ut_metadata pieces are 16 KiB, handshakes and PEX a few hundred
	// bytes) yet caps what one message can make us buffer.
	DefaultMaxExtended = 1 << 20
	// DefaultMaxHashes bounds a BEP 52 hashes message: 8192 hashes is
	// 256 KiB, more than a sane request (a piece layer chunk plus its
	// proof) produces.
	DefaultMaxHashes = 8192
)

// Limits bound what a Reader accepts. They exist so that a peer cannot make
// us allocate or buffer more than we chose to: every length prefix is
// checked against them before any of the body is read. Zero fields take the
// defaults.
type Limits struct {
	// MaxBlock is the largest block a piece message may carry; default
	// BlockSize. Raise it only if we send larger requests ourselves.
	MaxBlock int
	// NumPieces, when known, makes a bitfield exactly ceil(NumPieces/8)
	// bytes with its spare bits clear, as BEP 3 requires. Zero means not
	// yet known; then MaxBitfield applies. See Reader.SetNumPieces.
	NumPieces int
	// MaxBitfield caps a bitfield while NumPieces is unknown; default
	// DefaultMaxBitfield.
	MaxBitfield int
	// MaxExtended caps an extended message's payload (after the extended
	// id byte), and also the body of a message with an unknown id, which
	// the reader must swallow to stay in step; default DefaultMaxExtended.
	MaxExtended int
	// MaxHashes caps the number of hashes in a hashes message; default
	// DefaultMaxHashes.
	MaxHashes int
	// MaxReadAhead lets the read-ahead buffer grow, doubling from
	// ReadBufferSize, up to this many bytes while the peer keeps it full
	// (each read fills all the room there is, so more was waiting). A
	// fast peer is then read in large chunks, with far fewer system calls
	// per byte; a slow one keeps the small buffer. Default (and at most)
	// ReadBufferSize: no growth.
	MaxReadAhead int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBlock <= 0 {
		l.MaxBlock = BlockSize
	}
	if l.MaxBitfield <= 0 {
		l.MaxBitfield = DefaultMaxBitfield
	}
	if l.MaxExtended <= 0 {
		l.MaxExtended = DefaultMaxExtended
	}
	if l.MaxHashes <= 0 {
		l.MaxHashes = DefaultMaxHashes
	}
	l.MaxReadAhead = max(l.MaxReadAhead, ReadBufferSize)
	return l
}

// shrinkAfter is how many short reads in a row (under a quarter of the
// buffer each) take a grown buffer back to its first size.
const shrinkAfter = 16

// ReadBufferSize is the read-ahead of a Reader: four piece messages, so
// that one read(2) takes in several blocks and a burst of small messages
// (haves, requests) costs one call instead of three each. Measured on a
// 64 MiB loopback download: 241 reads per MiB without read-ahead, 32 with
// 64 KiB; 128 KiB halved that again but was no faster, and the buffer is
// memory held per connection whatever its traffic (64 KiB is 3 MiB for 50
// peers).
const ReadBufferSize = 64 << 10

// Reader decodes messages from one connection with bounded memory. It
// reads ahead into one buffer of ReadBufferSize (more if the block limit
// needs it), and decodes messages in place, so steady-state reading does
// not allocate and a piece's block is not copied. The buffer grows, up to
// the limits, only when a single larger message arrives.
//
// Because it reads ahead, the Reader must be the only reader of r from
// then on. A Reader is not safe for concurrent use.
type Reader struct {
	r   io.Reader
	lim Limits
	max uint32 // largest body any id may have under lim
	// buf[head:tail] is received but not yet decoded.
	buf        []byte
	head, tail int
	bits       int // NumPieces, copied so SetNumPieces need not touch lim
	// full says the last read filled all the room in buf: the peer sends
	// faster than we read, and the buffer may grow (MaxReadAhead). small
	// counts the reads in a row that brought under a quarter of the
	// buffer.
	full  bool
	small int
	// base is the buffer's first size, which it shrinks back to once the
	// peer no longer fills a larger one.
	base int
}

// NewReader returns a Reader on r with the given limits (zero fields take
// the defaults).
func NewReader(r io.Reader, lim Limits) *Reader {
	rd := &Reader{r: r}
	rd.setLimits(lim)
	rd.base = max(ReadBufferSize, 4+1+lenPieceHdr+rd.lim.MaxBlock)
	rd.buf = make([]byte, rd.base)
	return rd
}

func (r *Reader) setLimits(lim Limits) {
	r.lim = lim.withDefaults()
	r.bits = r.lim.NumPieces
	m := 1 + lenPieceHdr + r.lim.MaxBlock
	m = max(m, 1+r.lim.MaxBitfield, 2+r.lim.MaxExtended, 1+lenHashHdr+HashSize*r.lim.MaxHashes)
	if r.bits > 0 {
		m = max(m, 1+(r.bits+7)/8)
	}
	r.max = uint32(min(m, math.MaxInt32))
}

// SetNumPieces tells the reader the torrent's piece count once the
// metadata is known, so later bitfields are checked exactly. n ≤ 0 goes
// back to the MaxBitfield cap.
func (r *Reader) SetNumPieces(n int) {
	r.lim.NumPieces = max(n, 0)
	r.setLimits(r.lim)
}

// Ready reports whether the next message is whole in the buffer, so that
// the next ReadMessage neither reads nor moves the buffer: payloads
// returned before stay valid through it. A caller holding payloads (blocks
// gathered for one write) uses it to know when to be done with them.
func (r *Reader) Ready() bool {
	have := r.tail - r.head
	if have < 4 {
		return false
	}
	return uint64(binary.BigEndian.Uint32(r.buf[r.head:])) <= uint64(have-4)
}

// ReadMessage reads the next message.
//
// Payload (the block of a piece, the bits of a bitfield, the body of an
// extended or hashes message) points into the reader's buffer and is only
// valid until the next call to ReadMessage, or, while Ready reports true
// before each call, until the first call it does not: copy what must
// outlive it. That is the price of not allocating per block.
//
// At a clean message boundary the end of the stream gives io.EOF; in the
// middle of a message it gives io.ErrUnexpectedEOF. A message whose id the
// codec does not know is read in full and returned, with an UnknownIDError;
// the stream is still in step and the caller may carry on. Every other
// error (ErrMessageTooLong, ErrBadLength, a malformed field, an I/O error)
// leaves the stream out of step, and the connection must be closed.
func (r *Reader) ReadMessage() (Message, error) {
	if err := r.fill(4); err != nil {
		if errors.Is(err, io.EOF) && r.tail > r.head {
			err = io.ErrUnexpectedEOF // part of a length prefix
		}
		return Message{}, err
	}
	n := binary.BigEndian.Uint32(r.buf[r.head:])
	r.head += 4
	if n == 0 {
		return Message{KeepAlive: true}, nil
	}
	if n > r.max {
		return Message{}, fmt.Errorf("wire: length prefix %d exceeds limit %d: %w", n, r.max, ErrMessageTooLong)
	}
	if err := r.fill(1); err != nil {
		return Message{}, fmt.Errorf("wire: reading message id: %w", noEOF(err))
	}
	id := ID(r.buf[r.head])
	r.head++
	plen := int(n - 1)
	if err := r.checkLen(id, plen); err != nil {
		return Message{}, err
	}
	if err := r.fill(plen); err != nil {
		return Message{}, fmt.Errorf("wire: reading %v body (%d bytes): %w", id, plen, noEOF(err))
	}
	body := r.buf[r.head : r.head+plen : r.head+plen]
	r.head += plen
	return r.decode(id, body)
}

// fill makes at least need bytes available at buf[head:], reading as many
// more as r has ready and the buffer holds: that read-ahead is what saves
// the system calls. Only the caller's limit checks bound need, so the
// buffer grows only for a message already vetted.
func (r *Reader) fill(need int) error {
	have := r.tail - r.head
	if have >= need {
		return nil
	}
	size := len(r.buf)
	if r.small >= shrinkAfter && size > r.base && max(need, have) <= r.base {
		// Reads in a row brought less than a quarter of a buffer grown
		// for a fast peer or one large message: the peer slowed down,
		// and a connection should not keep that buffer while idle. A
		// fast peer's odd short read does not count: growing back
		// would cost a copy and garbage each time.
		size = r.base
		nb := make([]byte, size)
		r.tail = copy(nb, r.buf[r.head:r.tail])
		r.head, r.buf = 0, nb
	}
	if r.full && size < r.lim.MaxReadAhead {
		// The last read found more waiting than there was room for:
		// read this peer in larger chunks.
		size = min(2*size, r.lim.MaxReadAhead)
	}
	if need > size {
		// Grows only for bitfields, extended and hashes messages, once
		// per size step, and never beyond the limits checked already.
		size = min(max(need, 2*len(r.buf)), int(r.max))
	}
	if size > len(r.buf) {
		nb := make([]byte, size)
		r.tail = copy(nb, r.buf[r.head:r.tail])
		r.head, r.buf = 0, nb
	} else if r.head > 0 {
		// What is left is part of one message: moving it to the front
		// lets this read fill the rest of the buffer.
		r.tail = copy(r.buf, r.buf[r.head:r.tail])
		r.head = 0
	}
	n, err := io.ReadAtLeast(r.r, r.buf[r.tail:], need-have)
	r.tail += n
	r.full = r.tail == len(r.buf)
	if n < len(r.buf)/4 {
		r.small++
	} else {
		r.small = 0
	}
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func tooLong(id ID, n, limit int) error {
	return fmt.Errorf("wire: %v: payload %d bytes exceeds limit %d: %w", id, n, limit, ErrMessageTooLong)
}

func badLen(id ID, n, want int) error {
	return fmt.Errorf("wire: %v: payload %d bytes, want %d: %w", id, n, want, ErrBadLength)
}

// checkLen vets a payload length against the id before the body is read,
// so nothing is buffered for a message we would refuse anyway.
func (r *Reader) checkLen(id ID, n int) error {
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		if n != 0 {
			return badLen(id, n, 0)
		}
	case Have, Suggest, AllowedFast:
		if n != lenIndex {
			return badLen(id, n, lenIndex)
		}
	case Request, Cancel, Reject:
		if n != lenRequest {
			return badLen(id, n, lenRequest)
		}
	case Port:
		if n != lenPort {
			return badLen(id, n, lenPort)
		}
	case HashRequest, HashReject:
		if n != lenHashHdr {
			return badLen(id, n, lenHashHdr)
		}
	case Piece:
		if n < lenPieceHdr {
			return fmt.Errorf("wire: piece: payload %d bytes, want at least %d: %w", n, lenPieceHdr, ErrBadLength)
		}
		if n-lenPieceHdr > r.lim.MaxBlock {
			return fmt.Errorf("wire: piece: block %d bytes exceeds limit %d: %w", n-lenPieceHdr, r.lim.MaxBlock, ErrMessageTooLong)
		}
	case Bitfield:
		if r.bits > 0 {
			if want := (r.bits + 7) / 8; n != want {
				return fmt.Errorf("wire: bitfield: %d bytes, want %d for %d pieces: %w", n, want, r.bits, ErrBadLength)
			}
		} else if n > r.lim.MaxBitfield {
			return tooLong(id, n, r.lim.MaxBitfield)
		}
	case Extended:
		if n < 1 {
			return fmt.Errorf("wire: extended: empty payload, want an extended id: %w", ErrBadLength)
		}
		if n-1 > r.lim.MaxExtended {
			return tooLong(id, n-1, r.lim.MaxExtended)
		}
	case Hashes:
		if n < lenHashHdr || (n-lenHashHdr)%HashSize != 0 {
			return fmt.Errorf("wire: hashes: payload %d bytes, want %d + a multiple of %d: %w", n, lenHashHdr, HashSize, ErrBadLength)
		}
		if k := (n - lenHashHdr) / HashSize; k > r.lim.MaxHashes {
			return fmt.Errorf("wire: hashes: %d hashes exceeds limit %d: %w", k, r.lim.MaxHashes, ErrMessageTooLong)
		}
	default:
		// Unknown ids are swallowed so the caller may ignore them, but
		// only up to the extended cap: they are extension traffic too.
		if n > r.lim.MaxExtended {
			return tooLong(id, n, r.lim.MaxExtended)
		}
	}
	return nil
}

// decode fills a Message from a body whose length checkLen accepted.
func (r *Reader) decode(id ID, b []byte) (Message, error) {
	m := Message{ID: id}
	be := binary.BigEndian
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
	case Have, Suggest, AllowedFast:
		m.Index = be.Uint32(b)
	case Request, Cancel, Reject:
		m.Index = be.Uint32(b)
		m.Begin = be.Uint32(b[4:])
		m.Length = be.Uint32(b[8:])
	case Port:
		m.Port = be.Uint16(b)
	case Piece:
		m.Index = be.Uint32(b)
		m.Begin = be.Uint32(b[4:])
		m.Payload = b[lenPieceHdr:]
	case Bitfield:
		if r.bits > 0 && r.bits%8 != 0 {
			if spare := b[len(b)-1] & (0xff >> (r.bits % 8)); spare != 0 {
				return Message{}, fmt.Errorf("wire: bitfield: spare bits %#02x set past piece %d", spare, r.bits)
			}
		}
		m.Payload = b
	case Extended:
		m.ExtendedID = b[0]
		m.Payload = b[1:]
	case HashRequest, HashReject, Hashes:
		copy(m.PiecesRoot[:], b)
		h := b[HashSize:]
		m.BaseLayer = be.Uint32(h)
		m.Index = be.Uint32(h[4:])
		m.Length = be.Uint32(h[8:])
		m.ProofLayers = be.Uint32(h[12:])
		if id == Hashes {
			m.Payload = b[lenHashHdr:]
			if k := len(m.Payload) / HashSize; uint64(k) < uint64(m.Length) {
				return Message{}, fmt.Errorf("wire: hashes: %d hashes, fewer than the %d base-layer hashes announced", k, m.Length)
			}
		}
	default:
		m.Payload = b
		return m, UnknownIDError(id)
	}
	return m, nil
}
