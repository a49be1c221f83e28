package tracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// Client defaults.
const (
	DefaultClientTimeout    = 15 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Client announces to and scrapes HTTP trackers and UDP trackers (BEP 15,
// udp:// URLs). The zero value is ready to use; a Client must not be copied
// after first use, since it caches UDP connection IDs.
type Client struct {
	// HTTP is the client used for requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds each request (default 15s) on top of the caller's
	// context, so a tracker that never answers cannot stall a swarm.
	Timeout time.Duration
	// MaxResponseBytes caps the body read (default 1 MiB); a tracker
	// answer is at most a few kilobytes, so more is hostile or broken.
	MaxResponseBytes int64
	// UserAgent is sent when non-empty.
	UserAgent string
	// UDPRetransmit is how long a UDP request waits for an answer before
	// it is sent again, doubling each time (default 15s, BEP 15's
	// 15·2ⁿ); Timeout bounds the whole exchange.
	UDPRetransmit time.Duration
	// Family keeps requests to one address family: 4 or 6, or 0 for
	// either. A tracker records the address an announce comes from, so a
	// client listening on one family must announce over that one, and a
	// dual-stack client announces over each (issue 14). A tracker with no
	// address of the family fails with a dial error.
	Family int

	udpIDs udpConnIDs
}

// network returns base ("tcp" or "udp") restricted to c.Family.
func (c *Client) network(base string) string {
	switch c.Family {
	case 4:
		return base + "4"
	case 6:
		return base + "6"
	}
	return base
}

// familyTransports are the HTTP transports of family-bound Clients whose
// HTTP is nil: shared, as http.DefaultTransport is, so that keep-alive
// connections are reused across announces.
var familyTransports = map[int]*http.Transport{4: familyTransport("tcp4"), 6: familyTransport("tcp6")}

func familyTransport(network string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return t
}

// AnnounceRequest is what a client tells a tracker.
type AnnounceRequest struct {
	InfoHash   InfoHash
	PeerID     PeerID
	Port       uint16
	Uploaded   uint64
	Downloaded uint64
	Left       uint64
	Event      Event
	// NumWant 0 leaves the count to the tracker; a negative value asks for
	// no peers (numwant=0), as a stopping client would.
	NumWant int
	// Key is the BEP 7 key that lets the tracker recognise this client
	// across address changes; 0 sends none.
	Key uint32
	// NonCompact asks for the BEP 3 list-of-dicts peer format instead of
	// the compact one; NoPeerID asks the tracker to omit peer ids in it.
	NonCompact bool
	NoPeerID   bool
	// IP is sent as the "ip" parameter when valid; trackers generally
	// honour it only from private networks.
	IP netip.Addr
}

// AnnounceResponse is a tracker's successful answer.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration
	// Complete and Incomplete are the tracker's seeder and leecher counts,
	// Downloaded its completed count, when it reports them.
	Complete   int
	Incomplete int
	Downloaded int
	// Peers holds IPv4 and IPv6 peers (from "peers" and "peers6").
	Peers []Peer
	// Warning is the tracker's "warning message", if any.
	Warning   string
	TrackerID string
}

// FailureError is a tracker's refusal ("failure reason").
type FailureError struct {
	Reason string
	// RetryIn is the BEP 31 "retry in" hint; 0 when absent, negative for
	// "never".
	RetryIn time.Duration
}

// Error implements error.
func (e *FailureError) Error() string { return "tracker failure: " + e.Reason }

// Announce sends req to the tracker at announceURL: an http or https URL,
// which may carry a passkey in its path or query, or a udp URL, whose path
// and query go to the tracker as BEP 41 URL data. Over UDP, NonCompact,
// NoPeerID and an IPv6 IP do not apply, and the answer has no
// MinInterval, Downloaded or peer ids.
func (c *Client) Announce(ctx context.Context, announceURL string, req AnnounceRequest) (*AnnounceResponse, error) {
	if isUDPURL(announceURL) {
		resp, err := c.announceUDP(ctx, announceURL, req)
		if err != nil {
			return nil, fmt.Errorf("announce %s: %w", announceURL, err)
		}
		return resp, nil
	}
	u, err := appendQuery(announceURL, req.query(nil))
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", announceURL, err)
	}
	body, err := c.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", announceURL, err)
	}
	resp, err := parseAnnounceResponse(body)
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", announceURL, err)
	}
	return resp, nil
}

