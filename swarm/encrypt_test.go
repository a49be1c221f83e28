package swarm

import (
	"bytes"
	"crypto/rand"
	"crypto/rc4"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/mse"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Every pair of policies, the leech dialing the seeder: libtorrent's
// semantics (encrypt.go), with require against off failing and prefer
// against off falling back to plaintext.
func TestEncryptionPolicies(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 300_000, "b.txt": 1000}, 32<<10)
	type outcome int
	const (
		encryptedOK outcome = iota
		plainOK
		fails
	)
	cases := []struct {
		seed, leech Encryption
		want        outcome
	}{
		{EncryptionPrefer, EncryptionPrefer, encryptedOK},
		{EncryptionPrefer, EncryptionRequire, encryptedOK},
		{EncryptionRequire, EncryptionPrefer, encryptedOK},
		{EncryptionRequire, EncryptionRequire, encryptedOK},
		{EncryptionOff, EncryptionPrefer, plainOK}, // the fallback
		{EncryptionPrefer, EncryptionOff, plainOK},
		{EncryptionOff, EncryptionOff, plainOK},
		{EncryptionOff, EncryptionRequire, fails},
		{EncryptionRequire, EncryptionOff, fails},
	}
	for _, tc := range cases {
		t.Run("seed_"+tc.seed.String()+"_leech_"+tc.leech.String(), func(t *testing.T) {
			t.Parallel()
			seeder := startNode(t, m, src, Config{Encryption: tc.seed}, nil)
			dst := t.TempDir()
			leech := startNode(t, m, dst, Config{Encryption: tc.leech}, nil)
			leech.t.AddPeers(seeder.addr())
			if tc.want == fails {
				select {
				case <-leech.t.Done():
					t.Fatal("completed against a policy that forbids it")
				case <-time.After(3 * time.Second):
				}
				if s := leech.t.Stats(); s.PeersSeen != 0 || s.BytesDone != 0 {
					t.Errorf("leech stats %+v: want no peer ever connected", s)
				}
				// Refused on the seeder's side, which received what its
				// policy forbids: plaintext when it requires MSE; MSE,
				// which is no plaintext handshake, when it has it off.
				want := RefusedEncryptionPolicy
				if tc.seed == EncryptionOff {
					want = RefusedHandshakeBad
				}
				if n := seeder.c.Refused()[want]; n == 0 {
					t.Errorf("seeder counted no %q: %v", want, seeder.c.Refused())
				}
				if s := leech.t.Stats(); s.LastDialError == "" {
					t.Error("leech names no dial error")
				}
				return
			}
			waitDone(t, leech, 10*time.Second)
			sameTree(t, filepath.Join(src, "data"), filepath.Join(dst, "data"))
			ls, ss := leech.t.Stats(), seeder.t.Stats()
			wantEnc := 0
			if tc.want == encryptedOK {
				wantEnc = 1
			}
			if ls.EncryptedSeen != wantEnc || ss.EncryptedSeen != wantEnc || ls.PeersSeen != 1 || ss.PeersSeen != 1 {
				t.Errorf("leech saw %d peers, %d encrypted; seeder %d, %d; want 1, %d each",
					ls.PeersSeen, ls.EncryptedSeen, ss.PeersSeen, ss.EncryptedSeen, wantEnc)
			}
			if ls.Encrypted != min(wantEnc, ls.Peers) {
				t.Errorf("leech: %d peers now, %d encrypted; want %d encrypted", ls.Peers, ls.Encrypted, wantEnc)
			}
		})
	}
}

// recorder is a TCP relay that keeps the first bytes each way.
type recorder struct {
	ln      net.Listener
	mu      sync.Mutex
	up, dn  bytes.Buffer
	wg      sync.WaitGroup
	closers []io.Closer
}

