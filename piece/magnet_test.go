package piece

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

const hexHash = "c2519e86248b9da3c237a3d527ea7bef57b2d46b72f3cab924ba9bb567840a38"

func TestMagnetRoundTrip(t *testing.T) {
	m, err := ParseMagnet("magnet:?xt=urn:btmh:1220" + hexHash + "&dn=My+File&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=udp%3A%2F%2Fx%3A1&x.pe=127.0.0.1:6881&x.pe=[::1]:7000")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "My File" || len(m.Trackers) != 2 || len(m.Peers) != 2 || m.Peers[1] != "[::1]:7000" {
		t.Fatalf("parsed %+v", m)
	}
	again, err := ParseMagnet(m.String())
	if err != nil || again.String() != m.String() {
		t.Fatalf("round trip: %v %q != %q", err, again.String(), m.String())
	}
	if !strings.Contains(m.String(), "&x.pe=127.0.0.1:6881&x.pe=[::1]:7000") {
		t.Errorf("x.pe must stay unescaped for libtorrent: %s", m)
	}
	if !strings.HasPrefix(m.String(), "magnet:?xt=urn:btmh:1220"+hexHash+"&dn=") {
		t.Errorf("xt must come first: %s", m)
	}
}

const v1Hex = "0123456789abcdef0123456789abcdef01234567"

