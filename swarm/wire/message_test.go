package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// countingReader counts bytes handed out, to prove what the reader consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// endless yields prefix and then an unlimited stream of fill bytes, like a
// peer that claims a 4 GiB message and would happily send it.
type endless struct {
	prefix []byte
	fill   byte
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	return len(p), nil
}

func root(b byte) (r [HashSize]byte) {
	for i := range r {
		r[i] = b + byte(i)
	}
	return r
}

// sampleMessages has one of every message the codec knows, with
// non-trivial field values so a swapped field shows.
func sampleMessages() []Message {
	hashes := bytes.Repeat([]byte{0xab}, 3*HashSize)
	block := bytes.Repeat([]byte("0123456789abcdef"), BlockSize/16)
	return []Message{
		{KeepAlive: true},
		{ID: Choke}, {ID: Unchoke}, {ID: Interested}, {ID: NotInterested},
		{ID: HaveAll}, {ID: HaveNone},
		{ID: Have, Index: 0xdeadbeef},
		{ID: Suggest, Index: 7},
		{ID: AllowedFast, Index: 1 << 31},
		{ID: Bitfield, Payload: []byte{0xff, 0x80}},
		{ID: Request, Index: 1, Begin: 2 * BlockSize, Length: BlockSize},
		{ID: Cancel, Index: 3, Begin: 4, Length: 5},
		{ID: Reject, Index: 6, Begin: 7, Length: 8},
		{ID: Piece, Index: 9, Begin: BlockSize, Payload: block},
		{ID: Piece, Index: 10, Begin: 0, Payload: []byte{}},
		{ID: Port, Port: 6881},
		{ID: Extended, ExtendedID: 0, Payload: []byte("d1:md11:ut_metadatai1eee")},
		{ID: Extended, ExtendedID: 3, Payload: []byte{}},
		{ID: HashRequest, PiecesRoot: root(1), BaseLayer: 2, Index: 512, Length: 512, ProofLayers: 9},
		{ID: HashReject, PiecesRoot: root(2), BaseLayer: 0, Index: 4, Length: 4, ProofLayers: 0},
		{ID: Hashes, PiecesRoot: root(3), BaseLayer: 1, Index: 2, Length: 2, ProofLayers: 1, Payload: hashes},
	}
}

func equalMessage(a, b Message) bool {
	return a.KeepAlive == b.KeepAlive && a.ID == b.ID && a.ExtendedID == b.ExtendedID &&
		a.Port == b.Port && a.Index == b.Index && a.Begin == b.Begin && a.Length == b.Length &&
		a.BaseLayer == b.BaseLayer && a.ProofLayers == b.ProofLayers &&
		a.PiecesRoot == b.PiecesRoot && bytes.Equal(a.Payload, b.Payload)
}

func cloneMessage(m Message) Message {
	if m.Payload != nil {
		m.Payload = append([]byte{}, m.Payload...)
	}
	return m
}

func TestRoundTripAll(t *testing.T) {
	msgs := sampleMessages()
	var stream []byte
	for _, m := range msgs {
		var err error
		if stream, err = AppendMessage(stream, m); err != nil {
			t.Fatalf("AppendMessage(%v): %v", m.ID, err)
		}
	}
	r := NewReader(bytes.NewReader(stream), Limits{})
	for i, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%v): %v", i, want.ID, err)
		}
		if !equalMessage(got, want) {
			t.Errorf("message %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("after last message: err = %v, want io.EOF", err)
	}
}

