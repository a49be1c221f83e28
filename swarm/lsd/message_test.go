package lsd

import (
	"bytes"
	"strings"
	"testing"
)

const ihA = "0123456789abcdef0123456789abcdef01234567"

func TestParse(t *testing.T) {
	ok := "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " + ihA + "\r\ncookie: abc\r\n\r\n\r\n"
	a, err := Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if a.Port != 6881 || len(a.Hashes) != 1 || a.Hashes[0][0] != 0x01 || a.Hashes[0][19] != 0x67 || a.Cookie != "abc" {
		t.Fatalf("got %+v", a)
	}
	// Two hashes, upper-case hex, bare LFs, header names in any case, an
	// unknown header and no cookie: all as HTTP allows.
	two := "BT-SEARCH * HTTP/1.1\nHOST: [ff15::efc0:988f]:6771\nport:1\nX-Other: y\ninfoHash: " + strings.ToUpper(ihA) + "\nInfohash: " + strings.Repeat("ff", 20) + "\n\n"
	a, err = Parse([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	if a.Port != 1 || len(a.Hashes) != 2 || a.Hashes[1][0] != 0xff || a.Cookie != "" {
		t.Fatalf("got %+v", a)
	}
	bad := map[string]string{
		"empty":          "",
		"other method":   strings.Replace(ok, "BT-SEARCH", "M-SEARCH", 1),
		"no port":        strings.Replace(ok, "Port: 6881\r\n", "", 1),
		"port zero":      strings.Replace(ok, "6881", "0", 1),
		"port too big":   strings.Replace(ok, "6881", "65536", 1),
		"port negative":  strings.Replace(ok, "6881", "-1", 1),
		"no infohash":    strings.Replace(ok, "Infohash: "+ihA+"\r\n", "", 1),
		"short infohash": strings.Replace(ok, ihA, ihA[:39], 1),
		"non-hex":        strings.Replace(ok, ihA, "zz"+ihA[2:], 1),
		"no colon":       strings.Replace(ok, "cookie: abc", "cookie abc", 1),
		"huge":           ok + strings.Repeat("X-Pad: y\r\n", 200),
	}
	for name, s := range bad {
		if a, err := Parse([]byte(s)); err == nil {
			t.Errorf("%s: parsed as %+v", name, a)
		}
	}
}

// What we send parses back to what we announced, and a datagram holding
// many torrents stays within BEP 14's 1400 bytes, split as needed.
func TestPacketsRoundTrip(t *testing.T) {
	hashes := make([][20]byte, 60)
	for i := range hashes {
		hashes[i][0], hashes[i][19] = byte(i), byte(255-i)
	}
	for _, g := range []struct{ group, host string }{{GroupV4.String(), "239.192.152.143:6771"}, {GroupV6.String(), "[ff15::efc0:988f]:6771"}} {
		group := GroupV4
		if strings.HasPrefix(g.host, "[") {
			group = GroupV6
		}
		pkts := packets(group, 51413, "c00k1e", hashes)
		if len(pkts) < 2 {
			t.Fatalf("%d hashes went in %d datagram(s)", len(hashes), len(pkts))
		}
		var got [][20]byte
		for _, p := range pkts {
			if len(p) > maxPacket {
				t.Errorf("datagram of %d bytes", len(p))
			}
			if !bytes.Contains(p, []byte("Host: "+g.host+"\r\n")) {
				t.Errorf("no Host %s in %q", g.host, p)
			}
			a, err := Parse(p)
			if err != nil {
				t.Fatalf("%v: %q", err, p)
			}
			if a.Port != 51413 || a.Cookie != "c00k1e" {
				t.Fatalf("got %+v", a)
			}
			got = append(got, a.Hashes...)
		}
		if len(got) != len(hashes) {
			t.Fatalf("got %d hashes back, want %d", len(got), len(hashes))
		}
		for i := range got {
			if got[i] != hashes[i] {
				t.Fatalf("hash %d: %x, want %x", i, got[i], hashes[i])
			}
		}
	}
}

// FuzzParse: whatever arrives, Parse returns without panicking, and what
// it accepts is a well-formed announce whose hashes survive a round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " + ihA + "\r\ncookie: x\r\n\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil {
			return
		}
		if len(b) > MaxDatagram || a.Port == 0 || len(a.Hashes) == 0 || len(a.Cookie) > maxCookie {
			t.Fatalf("accepted %q as %+v", b, a)
		}
		for _, p := range packets(GroupV4, a.Port, "", a.Hashes) {
			if _, err := Parse(p); err != nil {
				t.Fatalf("our own rendering of %+v: %v", a, err)
			}
		}
	})
}

// BenchmarkParse is the cost of one announce taken in, which the rate
// limits bound per second.
func BenchmarkParse(b *testing.B) {
	p := packets(GroupV4, 6881, "c00k1e", make([][20]byte, 4))[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(p); err != nil {
			b.Fatal(err)
		}
	}
}
