package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// UDP client defaults (BEP 15).
const (
	// DefaultUDPRetransmit is the first wait for an answer; each
	// retransmission doubles it, up to udpMaxRetransmits times. The
	// request's deadline (Client.Timeout and the context) ends the
	// exchange first in practice, which is what keeps a dead tracker from
	// holding up a download.
	DefaultUDPRetransmit = 15 * time.Second
	udpMaxRetransmits    = 8
	// udpConnIDLife is how long a client may use a connection ID.
	udpConnIDLife = time.Minute
)

// udpConnIDs caches connection IDs by tracker address, so that announces
// within a minute of each other skip the connect round trip.
type udpConnIDs struct {
	mu sync.Mutex
	m  map[string]udpConnIDEntry
}

type udpConnIDEntry struct {
	id      uint64
	expires time.Time
}

func (c *udpConnIDs) get(key string, now time.Time) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.expires) {
		return 0, false
	}
	return e.id, true
}

func (c *udpConnIDs) put(key string, id uint64, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]udpConnIDEntry)
	}
	// Drop stale entries now and then so that a long-lived client of
	// many trackers does not keep them all.
	if len(c.m) >= 64 {
		for k, e := range c.m {
			if !expires.Before(e.expires.Add(udpConnIDLife)) {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = udpConnIDEntry{id: id, expires: expires}
}

func (c *udpConnIDs) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// udpSession is one request's exchange with a UDP tracker over its own
// socket.
type udpSession struct {
	c       *Client
	conn    *net.UDPConn
	key     string // the tracker's address, the connection ID cache key
	v6      bool   // peers come in the 18-byte IPv6 form
	buf     []byte
	retries int // retransmissions so far, the n of BEP 15's 15·2ⁿ
}

// dialUDP opens a socket to the tracker of a udp:// URL and returns the
// URL's BEP 41 URL data (its path and query).
func (c *Client) dialUDP(ctx context.Context, rawURL string) (*udpSession, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", err
	}
	if u.Port() == "" {
		return nil, "", errors.New("udp tracker URL has no port")
	}
	urlData := u.EscapedPath()
	if u.RawQuery != "" {
		urlData += "?" + u.RawQuery
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network("udp"), u.Host)
	if err != nil {
		return nil, "", err
	}
	uc := conn.(*net.UDPConn)
	raddr := uc.RemoteAddr().(*net.UDPAddr).AddrPort()
	return &udpSession{
		c:    c,
		conn: uc,
		key:  raddr.String(),
		v6:   !raddr.Addr().Unmap().Is4(),
		buf:  make([]byte, 64<<10),
	}, urlData, nil
}

// connID returns a connection ID for the tracker, from the cache or by a
// connect exchange; fresh reports that it was just obtained.
func (s *udpSession) connID(ctx context.Context) (id uint64, fresh bool, err error) {
	if id, ok := s.c.udpIDs.get(s.key, time.Now()); ok {
		return id, false, nil
	}
	tx := rand.Uint32()
	body, err := s.roundTrip(ctx, appendUDPConnectReq(nil, tx), udpConnect, tx)
	if err != nil {
		return 0, false, fmt.Errorf("connect: %w", err)
	}
	if len(body) < 8 {
		return 0, false, fmt.Errorf("connect: answer of %d bytes", 8+len(body))
	}
	id = binary.BigEndian.Uint64(body)
	// The minute starts when we asked, which is no later than when the
	// tracker made the ID.
	s.c.udpIDs.put(s.key, id, time.Now().Add(udpConnIDLife-time.Second))
	return id, true, nil
}

// request sends the request build makes for a connection ID and returns
// the body of the answer with the same action. When a cached ID draws an
// error, the tracker may have restarted with a new secret: the ID is
// dropped, and when the tracker says so ("connection" in its reason, as
// shoal, aquatic and chihaya word it) the request is tried again at once
// with a fresh one.
func (s *udpSession) request(ctx context.Context, action uint32, build func(id uint64, tx uint32) []byte) ([]byte, error) {
	for {
		id, fresh, err := s.connID(ctx)
		if err != nil {
			return nil, err
		}
		tx := rand.Uint32()
		body, err := s.roundTrip(ctx, build(id, tx), action, tx)
		if err != nil && !fresh {
			s.c.udpIDs.forget(s.key)
			var fe *FailureError
			if errors.As(err, &fe) && strings.Contains(strings.ToLower(fe.Reason), "connection") {
				continue
			}
		}
		return body, err
	}
}

// roundTrip sends pkt until an answer with transaction ID tx arrives,
// waiting 15·2ⁿ seconds (Client.UDPRetransmit·2ⁿ) before the n-th resend,
// and returns the answer's body after its 8-byte header. Datagrams with
// another transaction ID (late answers to an earlier send, or forged ones)
// are ignored. An error answer is returned as a *FailureError.
func (s *udpSession) roundTrip(ctx context.Context, pkt []byte, action, tx uint32) ([]byte, error) {
	base := s.c.UDPRetransmit
	if base <= 0 {
		base = DefaultUDPRetransmit
	}
	// Wake a blocked read when ctx ends.
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The read deadline can pass a moment before the context's timer
		// marks it done: that is the context's deadline all the same.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, context.DeadlineExceeded
		}
		if _, err := s.conn.Write(pkt); err != nil {
			return nil, err
		}
		wait := base << min(s.retries, udpMaxRetransmits)
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		s.conn.SetReadDeadline(deadline)
		for {
			n, err := s.conn.Read(s.buf)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return nil, cerr
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit
				}
				return nil, err
			}
			b := s.buf[:n]
			if n < 8 || binary.BigEndian.Uint32(b[4:]) != tx {
				continue
			}
			switch binary.BigEndian.Uint32(b) {
			case action:
				return b[8:], nil
			case udpError:
				return nil, &FailureError{Reason: string(b[8:])}
			}
			return nil, fmt.Errorf("answer with action %d to action %d", binary.BigEndian.Uint32(b), action)
		}
		if s.retries >= udpMaxRetransmits {
			return nil, errors.New("no answer")
		}
		s.retries++
	}
}