// TestAppendBytes pins the wire bytes, so a mistake shared by encoder and
// decoder cannot round-trip its way past the tests.
func TestAppendBytes(t *testing.T) {
	rt := root(0)
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"keepalive", AppendKeepAlive(nil), "00000000"},
		{"choke", AppendChoke(nil), "0000000100"},
		{"unchoke", AppendUnchoke(nil), "0000000101"},
		{"interested", AppendInterested(nil), "0000000102"},
		{"not interested", AppendNotInterested(nil), "0000000103"},
		{"have", AppendHave(nil, 0x01020304), "000000050401020304"},
		{"bitfield", AppendBitfield(nil, []byte{0xf0}), "0000000205f0"},
		{"request", AppendRequest(nil, 1, 0x4000, 0x4000), "0000000d06" + "00000001" + "00004000" + "00004000"},
		{"piece", AppendPiece(nil, 2, 3, []byte{0xaa, 0xbb}), "0000000b07" + "00000002" + "00000003" + "aabb"},
		{"cancel", AppendCancel(nil, 1, 2, 3), "0000000d08" + "00000001" + "00000002" + "00000003"},
		{"port", AppendPort(nil, 6881), "00000003091ae1"},
		{"suggest", AppendSuggest(nil, 5), "000000050d00000005"},
		{"have all", AppendHaveAll(nil), "000000010e"},
		{"have none", AppendHaveNone(nil), "000000010f"},
		{"reject", AppendReject(nil, 1, 2, 3), "0000000d10" + "00000001" + "00000002" + "00000003"},
		{"allowed fast", AppendAllowedFast(nil, 6), "000000051100000006"},
		{"extended", AppendExtended(nil, 2, []byte("de")), "00000004140264" + "65"},
		{"hash request", AppendHashRequest(nil, rt, 1, 2, 3, 4), "0000003115" + hex.EncodeToString(rt[:]) + "00000001" + "00000002" + "00000003" + "00000004"},
		{"hash reject", AppendHashReject(nil, rt, 1, 2, 3, 4), "0000003117" + hex.EncodeToString(rt[:]) + "00000001" + "00000002" + "00000003" + "00000004"},
		{"hashes", AppendHashes(nil, rt, 1, 2, 1, 4, bytes.Repeat([]byte{0xcc}, 32)), "0000005116" + hex.EncodeToString(rt[:]) + "00000001" + "00000002" + "00000001" + "00000004" + strings.Repeat("cc", 32)},
	}
	for _, c := range cases {
		if g := hex.EncodeToString(c.got); g != c.want {
			t.Errorf("%s: got %s, want %s", c.name, g, c.want)
		}
	}
}

// TestAppendMatchesAppendMessage checks that the specialised Append
// functions and the generic one agree, and that appending keeps dst.
func TestAppendMatchesAppendMessage(t *testing.T) {
	prefix := []byte("keep")
	for _, m := range sampleMessages() {
		generic, err := AppendMessage(append([]byte{}, prefix...), m)
		if err != nil {
			t.Fatal(err)
		}
		var specific []byte
		p := append([]byte{}, prefix...)
		switch {
		case m.KeepAlive:
			specific = AppendKeepAlive(p)
		case m.ID == Choke:
			specific = AppendChoke(p)
		case m.ID == Unchoke:
			specific = AppendUnchoke(p)
		case m.ID == Interested:
			specific = AppendInterested(p)
		case m.ID == NotInterested:
			specific = AppendNotInterested(p)
		case m.ID == HaveAll:
			specific = AppendHaveAll(p)
		case m.ID == HaveNone:
			specific = AppendHaveNone(p)
		case m.ID == Have:
			specific = AppendHave(p, m.Index)
		case m.ID == Suggest:
			specific = AppendSuggest(p, m.Index)
		case m.ID == AllowedFast:
			specific = AppendAllowedFast(p, m.Index)
		case m.ID == Bitfield:
			specific = AppendBitfield(p, m.Payload)
		case m.ID == Request:
			specific = AppendRequest(p, m.Index, m.Begin, m.Length)
		case m.ID == Cancel:
			specific = AppendCancel(p, m.Index, m.Begin, m.Length)
		case m.ID == Reject:
			specific = AppendReject(p, m.Index, m.Begin, m.Length)
		case m.ID == Piece:
			specific = append(AppendPieceHeader(p, m.Index, m.Begin, len(m.Payload)), m.Payload...)
		case m.ID == Port:
			specific = AppendPort(p, m.Port)
		case m.ID == Extended:
			specific = AppendExtended(p, m.ExtendedID, m.Payload)
		case m.ID == HashRequest:
			specific = AppendHashRequest(p, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers)
		case m.ID == HashReject:
			specific = AppendHashReject(p, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers)
		case m.ID == Hashes:
			specific = AppendHashes(p, m.PiecesRoot, m.BaseLayer, m.Index, m.Length, m.ProofLayers, m.Payload)
		default:
			t.Fatalf("no specific Append for %v", m.ID)
		}
		if !bytes.Equal(generic, specific) {
			t.Errorf("%v: AppendMessage %x, specific %x", m.ID, generic, specific)
		}
		if !bytes.HasPrefix(generic, prefix) {
			t.Errorf("%v: dst prefix clobbered", m.ID)
		}
	}
}

