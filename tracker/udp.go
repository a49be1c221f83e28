package tracker

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The UDP front end (BEP 15, with BEP 41 URL data). It answers on the
// Server's store and admission rules, so HTTP and UDP clients of one
// torrent see each other and an operator configures one tracker.
//
// It keeps no state per client: a connection ID is a MAC of the client's
// address and the current minute under the server's secret, checked by
// recomputing it. A spoofed flood therefore costs no memory, and trackers
// sharing the secret accept each other's IDs.
//
// No answer to a packet without a valid connection ID is larger than the
// packet: a connect (16 bytes) gets 16, anything else at most an error cut
// to its size. Spoofing a victim's address thus reflects no more bytes at
// the victim than the attacker sends.

// connIDWindow is the life of a connection ID: an ID is accepted in the
// window it was made in and the next, so for one to two minutes. BEP 15
// lets a client use one for a minute and asks trackers to accept it for
// two.
const connIDWindow = 60

// connIDDomain separates the MAC's second block from any other use of the
// key.
const connIDDomain = 0x73686f616c636964 // "shoalcid"

// minUDPSecret is the shortest secret accepted from an operator.
const minUDPSecret = 16

// udpState is the Server's UDP part: the connection ID key and the
// counters of every socket served.
type udpState struct {
	key cipher.Block

	mu       sync.Mutex
	counters []*udpCounters
}

func (u *udpState) init(secret []byte) error {
	var key [32]byte
	if secret == nil {
		rand.Read(key[:])
	} else {
		if len(bytes.TrimSpace(secret)) < minUDPSecret {
			return fmt.Errorf("UDP secret has %d bytes; need at least %d", len(bytes.TrimSpace(secret)), minUDPSecret)
		}
		// Hashing lets the secret be any text of any length.
		h := sha256.New()
		h.Write([]byte("shoal udp connection id\x00"))
		h.Write(bytes.TrimSpace(secret))
		h.Sum(key[:0])
	}
	b, err := aes.NewCipher(key[:16])
	if err != nil {
		return err
	}
	u.key = b
	return nil
}

// connID computes the connection ID of ip in window, a CBC-MAC over two
// AES blocks (the address, then the window): secure for inputs of one
// fixed length, and two block encryptions cheap enough for every packet.
// scratch is the caller's, because a local array would escape to the
// heap through the cipher.Block interface.
func (u *udpState) connID(scratch *[16]byte, window uint64, ip netip.Addr) uint64 {
	be := binary.BigEndian
	*scratch = ip.As16()
	u.key.Encrypt(scratch[:], scratch[:])
	be.PutUint64(scratch[:8], be.Uint64(scratch[:8])^window)
	be.PutUint64(scratch[8:], be.Uint64(scratch[8:])^connIDDomain)
	u.key.Encrypt(scratch[:], scratch[:])
	return be.Uint64(scratch[:8])
}

func connIDWindowOf(now time.Time) uint64 { return uint64(now.Unix()) / connIDWindow }

// UDPStats counts the UDP front end's packets. Every datagram received is
// counted once, either as answered (Connects, Announces, Scrapes) or by the
// reason it was refused.
type UDPStats struct {
	Packets   uint64 `json:"packets"`
	Connects  uint64 `json:"connects"`
	Announces uint64 `json:"announces"`
	Scrapes   uint64 `json:"scrapes"`

	// Dropped unanswered: shorter than a header, longer than the tracker
	// reads (2,048 bytes), an action that is not connect, announce or
	// scrape, or a connect without BEP 15's protocol ID.
	Short         uint64 `json:"short"`
	Oversized     uint64 `json:"oversized"`
	BadAction     uint64 `json:"bad_action"`
	BadProtocolID uint64 `json:"bad_protocol_id"`
	// BadConnectionID counts announces and scrapes with a connection ID
	// that is wrong or expired; they get an error no larger than
	// themselves.
	BadConnectionID uint64 `json:"bad_connection_id"`
	// Answered with an error (action 3) and its reason: a scrape of more
	// than 74 hashes, a malformed request (short announce, bad event or
	// port, empty scrape), a refusal of the tracker's rules (unregistered
	// torrent, passkey, peer_id in use) and the per-address rate limit (a
	// rate-limited connect is dropped).
	TooManyHashes uint64 `json:"too_many_hashes"`
	Malformed     uint64 `json:"malformed"`
	Refused       uint64 `json:"refused"`
	RateLimited   uint64 `json:"rate_limited"`

	// SendErrors counts answers the kernel would not send.
	SendErrors uint64 `json:"send_errors"`
}

