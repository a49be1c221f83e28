package wire

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestExtendedHandshakeRoundTrip(t *testing.T) {
	h := ExtendedHandshake{
		M:            map[string]uint8{ExtMetadata: 3, ExtPex: 1, "lt_donthave": 0},
		V:            "shoal 0.1",
		Port:         6881,
		Reqq:         500,
		YourIP:       netip.MustParseAddr("203.0.113.7"),
		IPv4:         netip.MustParseAddr("198.51.100.1"),
		IPv6:         netip.MustParseAddr("2001:db8::1"),
		MetadataSize: 31235,
		UploadOnly:   true,
	}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseExtendedHandshake(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("got %+v\nwant %+v", got, h)
	}
	// Through the framing too.
	frame := AppendExtended(nil, ExtendedHandshakeID, b)
	m, err := NewReader(bytes.NewReader(frame), Limits{}).ReadMessage()
	if err != nil || m.ExtendedID != ExtendedHandshakeID || !bytes.Equal(m.Payload, b) {
		t.Fatalf("framed: %+v, %v", m, err)
	}

	// The zero value encodes to just an empty m, which BEP 10 requires.
	var zero ExtendedHandshake
	if b, err := zero.Marshal(); err != nil || string(b) != "d1:mdee" {
		t.Errorf("zero handshake = %q, %v", b, err)
	}
}

func TestParseExtendedHandshakeKnownBytes(t *testing.T) {
	in := "d1:md11:ut_metadatai3e6:ut_pexi1e9:lt_foo_xxi0ee1:pi51413e4:reqqi250e" +
		"1:v17:qBittorrent/4.6.0" + "6:yourip4:\xc0\x00\x02\x01" + "13:metadata_sizei12345e" +
		"11:upload_onlyi1e" + "12:complete_agoi-1e" + "e"
	h, err := ParseExtendedHandshake([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := ExtendedHandshake{
		M:    map[string]uint8{"ut_metadata": 3, "ut_pex": 1, "lt_foo_xx": 0},
		V:    "qBittorrent/4.6.0",
		Port: 51413, Reqq: 250,
		YourIP:       netip.MustParseAddr("192.0.2.1"),
		MetadataSize: 12345, UploadOnly: true,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v\nwant %+v", h, want)
	}
	// A cosmetic field of the wrong type is tolerated.
	h, err = ParseExtendedHandshake([]byte("d1:md6:ut_pexi2ee1:vi7ee"))
	if err != nil || h.M[ExtPex] != 2 || h.V != "" {
		t.Errorf("v as int: %+v, %v", h, err)
	}
}

func TestParseExtendedHandshakeMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"le",
		"i1e",
		"d1:md6:ut_pexi300eee",
		"d1:md6:ut_pexi-1eee",
		"d1:mi1ee",
		"d1:pi70000ee",
		"d1:pi-1ee",
		"d13:metadata_sizei-5ee",
		"d6:yourip5:abcdee",
		"d4:ipv416:aaaaaaaaaaaaaaaae",
		"d4:ipv64:aaaae",
		"d1:md6:ut_pexi1eee" + "x",
		"d1:md6:ut_pexi1ee",
		"d1:md6:ut_pexi1e",
		"d1:m",
		"d1:md6:ut_pex5:helloee",
		"d1:pi1x2ee",
	} {
		if h, err := ParseExtendedHandshake([]byte(in)); err == nil {
			t.Errorf("%q accepted as %+v", in, h)
		}
	}
}

func TestMetadataMsgRoundTrip(t *testing.T) {
	const total = 2*MetadataPieceSize + 100
	data := bytes.Repeat([]byte("d4:infoe"), MetadataPieceSize/8) // looks like bencode on purpose
	for _, m := range []MetadataMsg{
		{Type: MetadataRequest, Piece: 0},
		{Type: MetadataRequest, Piece: 2},
		{Type: MetadataReject, Piece: 1},
		{Type: MetadataData, Piece: 0, TotalSize: total, Data: data},
		{Type: MetadataData, Piece: 2, TotalSize: total, Data: data[:100]},
		{Type: MetadataData, Piece: 0, TotalSize: 1, Data: []byte("x")},
	} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		got, err := ParseMetadataMsg(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if got.Type != m.Type || got.Piece != m.Piece || got.TotalSize != m.TotalSize || !bytes.Equal(got.Data, m.Data) {
			t.Errorf("got %+v, want %+v", got, m)
		}
	}
}

func TestMetadataMsgKnownBytes(t *testing.T) {
	b, _ := (&MetadataMsg{Type: MetadataRequest}).Marshal()
	if string(b) != "d8:msg_typei0e5:piecei0ee" {
		t.Errorf("request = %q", b)
	}
	in := "d8:msg_typei1e5:piecei0e10:total_sizei3ee" + "abc"
	m, err := ParseMetadataMsg([]byte(in))
	if err != nil || m.Type != MetadataData || m.TotalSize != 3 || string(m.Data) != "abc" {
		t.Fatalf("data = %+v, %v", m, err)
	}
	// Extra keys are skipped even when they sit between known ones.
	m, err = ParseMetadataMsg([]byte("d1:ali1ei2ee8:msg_typei2e5:piecei4ee"))
	if err != nil || m.Type != MetadataReject || m.Piece != 4 {
		t.Fatalf("reject with extra key = %+v, %v", m, err)
	}
}

func TestMetadataMsgMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"abc",
		"d5:piecei0ee",                  // no msg_type
		"d8:msg_typei0ee",               // no piece
		"d8:msg_typei0e5:piecei-1ee",    // negative piece
		"d8:msg_typei0e5:piecei0eextra", // bytes after a request
		"d8:msg_typei1e5:piecei0eeabc",  // data without total_size
		"d8:msg_typei1e5:piecei0e10:total_sizei4eeabc",    // short last piece
		"d8:msg_typei1e5:piecei0e10:total_sizei2eeabc",    // long last piece
		"d8:msg_typei1e5:piecei1e10:total_sizei3eeabc",    // piece past the end
		"d8:msg_typei1e5:piecei0e10:total_sizei0ee",       // empty metadata
		"d8:msg_typei1e5:piecei0e10:total_sizei-3eeabc",   // negative size
		"d8:msg_typei1e5:piecei0e10:total_sizei20000eeab", // non-final piece not 16 KiB
		"d8:msg_type1:x5:piecei0ee",
		"d8:msg_typei0e5:piecei0e",
	} {
		if m, err := ParseMetadataMsg([]byte(in)); err == nil {
			t.Errorf("%q accepted as %+v", in, m)
		}
	}
	_, err := ParseMetadataMsg([]byte("d8:msg_typei7e5:piecei0ee"))
	if !errors.Is(err, ErrUnknownMetadataType) {
		t.Errorf("msg_type 7: err = %v, want ErrUnknownMetadataType", err)
	}
	for _, m := range []MetadataMsg{
		{Type: 5},
		{Type: MetadataRequest, Data: []byte("x")},
		{Type: MetadataRequest, Piece: -1},
		{Type: MetadataData, Piece: 0, TotalSize: 10, Data: []byte("short")},
		{Type: MetadataData, Piece: 1, TotalSize: 10, Data: nil},
	} {
		if _, err := m.Marshal(); err == nil {
			t.Errorf("Marshal(%+v) accepted", m)
		}
	}
}

func TestMetadataPieceLen(t *testing.T) {
	cases := []struct {
		total int64
		piece int
		want  int
		ok    bool
	}{
		{1, 0, 1, true},
		{MetadataPieceSize, 0, MetadataPieceSize, true},
		{MetadataPieceSize, 1, 0, false},
		{MetadataPieceSize + 1, 1, 1, true},
		{0, 0, 0, false},
		{100, -1, 0, false},
		{100, math.MaxInt, 0, false},
	}
	for _, c := range cases {
		if n, ok := MetadataPieceLen(c.total, c.piece); n != c.want || ok != c.ok {
			t.Errorf("MetadataPieceLen(%d, %d) = %d, %v; want %d, %v", c.total, c.piece, n, ok, c.want, c.ok)
		}
	}
}

func TestPexRoundTrip(t *testing.T) {
	p := PexMsg{
		Added: []PexPeer{
			{Addr: netip.MustParseAddrPort("192.0.2.1:6881"), Flags: PexSeed | PexUTP},
			{Addr: netip.MustParseAddrPort("198.51.100.2:1"), Flags: 0},
			{Addr: netip.MustParseAddrPort("[2001:db8::5]:51413"), Flags: PexEncryption | PexReachable},
		},
		Dropped: []netip.AddrPort{
			netip.MustParseAddrPort("203.0.113.9:80"),
			netip.MustParseAddrPort("[2001:db8::9]:443"),
		},
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "d5:added12:\xc0\x00\x02\x01\x1a\xe1\xc6\x33\x64\x02\x00\x01" +
		"7:added.f2:\x06\x00" +
		"6:added618:\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x05\xc8\xd5" +
		"8:added6.f1:\x11" +
		"7:dropped6:\xcb\x00\x71\x09\x00\x50" +
		"8:dropped618:\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x09\x01\xbb" + "e"
	if string(b) != want {
		t.Errorf("encoded\n%q\nwant\n%q", b, want)
	}
	got, err := ParsePex(b)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if b, err := (&PexMsg{}).Marshal(); err != nil || string(b) != "de" {
		t.Errorf("empty pex = %q, %v", b, err)
	}
	if _, err := (&PexMsg{Added: []PexPeer{{}}}).Marshal(); err == nil {
		t.Error("peer without address accepted")
	}
}

func TestParsePexLenient(t *testing.T) {
	// Flags that do not line up with the addresses are dropped, not fatal.
	p, err := ParsePex([]byte("d5:added6:\x01\x02\x03\x04\x00\x017:added.f2:\x02\x02e"))
	if err != nil || len(p.Added) != 1 || p.Added[0].Flags != 0 ||
		p.Added[0].Addr != netip.MustParseAddrPort("1.2.3.4:1") {
		t.Fatalf("got %+v, %v", p, err)
	}
	// Unknown keys are ignored.
	if p, err := ParsePex([]byte("d1:xi1ee")); err != nil || len(p.Added)+len(p.Dropped) != 0 {
		t.Fatalf("unknown key: %+v, %v", p, err)
	}
}

func TestParsePexMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"le",
		"d5:added7:abcdefge",
		"d6:added66:abcdefe",
		"d7:dropped5:abcdee",
		"d8:dropped619:0123456789012345678e",
		"d5:addedi1ee",
		"d5:added6:abcdef",
		"d5:added6:abcdefee",
	} {
		if p, err := ParsePex([]byte(in)); err == nil {
			t.Errorf("%q accepted as %+v", in, p)
		}
	}
}
