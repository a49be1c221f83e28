package wire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
)

func sampleHandshake() Handshake {
	var h Handshake
	h.Reserved.SetExtended(true)
	h.Reserved.SetFast(true)
	h.Reserved.SetV2(true)
	copy(h.InfoHash[:], "infohash-infohash-ih")
	copy(h.PeerID[:], "-SH0001-abcdefghijkl")
	return h
}

func TestHandshakeBytes(t *testing.T) {
	h := sampleHandshake()
	b := AppendHandshake(nil, h)
	if len(b) != HandshakeLen || HandshakeLen != 68 || HandshakeHeaderLen != 48 {
		t.Fatalf("handshake is %d bytes (const %d/%d)", len(b), HandshakeLen, HandshakeHeaderLen)
	}
	if b[0] != 19 || string(b[1:20]) != "BitTorrent protocol" {
		t.Errorf("pstr = %q", b[:20])
	}
	wantReserved := []byte{0, 0, 0, 0, 0, 0x10, 0, 0x14}
	if !bytes.Equal(b[20:28], wantReserved) {
		t.Errorf("reserved = %x, want %x", b[20:28], wantReserved)
	}
	if string(b[28:48]) != "infohash-infohash-ih" || string(b[48:]) != "-SH0001-abcdefghijkl" {
		t.Errorf("hash/peer id misplaced: %q", b[28:])
	}
}

func TestReservedBits(t *testing.T) {
	var r Reserved
	if r.Extended() || r.Fast() || r.V2() || r.DHT() {
		t.Fatal("zero Reserved claims an extension")
	}
	r.SetDHT(true)
	if r != (Reserved{7: 0x01}) || !r.DHT() {
		t.Errorf("DHT bit: %x", r)
	}
	r.SetV2(true)
	r.SetFast(true)
	r.SetExtended(true)
	if !r.Extended() || !r.Fast() || !r.V2() {
		t.Errorf("bits not all set: %x", r)
	}
	r.SetFast(false)
	r.SetDHT(false)
	if r.Fast() || !r.V2() || r != (Reserved{5: 0x10, 7: 0x10}) {
		t.Errorf("clearing Fast/DHT touched other bits: %x", r)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	h := sampleHandshake()
	if err := WriteHandshake(&buf, h); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("trailing message bytes")
	got, err := ReadHandshake(&buf)
	if err != nil || got != h {
		t.Fatalf("got %+v, %v; want %+v", got, err, h)
	}
	if buf.String() != "trailing message bytes" {
		t.Errorf("handshake read beyond 68 bytes; left %q", buf.String())
	}
}

func TestHandshakeHeaderReadsOnly48(t *testing.T) {
	b := AppendHandshake(nil, sampleHandshake())
	src := &countingReader{r: bytes.NewReader(append(b, 1, 2, 3))}
	res, ih, err := ReadHandshakeHeader(src)
	if err != nil || src.n != HandshakeHeaderLen {
		t.Fatalf("read %d bytes, err %v", src.n, err)
	}
	if res != sampleHandshake().Reserved || ih != sampleHandshake().InfoHash {
		t.Errorf("header = %x %q", res, ih)
	}
	id, err := ReadPeerID(src)
	if err != nil || id != sampleHandshake().PeerID || src.n != HandshakeLen {
		t.Errorf("peer id %q after %d bytes, %v", id, src.n, err)
	}
}

func TestHandshakeBad(t *testing.T) {
	good := AppendHandshake(nil, sampleHandshake())

	// Wrong length byte: refused after one byte, e.g. an encrypted stream.
	src := &countingReader{r: &endless{prefix: []byte{0x13 + 1}}}
	if _, _, err := ReadHandshakeHeader(src); !errors.Is(err, ErrBadHandshake) || src.n != 1 {
		t.Errorf("bad pstrlen: err %v after %d bytes", err, src.n)
	}
	bad := append([]byte{}, good...)
	copy(bad[1:], "BitTorrent Protocol")
	if _, err := ReadHandshake(bytes.NewReader(bad)); !errors.Is(err, ErrBadHandshake) {
		t.Errorf("bad pstr: err = %v", err)
	}
	if _, err := ReadHandshake(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n"))); !errors.Is(err, ErrBadHandshake) {
		t.Errorf("http: err = %v", err)
	}
	for i := 1; i < len(good); i++ {
		if _, err := ReadHandshake(bytes.NewReader(good[:i])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: err = %v", i, err)
		}
	}
	if _, err := ReadHandshake(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("empty: err = %v", err)
	}
}

func TestTruncateV2(t *testing.T) {
	sum := sha256.Sum256([]byte("info"))
	h := TruncateV2(sum)
	if !bytes.Equal(h[:], sum[:20]) {
		t.Errorf("TruncateV2 = %x, want %x", h, sum[:20])
	}
}

// TestHandshakeAcceptFlow runs the incoming-connection order over TCP: the
// acceptor learns the info-hash before it answers, then reads the peer id.
func TestHandshakeAcceptFlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client := sampleHandshake()
	server := sampleHandshake()
	copy(server.PeerID[:], "-SH0001-serverserver")

	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		res, ih, err := ReadHandshakeHeader(c)
		if err != nil {
			errc <- err
			return
		}
		if ih != client.InfoHash || !res.Extended() {
			errc <- errors.New("acceptor saw wrong header")
			return
		}
		if err := WriteHandshake(c, server); err != nil {
			errc <- err
			return
		}
		id, err := ReadPeerID(c)
		if err == nil && id != client.PeerID {
			err = errors.New("acceptor saw wrong peer id")
		}
		if err == nil {
			err = WriteMessage(c, Message{ID: Unchoke})
		}
		errc <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := WriteHandshake(c, client); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	got, err := ReadHandshake(br)
	if err != nil || got != server {
		t.Fatalf("initiator got %+v, %v", got, err)
	}
	// The buffered reader must carry on into the message stream.
	m, err := NewReader(br, Limits{}).ReadMessage()
	if err != nil || m.ID != Unchoke {
		t.Fatalf("first message %+v, %v", m, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
