package swarm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Limits of the metadata fetch.
const (
	fetchConcurrency = 8
	fetchPeerTimeout = 30 * time.Second
	maxLayerRequest  = 512 // piece hashes per request, as libtorrent asks
	// A peer that could not be reached is asked again after fetchRetry,
	// doubled with each failure up to maxFetchRetry: the only peer a
	// magnet names may come up a moment after we start.
	fetchRetry    = time.Second
	maxFetchRetry = 30 * time.Second
)

// FetchStatus is what a metadata fetch still waits for, so a caller can
// tell its user why nothing arrives.
type FetchStatus struct {
	// Known counts the addresses received so far.
	Known int
	// Retrying counts those that could not be reached and will be tried
	// again.
	Retrying int
	// LastError is the last failed attempt, "ADDR: why".
	LastError string
}

// FetchInfo gets a torrent's info dict (BEP 9) and the piece layers of its
// files (BEP 52 hash requests) from peers, knowing only its v2 info-hash.
// Addresses arrive on peers (from magnet hints, trackers, the DHT); each
// peer is asked independently and its answer is trusted only once the
// info dict hashes to ih and every layer hashes to its file's root, so a
// lying peer costs a connection, never a wrong byte. A peer that cannot be
// reached is asked again with back-off, even after peers is closed; one
// that answered badly is not. It returns when one peer has delivered
// everything, when ctx ends, or when peers is closed and no address is
// left to try.
func (c *Client) FetchInfo(ctx context.Context, ih piece.Hash, peers <-chan netip.AddrPort) (*piece.MetaInfo, error) {
	return c.FetchInfoStatus(ctx, ih, peers, nil)
}

// FetchInfoStatus is FetchInfo calling status with what the fetch waits
// for whenever that changes: a new address, a failed attempt. status runs
// on the fetch's goroutine and must not block.
func (c *Client) FetchInfoStatus(ctx context.Context, ih piece.Hash, peers <-chan netip.AddrPort, status func(FetchStatus)) (*piece.MetaInfo, error) {
	return c.fetchMeta(ctx, ih, nil, peers, status)
}

// FetchLayersFrom gets the piece layers that m lacks (m.MissingLayers: a
// .torrent that left them out) from peers found by sources, the way
// FetchInfoFrom gets a magnet's: each layer is proven up to its file's
// root before it is kept, and one peer must deliver them all. On success
// m.Layers holds every layer.
func (c *Client) FetchLayersFrom(ctx context.Context, m *piece.MetaInfo, sources []Source, status func(FetchStatus)) error {
	got, err := c.fetchMetaFrom(ctx, m.Info.Hash, m, sources, status)
	if err != nil {
		return err
	}
	m.Layers = got.Layers
	return nil
}

// fetchMeta is FetchInfoStatus, or with known set the fetch of the
// layers known lacks.
func (c *Client) fetchMeta(ctx context.Context, ih piece.Hash, known *piece.MetaInfo, peers <-chan netip.AddrPort, status func(FetchStatus)) (*piece.MetaInfo, error) {
	what := "metadata"
	if known != nil {
		what = "piece layers"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		addr netip.AddrPort
		m    *piece.MetaInfo
		err  error
	}
	var (
		wg       sync.WaitGroup
		result   *piece.MetaInfo
		lastErr  string
		failures = map[netip.AddrPort]int{} // every address seen
		retryAt  = map[netip.AddrPort]time.Time{}
		queue    []netip.AddrPort
		inFlight int
		// Buffered for every attempt in flight, so none blocks on a loop
		// that has stopped reading.
		results = make(chan outcome, fetchConcurrency)
		timer   = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	report := func() {
		if status != nil {
			status(FetchStatus{Known: len(failures), Retrying: len(retryAt), LastError: lastErr})
		}
	}
loop:
	for {
		for len(queue) > 0 && inFlight < fetchConcurrency {
			a := queue[0]
			queue = queue[1:]
			inFlight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, pcancel := context.WithTimeout(ctx, fetchPeerTimeout)
				defer pcancel()
				m, err := c.fetchFrom(pctx, ih, known, a)
				results <- outcome{a, m, err}
			}()
		}
		if peers == nil && inFlight == 0 && len(queue) == 0 && len(retryAt) == 0 {
			break // nothing left to try
		}
		var wake <-chan time.Time
		if len(retryAt) > 0 {
			var first time.Time
			for _, at := range retryAt {
				if first.IsZero() || at.Before(first) {
					first = at
				}
			}
			timer.Reset(time.Until(first))
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			break loop
		case a, ok := <-peers:
			if !ok {
				peers = nil
				continue
			}
			if _, seen := failures[a]; seen {
				continue
			}
			failures[a] = 0
			queue = append(queue, a)
			report()
		case o := <-results:
			inFlight--
			if o.err == nil {
				result = o.m
				break loop
			}
			lastErr = fmt.Sprintf("%s: %v", o.addr, o.err)
			c.log.Info(what+" from peer failed", "peer", o.addr, "err", o.err)
			if errors.Is(o.err, errUnreachable) {
				failures[o.addr]++
				retryAt[o.addr] = time.Now().Add(min(maxFetchRetry, fetchRetry<<min(failures[o.addr]-1, 5)))
			}
			report()
		case now := <-wake:
			for a, at := range retryAt {
				if !now.Before(at) {
					delete(retryAt, a)
					queue = append(queue, a)
				}
			}
		}
	}
	cancel()
	wg.Wait()
	if result != nil {
		return result, nil
	}
	if lastErr == "" {
		lastErr = "no peer to ask"
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s not found: %w (%d peer addresses known; last error: %v)", what, context.Cause(ctx), len(failures), lastErr)
	}
	return nil, fmt.Errorf("%s not found: %v", what, lastErr)
}