// udpCounters are one socket's counters: written by its goroutine alone,
// so no two cores fight over a cache line, and summed by Stats.
type udpCounters struct {
	packets, connects, announces, scrapes       atomic.Uint64
	short, oversized, badAction, badProtocol    atomic.Uint64
	badConnID, tooMany, malformed, refused, rlt atomic.Uint64
	sendErrors                                  atomic.Uint64
	_                                           [64]byte
}

func (u *udpState) newCounters() *udpCounters {
	c := new(udpCounters)
	u.mu.Lock()
	u.counters = append(u.counters, c)
	u.mu.Unlock()
	return c
}

func (u *udpState) stats() UDPStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	var st UDPStats
	for _, c := range u.counters {
		st.Packets += c.packets.Load()
		st.Connects += c.connects.Load()
		st.Announces += c.announces.Load()
		st.Scrapes += c.scrapes.Load()
		st.Short += c.short.Load()
		st.Oversized += c.oversized.Load()
		st.BadAction += c.badAction.Load()
		st.BadProtocolID += c.badProtocol.Load()
		st.BadConnectionID += c.badConnID.Load()
		st.TooManyHashes += c.tooMany.Load()
		st.Malformed += c.malformed.Load()
		st.Refused += c.refused.Load()
		st.RateLimited += c.rlt.Load()
		st.SendErrors += c.sendErrors.Load()
	}
	return st
}

// udpWorker answers the datagrams of one socket. Everything a packet needs
// is preallocated here, so answering allocates nothing.
type udpWorker struct {
	s       *Server
	cnt     *udpCounters
	scratch [16]byte
	ann     udpAnnounceReq
	q       announceQuery
	pa      PeerAnnounce
	peers   []Peer
}

func (s *Server) newUDPWorker() *udpWorker {
	return &udpWorker{s: s, cnt: s.udp.newCounters(), peers: make([]Peer, 0, min(s.cfg.MaxNumWant, udpMaxPeers4))}
}

// ListenUDP opens UDP sockets on addr for ServeUDP: n of them (n < 1
// means one per processor), sharing the port through SO_REUSEPORT so
// that the kernel spreads clients over them and each core answers its
// own. Where SO_REUSEPORT is not available it opens one. Port 0 is
// resolved by the first socket; the others join it.
func ListenUDP(ctx context.Context, network, addr string, n int) ([]*net.UDPConn, error) {
	n = udpSockets(n)
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	var conns []*net.UDPConn
	fail := func(err error) ([]*net.UDPConn, error) {
		for _, c := range conns {
			c.Close()
		}
		return nil, err
	}
	for len(conns) < n {
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			return fail(err)
		}
		c := pc.(*net.UDPConn)
		// Room for bursts: a dropped announce costs the client a
		// 15-second retransmission.
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(1 << 20)
		conns = append(conns, c)
		addr = c.LocalAddr().String()
	}
	return conns, nil
}

// ServeUDP answers BEP 15 requests on conns until ctx is cancelled, then
// closes them and returns nil once its goroutines have exited; it returns
// an error when a socket fails. Each socket has one goroutine, which on
// Linux receives and sends in batches (recvmmsg, sendmmsg). ServeUDP may
// run beside Serve on the same Server: they share the store, the
// allow-list, the passkeys and the rate limit.
func (s *Server) ServeUDP(ctx context.Context, conns ...*net.UDPConn) error {
	if len(conns) == 0 {
		return errors.New("tracker serve udp: no sockets")
	}
	stopSweep := s.holdSweeper()
	defer stopSweep()
	var closing atomic.Bool
	errc := make(chan error, len(conns))
	var wg sync.WaitGroup
	for _, c := range conns {
		w := s.newUDPWorker()
		wg.Go(func() { errc <- w.serve(c, &closing) })
	}
	addr := conns[0].LocalAddr().String()
	s.log.Info("tracker serving udp", "addr", addr, "sockets", len(conns))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	closing.Store(true)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	if err != nil {
		return fmt.Errorf("tracker serve udp on %s: %w", addr, err)
	}
	s.log.Info("tracker stopped", "addr", addr, "proto", "udp")
	return nil
}

