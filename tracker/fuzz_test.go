package tracker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParseAnnounce checks that the announce parser never panics, that
// anything it accepts is well-formed, and that what it accepts survives a
// round trip through the client's query builder.
func FuzzParseAnnounce(f *testing.F) {
	good := AnnounceRequest{InfoHash: ih(1), PeerID: pid(1), Port: 6881, Left: 10, Event: EventStarted, NumWant: 20, Key: 7}
	f.Add(string(good.query(nil)))
	f.Add("info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13&peer_id=-qB4500-abcdefghijkl&port=1&compact=0&no_peer_id=1&event=stopped")
	f.Add("info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=65535&numwant=99999999999999999999999&ip=::1&key=x+y")
	f.Add("info_hash=%zz&port=")
	f.Add("&&&=&info_hash&peer_id=%&port=-1")
	f.Add(strings.Repeat("a=b&", 50))
	f.Fuzz(func(t *testing.T, q string) {
		var a announceQuery
		err := parseAnnounce(q, &a, 200)
		if err != nil {
			if _, ok := err.(failure); !ok {
				t.Fatalf("error %T %v is not a failure reason", err, err)
			}
			return
		}
		if a.Port == 0 || a.NumWant > 200 || a.NumWant < -1 {
			t.Fatalf("accepted bad values: %+v", a)
		}
		req := AnnounceRequest{
			InfoHash: a.InfoHash, PeerID: a.PeerID, Port: a.Port,
			Uploaded: a.Uploaded, Downloaded: a.Downloaded, Left: a.Left,
			Event: a.Event, NonCompact: !a.Compact, NoPeerID: a.NoPeerID, IP: a.IP,
		}
		switch {
		case a.NumWant > 0:
			req.NumWant = a.NumWant
		case a.NumWant == 0:
			req.NumWant = -1
		}
		var b announceQuery
		if err := parseAnnounce(string(req.query(nil)), &b, 200); err != nil {
			t.Fatalf("re-encoded query refused: %v", err)
		}
		// The client always sends left and has its own key encoding.
		a.HasLeft, a.Key, b.Key = true, 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the query:\n%+v\n%+v", a, b)
		}
	})
}

func TestParseScrapeDedup(t *testing.T) {
	h := ih(1)
	e := string(appendEscaped(nil, h[:]))
	hs, err := parseScrape("info_hash="+e+"&x=1&info_hash="+e, nil, 1)
	if err != nil || len(hs) != 1 || hs[0] != h {
		t.Fatalf("%v %v", hs, err)
	}
}

// FuzzUDPPacket feeds datagrams to the UDP front end. It checks that no
// packet panics it, that an answer to a packet without a valid connection
// ID is never larger than the packet (no amplification), that every answer
// fits the reply buffer and echoes the transaction ID, and that an announce
// the parser accepts survives a round trip through the client's encoder.
// When valid is set the packet gets a valid connection ID, so the fuzzer
// reaches the announce and scrape paths.
func FuzzUDPPacket(f *testing.F) {
	req := AnnounceRequest{InfoHash: ih(1), PeerID: pid(1), Port: 6881, Left: 10, Event: EventStarted, NumWant: 20, Key: 7}
	f.Add(appendUDPConnectReq(nil, 1), false)
	f.Add(appendUDPAnnounceReq(nil, 0, 2, &req, "/announce?passkey=abc"), true)
	f.Add(appendUDPAnnounceReq(nil, 0, 2, &req, strings.Repeat("/x", 200)), true)
	f.Add(appendUDPScrapeReq(nil, 0, 3, []InfoHash{ih(1), ih(2)}), true)
	f.Add(appendUDPAnnounceReq(nil, 5, 2, &req, ""), false)
	f.Add([]byte("\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x07\x00\x00\x00\x01"), false)
	f.Add([]byte{1, 2, 3}, false)
	srv, err := NewServer(Config{RateLimit: -1, MaxNumWant: 300})
	if err != nil {
		f.Fatal(err)
	}
	w := srv.newUDPWorker()
	from := netip.MustParseAddrPort("192.0.2.7:5000")
	out := make([]byte, 0, udpMaxReply)
	f.Fuzz(func(t *testing.T, pkt []byte, valid bool) {
		if valid && len(pkt) >= udpHeaderLen && binary.BigEndian.Uint32(pkt[8:]) != udpConnect {
			// A copy: the fuzzing engine keeps mutating its own.
			pkt = bytes.Clone(pkt)
			id := srv.udp.connID(new([16]byte), connIDWindowOf(time.Now()), from.Addr())
			binary.BigEndian.PutUint64(pkt, id)
		}
		r := w.handle(pkt, from, out[:0])
		if r == nil {
			return
		}
		if !valid && len(r) > len(pkt) {
			t.Fatalf("%d-byte answer to a %d-byte packet without a connection ID", len(r), len(pkt))
		}
		if len(r) > udpMaxReply || len(r) < 8 || !bytes.Equal(r[4:8], pkt[12:16]) {
			t.Fatalf("answer %x to %x", r, pkt)
		}
		var a udpAnnounceReq
		if parseUDPAnnounce(pkt, &a) != nil {
			return
		}
		req := AnnounceRequest{
			InfoHash: a.InfoHash, PeerID: a.PeerID, Port: a.Port, Event: a.Event,
			Uploaded: a.Uploaded, Downloaded: a.Downloaded, Left: a.Left, Key: a.Key,
			IP: netip.AddrFrom4(a.IP), NumWant: int(a.NumWant),
		}
		if a.NumWant == 0 {
			req.NumWant = -1
		}
		url := string(a.URLData)
		var b udpAnnounceReq
		if err := parseUDPAnnounce(appendUDPAnnounceReq(nil, 0, 0, &req, url), &b); err != nil {
			t.Fatalf("re-encoded announce refused: %v", err)
		}
		if a.NumWant < 0 {
			b.NumWant = a.NumWant // every negative value means the default
		}
		if string(b.URLData) != url {
			t.Fatalf("URL data %q became %q", url, b.URLData)
		}
		a.URLData, b.URLData = nil, nil
		a.urlBuf, b.urlBuf = [udpMaxPacket]byte{}, [udpMaxPacket]byte{}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the announce:\n%+v\n%+v", a, b)
		}
	})
}