// Scrape asks the tracker behind announceURL for the counts of hashes
// (BEP 48), deriving the scrape URL with ScrapeURL; a UDP tracker is
// scraped at its address (BEP 15). Hashes the tracker does not mention are
// absent from the map.
func (c *Client) Scrape(ctx context.Context, announceURL string, hashes ...InfoHash) (map[InfoHash]Swarm, error) {
	if isUDPURL(announceURL) {
		if len(hashes) == 0 {
			return nil, fmt.Errorf("scrape %s: no info-hashes given", announceURL)
		}
		out, err := c.scrapeUDP(ctx, announceURL, hashes)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", announceURL, err)
		}
		return out, nil
	}
	su, err := ScrapeURL(announceURL)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", announceURL, err)
	}
	if len(hashes) == 0 {
		return nil, fmt.Errorf("scrape %s: no info-hashes given", announceURL)
	}
	var q []byte
	for i, h := range hashes {
		if i > 0 {
			q = append(q, '&')
		}
		q = append(q, "info_hash="...)
		q = appendEscaped(q, h[:])
	}
	u, err := appendQuery(su, q)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", su, err)
	}
	body, err := c.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", su, err)
	}
	var raw struct {
		Failure string                      `bencode:"failure reason"`
		Files   map[string]scrapeFileClient `bencode:"files"`
	}
	if err := bencode.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("scrape %s: decoding response: %w", su, err)
	}
	if raw.Failure != "" {
		return nil, fmt.Errorf("scrape %s: %w", su, &FailureError{Reason: raw.Failure})
	}
	out := make(map[InfoHash]Swarm, len(raw.Files))
	for k, f := range raw.Files {
		if len(k) != 20 {
			continue
		}
		out[InfoHash([]byte(k))] = Swarm{Complete: clampInt(f.Complete), Incomplete: clampInt(f.Incomplete), Downloaded: clampInt(f.Downloaded)}
	}
	return out, nil
}

type scrapeFileClient struct {
	Complete   int64 `bencode:"complete"`
	Incomplete int64 `bencode:"incomplete"`
	Downloaded int64 `bencode:"downloaded"`
}

// ScrapeURL derives a scrape URL from an announce URL by the BEP 48
// convention: the last path segment's leading "announce" becomes "scrape".
// A passkey segment after it (/announce/<key>, as this package's server
// uses) is kept.
func ScrapeURL(announceURL string) (string, error) {
	u, err := url.Parse(announceURL)
	if err != nil {
		return "", fmt.Errorf("scrape URL from %q: %w", announceURL, err)
	}
	segs := strings.Split(u.Path, "/")
	for i := len(segs) - 1; i >= 0 && i >= len(segs)-2; i-- {
		last := i == len(segs)-1
		if (last && strings.HasPrefix(segs[i], "announce")) || (!last && segs[i] == "announce") {
			segs[i] = "scrape" + strings.TrimPrefix(segs[i], "announce")
			u.Path = strings.Join(segs, "/")
			u.RawPath = ""
			return u.String(), nil
		}
	}
	return "", fmt.Errorf("scrape URL from %q: path has no announce segment", announceURL)
}

func (c *Client) get(ctx context.Context, u string) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("unsupported tracker scheme %q", req.URL.Scheme)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
		if t := familyTransports[c.Family]; t != nil {
			hc = &http.Client{Transport: t}
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response larger than %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		// Some trackers refuse with an error status and a failure reason.
		var f struct {
			Reason string `bencode:"failure reason"`
		}
		if bencode.Unmarshal(body, &f) == nil && f.Reason != "" {
			return nil, fmt.Errorf("HTTP %s: %w", resp.Status, &FailureError{Reason: f.Reason})
		}
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return body, nil
}

type rawAnnounceResponse struct {
	Failure     string        `bencode:"failure reason"`
	RetryIn     bencode.Bytes `bencode:"retry in"`
	Warning     string        `bencode:"warning message"`
	Interval    int64         `bencode:"interval"`
	MinInterval int64         `bencode:"min interval"`
	Complete    int64         `bencode:"complete"`
	Incomplete  int64         `bencode:"incomplete"`
	Downloaded  int64         `bencode:"downloaded"`
	TrackerID   string        `bencode:"tracker id"`
	Peers       bencode.Bytes `bencode:"peers"`
	Peers6      bencode.Bytes `bencode:"peers6"`
}

type rawDictPeer struct {
	ID   string `bencode:"peer id"`
	IP   string `bencode:"ip"`
	Port int64  `bencode:"port"`
}

func parseAnnounceResponse(body []byte) (*AnnounceResponse, error) {
	var raw rawAnnounceResponse
	if err := bencode.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decoding response: %w", err)
	}
	if raw.Failure != "" {
		fe := &FailureError{Reason: raw.Failure}
		if len(raw.RetryIn) > 0 {
			var mins int64
			if bencode.Unmarshal(raw.RetryIn, &mins) == nil && mins > 0 {
				fe.RetryIn = time.Duration(min(mins, 1<<20)) * time.Minute
			} else {
				fe.RetryIn = -1
			}
		}
		return nil, fe
	}
	if raw.Interval <= 0 {
		return nil, errors.New("response has no positive interval")
	}
	r := &AnnounceResponse{
		Interval:    secs(raw.Interval),
		MinInterval: secs(raw.MinInterval),
		Complete:    clampInt(raw.Complete),
		Incomplete:  clampInt(raw.Incomplete),
		Downloaded:  clampInt(raw.Downloaded),
		Warning:     raw.Warning,
		TrackerID:   raw.TrackerID,
	}
	var err error
	if r.Peers, err = appendPeers(r.Peers, raw.Peers, 4); err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	if r.Peers, err = appendPeers(r.Peers, raw.Peers6, 16); err != nil {
		return nil, fmt.Errorf("peers6: %w", err)
	}
	return r, nil
}