// serveSimple answers one datagram at a time: the portable loop, and the
// fallback where batching is unavailable.
func (w *udpWorker) serveSimple(c *net.UDPConn, closing *atomic.Bool) error {
	in := make([]byte, udpMaxPacket+1)
	out := make([]byte, 0, udpMaxReply)
	for {
		n, from, err := c.ReadFromUDPAddrPort(in)
		if err != nil {
			if closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			w.readFailed(err)
			continue
		}
		if r := w.handle(in[:n], from, out[:0]); r != nil {
			if _, err := c.WriteToUDPAddrPort(r, from); err != nil {
				w.cnt.sendErrors.Add(1)
			}
		}
	}
}

// readFailed logs a receive error that is not the socket closing, and
// pauses briefly so that a persistent one cannot spin a core.
func (w *udpWorker) readFailed(err error) {
	w.s.log.Warn("tracker udp receive failed", "err", err)
	time.Sleep(10 * time.Millisecond)
}

// Reasons for errors only the UDP front end gives.
const (
	errUDPConnID     failure = "bad connection ID"
	errUDPScrapeKey  failure = "private tracker: scrape over UDP cannot carry a passkey"
	errUDPBadAnnReq  failure = "malformed announce"
	errUDPScrapeNone failure = "scrape without info_hash"
)

// handle answers one datagram pkt from "from", building the answer in out
// (capacity udpMaxReply); nil means no answer. A panic in answering costs
// that datagram its answer, never the socket's worker.
func (w *udpWorker) handle(pkt []byte, from netip.AddrPort, out []byte) (reply []byte) {
	defer func() {
		if v := recover(); v != nil {
			w.s.panicked(v, "udp", from)
			reply = nil
		}
	}()
	return w.answer(pkt, from, out)
}

// answer is handle without the recover.
func (w *udpWorker) answer(pkt []byte, from netip.AddrPort, out []byte) []byte {
	s, c := w.s, w.cnt
	c.packets.Add(1)
	switch {
	case len(pkt) < udpHeaderLen:
		c.short.Add(1)
		return nil
	case len(pkt) > udpMaxPacket:
		c.oversized.Add(1)
		return nil
	}
	ip := from.Addr().Unmap().WithZone("")
	be := binary.BigEndian
	id, action, tx := be.Uint64(pkt), be.Uint32(pkt[8:]), be.Uint32(pkt[12:])
	now := s.now()
	window := connIDWindowOf(now)
	switch action {
	case udpConnect:
		if id != udpProtocolID {
			c.badProtocol.Add(1)
			return nil
		}
		if s.limited(ip, now) {
			c.rlt.Add(1)
			return nil
		}
		c.connects.Add(1)
		return appendUDPConnectResp(out, tx, s.udp.connID(&w.scratch, window, ip))
	case udpAnnounce, udpScrape:
	default:
		c.badAction.Add(1)
		return nil
	}
	if id != s.udp.connID(&w.scratch, window, ip) && id != s.udp.connID(&w.scratch, window-1, ip) {
		c.badConnID.Add(1)
		return appendUDPError(out, tx, string(errUDPConnID), len(pkt))
	}
	if s.limited(ip, now) {
		return w.fail(out, tx, errRateLimited, ip, &c.rlt)
	}
	if action == udpAnnounce {
		return w.announce(pkt, tx, ip, now, out)
	}
	return w.scrape(pkt, tx, ip, now, out)
}

