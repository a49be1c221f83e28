// Package mse speaks Message Stream Encryption (MSE, also called PE), the
// obfuscated handshake and RC4 stream of Vuze, libtorrent and Transmission,
// as the spec at wiki.vuze.com/w/Message_Stream_Encryption gives it.
//
// It exists beside github.com/anacrolix/torrent/mse, which the tests use as
// a second implementation to check this one against, because that package
// falls short of what an exposed listener needs: it reads up to 64 KiB of
// PadC and PadD where the spec allows 512 bytes, does not check the
// verification constant it decrypts, ignores a failed read of len(IA), and
// runs a goroutine per read during the handshake.
//
// Both functions leave deadlines to the caller, read no more of the
// connection than they keep for the stream, and hold at most a few KiB,
// whatever the peer sends (plus len(IA) of a peer that asks for the
// plaintext method).
package mse

import (
	"bytes"
	"crypto/rand"
	"crypto/rc4"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
)

// Method is a crypto_provide or crypto_select bit field.
type Method uint32

// The stream's methods. Plaintext obfuscates the handshake only.
const (
	MethodPlaintext Method = 1
	MethodRC4       Method = 2
)

// KeyLen is the length of a public key, the first thing each side sends.
const KeyLen = 96

// MaxPad is the most padding the spec allows anywhere.
const MaxPad = 512

// Errors of a handshake that went wrong on the peer's side. A failed read
// or write is returned as it is, wrapped.
var (
	// ErrNoSKey: the peer's key hash names none of the swarms offered.
	ErrNoSKey = errors.New("mse: the peer asks for a swarm we do not serve")
	// ErrSync: the hash or constant to synchronize on did not come within
	// MaxPad bytes of padding: garbage, or padding past the limit.
	ErrSync = errors.New("mse: nothing to synchronize on within the padding limit")
	// ErrPadding: PadC or PadD longer than MaxPad.
	ErrPadding = errors.New("mse: padding past the limit")
	// ErrVC: the verification constant did not decrypt to zeros.
	ErrVC = errors.New("mse: bad verification constant")
	// ErrMethod: no crypto method both sides accept.
	ErrMethod = errors.New("mse: no crypto method in common")
)

var (
	prime, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
	gen      = big.NewInt(2)
)

