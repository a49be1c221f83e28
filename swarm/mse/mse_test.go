package mse

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	amse "github.com/anacrolix/torrent/mse"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (dialer, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a == nil {
		t.Fatal("accept failed")
	}
	for _, c := range []net.Conn{d, a} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
	}
	return d, a
}

var (
	skey1 = bytes.Repeat([]byte{1}, 20)
	skey2 = bytes.Repeat([]byte{2}, 20)
)

func keys(yield func([]byte) bool) {
	for _, k := range [][]byte{skey1, skey2} {
		if !yield(k) {
			return
		}
	}
}

// accept is Accept the way a listener calls it: the key read first.
func accept(conn net.Conn, choose func(Method) Method) (*Conn, []byte, error) {
	key := make([]byte, KeyLen)
	if _, err := io.ReadFull(conn, key); err != nil {
		return nil, nil, err
	}
	return Accept(conn, key, keys, choose)
}

func rc4Only(m Method) Method {
	if m&MethodRC4 != 0 {
		return MethodRC4
	}
	return 0
}

func plainFirst(m Method) Method {
	if m&MethodPlaintext != 0 {
		return MethodPlaintext
	}
	return m & MethodRC4
}

// exchange sends a large message each way at once and checks both arrive.
func exchange(t *testing.T, a, b io.ReadWriter) {
	t.Helper()
	ma, mb := make([]byte, 300_000), make([]byte, 200_001)
	rand.Read(ma)
	rand.Read(mb)
	errs := make(chan error, 2)
	go func() { _, err := a.Write(ma); errs <- err }()
	go func() { _, err := b.Write(mb); errs <- err }()
	ga, gb := make([]byte, len(mb)), make([]byte, len(ma))
	if _, err := io.ReadFull(a, ga); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, gb); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(ga, mb) || !bytes.Equal(gb, ma) {
		t.Fatal("the stream does not carry what was sent")
	}
}

// This package against itself and against anacrolix/torrent/mse, each
// side both ways, for both methods: the streams agree.
func TestInterop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		provide Method
		choose  func(Method) Method
		want    Method
	}{
		{"rc4", MethodRC4, rc4Only, MethodRC4},
		{"plaintext", MethodPlaintext | MethodRC4, plainFirst, MethodPlaintext},
	} {
		t.Run(tc.name+"/ours-ours", func(t *testing.T) {
			d, a := pair(t)
			res := make(chan *Conn, 1)
			go func() {
				c, k, err := accept(a, tc.choose)
				if err != nil || !bytes.Equal(k, skey2) {
					t.Errorf("accept: %v, key %x", err, k)
				}
				res <- c
			}()
			c, err := Initiate(d, skey2, tc.provide)
			if err != nil {
				t.Fatal(err)
			}
			s := <-res
			if s == nil {
				t.FailNow()
			}
			if c.Method != tc.want || s.Method != tc.want {
				t.Fatalf("methods %d and %d, want %d", c.Method, s.Method, tc.want)
			}
			exchange(t, c, s)
		})
		t.Run(tc.name+"/ours-anacrolix", func(t *testing.T) {
			d, a := pair(t)
			type r struct {
				rw io.ReadWriter
				m  amse.CryptoMethod
			}
			res := make(chan r, 1)
			go func() {
				rw, m, err := amse.ReceiveHandshake(t.Context(), a, func(f func([]byte) bool) { keys(f) }, func(p amse.CryptoMethod) amse.CryptoMethod {
					return amse.CryptoMethod(tc.choose(Method(p)))
				})
				if err != nil {
					t.Errorf("anacrolix receive: %v", err)
				}
				res <- r{rw, m}
			}()
			c, err := Initiate(d, skey1, tc.provide)
			if err != nil {
				t.Fatal(err)
			}
			s := <-res
			if s.rw == nil {
				t.FailNow()
			}
			if c.Method != tc.want || Method(s.m) != tc.want {
				t.Fatalf("methods %d and %d, want %d", c.Method, s.m, tc.want)
			}
			exchange(t, c, s.rw)
		})
		t.Run(tc.name+"/anacrolix-ours", func(t *testing.T) {
			d, a := pair(t)
			res := make(chan *Conn, 1)
			go func() {
				c, k, err := accept(a, tc.choose)
				if err != nil || !bytes.Equal(k, skey1) {
					t.Errorf("accept: %v, key %x", err, k)
				}
				res <- c
			}()
			// An initial payload, as libtorrent and Transmission send
			// their handshake: it must come out of the stream first.
			ia := []byte("initial payload")
			rw, m, err := amse.InitiateHandshake(d, skey1, ia, amse.CryptoMethod(tc.provide))
			if err != nil {
				t.Fatal(err)
			}
			s := <-res
			if s == nil {
				t.FailNow()
			}
			if Method(m) != tc.want || s.Method != tc.want {
				t.Fatalf("methods %d and %d, want %d", m, s.Method, tc.want)
			}
			got := make([]byte, len(ia))
			if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, ia) {
				t.Fatalf("initial payload %q, %v", got, err)
			}
			exchange(t, rw, s)
		})
	}
}