func TestMagnetForms(t *testing.T) {
	v2only := "magnet:?xt=urn:btmh:1220" + hexHash
	v1only := "magnet:?xt=urn:btih:" + v1Hex
	both := "magnet:?xt=urn:btmh:1220" + hexHash + "&xt=urn:btih:" + v1Hex
	// The same v1 hash in base32, as older links carry it.
	b32 := "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"
	for s, want := range map[string]string{
		hexHash:                      v2only,
		strings.ToUpper(hexHash):     v2only,
		"urn:btmh:1220" + hexHash:    v2only,
		v1Hex:                        v1only,
		strings.ToUpper(v1Hex):       v1only,
		"urn:btih:" + v1Hex:          v1only,
		"urn:btih:" + b32:            v1only,
		"magnet:?xt=urn:btih:" + b32: v1only,
		"magnet:?xt=urn:btih:" + strings.ToLower(b32): v1only,
		both: both,
		"magnet:?xt=urn:btmh:1220" + hexHash + "&xt=urn:btih:" + v1Hex: both,
		// Another network's URN beside ours is ignored.
		"magnet:?xt=urn:sha1:ABCD&xt=urn:btih:" + v1Hex: v1only,
	} {
		m, err := ParseMagnet(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got := m.String(); got != want {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
	}
}

func TestMagnetRefuses(t *testing.T) {
	for name, s := range map[string]string{
		"short hex":          hexHash[:63],
		"bad hex":            "zz" + hexHash[2:],
		"sha1 multihash":     "urn:btmh:1114" + hexHash,
		"wrong length":       "urn:btmh:1221" + hexHash,
		"btih base32 short":  "magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRL",
		"btih base32 bad":    "magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRL1",
		"btih 39 hex":        "magnet:?xt=urn:btih:" + v1Hex[:39],
		"btih 64 hex":        "magnet:?xt=urn:btih:" + hexHash,
		"two btih":           "magnet:?xt=urn:btih:" + v1Hex + "&xt=urn:btih:" + strings.Repeat("0", 40),
		"bare 39 hex":        v1Hex[:39],
		"only another urn":   "magnet:?xt=urn:sha1:ABCD",
		"no xt":              "magnet:?dn=x",
		"two hashes":         "magnet:?xt=urn:btmh:1220" + hexHash + "&xt=urn:btmh:1220" + strings.Repeat("0", 64),
		"bad x.pe":           "magnet:?xt=urn:btmh:1220" + hexHash + "&x.pe=nohost",
		"bad x.pe port":      "magnet:?xt=urn:btmh:1220" + hexHash + "&x.pe=1.2.3.4:99999",
		"bad escape":         "magnet:?xt=urn:btmh:1220" + hexHash + "&dn=%zz",
		"empty":              "",
		"btmh no payload":    "urn:btmh:",
		"btih base32 long":   "magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLHA",
		"btih base32 padded": "magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54AS====",
		"btih 40 not hex":    "magnet:?xt=urn:btih:" + strings.Repeat("Z", 40),
		"btih zero hex":      "magnet:?xt=urn:btih:" + strings.Repeat("0", 40),
		"btih zero base32":   "magnet:?xt=urn:btih:" + strings.Repeat("A", 32),
		"btmh zero":          "magnet:?xt=urn:btmh:1220" + strings.Repeat("0", 64),
		"bare zero v1":       strings.Repeat("0", 40),
		"bare base32":        "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH",
	} {
		_, err := ParseMagnet(s)
		if !errors.Is(err, ErrBadMagnet) {
			t.Errorf("%s: error %v, want ErrBadMagnet", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", name, err)
		}
	}
}

// TestMagnetLikeLibtorrent reads btih and btmh links as libtorrent 2.0
// reads them, base32 forms and bad lengths above all: both must take the
// same links to the same hashes, except where a case says why not.
func TestMagnetLikeLibtorrent(t *testing.T) {
	lttest.Require(t)
	b32 := "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"
	cases := []struct {
		link      string
		ltDiffers string
	}{
		{"magnet:?xt=urn:btih:" + v1Hex, ""},
		{"magnet:?xt=urn:btih:" + strings.ToUpper(v1Hex), ""},
		{"magnet:?xt=urn:btih:" + b32, ""},
		{"magnet:?xt=urn:btih:" + strings.ToLower(b32), ""},
		{"magnet:?xt=urn:btih:" + b32[:31], ""},
		{"magnet:?xt=urn:btih:" + b32 + "A", ""},
		{"magnet:?xt=urn:btih:" + b32[:28] + "====", ""},
		{"magnet:?xt=urn:btih:" + v1Hex[:39], ""},
		{"magnet:?xt=urn:btih:" + hexHash, ""},
		{"magnet:?xt=urn:btih:" + strings.Repeat("Z", 40), ""},
		{"magnet:?xt=urn:btih:" + strings.Repeat("0", 40), ""},
		{"magnet:?xt=urn:btmh:1220" + hexHash, ""},
		{"magnet:?xt=urn:btmh:1114" + hexHash, ""},
		{"magnet:?xt=urn:btih:" + v1Hex + "&xt=urn:btmh:1220" + hexHash, ""},
		{"magnet:?dn=x", ""},
		{"magnet:?xt=urn:btih:" + v1Hex + "&xt=urn:btih:" + strings.Repeat("1", 40), "libtorrent keeps the last of two hashes; a link naming two torrents is refused"},
	}
	args := []string{"--magnet"}
	for _, c := range cases {
		args = append(args, c.link)
	}
	for i, v := range strings.Split(lttest.Run(t, "lt_accepts.py", args...), "\n") {
		c := cases[i]
		m, err := ParseMagnet(c.link)
		ours := "error"
		if err == nil {
			v2, v1 := "-", "-"
			if m.HasV2() {
				v2 = hex.EncodeToString(m.Hash[:])
			}
			if m.HasV1() {
				v1 = m.V1Hash.String()
			}
			ours = "ok " + v2 + " " + v1
		}
		same := ours == v || ours == "error" && strings.HasPrefix(v, "error")
		if same == (c.ltDiffers == "") {
			continue
		}
		if c.ltDiffers == "" {
			t.Errorf("%s: libtorrent %q, shoal %q (%v)", c.link, v, ours, err)
		} else {
			t.Errorf("%s: libtorrent now agrees (%q); the note %q is stale", c.link, v, c.ltDiffers)
		}
	}
}
