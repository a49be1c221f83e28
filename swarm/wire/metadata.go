package wire

import (
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/bencode"
)

// MetadataPieceSize is the size of every ut_metadata piece but the last
// (BEP 9).
const MetadataPieceSize = 16384

// MetadataMsgType is a ut_metadata msg_type.
type MetadataMsgType int

// ut_metadata message types (BEP 9).
const (
	MetadataRequest MetadataMsgType = 0
	MetadataData    MetadataMsgType = 1
	MetadataReject  MetadataMsgType = 2
)

// ErrUnknownMetadataType is wrapped by ParseMetadataMsg for a msg_type it
// does not know; BEP 9 says such messages must be ignored, not fatal.
var ErrUnknownMetadataType = errors.New("unknown ut_metadata msg_type")

// MetadataMsg is a ut_metadata (BEP 9) extension payload.
type MetadataMsg struct {
	Type  MetadataMsgType
	Piece int
	// TotalSize is the info dictionary's size; only data messages carry it.
	TotalSize int64
	// Data is the piece's bytes, only in data messages. From
	// ParseMetadataMsg it aliases the payload passed in.
	Data []byte
}

// MetadataPieceLen is the length piece must have in metadata of totalSize
// bytes, and false if there is no such piece.
func MetadataPieceLen(totalSize int64, piece int) (int, bool) {
	if totalSize <= 0 || piece < 0 {
		return 0, false
	}
	off := int64(piece) * MetadataPieceSize
	if int64(piece) > totalSize/MetadataPieceSize || off >= totalSize {
		return 0, false
	}
	return int(min(totalSize-off, MetadataPieceSize)), true
}

// metadataWireOut is what we send: total_size only on data messages.
type metadataWireOut struct {
	MsgType   int64 `bencode:"msg_type"`
	Piece     int64 `bencode:"piece"`
	TotalSize int64 `bencode:"total_size,omitempty"`
}

// metadataWireIn uses pointers to tell a missing key from a zero.
type metadataWireIn struct {
	MsgType   *int64 `bencode:"msg_type"`
	Piece     *int64 `bencode:"piece"`
	TotalSize *int64 `bencode:"total_size"`
}

// Marshal encodes the payload: the dictionary, then for data messages the
// piece bytes. It refuses messages a peer would reject, so a bug shows up
// here rather than as a dropped connection.
func (m *MetadataMsg) Marshal() ([]byte, error) {
	w := metadataWireOut{MsgType: int64(m.Type), Piece: int64(m.Piece)}
	switch m.Type {
	case MetadataRequest, MetadataReject:
		if len(m.Data) != 0 {
			return nil, fmt.Errorf("wire: encode ut_metadata type %d: %d data bytes on a message without data", m.Type, len(m.Data))
		}
		if m.Piece < 0 {
			return nil, fmt.Errorf("wire: encode ut_metadata: piece %d", m.Piece)
		}
	case MetadataData:
		want, ok := MetadataPieceLen(m.TotalSize, m.Piece)
		if !ok {
			return nil, fmt.Errorf("wire: encode ut_metadata data: no piece %d in %d bytes", m.Piece, m.TotalSize)
		}
		if len(m.Data) != want {
			return nil, fmt.Errorf("wire: encode ut_metadata data: piece %d is %d bytes, want %d", m.Piece, len(m.Data), want)
		}
		w.TotalSize = m.TotalSize
	default:
		return nil, fmt.Errorf("wire: encode ut_metadata: msg_type %d: %w", m.Type, ErrUnknownMetadataType)
	}
	b, err := bencode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode ut_metadata: %w", err)
	}
	return append(b, m.Data...), nil
}

// ParseMetadataMsg decodes a ut_metadata payload. The dictionary has to be
// parsed to find where the piece data starts. A data message's piece must
// have exactly the length BEP 9 implies from total_size; checking
// total_size against the handshake's metadata_size is the caller's job.
func ParseMetadataMsg(payload []byte) (MetadataMsg, error) {
	var w metadataWireIn
	n, err := decodePrefix(payload, &w)
	if err != nil {
		return MetadataMsg{}, fmt.Errorf("wire: ut_metadata: %w", err)
	}
	if w.MsgType == nil {
		return MetadataMsg{}, errors.New("wire: ut_metadata: no msg_type")
	}
	if w.Piece == nil {
		return MetadataMsg{}, errors.New("wire: ut_metadata: no piece")
	}
	if *w.Piece < 0 || *w.Piece > 1<<31-1 {
		return MetadataMsg{}, fmt.Errorf("wire: ut_metadata: piece %d out of range", *w.Piece)
	}
	m := MetadataMsg{Type: MetadataMsgType(*w.MsgType), Piece: int(*w.Piece)}
	rest := payload[n:]
	switch m.Type {
	case MetadataRequest, MetadataReject:
		if len(rest) != 0 {
			return MetadataMsg{}, fmt.Errorf("wire: ut_metadata type %d: %d bytes after the dictionary", m.Type, len(rest))
		}
	case MetadataData:
		if w.TotalSize == nil {
			return MetadataMsg{}, errors.New("wire: ut_metadata data: no total_size")
		}
		m.TotalSize = *w.TotalSize
		want, ok := MetadataPieceLen(m.TotalSize, m.Piece)
		if !ok {
			return MetadataMsg{}, fmt.Errorf("wire: ut_metadata data: no piece %d in %d bytes", m.Piece, m.TotalSize)
		}
		if len(rest) != want {
			return MetadataMsg{}, fmt.Errorf("wire: ut_metadata data: piece %d is %d bytes, want %d", m.Piece, len(rest), want)
		}
		m.Data = rest
	default:
		return m, fmt.Errorf("wire: ut_metadata: msg_type %d: %w", *w.MsgType, ErrUnknownMetadataType)
	}
	return m, nil
}
