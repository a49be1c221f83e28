package piece

// AnnounceTiers merges a torrent's trackers into BEP 12 tiers: the tiers of
// announceList, or announce alone when the list names no tracker (BEP 12:
// a client that finds "announce-list" ignores "announce"), followed by
// each of extra (trackers added by the user) as a tier of its own. Empty
// URLs and repeats, across tiers too, are dropped, and so is a tier left
// empty; the order of tiers and of URLs within a tier is kept. Every
// caller that announces, counts or lists trackers goes through here, so
// that they agree on which trackers a torrent has.
func AnnounceTiers(announceList [][]string, announce string, extra ...string) [][]string {
	var tiers [][]string
	seen := map[string]bool{}
	add := func(urls ...string) {
		var tier []string
		for _, u := range urls {
			if u != "" && !seen[u] {
				seen[u] = true
				tier = append(tier, u)
			}
		}
		if len(tier) > 0 {
			tiers = append(tiers, tier)
		}
	}
	for _, tier := range announceList {
		add(tier...)
	}
	if len(tiers) == 0 {
		add(announce)
	}
	for _, u := range extra {
		add(u)
	}
	return tiers
}

// Tiers returns the torrent's tracker tiers followed by extra trackers,
// each a tier of its own, as AnnounceTiers merges them.
func (m *MetaInfo) Tiers(extra ...string) [][]string {
	return AnnounceTiers(m.AnnounceList, m.Announce, extra...)
}
