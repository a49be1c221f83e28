package swarm

// One metadata conversation with one peer, once its handshake is done:
// the info dict over ut_metadata (BEP 9), checked against every hash of
// the magnet link, and piece layers over BEP 52 hash requests, each run
// proven up to its file's root. fetch.go decides whom to ask and when.

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// startFetch begins the metadata conversation on f, whose BitTorrent
// handshake is done (the peer's reserved bits are r): our extension
// handshake, asking for nothing but ut_metadata.
func (c *Client) startFetch(f *fetch, r wire.Reserved) error {
	if !r.Extended() {
		return errors.New("peer does not speak the extension protocol")
	}
	hs := wire.ExtendedHandshake{M: map[string]uint8{wire.ExtMetadata: extMetadataID}, V: c.cfg.Version}
	payload, _ := hs.Marshal()
	if _, err := f.conn.Write(wire.AppendExtended(nil, wire.ExtendedHandshakeID, payload)); err != nil {
		return err
	}
	f.r = wire.NewReader(f.conn, wire.Limits{})
	return nil
}

// fetch is one metadata conversation.
type fetch struct {
	conn   net.Conn
	stop   func() bool // stops closing conn when the fetch's ctx ends
	r      *wire.Reader
	metaID uint8
}

// close ends the conversation.
func (f *fetch) close() {
	f.stop()
	f.conn.Close()
}

// next reads until an extended or hashes-family message, skipping the
// rest (bitfield, have, unchoke...) that a peer may send meanwhile.
func (f *fetch) next() (wire.Message, error) {
	for {
		m, err := f.r.ReadMessage()
		if errors.Is(err, wire.ErrUnknownID) {
			continue
		}
		if err != nil {
			return m, err
		}
		switch m.ID {
		case wire.Extended, wire.Hashes, wire.HashReject:
			if !m.KeepAlive {
				return m, nil
			}
		}
	}
}

// info fetches the info dict and checks it against the magnet link.
func (f *fetch) info(mg piece.Magnet) (*piece.Info, error) {
	var size int64
	for size == 0 {
		m, err := f.next()
		if err != nil {
			return nil, err
		}
		if m.ID != wire.Extended || m.ExtendedID != wire.ExtendedHandshakeID {
			continue
		}
		hs, err := wire.ParseExtendedHandshake(m.Payload)
		if err != nil {
			return nil, err
		}
		f.metaID = hs.M[wire.ExtMetadata]
		if f.metaID == 0 {
			return nil, errors.New("peer does not serve metadata (ut_metadata)")
		}
		if hs.MetadataSize <= 0 || hs.MetadataSize > piece.MaxInfoSize {
			return nil, fmt.Errorf("metadata size %d outside 1..%d", hs.MetadataSize, piece.MaxInfoSize)
		}
		size = hs.MetadataSize
	}
	// The pieces are kept as they come and joined once all are in, so a
	// peer that announces the largest size and sends little costs what it
	// sent, not MaxInfoSize.
	n := int((size + wire.MetadataPieceSize - 1) / wire.MetadataPieceSize)
	got := make([][]byte, n)
	for i := range n {
		req := wire.MetadataMsg{Type: wire.MetadataRequest, Piece: i}
		b, _ := req.Marshal()
		if _, err := f.conn.Write(wire.AppendExtended(nil, f.metaID, b)); err != nil {
			return nil, err
		}
	}
	for left := n; left > 0; {
		m, err := f.next()
		if err != nil {
			return nil, err
		}
		if m.ID != wire.Extended || m.ExtendedID != extMetadataID {
			continue
		}
		msg, err := wire.ParseMetadataMsg(m.Payload)
		if err != nil {
			return nil, err
		}
		switch msg.Type {
		case wire.MetadataReject:
			return nil, fmt.Errorf("metadata piece %d rejected", msg.Piece)
		case wire.MetadataData:
			want, ok := wire.MetadataPieceLen(size, msg.Piece)
			if !ok || msg.TotalSize != size || len(msg.Data) != want || got[msg.Piece] != nil {
				return nil, fmt.Errorf("metadata piece %d: %d bytes of %d, total %d: does not fit", msg.Piece, len(msg.Data), want, msg.TotalSize)
			}
			got[msg.Piece] = bytes.Clone(msg.Data)
			left--
		}
	}
	buf := make([]byte, 0, size)
	for i := range got {
		buf = append(buf, got[i]...)
		got[i] = nil
	}
	// Every hash the link carries must be the dict's: a dict that does
	// not match is the peer's lie or mistake, and costs it the connection.
	if mg.HasV1() {
		if got := sha1.Sum(buf); got != mg.V1Hash {
			return nil, fmt.Errorf("metadata does not match the magnet: its SHA-1 is %x, not the btih %s", got, mg.V1Hash)
		}
	}
	if mg.HasV2() {
		if got := sha256.Sum256(buf); got != mg.Hash {
			return nil, fmt.Errorf("metadata does not match the magnet: its SHA-256 is %x, not the btmh %x", got, mg.Hash[:])
		}
	}
	info, err := piece.ParseInfo(buf)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if !mg.Matches(info) {
		// The bytes hash right but say otherwise: a v2-only dict under a
		// btih names no v1 torrent, whatever its SHA-1.
		switch {
		case mg.HasV1() && !info.HasV1():
			return nil, fmt.Errorf("metadata does not match the magnet: the info dict of SHA-1 %s has no v1 pieces", mg.V1Hash)
		case mg.HasV2() && !info.HasV2():
			return nil, fmt.Errorf("metadata does not match the magnet: the info dict of SHA-256 %x has no v2 file tree", mg.Hash[:])
		}
		return nil, errors.New("metadata does not match the magnet")
	}
	return info, nil
}

// layer fetches file fi's piece layer in runs of up to 512 hashes, each
// proven up to the file's root.
func (f *fetch) layer(info *piece.Info, fi int) ([]piece.Hash, error) {
	file := &info.Files[fi]
	layer := make([]piece.Hash, 0, file.NumPieces)
	for index := 0; index < file.NumPieces; {
		r := info.LayerRequest(fi, index, maxLayerRequest)
		if err := r.Validate(file.Length); err != nil {
			return nil, err
		}
		msg := wire.AppendHashRequest(nil, file.PiecesRoot, uint32(r.BaseLayer), uint32(r.Index), uint32(r.Length), uint32(r.ProofLayers))
		if _, err := f.conn.Write(msg); err != nil {
			return nil, err
		}
		for {
			m, err := f.next()
			if err != nil {
				return nil, err
			}
			if m.ID == wire.Extended {
				continue
			}
			if m.PiecesRoot != file.PiecesRoot || int(m.Index) != index || int(m.BaseLayer) != r.BaseLayer {
				continue
			}
			if m.ID == wire.HashReject {
				return nil, fmt.Errorf("peer rejected the request for piece hashes %d to %d", index, index+r.Length-1)
			}
			hashes := make([]piece.Hash, m.NumHashes())
			for i := range hashes {
				hashes[i] = m.Hash(i)
			}
			base, err := piece.CheckHashes(r, hashes, file.PiecesRoot)
			if err != nil {
				return nil, err
			}
			layer = append(layer, base[:min(len(base), file.NumPieces-index)]...)
			break
		}
		index += r.Length
	}
	if err := info.CheckLayer(fi, layer); err != nil {
		return nil, err
	}
	return layer, nil
}