func TestAppendMessageRefuses(t *testing.T) {
	if _, err := AppendMessage(nil, Message{ID: 99}); !errors.Is(err, ErrUnknownID) {
		t.Errorf("unknown id: err = %v, want ErrUnknownID", err)
	}
	if _, err := AppendMessage(nil, Message{ID: Hashes, Payload: make([]byte, 33)}); !errors.Is(err, ErrBadLength) {
		t.Errorf("ragged hashes: err = %v, want ErrBadLength", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendHashes with 31 bytes did not panic")
		}
	}()
	AppendHashes(nil, root(0), 0, 0, 0, 0, make([]byte, 31))
}

func TestWriteMessage(t *testing.T) {
	var buf bytes.Buffer
	for _, m := range sampleMessages() {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, Limits{})
	for _, want := range sampleMessages() {
		got, err := r.ReadMessage()
		if err != nil || !equalMessage(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	}
	if err := WriteMessage(&buf, Message{ID: 200}); !errors.Is(err, ErrUnknownID) {
		t.Errorf("WriteMessage(unknown id): err = %v", err)
	}
}

func TestReaderRefuses4GiB(t *testing.T) {
	src := &countingReader{r: &endless{prefix: []byte{0xff, 0xff, 0xff, 0xff}, fill: byte(Piece)}}
	r := NewReader(src, Limits{})
	capBefore := cap(r.buf)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, err := r.ReadMessage()
	runtime.ReadMemStats(&ms)
	if !errors.Is(err, ErrMessageTooLong) {
		t.Fatalf("err = %v, want ErrMessageTooLong", err)
	}
	// It reads ahead, but only into the buffer it has: none of the 4 GiB
	// is read past that.
	if src.n > capBefore {
		t.Errorf("consumed %d bytes, more than its %d-byte buffer", src.n, capBefore)
	}
	if cap(r.buf) != capBefore {
		t.Errorf("buffer grew from %d to %d", capBefore, cap(r.buf))
	}
	// TotalAlloc is the whole process's, and the race detector's and
	// runtime's own bookkeeping reach a few KiB now and then; what must not
	// happen is an allocation sized by the 4 GiB the peer declared.
	if d := ms.TotalAlloc - before; d > 64<<10 {
		t.Errorf("allocated %d bytes refusing the message", d)
	}
}

func TestReaderPerIDLimits(t *testing.T) {
	frame := func(n uint32, id ID) []byte {
		return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(id)}
	}
	cases := []struct {
		name string
		lim  Limits
		in   []byte
		want error
	}{
		{"piece block over MaxBlock", Limits{}, frame(1+8+BlockSize+1, Piece), ErrMessageTooLong},
		{"piece below header", Limits{}, frame(1+7, Piece), ErrBadLength},
		{"bitfield over cap", Limits{MaxBitfield: 10}, frame(1+11, Bitfield), ErrMessageTooLong},
		{"bitfield wrong size", Limits{NumPieces: 17}, frame(1+2, Bitfield), ErrBadLength},
		{"extended over cap", Limits{MaxExtended: 100}, frame(2+101, Extended), ErrMessageTooLong},
		{"extended without ext id", Limits{}, frame(1, Extended), ErrBadLength},
		{"hashes over cap", Limits{MaxHashes: 2}, frame(1+48+3*32, Hashes), ErrMessageTooLong},
		{"hashes ragged", Limits{}, frame(1+48+31, Hashes), ErrBadLength},
		{"hashes short header", Limits{}, frame(1+47, Hashes), ErrBadLength},
		{"unknown id over extended cap", Limits{MaxExtended: 10}, frame(1+11, 200), ErrMessageTooLong},
		{"have 3 bytes", Limits{}, frame(1+3, Have), ErrBadLength},
		{"have 5 bytes", Limits{}, frame(1+5, Have), ErrBadLength},
		{"choke with payload", Limits{}, frame(2, Choke), ErrBadLength},
		{"have all with payload", Limits{}, frame(2, HaveAll), ErrBadLength},
		{"request 12+1", Limits{}, frame(1+13, Request), ErrBadLength},
		{"cancel 11", Limits{}, frame(1+11, Cancel), ErrBadLength},
		{"reject 4", Limits{}, frame(1+4, Reject), ErrBadLength},
		{"suggest 0", Limits{}, frame(1, Suggest), ErrBadLength},
		{"allowed fast 8", Limits{}, frame(1+8, AllowedFast), ErrBadLength},
		{"port 4", Limits{}, frame(1+4, Port), ErrBadLength},
		{"hash request 49", Limits{}, frame(1+49, HashRequest), ErrBadLength},
		{"hash reject 47", Limits{}, frame(1+47, HashReject), ErrBadLength},
	}
	for _, c := range cases {
		// Follow the header with plenty of bytes: the reader must refuse
		// from the header alone and consume nothing of the body.
		src := &countingReader{r: &endless{prefix: c.in}}
		r := NewReader(src, c.lim)
		size := cap(r.buf)
		_, err := r.ReadMessage()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if src.n > size || cap(r.buf) != size {
			t.Errorf("%s: consumed %d bytes into a buffer grown from %d to %d", c.name, src.n, size, cap(r.buf))
		}
	}
}