// FetchInfoFrom is FetchInfoStatus fed by sources: the addresses they
// find are tried as they arrive, and once every source is done (each was
// asked its last time) the fetch ends when no address is left to try.
// Every source has stopped when it returns.
func (c *Client) FetchInfoFrom(ctx context.Context, ih piece.Hash, sources []Source, status func(FetchStatus)) (*piece.MetaInfo, error) {
	return c.fetchMetaFrom(ctx, ih, nil, sources, status)
}

// fetchMetaFrom is FetchInfoFrom, or with known set the fetch of the
// layers known lacks.
func (c *Client) fetchMetaFrom(ctx context.Context, ih piece.Hash, known *piece.MetaInfo, sources []Source, status func(FetchStatus)) (*piece.MetaInfo, error) {
	fctx, stop := context.WithCancel(ctx)
	ch := make(chan netip.AddrPort, 256)
	f := newFanIn(ih, c.log, func(_ PeerSource, addrs []netip.AddrPort) {
		for _, a := range addrs {
			select {
			case ch <- a:
			case <-fctx.Done():
				return
			}
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		f.run(fctx, sources)
	}()
	defer func() {
		stop()
		<-done
	}()
	return c.fetchMeta(ctx, ih, known, ch, status)
}

// errUnreachable marks a failure to reach a peer or to get its handshake:
// worth another try later, unlike a peer that answered badly.
var errUnreachable = errors.New("unreachable")

// unreachable wraps err with errUnreachable, keeping err's text.
func unreachable(err error) error { return unreachableError{err} }

type unreachableError struct{ err error }

func (e unreachableError) Error() string   { return e.err.Error() }
func (e unreachableError) Unwrap() []error { return []error{e.err, errUnreachable} }

// fetchFrom asks one peer for the info dict and piece layers, or with
// known set for the layers known lacks.
func (c *Client) fetchFrom(ctx context.Context, ih piece.Hash, known *piece.MetaInfo, addr netip.AddrPort) (*piece.MetaInfo, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, unreachable(dialCause(err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(fetchPeerTimeout))
	ih20 := ih.Truncated()
	// A peer that drops us at the handshake may not have the torrent yet,
	// or be full: both can change.
	if err := wire.WriteHandshake(conn, c.handshake(ih20)); err != nil {
		return nil, unreachable(err)
	}
	h, err := wire.ReadHandshake(conn)
	if err != nil {
		return nil, unreachable(err)
	}
	if h.InfoHash != ih20 {
		return nil, fmt.Errorf("peer answered for info-hash %x, not %x", h.InfoHash, ih20)
	}
	if h.PeerID == c.peerID {
		return nil, errors.New("connected to ourselves")
	}
	if known != nil {
		// Hash requests (BEP 52) need no extension handshake.
		return fetchLayers(&fetch{conn: conn, r: wire.NewReader(conn, wire.Limits{})}, known)
	}
	if !h.Reserved.Extended() {
		return nil, errors.New("peer does not speak the extension protocol")
	}
	hs := wire.ExtendedHandshake{M: map[string]uint8{wire.ExtMetadata: extMetadataID}, V: c.cfg.Version}
	payload, _ := hs.Marshal()
	if _, err := conn.Write(wire.AppendExtended(nil, wire.ExtendedHandshakeID, payload)); err != nil {
		return nil, err
	}
	r := wire.NewReader(conn, wire.Limits{})
	f := &fetch{conn: conn, r: r}
	info, err := f.info(ih)
	if err != nil {
		return nil, err
	}
	return fetchLayers(f, &piece.MetaInfo{Info: info})
}

// fetchLayers asks for every layer m lacks and returns m's info with all
// its layers, leaving m as it was.
func fetchLayers(f *fetch, m *piece.MetaInfo) (*piece.MetaInfo, error) {
	info := m.Info
	out := &piece.MetaInfo{Info: info, Layers: make([][]piece.Hash, len(info.Files))}
	copy(out.Layers, m.Layers)
	for _, i := range out.MissingLayers() {
		var err error
		if out.Layers[i], err = f.layer(info, i); err != nil {
			return nil, fmt.Errorf("piece layer of file %d: %w", i, err)
		}
	}
	return out, nil
}

// fetch is one metadata conversation.
type fetch struct {
	conn   net.Conn
	r      *wire.Reader
	metaID uint8
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

// info fetches and checks the info dict.
func (f *fetch) info(ih piece.Hash) (*piece.Info, error) {
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
	buf := make([]byte, size)
	n := int((size + wire.MetadataPieceSize - 1) / wire.MetadataPieceSize)
	got := make([]bool, n)
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
			if !ok || msg.TotalSize != size || len(msg.Data) != want || got[msg.Piece] {
				return nil, fmt.Errorf("metadata piece %d: %d bytes of %d, total %d: does not fit", msg.Piece, len(msg.Data), want, msg.TotalSize)
			}
			copy(buf[msg.Piece*wire.MetadataPieceSize:], msg.Data)
			got[msg.Piece] = true
			left--
		}
	}
	if got := sha256.Sum256(buf); got != ih {
		return nil, fmt.Errorf("metadata does not hash to the info-hash %x but to %x", ih[:], got)
	}
	return piece.ParseInfo(buf)
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