// What the receiving side refuses, each for its own reason.
func TestAcceptRefuses(t *testing.T) {
	t.Run("unknown key", func(t *testing.T) {
		d, a := pair(t)
		go Initiate(d, bytes.Repeat([]byte{9}, 20), MethodRC4)
		if _, _, err := accept(a, rc4Only); !errors.Is(err, ErrNoSKey) {
			t.Fatalf("err %v, want ErrNoSKey", err)
		}
	})
	t.Run("PadC past the limit", func(t *testing.T) {
		d, a := pair(t)
		go initiate(d, skey1, MethodRC4, make([]byte, MaxPad+1), [8]byte{})
		if _, _, err := accept(a, rc4Only); !errors.Is(err, ErrPadding) {
			t.Fatalf("err %v, want ErrPadding", err)
		}
	})
	t.Run("PadC at the limit", func(t *testing.T) {
		d, a := pair(t)
		go initiate(d, skey1, MethodRC4, make([]byte, MaxPad), [8]byte{})
		if _, _, err := accept(a, rc4Only); err != nil {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad VC", func(t *testing.T) {
		d, a := pair(t)
		go initiate(d, skey1, MethodRC4, nil, [8]byte{1})
		if _, _, err := accept(a, rc4Only); !errors.Is(err, ErrVC) {
			t.Fatalf("err %v, want ErrVC", err)
		}
	})
	t.Run("no method in common", func(t *testing.T) {
		d, a := pair(t)
		go Initiate(d, skey1, MethodPlaintext)
		if _, _, err := accept(a, rc4Only); !errors.Is(err, ErrMethod) {
			t.Fatalf("err %v, want ErrMethod", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		d, a := pair(t)
		junk := make([]byte, 4000)
		rand.Read(junk)
		go d.Write(junk)
		if _, _, err := accept(a, rc4Only); !errors.Is(err, ErrSync) {
			t.Fatalf("err %v, want ErrSync", err)
		}
	})
}

// The dialing side refuses a receiver that pads past the limit, or sends
// garbage.
func TestInitiateRefuses(t *testing.T) {
	d, a := pair(t)
	go func() {
		key := make([]byte, KeyLen)
		io.ReadFull(a, key)
		junk := make([]byte, 2000)
		rand.Read(junk[KeyLen:])
		// A valid-looking key, then padding with no VC in reach.
		copy(junk, bytes.Repeat([]byte{7}, KeyLen))
		a.Write(junk)
	}()
	if _, err := Initiate(d, skey1, MethodRC4); !errors.Is(err, ErrSync) {
		t.Fatalf("err %v, want ErrSync", err)
	}
}

// overlap finds the longest suffix of what was read that starts the mark.
func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		seen, mark string
		want       int
	}{
		{"xxab", "abc", 2},
		{"xxa", "abc", 1},
		{"xxx", "abc", 0},
		{"abc", "abc", 0}, // a whole mark is found by Index, not here
		{"aaa", "aab", 2},
	} {
		if got := overlap([]byte(tc.seen), []byte(tc.mark)); got != tc.want {
			t.Errorf("overlap(%q, %q) = %d, want %d", tc.seen, tc.mark, got, tc.want)
		}
	}
}