func TestReaderTruncated(t *testing.T) {
	for _, m := range sampleMessages() {
		full, _ := AppendMessage(nil, m)
		for i := 1; i < len(full); i++ {
			_, err := NewReader(bytes.NewReader(full[:i]), Limits{}).ReadMessage()
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v cut at %d/%d: err = %v, want io.ErrUnexpectedEOF", m.ID, i, len(full), err)
			}
		}
	}
	if _, err := NewReader(bytes.NewReader(nil), Limits{}).ReadMessage(); err != io.EOF {
		t.Errorf("empty stream: err = %v, want io.EOF", err)
	}
}

func TestReaderUnknownIDKeepsStep(t *testing.T) {
	var s []byte
	s = append(s, 0, 0, 0, 4, 42, 'a', 'b', 'c')
	s = AppendHave(s, 77)
	r := NewReader(bytes.NewReader(s), Limits{})
	m, err := r.ReadMessage()
	var u UnknownIDError
	if !errors.As(err, &u) || u != 42 || !errors.Is(err, ErrUnknownID) {
		t.Fatalf("err = %v, want UnknownIDError(42)", err)
	}
	if m.ID != 42 || string(m.Payload) != "abc" {
		t.Errorf("unknown message = %+v", m)
	}
	m, err = r.ReadMessage()
	if err != nil || m.ID != Have || m.Index != 77 {
		t.Fatalf("after unknown id: %+v, %v", m, err)
	}
}