func hash(parts ...[]byte) []byte {
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// dh is one side's key pair.
type dh struct {
	x   *big.Int
	pub [KeyLen]byte
}

func newDH() (*dh, error) {
	xb := make([]byte, 20) // 160 bits, as the spec advises
	if _, err := rand.Read(xb); err != nil {
		return nil, err
	}
	d := &dh{x: new(big.Int).SetBytes(xb)}
	new(big.Int).Exp(gen, d.x, prime).FillBytes(d.pub[:])
	return d, nil
}

// secret is S from the peer's public key.
func (d *dh) secret(peer []byte) ([]byte, error) {
	y := new(big.Int).SetBytes(peer)
	// 0, 1 and P-1 would make S guessable.
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(new(big.Int).Sub(prime, big.NewInt(1))) >= 0 {
		return nil, errors.New("mse: degenerate public key")
	}
	return new(big.Int).Exp(y, d.x, prime).FillBytes(make([]byte, KeyLen)), nil
}

// newCipher is RC4 keyed by HASH(name, S, SKEY), its first 1024 bytes
// discarded.
func newCipher(name string, s, skey []byte) *rc4.Cipher {
	c, _ := rc4.NewCipher(hash([]byte(name), s, skey)) // a 20-byte key is valid
	var discard [1024]byte
	c.XORKeyStream(discard[:], discard[:])
	return c
}

// padding returns n random-length bytes of padding, n at most MaxPad.
func padding() []byte {
	var b [2]byte
	rand.Read(b[:])
	p := make([]byte, int(binary.BigEndian.Uint16(b[:]))%(MaxPad+1))
	rand.Read(p)
	return p
}

// Conn is a connection after an MSE handshake. Reads decrypt and writes
// encrypt when Method is MethodRC4. Writes are serialized; a failed or
// short write poisons the connection for the writes after it, as the
// cipher has moved past what the peer got.
type Conn struct {
	net.Conn
	// Method is the stream's method, RC4 or plaintext.
	Method Method

	dec   *rc4.Cipher // nil for plaintext
	pend  []byte      // read past the handshake, not yet decrypted
	plain []byte      // decrypted already (a plaintext stream's IA)

	wmu  sync.Mutex
	enc  *rc4.Cipher
	wbuf []byte
	werr error
}

// wbufMax bounds the write scratch buffer: a larger write goes out in
// pieces of this size.
const wbufMax = 64 << 10

func (c *Conn) Read(b []byte) (int, error) {
	if len(c.plain) > 0 {
		n := copy(b, c.plain)
		c.plain = c.plain[n:]
		return n, nil
	}
	var n int
	var err error
	if len(c.pend) > 0 {
		n = copy(b, c.pend)
		c.pend = c.pend[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	if c.dec != nil && n > 0 {
		c.dec.XORKeyStream(b[:n], b[:n])
	}
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	if c.enc == nil {
		return c.Conn.Write(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), wbufMax)]
		if cap(c.wbuf) < len(chunk) {
			c.wbuf = make([]byte, min(max(len(b), 16<<10), wbufMax))
		}
		out := c.wbuf[:len(chunk)]
		c.enc.XORKeyStream(out, chunk)
		n, err := c.Conn.Write(out)
		written += n
		if err == nil && n < len(out) {
			err = io.ErrShortWrite
		}
		if err != nil {
			c.werr = fmt.Errorf("mse: write: %w", err)
			return written, err
		}
		b = b[len(chunk):]
	}
	return written, nil
}

// reader reads the handshake, keeping what it read past a point of
// synchronization for what follows.
type reader struct {
	conn io.Reader
	buf  []byte // read, not yet consumed
}

// full returns the next n bytes.
func (r *reader) full(n int) ([]byte, error) {
	if len(r.buf) < n {
		need := n - len(r.buf)
		r.buf = append(r.buf, make([]byte, need)...)
		if _, err := io.ReadFull(r.conn, r.buf[len(r.buf)-need:]); err != nil {
			return nil, fmt.Errorf("mse: read: %w", err)
		}
	}
	out := r.buf[:n:n]
	r.buf = r.buf[n:]
	return out, nil
}

// syncOn consumes bytes up to and including the first occurrence of
// mark, which must start within MaxPad bytes; it never reads further than
// the end of a mark that could still fit.
func (r *reader) syncOn(mark []byte) error {
	limit := MaxPad + len(mark)
	var seen []byte
	for {
		if i := bytes.Index(seen, mark); i >= 0 {
			r.buf = append(seen[i+len(mark):], r.buf...)
			return nil
		}
		if len(seen) >= limit {
			return ErrSync
		}
		// The fewest bytes that could complete the mark: what follows
		// it may not be sent until we answer, so nothing past it is
		// read.
		want := min(len(mark)-overlap(seen, mark), limit-len(seen))
		b, err := r.full(want)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w (closed after %d bytes)", ErrSync, len(seen))
			}
			return err
		}
		seen = append(seen, b...)
	}
}

// overlap is the length of the longest suffix of seen that is a prefix of
// mark.
func overlap(seen, mark []byte) int {
	for n := min(len(seen), len(mark)-1); n > 0; n-- {
		if bytes.Equal(seen[len(seen)-n:], mark[:n]) {
			return n
		}
	}
	return 0
}

// Initiate runs the dialing side over conn for the swarm keyed skey (its
// 20-byte info-hash), offering the methods of provide, and returns the
// stream.
func Initiate(conn net.Conn, skey []byte, provide Method) (*Conn, error) {
	return initiate(conn, skey, provide, padding(), [8]byte{})
}