// announceUDP announces to a udp:// tracker (BEP 15). The URL's path and
// query go to the tracker as BEP 41 URL data, which is how a private
// tracker's passkey travels.
func (c *Client) announceUDP(ctx context.Context, rawURL string, req AnnounceRequest) (*AnnounceResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	s, urlData, err := c.dialUDP(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	body, err := s.request(ctx, udpAnnounce, func(id uint64, tx uint32) []byte {
		return appendUDPAnnounceReq(make([]byte, 0, udpAnnounceLen+len(urlData)+len(urlData)/255*2+2), id, tx, &req, urlData)
	})
	if err != nil {
		return nil, err
	}
	return parseUDPAnnounceResp(body, s.v6)
}

// parseUDPAnnounceResp decodes the body of an announce answer (after
// action and transaction ID); v6 selects the 18-byte peer form.
func parseUDPAnnounceResp(body []byte, v6 bool) (*AnnounceResponse, error) {
	if len(body) < udpAnnounceRespLen-8 {
		return nil, fmt.Errorf("announce answer of %d bytes", len(body)+8)
	}
	be := binary.BigEndian
	r := &AnnounceResponse{
		Interval:   secs(int64(be.Uint32(body))),
		Incomplete: int(min(be.Uint32(body[4:]), 1<<31-1)),
		Complete:   int(min(be.Uint32(body[8:]), 1<<31-1)),
	}
	if r.Interval <= 0 {
		return nil, errors.New("announce answer has no positive interval")
	}
	size := 6
	if v6 {
		size = 18
	}
	// A partial entry at the end is ignored (BEP 15: readers must not
	// assume a packet's size).
	peers := body[12:]
	r.Peers = make([]Peer, 0, len(peers)/size)
	for ; len(peers) >= size; peers = peers[size:] {
		ip, _ := netip.AddrFromSlice(peers[:size-2])
		port := be.Uint16(peers[size-2:])
		r.Peers = append(r.Peers, Peer{Addr: netip.AddrPortFrom(ip.Unmap(), port)})
	}
	return r, nil
}

// scrapeUDP scrapes a udp:// tracker, udpMaxScrapeHashes at a time.
func (c *Client) scrapeUDP(ctx context.Context, rawURL string, hashes []InfoHash) (map[InfoHash]Swarm, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	s, _, err := c.dialUDP(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	out := make(map[InfoHash]Swarm, len(hashes))
	for len(hashes) > 0 {
		part := hashes[:min(len(hashes), udpMaxScrapeHashes)]
		hashes = hashes[len(part):]
		body, err := s.request(ctx, udpScrape, func(id uint64, tx uint32) []byte {
			return appendUDPScrapeReq(nil, id, tx, part)
		})
		if err != nil {
			return nil, err
		}
		be := binary.BigEndian
		for i, h := range part {
			e := body[min(len(body), i*udpScrapeEntryLen):]
			if len(e) < udpScrapeEntryLen {
				break // a tracker may answer for fewer hashes
			}
			out[h] = Swarm{
				Complete:   int(min(be.Uint32(e), 1<<31-1)),
				Downloaded: int(min(be.Uint32(e[4:]), 1<<31-1)),
				Incomplete: int(min(be.Uint32(e[8:]), 1<<31-1)),
			}
		}
	}
	return out, nil
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

func isUDPURL(u string) bool {
	return len(u) > 6 && (u[:6] == "udp://" || u[:6] == "UDP://")
}
