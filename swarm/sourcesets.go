package swarm

import (
	"net/netip"
	"slices"

	"github.com/shoal-p2p/shoal/piece"
)

// The sets of sources a torrent and a magnet's metadata fetch use, which
// `shoal get`, `shoal seed` and the daemon share.

// RunningSources lists where a running torrent finds peers besides its
// trackers (AddTrackers): the addresses given, then each announcer (a DHT
// node's, announcing our port: DHTAnnounce) and each other finder (local
// discovery), the last two unless the torrent is private (BEP 27).
func RunningSources(private bool, peers []netip.AddrPort, announcers []PeerFinder, lsd PeerFinder) []Source {
	sources := []Source{FixedPeers(peers...)}
	if private {
		return sources
	}
	for _, a := range announcers {
		sources = append(sources, DHTAnnounce(a))
	}
	if lsd != nil {
		sources = append(sources, Source{Kind: SourceLSD, Finder: lsd})
	}
	return sources
}

// MagnetSources lists where a magnet's metadata fetch finds peers: the
// addresses given, the magnet's trackers and the extra ones (MagnetTiers),
// each DHT lookup (DHTLookup) and local discovery if not nil.
func (c *Client) MagnetSources(mg piece.Magnet, extra []string, peers []netip.AddrPort, lookups []PeerFinder, lsd PeerFinder) []Source {
	sources := []Source{FixedPeers(peers...)}
	for _, tier := range MagnetTiers(mg, extra) {
		for _, u := range tier {
			sources = append(sources, c.TrackerLookup(u))
		}
	}
	for _, l := range lookups {
		sources = append(sources, DHTLookup(l))
	}
	if lsd != nil {
		sources = append(sources, Source{Kind: SourceLSD, Finder: lsd})
	}
	return sources
}

// MagnetTiers lists a magnet's trackers and then the extra ones, each a
// tier of its own, as the torrent fetched for it will have them.
func MagnetTiers(mg piece.Magnet, extra []string) [][]string {
	return piece.AnnounceTiers(nil, "", slices.Concat(mg.Trackers, extra)...)
}
