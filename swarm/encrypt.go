package swarm

// Message Stream Encryption (MSE, also called PE): the obfuscated,
// RC4-encrypted handshake that Vuze, libtorrent and Transmission speak, so
// that a network that throttles or blocks the plain BitTorrent handshake
// does not see one. The protocol is package swarm/mse; this file decides
// when to speak it, tells an encrypted incoming connection from a plain
// one, and finds the torrent an encrypted one asks for.
//
// The policies follow libtorrent's out_enc_policy and in_enc_policy, set
// both ways by one value:
//
//   - prefer (libtorrent's pe_enabled): dial with MSE and, when the peer
//     drops it, dial again in plaintext; accept both.
//   - require (pe_forced): dial with MSE only; accept only MSE.
//   - off (pe_disabled): dial in plaintext only; refuse incoming MSE, as
//     libtorrent does with in_enc_policy disabled (counted as a bad
//     handshake, which is all it is to a plaintext-only client).
//
// We offer and choose RC4 for the stream, never MSE's "plaintext after an
// obfuscated header" method, which hides only the handshake: a peer
// counted as encrypted is encrypted to the end. A dialer that offers only
// that method is still taken under prefer, where plaintext would be too.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/shoal-p2p/shoal/swarm/mse"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Encryption is a policy for MSE, both for the connections we make and
// for those we accept. The zero value is EncryptionPrefer.
type Encryption uint8

// The policies (see the file comment).
const (
	// EncryptionPrefer dials with MSE, falls back to plaintext when the
	// peer refuses it, and accepts both.
	EncryptionPrefer Encryption = iota
	// EncryptionRequire dials and accepts only MSE with RC4.
	EncryptionRequire
	// EncryptionOff dials in plaintext and refuses incoming MSE.
	EncryptionOff
)

// ParseEncryption reads a policy by the name String gives it.
func ParseEncryption(s string) (Encryption, error) {
	for e := EncryptionPrefer; e <= EncryptionOff; e++ {
		if s == e.String() {
			return e, nil
		}
	}
	return 0, fmt.Errorf("encryption policy %q: want off, prefer or require", s)
}

// String names the policy: "prefer", "require" or "off".
func (e Encryption) String() string {
	switch e {
	case EncryptionPrefer:
		return "prefer"
	case EncryptionRequire:
		return "require"
	case EncryptionOff:
		return "off"
	}
	return fmt.Sprintf("Encryption(%d)", uint8(e))
}

// plainPrefix is how every plaintext handshake starts. A connection that
// does not start with all of it is taken for MSE, whose first 96 bytes are
// a Diffie-Hellman public key: a random number, which matches these 20
// bytes by chance once in 2^160 times. One byte would not do, as a key
// starts with 0x13 once in 256.
var plainPrefix = []byte("\x13" + wire.Protocol)

// mseKeyLen is the length of an MSE public key, the first thing a dialer
// sends.
const mseKeyLen = mse.KeyLen

// errPlaintextRefused is the encryption policy refusing a plaintext
// handshake; refusals count it apart.
var errPlaintextRefused = errors.New("plaintext handshake, but encryption is required")

// encrypted reports whether conn carries an RC4 stream, looking through
// the wrappers that handshakes put around it.
func encrypted(conn net.Conn) bool {
	for {
		switch c := conn.(type) {
		case *mse.Conn:
			return c.Method == mse.MethodRC4
		case *primedConn:
			conn = c.Conn
		case *prefixConn:
			conn = c.Conn
		default:
			return false
		}
	}
}