// initiate is Initiate with the PadC and VC to send, which a test sets
// to what the spec forbids.
func initiate(conn net.Conn, skey []byte, provide Method, padC []byte, vcSent [8]byte) (*Conn, error) {
	d, err := newDH()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(d.pub[:], padding()...)); err != nil {
		return nil, fmt.Errorf("mse: write: %w", err)
	}
	r := &reader{conn: conn}
	yb, err := r.full(KeyLen)
	if err != nil {
		return nil, err
	}
	s, err := d.secret(yb)
	if err != nil {
		return nil, err
	}
	enc, dec := newCipher("keyA", s, skey), newCipher("keyB", s, skey)
	msg := hash([]byte("req1"), s)
	x := hash([]byte("req2"), skey)
	for i, b := range hash([]byte("req3"), s) {
		x[i] ^= b
	}
	msg = append(msg, x...)
	tail := make([]byte, 8+4+2+len(padC)+2) // VC, provide, len(PadC), PadC, len(IA) = 0
	copy(tail, vcSent[:])
	binary.BigEndian.PutUint32(tail[8:], uint32(provide))
	binary.BigEndian.PutUint16(tail[12:], uint16(len(padC)))
	copy(tail[14:], padC)
	enc.XORKeyStream(tail, tail)
	if _, err := conn.Write(append(msg, tail...)); err != nil {
		return nil, fmt.Errorf("mse: write: %w", err)
	}
	// PadB, then the encrypted VC.
	var vc [8]byte
	dec.XORKeyStream(vc[:], vc[:])
	if err := r.syncOn(vc[:]); err != nil {
		return nil, err
	}
	b, err := r.full(6)
	if err != nil {
		return nil, err
	}
	dec.XORKeyStream(b, b)
	sel := Method(binary.BigEndian.Uint32(b))
	padD := int(binary.BigEndian.Uint16(b[4:]))
	if sel != MethodRC4 && sel != MethodPlaintext || sel&provide == 0 {
		return nil, fmt.Errorf("%w: the peer selected %d of %d", ErrMethod, sel, provide)
	}
	if padD > MaxPad {
		return nil, fmt.Errorf("%w: PadD of %d bytes", ErrPadding, padD)
	}
	if b, err = r.full(padD); err != nil {
		return nil, err
	}
	dec.XORKeyStream(b, b)
	c := &Conn{Conn: conn, Method: sel, pend: r.buf}
	if sel == MethodRC4 {
		c.enc, c.dec = enc, dec
	}
	return c, nil
}

// Accept runs the receiving side over conn, whose first bytes, the
// peer's public key, are key (read by the caller to tell MSE from
// plaintext). skeys yields the swarms' keys to try; choose picks the
// stream's method from those the peer offers, returning 0 for none. It
// returns the stream and the key that matched.
func Accept(conn net.Conn, key []byte, skeys func(yield func(skey []byte) bool), choose func(Method) Method) (*Conn, []byte, error) {
	d, err := newDH()
	if err != nil {
		return nil, nil, err
	}
	s, err := d.secret(key)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(append(d.pub[:], padding()...)); err != nil {
		return nil, nil, fmt.Errorf("mse: write: %w", err)
	}
	r := &reader{conn: conn}
	if err := r.syncOn(hash([]byte("req1"), s)); err != nil {
		return nil, nil, err
	}
	got, err := r.full(20)
	if err != nil {
		return nil, nil, err
	}
	req3 := hash([]byte("req3"), s)
	var skey []byte
	skeys(func(k []byte) bool {
		h := hash([]byte("req2"), k)
		for i := range h {
			h[i] ^= req3[i]
		}
		if bytes.Equal(h, got) {
			skey = k
			return false
		}
		return true
	})
	if skey == nil {
		return nil, nil, ErrNoSKey
	}
	dec, enc := newCipher("keyA", s, skey), newCipher("keyB", s, skey)
	b, err := r.full(14)
	if err != nil {
		return nil, nil, err
	}
	dec.XORKeyStream(b, b)
	if !bytes.Equal(b[:8], make([]byte, 8)) {
		return nil, nil, ErrVC
	}
	provide := Method(binary.BigEndian.Uint32(b[8:]))
	padC := int(binary.BigEndian.Uint16(b[12:]))
	if padC > MaxPad {
		return nil, nil, fmt.Errorf("%w: PadC of %d bytes", ErrPadding, padC)
	}
	if b, err = r.full(padC + 2); err != nil {
		return nil, nil, err
	}
	dec.XORKeyStream(b, b)
	lenIA := int(binary.BigEndian.Uint16(b[padC:]))
	sel := choose(provide)
	if sel != MethodRC4 && sel != MethodPlaintext || sel&provide == 0 {
		return nil, nil, fmt.Errorf("%w: the peer offers %d", ErrMethod, provide)
	}
	padD := padding()
	reply := make([]byte, 8+4+2+len(padD))
	binary.BigEndian.PutUint32(reply[8:], uint32(sel))
	binary.BigEndian.PutUint16(reply[12:], uint16(len(padD)))
	copy(reply[14:], padD)
	enc.XORKeyStream(reply, reply)
	if _, err := conn.Write(reply); err != nil {
		return nil, nil, fmt.Errorf("mse: write: %w", err)
	}
	c := &Conn{Conn: conn, Method: sel}
	if sel == MethodRC4 {
		// IA is the start of the encrypted stream: Read decrypts it.
		c.enc, c.dec, c.pend = enc, dec, r.buf
		return c, skey, nil
	}
	// Plaintext after an encrypted IA.
	ia, err := r.full(lenIA)
	if err != nil {
		return nil, nil, err
	}
	dec.XORKeyStream(ia, ia)
	c.plain, c.pend = ia, r.buf
	return c, skey, nil
}
