package swarm

import (
	"context"
	"crypto/sha1"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// announcer is a fake peer that completes the handshake for ih, announces
// metadata of size bytes and counts the metadata pieces it is asked for,
// answering none: the fetch that asks has committed to the size.
func announcer(t *testing.T, ih [20]byte, size int64, asked *atomic.Int32) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				go func() { <-done; conn.Close() }()
				if _, err := wire.ReadHandshake(conn); err != nil {
					return
				}
				h := wire.Handshake{InfoHash: ih, PeerID: NewPeerID()}
				h.Reserved.SetExtended(true)
				wire.WriteHandshake(conn, h)
				hs := wire.ExtendedHandshake{M: map[string]uint8{wire.ExtMetadata: 3}, MetadataSize: size}
				b, _ := hs.Marshal()
				conn.Write(wire.AppendExtended(nil, 0, b))
				r := wire.NewReader(conn, wire.Limits{})
				for {
					m, err := r.ReadMessage()
					if err != nil {
						return
					}
					if m.ID == wire.Extended && m.ExtendedID == 3 {
						if req, err := wire.ParseMetadataMsg(m.Payload); err == nil && req.Type == wire.MetadataRequest {
							asked.Add(1)
							return // hang up: the fetch needs nothing more
						}
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// A peer that announces metadata larger than piece.MaxInfoSize is refused
// before a byte of it is asked for; one that announces exactly the limit
// is asked. The limit is libtorrent's, and a dict that large is the most
// an info dict from a stranger may cost to hold and parse. Announcing it
// costs nothing by itself: memory goes to the pieces a peer sends.
func TestFetchInfoRefusesMetadataOverLimit(t *testing.T) {
	ih := sha1.Sum([]byte("any torrent"))
	mg := piece.Magnet{V1Hash: ih}
	for _, c := range []struct {
		size   int64
		asked  bool
		errSub string
	}{
		{piece.MaxInfoSize + 1, false, "metadata size"},
		{piece.MaxInfoSize, true, ""},
	} {
		var asked atomic.Int32
		a := announcer(t, ih, c.size, &asked)
		f := fetcher(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := f.FetchInfo(ctx, mg, addrs(a))
		runtime.ReadMemStats(&after)
		cancel()
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > piece.MaxInfoSize/4 {
			t.Errorf("size %d: %d bytes allocated for a peer that sent nothing", c.size, alloc)
		}
		if err == nil {
			t.Fatalf("size %d: fetched from a peer that sends nothing", c.size)
		}
		if got := asked.Load() > 0; got != c.asked {
			t.Fatalf("size %d: asked for metadata: %v, want %v (%v)", c.size, got, c.asked, err)
		}
		if c.errSub != "" && !strings.Contains(err.Error(), c.errSub) {
			t.Fatalf("size %d: %v, want it to mention %q", c.size, err, c.errSub)
		}
	}
}