// prefixConn replays bytes read to tell MSE from plaintext before the
// rest of the stream. It is apart from primedConn, which says the peer
// has spoken after its handshake.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// sniffIncoming reads the first bytes of an incoming connection and, by
// the policy, returns the connection to read the plaintext handshake
// from: the same stream, or the decrypted one after an MSE handshake, in
// which case skeyTorrent is the torrent whose swarm hash the peer proved
// it knows. The caller's deadline bounds the first bytes, and deadline
// the rest; package mse refuses padding past 512 bytes wherever it is.
func (c *Client) sniffIncoming(conn net.Conn, deadline time.Time) (out net.Conn, skeyTorrent *Torrent, err error) {
	first := make([]byte, mseKeyLen)
	if _, err := io.ReadFull(conn, first[:len(plainPrefix)]); err != nil {
		return nil, nil, fmt.Errorf("reading the first bytes: %w", err)
	}
	if bytes.Equal(first[:len(plainPrefix)], plainPrefix) {
		if c.cfg.Encryption == EncryptionRequire {
			return nil, nil, errPlaintextRefused
		}
		conn.SetDeadline(deadline)
		return &prefixConn{Conn: conn, pre: first[:len(plainPrefix)]}, nil, nil
	}
	if c.cfg.Encryption == EncryptionOff {
		// As before MSE: not a BitTorrent handshake. libtorrent refuses
		// MSE with in_enc_policy disabled too.
		return nil, nil, fmt.Errorf("%w: not plaintext, and encryption is off", wire.ErrBadHandshake)
	}
	// A dialer sends its whole key at once: under the caller's deadline
	// for first bytes still, so what stops short of it goes as soon.
	if _, err := io.ReadFull(conn, first[len(plainPrefix):]); err != nil {
		return nil, nil, &mseError{fmt.Errorf("reading the key: %w", err)}
	}
	conn.SetDeadline(deadline)
	// The keys are copied out so no lock is held across the handshake.
	c.mu.Lock()
	keys := make([][20]byte, 0, len(c.torrents))
	for ih := range c.torrents {
		keys = append(keys, ih)
	}
	c.mu.Unlock()
	mc, k, err := mse.Accept(conn, first, func(yield func([]byte) bool) {
		for i := range keys {
			if !yield(keys[i][:]) {
				return
			}
		}
	}, c.selectCrypto)
	if err != nil {
		if errors.Is(err, mse.ErrNoSKey) {
			return nil, nil, ErrUnknownSKey
		}
		return nil, nil, &mseError{err}
	}
	skey := [20]byte(k)
	c.mu.Lock()
	t := c.torrents[skey]
	c.mu.Unlock()
	if t == nil {
		return nil, nil, ErrUnknownSKey
	}
	return mc, t, nil
}

// mseError is an incoming MSE handshake that failed: garbage, padding
// past its limit, a closed or stalled connection. Refusals count it as a
// bad handshake unless it timed out.
type mseError struct{ err error }

func (e *mseError) Error() string { return e.err.Error() }
func (e *mseError) Unwrap() error { return e.err }

// ErrUnknownSKey is an MSE handshake for a swarm we do not serve.
var ErrUnknownSKey = errors.New("MSE: the peer asks for a torrent we do not serve")

// selectCrypto chooses the stream's method from those an incoming peer
// offers: RC4 whenever it is offered; the plaintext method only when
// encryption is preferred, not required; nothing (the handshake fails)
// otherwise.
func (c *Client) selectCrypto(provided mse.Method) mse.Method {
	switch {
	case provided&mse.MethodRC4 != 0:
		return mse.MethodRC4
	case provided&mse.MethodPlaintext != 0 && c.cfg.Encryption == EncryptionPrefer:
		return mse.MethodPlaintext
	}
	return 0
}

// connect dials addr for the swarm whose 20-byte hash is skey and, by the
// policy, runs MSE over it; under prefer a peer that drops MSE is dialed
// again in plaintext, as libtorrent does. The connection's deadline is
// set to timeout from each dial, for the handshake that follows; the
// caller clears it.
func (c *Client) connect(ctx context.Context, addr netip.AddrPort, skey [20]byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(timeout))
	if c.cfg.Encryption == EncryptionOff {
		return raw, nil
	}
	enc, err := c.initiate(ctx, raw, skey)
	if err == nil {
		return enc, nil
	}
	raw.Close()
	if c.cfg.Encryption == EncryptionRequire || ctx.Err() != nil {
		return nil, fmt.Errorf("encryption required, but MSE failed: %w", err)
	}
	c.log.Debug("MSE refused; dialing again in plaintext", "peer", addr, "err", err)
	if raw, err = d.DialContext(ctx, "tcp", addr.String()); err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(timeout))
	return raw, nil
}

// initiate runs the dialing side of MSE over conn, offering RC4 only.
// Closing conn (ctx ending) ends it.
func (c *Client) initiate(ctx context.Context, conn net.Conn, skey [20]byte) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return mse.Initiate(conn, skey[:], mse.MethodRC4)
}
