package tracker

import (
	"strings"
	"testing"
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
		if a != b {
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