func relay(t *testing.T, to string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", to)
			if err != nil {
				a.Close()
				continue
			}
			r.mu.Lock()
			r.closers = append(r.closers, a, b)
			r.mu.Unlock()
			r.wg.Add(2)
			go func() { defer r.wg.Done(); r.copy(b, a, &r.up); b.Close() }()
			go func() { defer r.wg.Done(); r.copy(a, b, &r.dn); a.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.closers {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *recorder) copy(dst io.Writer, src io.Reader, rec *bytes.Buffer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if rec.Len() < 4<<20 {
				rec.Write(buf[:n])
			}
			r.mu.Unlock()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// What crosses the wire between two shoals under MSE shows neither the
// handshake nor the data; in plaintext both show, which proves the relay
// sees what it should.
func TestEncryptedOnTheWire(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 200_000, "b.txt": 1000}, 32<<10)
	data, err := os.ReadFile(filepath.Join(src, "data", "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	block := data[40_000:40_064] // inside some block, whatever the order
	for _, enc := range []Encryption{EncryptionPrefer, EncryptionOff} {
		t.Run(enc.String(), func(t *testing.T) {
			seeder := startNode(t, m, src, Config{Encryption: enc}, nil)
			r := relay(t, seeder.c.Addr().String())
			leech := startNode(t, m, t.TempDir(), Config{Encryption: enc}, nil)
			leech.t.AddPeers(netip.MustParseAddrPort(r.ln.Addr().String()))
			waitDone(t, leech, 10*time.Second)
			r.mu.Lock()
			up, dn := r.up.Bytes(), r.dn.Bytes()
			sawHS := bytes.Contains(up, plainPrefix) || bytes.Contains(dn, plainPrefix)
			sawData := bytes.Contains(dn, block)
			r.mu.Unlock()
			if plain := enc == EncryptionOff; sawHS != plain || sawData != plain {
				t.Errorf("encryption %s: handshake seen on the wire %v, data seen %v; want %v", enc, sawHS, sawData, plain)
			}
		})
	}
}

// ---- raw MSE peers, for bad input ----

// The MSE prime (768 bits) and generator, as the spec gives them.
var (
	mseP, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
	mseG    = big.NewInt(2)
)

func sha1Of(parts ...[]byte) []byte {
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// rawMSE opens a connection to n, sends a valid public key and reads n's,
// returning the shared secret S: the start of an MSE handshake, to go
// wrong on purpose after.
func rawMSE(t *testing.T, n *node) (net.Conn, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", n.c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	xb := make([]byte, 20)
	rand.Read(xb)
	x := new(big.Int).SetBytes(xb)
	ya := new(big.Int).Exp(mseG, x, mseP).FillBytes(make([]byte, 96))
	if _, err := conn.Write(ya); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	yb := make([]byte, 96)
	if _, err := io.ReadFull(conn, yb); err != nil {
		t.Fatalf("reading the seeder's key: %v", err)
	}
	conn.SetDeadline(time.Time{})
	s := new(big.Int).Exp(new(big.Int).SetBytes(yb), x, mseP).FillBytes(make([]byte, 96))
	return conn, s
}

// skeyHash is MSE's HASH('req2', SKEY) xor HASH('req3', S).
func skeyHash(skey, s []byte) []byte {
	a, b := sha1Of([]byte("req2"), skey), sha1Of([]byte("req3"), s)
	for i := range a {
		a[i] ^= b[i]
	}
	return a
}

// droppedWithin reports how long the other side took to close conn, at
// most d (then ok is false), reading and discarding what it sends.
func droppedWithin(conn net.Conn, d time.Duration) (took time.Duration, ok bool) {
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return d, false
	}
	return time.Since(start), true
}

// Each bad MSE handshake is dropped, in bounded time (the handshake
// deadline at most; at once when the bytes already tell), and counted.
func TestBadMSEDropped(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 100_000, "b.txt": 1000}, 32<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	ih := wire.TruncateV2(m.Info.Hash)
	refused := func(r Refusal) int64 { return seeder.c.Refused()[r] }
	waitCount := func(r Refusal, before int64) {
		t.Helper()
		waitFor(t, 2*time.Second, r.String()+" counted", func() bool { return refused(r) > before })
	}

	t.Run("stalled in the key", func(t *testing.T) {
		before := refused(RefusedHandshakeTimeout)
		conn, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// 40 bytes: past the plaintext test, short of a 96-byte key,
		// which has the deadline of a plaintext handshake's first bytes.
		junk := make([]byte, 40)
		rand.Read(junk)
		conn.Write(junk)
		took, ok := droppedWithin(conn, headerTimeout+2*time.Second)
		if !ok || took < headerTimeout/2 {
			t.Fatalf("stalled MSE handshake: dropped %v after %v; want dropped by the first bytes' deadline (%v)", ok, took, headerTimeout)
		}
		waitCount(RefusedHandshakeTimeout, before)
	})
	t.Run("stalled after the secret", func(t *testing.T) {
		before := refused(RefusedHandshakeTimeout)
		conn, _ := rawMSE(t, seeder)
		if took, ok := droppedWithin(conn, handshakeTimeout+2*time.Second); !ok {
			t.Fatalf("stalled MSE handshake still open after %v", took)
		}
		waitCount(RefusedHandshakeTimeout, before)
	})
	t.Run("garbage", func(t *testing.T) {
		before := refused(RefusedHandshakeBad)
		conn, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		junk := make([]byte, 4096)
		rand.Read(junk)
		// Written in the background: the seeder may close while it goes.
		go conn.Write(junk)
		if took, ok := droppedWithin(conn, time.Second); !ok {
			t.Fatalf("garbage still open after %v", took)
		}
		waitCount(RefusedHandshakeBad, before)
	})
	for _, pad := range []int{512, 513, 4000} {
		t.Run("padding "+strconv.Itoa(pad), func(t *testing.T) {
			conn, s := rawMSE(t, seeder)
			// Padding, then the hash the receiver synchronizes on, then
			// a key hash for a torrent nobody serves: within the limit
			// the seeder finds the hash and refuses the torrent; past it,
			// it gives up on the padding.
			msg := make([]byte, pad)
			rand.Read(msg)
			msg = append(msg, sha1Of([]byte("req1"), s)...)
			msg = append(msg, skeyHash(bytes.Repeat([]byte{7}, 20), s)...)
			r := RefusedHandshakeBad
			if pad <= 512 {
				r = RefusedUnknownTorrent
			}
			before := refused(r)
			go conn.Write(msg)
			if took, ok := droppedWithin(conn, time.Second); !ok {
				t.Fatalf("padding %d: still open after %v", pad, took)
			}
			waitCount(r, before)
		})
	}
	// PadC, after the key hashes, encrypted: past 512 bytes it is refused
	// at once; at 512 the handshake goes on, waiting for our part.
	for _, pad := range []int{512, 513} {
		t.Run("PadC "+strconv.Itoa(pad), func(t *testing.T) {
			before := refused(RefusedHandshakeBad)
			conn, s := rawMSE(t, seeder)
			msg := append(sha1Of([]byte("req1"), s), skeyHash(ih[:], s)...)
			key := sha1Of([]byte("keyA"), s, ih[:])
			c, _ := rc4.NewCipher(key)
			discard := make([]byte, 1024)
			c.XORKeyStream(discard, discard)
			tail := make([]byte, 8+4+2+pad+2) // VC, provide, len(PadC), PadC, len(IA)
			binary.BigEndian.PutUint32(tail[8:], 2)
			binary.BigEndian.PutUint16(tail[12:], uint16(pad))
			c.XORKeyStream(tail, tail)
			go conn.Write(append(msg, tail...))
			took, ok := droppedWithin(conn, time.Second)
			if pad <= 512 {
				if ok {
					t.Fatalf("PadC of %d bytes: dropped after %v", pad, took)
				}
				return
			}
			if !ok {
				t.Fatalf("PadC of %d bytes: still open after %v", pad, took)
			}
			waitCount(RefusedHandshakeBad, before)
		})
	}
	t.Run("unknown SKEY", func(t *testing.T) {
		before := refused(RefusedUnknownTorrent)
		conn, s := rawMSE(t, seeder)
		other := ih
		other[0] ^= 1
		msg := append(sha1Of([]byte("req1"), s), skeyHash(other[:], s)...)
		conn.Write(msg)
		if took, ok := droppedWithin(conn, time.Second); !ok {
			t.Fatalf("unknown SKEY: still open after %v", took)
		}
		waitCount(RefusedUnknownTorrent, before)
	})
	// Control: the same raw start with the right key completes, so the
	// cases above fail for what they send and not for how.
	t.Run("valid", func(t *testing.T) {
		conn, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		rw, method, err := mse.InitiateHandshake(conn, ih[:], nil, mse.CryptoMethodRC4)
		if err != nil || method != mse.CryptoMethodRC4 {
			t.Fatalf("MSE: method %d, %v", method, err)
		}
		if err := wire.WriteHandshake(rw, wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}); err != nil {
			t.Fatal(err)
		}
		h, err := wire.ReadHandshake(rw)
		if err != nil || h.InfoHash != ih {
			t.Fatalf("handshake over MSE: %x, %v", h.InfoHash, err)
		}
	})
}

// An MSE handshake keyed by one torrent that then names another we also
// serve is refused: the key proved knowledge of the first only.
func TestMSEHandshakeMustNameItsKey(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 100_000, "b.txt": 1000}, 32<<10)
	m2 := content(t, src, "other", map[string]int{"b.bin": 50_000, "c.txt": 10}, 32<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	st2, err := storage.OpenWith(src, m2.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, err := seeder.c.Add(m2, st2, allHave(m2.Info.NumPieces)); err != nil {
		t.Fatal(err)
	}
	ih, ih2 := wire.TruncateV2(m.Info.Hash), wire.TruncateV2(m2.Info.Hash)
	for _, tc := range []struct {
		name     string
		skey, hs [20]byte
		ok       bool
	}{{"same", ih2, ih2, true}, {"other", ih, ih2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", seeder.c.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			rw, _, err := mse.InitiateHandshake(conn, tc.skey[:], nil, mse.CryptoMethodRC4)
			if err != nil {
				t.Fatalf("MSE: %v", err)
			}
			wire.WriteHandshake(rw, wire.Handshake{InfoHash: tc.hs, PeerID: NewPeerID()})
			_, err = wire.ReadHandshake(rw)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake naming %x under the key of %x: err %v, want success %v", tc.hs, tc.skey, err, tc.ok)
			}
		})
	}
}