func (w *udpWorker) announce(pkt []byte, tx uint32, ip netip.Addr, now time.Time, out []byte) []byte {
	s, a := w.s, &w.ann
	if err := parseUDPAnnounce(pkt, a); err != nil {
		if err == errUDPShort {
			err = errUDPBadAnnReq
		}
		return w.fail(out, tx, err, ip, &w.cnt.malformed)
	}
	if a.Port == 0 {
		return w.fail(out, tx, errBadPort, ip, &w.cnt.malformed)
	}
	if s.cfg.Private {
		if err := s.checkPasskey(udpKeyPath(a.URLData)); err != nil {
			return w.fail(out, tx, err, ip, &w.cnt.refused)
		}
	}
	limit := udpMaxPeers4
	if ip.Is6() {
		limit = udpMaxPeers6
	}
	limit = min(limit, s.cfg.MaxNumWant)
	numWant := min(s.cfg.DefaultNumWant, limit)
	if a.NumWant >= 0 {
		numWant = min(int(a.NumWant), limit)
	}
	q := &w.q
	*q = announceQuery{
		InfoHash:   a.InfoHash,
		PeerID:     a.PeerID,
		Port:       a.Port,
		Uploaded:   a.Uploaded,
		Downloaded: a.Downloaded,
		Left:       a.Left,
		HasLeft:    true,
		Event:      a.Event,
		NumWant:    numWant,
		Compact:    true,
		Key:        udpKeyHash(a.Key),
	}
	if ip.Is4() && a.IP != [4]byte{} {
		q.IP = netip.AddrFrom4(a.IP)
	}
	if s.testHookAnnounce != nil {
		s.testHookAnnounce(q)
	}
	peers, sw, err := s.announce(now, ip, q, &w.pa, w.peers[:0])
	w.peers = peers
	if err != nil {
		return w.fail(out, tx, err, ip, &w.cnt.refused)
	}
	w.cnt.announces.Add(1)
	out = appendUDPAnnounceResp(out, tx, uint32(min(s.cfg.Interval/time.Second, 1<<31-1)), sw)
	// BEP 15: the packet's address family decides the peer format, so
	// each client gets the peers it can reach the same way.
	for i := range peers {
		pa := peers[i].Addr.Addr()
		switch {
		case ip.Is4() && pa.Is4():
			b := pa.As4()
			out = append(out, b[:]...)
		case ip.Is6() && pa.Is6():
			b := pa.As16()
			out = append(out, b[:]...)
		default:
			continue
		}
		port := peers[i].Addr.Port()
		out = append(out, byte(port>>8), byte(port))
	}
	return out
}

func (w *udpWorker) scrape(pkt []byte, tx uint32, ip netip.Addr, now time.Time, out []byte) []byte {
	s := w.s
	// Hashes run to the end of the packet; a partial one at the end is
	// ignored, as BEP 15 asks of readers that meet longer packets.
	n := (len(pkt) - udpHeaderLen) / 20
	switch {
	case n == 0:
		return w.fail(out, tx, errUDPScrapeNone, ip, &w.cnt.malformed)
	case n > udpMaxScrapeHashes:
		return w.fail(out, tx, errTooManyHashes, ip, &w.cnt.tooMany)
	case s.cfg.Private:
		return w.fail(out, tx, errUDPScrapeKey, ip, &w.cnt.refused)
	}
	start := len(out)
	out = append(appendU32(out, udpScrape), pkt[12:16]...)
	for i := range n {
		h := (*InfoHash)(pkt[udpHeaderLen+20*i:])
		sw, err := s.scrapeCounts(now, *h)
		if err != nil {
			return w.fail(out[:start], tx, err, ip, &w.cnt.refused)
		}
		out = appendUDPScrapeEntry(out, sw)
	}
	s.scrapes.Add(1)
	w.cnt.scrapes.Add(1)
	return out
}

// fail answers with an error (action 3) carrying the reason, counting it
// under kind; like the HTTP front end's fail, a reason that is not a
// failure constant is logged and answered as "internal error".
func (w *udpWorker) fail(out []byte, tx uint32, err error, ip netip.Addr, kind *atomic.Uint64) []byte {
	kind.Add(1)
	w.s.refused.Add(1)
	f, ok := err.(failure)
	if !ok {
		w.s.log.Warn("tracker udp request failed", "remote", ip, "err", err)
		f = "internal error"
	}
	if w.s.log.Enabled(context.Background(), slog.LevelDebug) {
		w.s.log.Debug("tracker refused udp request", "remote", ip, "reason", string(f))
	}
	return appendUDPError(out, tx, string(f), udpMaxReply)
}

// udpKeyPath returns the passkey part of BEP 41 URL data in the form the
// HTTP front end takes it: the path after "/announce" ("" or "/<key>").
// The string aliases url.
func udpKeyPath(url []byte) string {
	if i := bytes.IndexByte(url, '?'); i >= 0 {
		url = url[:i]
	}
	p, ok := bytes.CutPrefix(url, []byte("/announce"))
	if !ok {
		return ""
	}
	return bytesView(p)
}

// udpKeyHash folds a UDP announce's 32-bit key as the HTTP front end folds
// the same key sent by Client (8 lower-case hex digits), so that a client
// that moves between a tracker's HTTP and UDP URLs is recognised.
func udpKeyHash(k uint32) uint32 {
	if k == 0 {
		return 0
	}
	const hexDigits = "0123456789abcdef"
	var b [8]byte
	for i := range b {
		b[i] = hexDigits[k>>(28-4*i)&15]
	}
	return keyHash(b[:])
}