func TestReaderBitfield(t *testing.T) {
	// 12 pieces: 2 bytes, the low 4 bits of the second are spare.
	r := NewReader(bytes.NewReader(AppendBitfield(nil, []byte{0xff, 0xf0})), Limits{NumPieces: 12})
	if m, err := r.ReadMessage(); err != nil || !bytes.Equal(m.Payload, []byte{0xff, 0xf0}) {
		t.Fatalf("valid bitfield: %+v, %v", m, err)
	}
	r = NewReader(bytes.NewReader(AppendBitfield(nil, []byte{0xff, 0xf8})), Limits{NumPieces: 12})
	if _, err := r.ReadMessage(); err == nil || !strings.Contains(err.Error(), "spare") {
		t.Fatalf("spare bit set: err = %v", err)
	}
	// Unknown piece count until SetNumPieces, as with a magnet link.
	s := AppendBitfield(nil, make([]byte, 5))
	s = AppendBitfield(s, make([]byte, 5))
	r = NewReader(bytes.NewReader(s), Limits{})
	if _, err := r.ReadMessage(); err != nil {
		t.Fatalf("bitfield before piece count known: %v", err)
	}
	r.SetNumPieces(41)
	if _, err := r.ReadMessage(); !errors.Is(err, ErrBadLength) {
		t.Fatalf("5-byte bitfield for 41 pieces: err = %v, want ErrBadLength", err)
	}
	// A huge torrent's exact bitfield is allowed past MaxBitfield.
	r = NewReader(bytes.NewReader(AppendBitfield(nil, make([]byte, 2000))), Limits{NumPieces: 16000, MaxBitfield: 100})
	if _, err := r.ReadMessage(); err != nil {
		t.Fatalf("exact bitfield above MaxBitfield: %v", err)
	}
}

func TestReaderHashesFewerThanLength(t *testing.T) {
	s := AppendHashes(nil, root(0), 0, 0, 4, 0, make([]byte, 3*HashSize))
	if _, err := NewReader(bytes.NewReader(s), Limits{}).ReadMessage(); err == nil {
		t.Fatal("3 hashes for length 4 accepted")
	}
	s = AppendHashes(nil, root(0), 0, 0, 2, 1, make([]byte, 3*HashSize))
	m, err := NewReader(bytes.NewReader(s), Limits{}).ReadMessage()
	if err != nil || m.NumHashes() != 3 {
		t.Fatalf("2 hashes + 1 proof: %+v, %v", m, err)
	}
	m.Payload[HashSize] = 7
	if h := m.Hash(1); h[0] != 7 {
		t.Errorf("Hash(1)[0] = %d, want 7", h[0])
	}
}

func TestReaderBufferBounded(t *testing.T) {
	lim := Limits{MaxExtended: 3000}
	s := AppendExtended(nil, 1, make([]byte, 3000))
	s = AppendExtended(s, 1, make([]byte, 2999))
	r := NewReader(bytes.NewReader(s), lim)
	for range 2 {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if c := cap(r.buf); c > int(r.max) {
		t.Errorf("buffer cap %d above the largest allowed body %d", c, r.max)
	}
	// Growing for one big extended message must not break block reads.
	big := AppendExtended(nil, 1, make([]byte, 100000))
	big = AppendPiece(big, 1, 0, bytes.Repeat([]byte{9}, BlockSize))
	r = NewReader(bytes.NewReader(big), Limits{})
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	m, err := r.ReadMessage()
	if err != nil || len(m.Payload) != BlockSize || m.Payload[BlockSize-1] != 9 {
		t.Fatalf("piece after growth: %v", err)
	}
}

func TestReadPieceNoAlloc(t *testing.T) {
	msg := AppendPiece(nil, 1, 0, make([]byte, BlockSize))
	src := &loop{b: msg}
	r := NewReader(src, Limits{})
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadMessage(piece) allocates %v times", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		var b [64]byte
		_ = AppendRequest(b[:0], 1, 2, 3)
	})
	if allocs != 0 {
		t.Errorf("AppendRequest allocates %v times", allocs)
	}
}

// loop repeats b forever without allocating.
type loop struct {
	b   []byte
	off int
}

func (l *loop) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func TestIDString(t *testing.T) {
	if Piece.String() != "piece" || ID(99).String() != "message 99" || !HashReject.Known() || ID(10).Known() {
		t.Errorf("ID naming wrong: %q %q", Piece, ID(99))
	}
}
