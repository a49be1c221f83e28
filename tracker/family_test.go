package tracker

import (
	"context"
	"strings"
	"testing"
)

// A Client kept to one family announces over it, so the tracker lists the
// address of that family, and cannot reach a tracker of the other.
func TestClientFamily(t *testing.T) {
	_, base4, udp4 := startUDPServerWith(t, Config{}, "127.0.0.1", nil)
	_, base6, udp6 := startUDPServerWith(t, Config{}, "::1", nil)
	for i, c := range []struct {
		family int
		base   string // HTTP, or a udp:// announce URL
		ok     bool
	}{
		{4, base4, true},
		{6, base4, false},
		{6, base6, true},
		{4, base6, false},
		{0, base4, true},
		{0, base6, true},
		{4, udp4, true},
		{6, udp4, false},
		{6, udp6, true},
		{4, udp6, false},
	} {
		u := c.base + "/announce"
		if strings.HasPrefix(c.base, "udp:") {
			u = c.base
		}
		v4 := c.base == base4 || c.base == udp4
		cl := &Client{Family: c.family}
		req := AnnounceRequest{InfoHash: ih(byte(i)), PeerID: pid(i), Port: 7000, Left: 1, Event: EventStarted}
		if _, err := cl.Announce(context.Background(), u, req); (err == nil) != c.ok {
			t.Errorf("family %d to %s: err %v, want success %v", c.family, c.base, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		// A second peer sees the first at the address it announced from.
		req.PeerID = pid(100 + i)
		resp, err := cl.Announce(context.Background(), u, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Peers {
			if p.Addr.Addr().Is4() != v4 {
				t.Errorf("family %d to %s: listed %s, of the other family", c.family, c.base, p.Addr)
			}
		}
		if len(resp.Peers) == 0 {
			t.Errorf("family %d to %s: the first announce is not listed", c.family, c.base)
		}
	}
}
