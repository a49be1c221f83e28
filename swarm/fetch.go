package swarm

// A magnet link's metadata (BEP 9), and the piece layers a torrent lacks
// (BEP 52), fetched from peers: whom to ask, how many at once, and when
// to ask an unreachable one again. Each conversation is fetchpeer.go's;
// peers that dial in meanwhile are fetchin.go's.

import (
	"context"
	"errors"
	"fmt"
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

// FetchInfo gets a torrent's info dict (BEP 9) and, for a torrent with
// v2, the piece layers of its files (BEP 52 hash requests) from peers,
// knowing only the hashes of magnet link mg. Addresses arrive on peers
// (from magnet hints, trackers, the DHT); each peer is asked
// independently and its answer is trusted only once the info dict hashes
// to every hash the link carries (SHA-1 for btih, SHA-256 for btmh) and
// every layer hashes to its file's root, so a lying peer costs a
// connection, never a wrong byte. Peers that dial us under one of the
// link's hashes while the fetch runs are asked the same way (fetchin.go):
// a seeder that heard of us need not wait for us to hear of it. A peer
// that cannot be reached is asked again with back-off, even after peers
// is closed; one that answered badly is not. It returns when one peer
// has delivered everything, when ctx ends, or when peers is closed and no
// address is left to try nor incoming peer being asked. A hybrid's layers may be missing from what it returns when that peer
// could not give them (a v1-only client): the torrent fetches them as it
// downloads.
func (c *Client) FetchInfo(ctx context.Context, mg piece.Magnet, peers <-chan netip.AddrPort) (*piece.MetaInfo, error) {
	return c.FetchInfoStatus(ctx, mg, peers, nil)
}

// FetchInfoStatus is FetchInfo calling status with what the fetch waits
// for whenever that changes: a new address, a failed attempt. status runs
// on the fetch's goroutine and must not block.
func (c *Client) FetchInfoStatus(ctx context.Context, mg piece.Magnet, peers <-chan netip.AddrPort, status func(FetchStatus)) (*piece.MetaInfo, error) {
	// The addresses were found under no hash in particular.
	fctx, stop := context.WithCancel(ctx)
	ch := make(chan foundAddr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			select {
			case a, ok := <-peers:
				if !ok {
					return
				}
				select {
				case ch <- foundAddr{addr: a}:
				case <-fctx.Done():
					return
				}
			case <-fctx.Done():
				return
			}
		}
	}()
	defer func() {
		stop()
		<-done
	}()
	return c.fetchInfo(ctx, mg, nil, ch, status)
}

// FetchLayersFrom gets the piece layers that m lacks (m.MissingLayers: a
// .torrent that left them out) from peers found by sources, the way
// FetchInfoFrom gets a magnet's: each layer is proven up to its file's
// root before it is kept, and one peer must deliver them all. On success
// m.Layers holds every layer; on failure m is unchanged.
func (c *Client) FetchLayersFrom(ctx context.Context, m *piece.MetaInfo, sources []Source, status func(FetchStatus)) error {
	mg := piece.Magnet{Hash: m.Info.Hash, V1Hash: m.Info.V1Hash}
	got, err := c.fetchInfoFrom(ctx, mg, m, sources, status)
	if err != nil {
		return err
	}
	m.Layers = got.Layers
	return nil
}

// foundAddr is an address to ask for metadata; v2 says a source found it
// under the link's truncated v2 hash, which a hybrid link then dials with.
type foundAddr struct {
	addr netip.AddrPort
	v2   bool
}