// Stalled MSE handshakes count against the pending-handshake cap like
// plaintext ones: a flood beyond it pushes out the oldest, and a real
// encrypted peer still gets in.
func TestMSEFloodBounded(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 100_000, "b.txt": 1000}, 32<<10)
	seeder := startNode(t, m, src, Config{Encryption: EncryptionRequire}, nil)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	junk := make([]byte, 100)
	for range maxPendingHandshakes + 20 {
		c, err := net.Dial("tcp", seeder.c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rand.Read(junk)
		c.Write(junk)
		conns = append(conns, c)
	}
	waitFor(t, 3*time.Second, "the flood pending", func() bool { return seeder.c.pending.len() == maxPendingHandshakes })
	leech := startNode(t, m, t.TempDir(), Config{Encryption: EncryptionRequire}, nil)
	leech.t.AddPeers(seeder.addr())
	waitDone(t, leech, 10*time.Second)
	if n := seeder.c.pending.len(); n > maxPendingHandshakes {
		t.Errorf("%d handshakes pending, cap %d", n, maxPendingHandshakes)
	}
	if n := seeder.c.Refused()[RefusedPushedOut]; n < 20 {
		t.Errorf("%d pushed out, want at least 20", n)
	}
}

// The key of a swarm is each of its 20-byte hashes: a v1 torrent's v1
// hash, and for a hybrid whichever hash the dialer names (the v1 one,
// with the upgrade bit, unless the peer was found under the v2 one).
func TestEncryptedFormats(t *testing.T) {
	for _, f := range []piece.Format{piece.FormatV1, piece.FormatHybrid} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			m := contentFormat(t, src, "data", map[string]int{"a.bin": 200_000, "b.txt": 1000}, 32<<10, f)
			seeder := startNode(t, m, src, Config{Encryption: EncryptionRequire}, nil)
			leech := startNode(t, m, t.TempDir(), Config{Encryption: EncryptionRequire}, nil)
			leech.t.AddPeers(seeder.addr())
			waitDone(t, leech, 10*time.Second)
			if s := leech.t.Stats(); s.EncryptedSeen != 1 {
				t.Errorf("leech: %d of %d peers encrypted, want 1", s.EncryptedSeen, s.PeersSeen)
			}
		})
	}
	// A hybrid's peer found under the v2 hash is dialed, and so keyed,
	// with that hash.
	t.Run("hybrid by v2 hash", func(t *testing.T) {
		t.Parallel()
		src := t.TempDir()
		m := contentFormat(t, src, "data", map[string]int{"a.bin": 200_000, "b.txt": 1000}, 32<<10, piece.FormatHybrid)
		seeder := startNode(t, m, src, Config{Encryption: EncryptionRequire}, nil)
		leech := startNode(t, m, t.TempDir(), Config{Encryption: EncryptionRequire}, nil)
		leech.t.addFound(SourceTracker, wire.TruncateV2(m.Info.Hash), []netip.AddrPort{seeder.addr()})
		waitDone(t, leech, 10*time.Second)
		if s := leech.t.Stats(); s.EncryptedSeen != 1 {
			t.Errorf("leech: %d of %d peers encrypted, want 1", s.EncryptedSeen, s.PeersSeen)
		}
	})
}