// appendPeers decodes a peers value, compact (a string of ipLen+2-byte
// entries) or a BEP 3 list of dicts. Dict entries whose ip is not an
// address literal are skipped: resolving names a tracker hands out would
// let it aim us at arbitrary hosts.
func appendPeers(dst []Peer, raw []byte, ipLen int) ([]Peer, error) {
	if len(raw) == 0 {
		return dst, nil
	}
	if raw[0] == 'l' {
		var list []rawDictPeer
		if err := bencode.Unmarshal(raw, &list); err != nil {
			return dst, err
		}
		for _, p := range list {
			ip, err := netip.ParseAddr(p.IP)
			if err != nil || p.Port <= 0 || p.Port > 65535 {
				continue
			}
			var pr Peer
			if len(p.ID) == 20 {
				pr.ID = PeerID([]byte(p.ID))
			}
			pr.Addr = netip.AddrPortFrom(ip.Unmap(), uint16(p.Port))
			dst = append(dst, pr)
		}
		return dst, nil
	}
	var b []byte
	if err := bencode.Unmarshal(raw, &b); err != nil {
		return dst, err
	}
	n := ipLen + 2
	if len(b)%n != 0 {
		return dst, fmt.Errorf("compact peers length %d is not a multiple of %d", len(b), n)
	}
	for ; len(b) > 0; b = b[n:] {
		ip, _ := netip.AddrFromSlice(b[:ipLen])
		port := uint16(b[ipLen])<<8 | uint16(b[ipLen+1])
		dst = append(dst, Peer{Addr: netip.AddrPortFrom(ip.Unmap(), port)})
	}
	return dst, nil
}

func secs(n int64) time.Duration {
	return time.Duration(min(max(n, 0), 1<<31)) * time.Second
}

func clampInt(n int64) int {
	return int(min(max(n, 0), 1<<31-1))
}

// query appends the announce parameters to dst.
func (r *AnnounceRequest) query(dst []byte) []byte {
	dst = append(dst, "info_hash="...)
	dst = appendEscaped(dst, r.InfoHash[:])
	dst = append(dst, "&peer_id="...)
	dst = appendEscaped(dst, r.PeerID[:])
	dst = append(dst, "&port="...)
	dst = strconv.AppendUint(dst, uint64(r.Port), 10)
	dst = append(dst, "&uploaded="...)
	dst = strconv.AppendUint(dst, r.Uploaded, 10)
	dst = append(dst, "&downloaded="...)
	dst = strconv.AppendUint(dst, r.Downloaded, 10)
	dst = append(dst, "&left="...)
	dst = strconv.AppendUint(dst, r.Left, 10)
	if r.NonCompact {
		dst = append(dst, "&compact=0"...)
	} else {
		dst = append(dst, "&compact=1"...)
	}
	if r.NoPeerID {
		dst = append(dst, "&no_peer_id=1"...)
	}
	if r.Event != EventNone {
		dst = append(dst, "&event="...)
		dst = append(dst, r.Event.String()...)
	}
	switch {
	case r.NumWant > 0:
		dst = append(dst, "&numwant="...)
		dst = strconv.AppendInt(dst, int64(r.NumWant), 10)
	case r.NumWant < 0:
		dst = append(dst, "&numwant=0"...)
	}
	if r.Key != 0 {
		dst = append(dst, "&key="...)
		dst = fmt.Appendf(dst, "%08x", r.Key)
	}
	if r.IP.IsValid() {
		dst = append(dst, "&ip="...)
		dst = appendEscaped(dst, []byte(r.IP.String()))
	}
	return dst
}

func appendQuery(base string, q []byte) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("unsupported tracker scheme %q", u.Scheme)
	}
	if u.Fragment != "" {
		base = base[:strings.IndexByte(base, '#')]
	}
	var b bytes.Buffer
	b.WriteString(base)
	switch {
	case u.RawQuery == "" && !strings.HasSuffix(base, "?"):
		b.WriteByte('?')
	case !strings.HasSuffix(base, "?") && !strings.HasSuffix(base, "&"):
		b.WriteByte('&')
	}
	b.Write(q)
	return b.String(), nil
}

// appendEscaped percent-encodes every byte outside RFC 3986's unreserved
// set, the form trackers expect for raw 20-byte values.
func appendEscaped(dst, b []byte) []byte {
	const hexDigits = "0123456789ABCDEF"
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}