// fetchInfo is FetchInfoStatus with each address tagged with the hash
// that found it; with known set, it fetches only the layers known lacks.
func (c *Client) fetchInfo(ctx context.Context, mg piece.Magnet, known *piece.MetaInfo, peers <-chan foundAddr, status func(FetchStatus)) (*piece.MetaInfo, error) {
	if !mg.HasV1() && !mg.HasV2() {
		return nil, errors.New("metadata: the magnet link carries no info-hash")
	}
	what := "metadata"
	if known != nil {
		what = "piece layers"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		addr     netip.AddrPort
		m        *piece.MetaInfo
		err      error
		incoming bool // the peer dialed us: there is no address to retry
	}
	// Peers that dial us for one of the link's hashes are asked too.
	inbox := c.registerFetch(mg)
	unregister := sync.OnceFunc(func() { c.unregisterFetch(inbox) })
	defer unregister()
	var (
		wg       sync.WaitGroup
		result   *piece.MetaInfo
		lastErr  string
		failures = map[netip.AddrPort]int{} // every address seen
		foundV2  = map[netip.AddrPort]bool{}
		retryAt  = map[netip.AddrPort]time.Time{}
		queue    []netip.AddrPort
		inFlight int
		// Buffered for every attempt in flight, so none blocks on a loop
		// that has stopped reading.
		results = make(chan outcome, fetchConcurrency+maxFetchIncoming)
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
			v2 := foundV2[a]
			go func() {
				defer wg.Done()
				pctx, pcancel := context.WithTimeout(ctx, fetchPeerTimeout)
				defer pcancel()
				m, err := c.fetchFrom(pctx, mg, known, a, v2)
				results <- outcome{addr: a, m: m, err: err}
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
		case fa, ok := <-peers:
			if !ok {
				peers = nil
				continue
			}
			a := fa.addr
			if fa.v2 {
				// Found under the v2 hash too: a retry dials with it.
				foundV2[a] = true
			}
			if _, seen := failures[a]; seen {
				continue
			}
			failures[a] = 0
			queue = append(queue, a)
			report()
		case ic := <-inbox.conns:
			// Admitted within maxFetchIncoming (fetchInbox.admit), apart
			// from the dials: a peer that dialed in is no address to wait for.
			inFlight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer inbox.release(ic.addr.Addr())
				pctx, pcancel := context.WithTimeout(ctx, fetchPeerTimeout)
				defer pcancel()
				m, err := c.fetchFromIncoming(pctx, mg, known, ic)
				results <- outcome{addr: ic.addr, m: m, err: err, incoming: true}
			}()
		case o := <-results:
			inFlight--
			if o.err == nil {
				result = o.m
				break loop
			}
			lastErr = fmt.Sprintf("%s: %v", o.addr, o.err)
			c.log.Info(what+" from peer failed", "peer", o.addr, "incoming", o.incoming, "err", o.err)
			if errors.Is(o.err, errUnreachable) && !o.incoming {
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
	// No connection is handed over from here on; those on the way go
	// to the torrent if it is added, or are closed.
	unregister()
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

// magnetHashes lists the swarm hashes of a magnet link as a torrent's
// SwarmHashes does: the truncated v2 hash first, then the v1 hash.
func magnetHashes(mg piece.Magnet) [][20]byte {
	var out [][20]byte
	if mg.HasV2() {
		out = append(out, mg.Hash.Truncated())
	}
	if mg.HasV1() {
		out = append(out, mg.V1Hash)
	}
	return out
}

// FetchInfoFrom is FetchInfoStatus fed by sources, asked under each hash
// the link carries: the addresses they find are tried as they arrive, and
// once every source is done (each was asked its last time) the fetch ends
// when no address is left to try. Every source has stopped when it
// returns.
func (c *Client) FetchInfoFrom(ctx context.Context, mg piece.Magnet, sources []Source, status func(FetchStatus)) (*piece.MetaInfo, error) {
	return c.fetchInfoFrom(ctx, mg, nil, sources, status)
}

// fetchInfoFrom is FetchInfoFrom, or with known set the fetch of the
// layers known lacks.
func (c *Client) fetchInfoFrom(ctx context.Context, mg piece.Magnet, known *piece.MetaInfo, sources []Source, status func(FetchStatus)) (*piece.MetaInfo, error) {
	fctx, stop := context.WithCancel(ctx)
	ch := make(chan foundAddr, 256)
	var v2 [20]byte
	if mg.HasV2() {
		v2 = mg.Hash.Truncated()
	}
	f := newFanIn(magnetHashes(mg), c.log, func(_ PeerSource, ih [20]byte, addrs []netip.AddrPort) {
		for _, a := range addrs {
			select {
			case ch <- foundAddr{addr: a, v2: mg.HasV2() && ih == v2}:
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
	return c.fetchInfo(ctx, mg, known, ch, status)
}

// errUnreachable marks a failure to reach a peer or to get its handshake:
// worth another try later, unlike a peer that answered badly.
var errUnreachable = errors.New("unreachable")

// unreachable wraps err with errUnreachable, keeping err's text.
func unreachable(err error) error { return unreachableError{err} }

type unreachableError struct{ err error }

func (e unreachableError) Error() string   { return e.err.Error() }
func (e unreachableError) Unwrap() []error { return []error{e.err, errUnreachable} }

// fetchHash chooses the handshake of a metadata fetch from mg's hashes,
// as a torrent's dialHash does: a v2 link, or a hybrid link's peer found
// under the v2 hash, is dialed with the truncated v2 hash; a hybrid's
// other peers with the v1 hash and the bit that offers BEP 52's upgrade;
// a btih-only link with the v1 hash alone, as we cannot know that the
// torrent has v2 (libtorrent drops a peer claiming v2 for a v1 torrent).
// v2 is the truncated v2 hash when the link has one, zero otherwise.
func fetchHash(mg piece.Magnet, foundV2 bool) (sent [20]byte, v2bit bool, v2 [20]byte) {
	if !mg.HasV2() {
		return mg.V1Hash, false, v2
	}
	v2 = mg.Hash.Truncated()
	if !mg.HasV1() || foundV2 {
		return v2, true, v2
	}
	return mg.V1Hash, true, v2
}

// fetchFrom asks one peer for the info dict and piece layers, or with
// known set for the layers known lacks, returning a new MetaInfo; foundV2
// says a source found it under mg's v2 hash (fetchHash).
func (c *Client) fetchFrom(ctx context.Context, mg piece.Magnet, known *piece.MetaInfo, addr netip.AddrPort, foundV2 bool) (*piece.MetaInfo, error) {
	sent, v2bit, v2 := fetchHash(mg, foundV2)
	f, v2conn, err := c.fetchConn(ctx, addr, sent, v2bit, v2, c.peerID)
	if err != nil {
		return nil, err
	}
	return c.fetchOver(ctx, f, v2conn, true, mg, known, addr)
}

// fetchOver asks the peer at the other end of f, which it closes, for
// what fetchFrom gets; v2conn says hash requests may pass on f. dialed
// says we can dial addr again, under the v2 hash, for a hybrid's layers
// that a v1 connection cannot carry; a peer that dialed us listens
// elsewhere, and gives the dict alone.
func (c *Client) fetchOver(ctx context.Context, f *fetch, v2conn, dialed bool, mg piece.Magnet, known *piece.MetaInfo, addr netip.AddrPort) (*piece.MetaInfo, error) {
	defer f.close()
	var err error
	var info *piece.Info
	if known != nil {
		info = known.Info
	} else if info, err = f.info(mg); err != nil {
		return nil, err
	}
	m := &piece.MetaInfo{Info: info, Layers: make([][]piece.Hash, len(info.Files))}
	if known != nil {
		copy(m.Layers, known.Layers)
	}
	// None for v1, whose SHA-1 piece hashes are in the dict.
	missing := m.MissingLayers()
	if len(missing) == 0 {
		return m, nil
	}
	// A hybrid downloads without its layers, by SHA-1 alone, and fetches
	// them from the swarm's v2 peers as they turn up (hybrid.go): a peer
	// that cannot give them, such as a v1-only client, still gives the
	// dict. A v2 torrent has nothing else to check its pieces by, and a
	// fetch of the layers alone (known) wants them.
	withoutLayers := func(err error) (*piece.MetaInfo, error) {
		if known != nil || !info.HasV1() {
			return nil, err
		}
		c.log.Info("metadata without piece layers; the download checks pieces by SHA-1 until they come", "peer", addr, "err", err)
		return m, nil
	}
	if !v2conn && !dialed {
		return withoutLayers(errors.New("piece layers: the peer dialed us under the v1 info-hash, on which hash requests do not pass"))
	}
	if !v2conn {
		// BEP 52 hash messages pass only on a v2 connection, and this one
		// is v1 (a btih link, or a peer that did not take the upgrade):
		// ask again under the v2 hash, which the dict now names. A peer
		// that knows only the v1 hash answered badly for our purpose,
		// and is not asked again. The new connection has a peer id of its
		// own: the peer may not have seen the old one go yet, and would
		// refuse a second connection from one id.
		f.close()
		ih := info.Hash.Truncated()
		if f, _, err = c.fetchConn(ctx, addr, ih, true, ih, NewPeerID()); err != nil {
			return withoutLayers(fmt.Errorf("piece layers under the v2 info-hash %x: %v", ih, err))
		}
		defer f.close()
	}
	for _, i := range missing {
		if m.Layers[i], err = f.layer(info, i); err != nil {
			m.Layers[i] = nil
			return withoutLayers(fmt.Errorf("piece layer of file %d: %w", i, err))
		}
	}
	return m, nil
}

// fetchConn connects to addr for a metadata fetch: a handshake naming
// sent, with the v2 bit if v2bit, and our extension handshake. The peer
// must answer with sent or, if the bit offered the upgrade, with v2 (the
// truncated v2 hash, zero if unknown); v2conn reports that the
// connection is a v2 one, on which hash requests may pass. id is the peer
// id we send.
func (c *Client) fetchConn(ctx context.Context, addr netip.AddrPort, sent [20]byte, v2bit bool, v2 [20]byte, id [20]byte) (f *fetch, v2conn bool, err error) {
	if !c.Reaches(addr.Addr()) {
		return nil, false, unreachable(fmt.Errorf("%s: not the address family we listen on", addr))
	}
	// MSE, or not, by the policy, keyed by the hash we name; a peer that
	// refuses it under require may yet take it later.
	conn, err := c.connect(ctx, addr, sent, fetchPeerTimeout)
	if err != nil {
		return nil, false, unreachable(dialCause(err))
	}
	f = &fetch{conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}
	fail := func(err error) (*fetch, bool, error) {
		f.close()
		return nil, false, err
	}
	// A peer that drops us at the handshake may not have the torrent yet,
	// or be full: both can change.
	h := c.handshake(sent, v2bit)
	h.PeerID = id
	if err := wire.WriteHandshake(conn, h); err != nil {
		return fail(unreachable(err))
	}
	h, err = wire.ReadHandshake(conn)
	if err != nil {
		return fail(unreachable(err))
	}
	v2conn = v2 != [20]byte{} && h.InfoHash == v2
	if h.InfoHash != sent && !(v2bit && v2conn) {
		return fail(fmt.Errorf("peer answered for info-hash %x, not %x", h.InfoHash, sent))
	}
	if h.PeerID == c.peerID {
		return fail(errors.New("connected to ourselves"))
	}
	if err := c.startFetch(f, h.Reserved); err != nil {
		return fail(err)
	}
	return f, v2conn, nil
}
