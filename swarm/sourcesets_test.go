package swarm

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

type nopFinder struct{}

func (nopFinder) FindPeers(context.Context, [20]byte, func([]netip.AddrPort)) error { return nil }

func kinds(ss []Source) []PeerSource {
	var out []PeerSource
	for _, s := range ss {
		out = append(out, s.Kind)
	}
	return out
}

func TestSourceSets(t *testing.T) {
	ann := []PeerFinder{nopFinder{}, nopFinder{}}
	if got := kinds(RunningSources(true, nil, ann, nopFinder{})); !slices.Equal(got, []PeerSource{SourceFixed}) {
		t.Errorf("private torrent's sources: %v", got)
	}
	got := RunningSources(false, nil, ann, nopFinder{})
	if !slices.Equal(kinds(got), []PeerSource{SourceFixed, SourceDHT, SourceDHT, SourceLSD}) || got[1].Backoff != (Backoff{}) {
		t.Errorf("public torrent's sources: %v", got)
	}
	c, err := Listen(context.Background(), Config{ListenAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mg := piece.Magnet{Trackers: []string{"http://127.0.0.1:1/announce"}}
	ms := c.MagnetSources(mg, []string{"udp://127.0.0.1:2"}, nil, ann[:1], nil)
	if !slices.Equal(kinds(ms), []PeerSource{SourceFixed, SourceTracker, SourceTracker, SourceDHT}) || ms[3].Backoff != dhtLookupBackoff {
		t.Errorf("magnet's sources: %v", ms)
	}
}
