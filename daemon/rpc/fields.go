package rpc

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// field is one torrent-get field: what it needs of a Status, and how it
// is made from one.
type field struct {
	want daemon.Want
	get  func(*fieldCtx, *daemon.Status) any
}

// fieldCtx is what fields share within one torrent-get call.
type fieldCtx struct {
	c        *call
	settings *daemon.Settings
}

func (x *fieldCtx) session() *daemon.Settings {
	if x.settings == nil {
		s := x.c.h.ctrl.Settings()
		x.settings = &s
	}
	return x.settings
}

// Transmission's error codes: a tracker's warning (it could not be
// reached), a tracker's error (it refused the announce), a local error
// (disk, data).
const (
	errNone           = 0
	errTrackerWarning = 1
	errTrackerError   = 2
	errLocal          = 3
)

// torrentError is Transmission's error and errorString of st: its own
// error first, then, when no tracker of it answered its last announce,
// the latest tracker's failure, as Transmission shows a swarm it cannot
// announce to.
func torrentError(st *daemon.Status) (int, string) {
	if st.Error != "" {
		return errLocal, st.Error
	}
	var last *daemon.TrackerStatus
	for i := range st.Trackers {
		t := &st.Trackers[i]
		if t.LastAnnounce.IsZero() {
			continue
		}
		if t.LastResult == "Success" {
			return errNone, ""
		}
		if last == nil || t.LastAnnounce.After(last.LastAnnounce) {
			last = t
		}
	}
	switch {
	case last == nil:
		return errNone, ""
	case strings.Contains(last.LastResult, "tracker failure: "):
		// The tracker's own words, as Transmission shows them; the
		// announce's URL is in trackerStats.
		_, reason, _ := strings.Cut(last.LastResult, "tracker failure: ")
		return errTrackerError, "Tracker gave an error: " + reason
	default:
		return errTrackerWarning, "Tracker gave a warning: " + last.LastResult
	}
}

// Transmission's ETA and ratio codes.
const (
	etaNotAvail = -1 // not downloading: nothing to wait for
	etaUnknown  = -2 // downloading, but no rate to go by
	ratioNA     = -1 // nothing downloaded nor verified: no ratio
	ratioInf    = -2 // uploaded without having downloaded
)

// unix is a time as Transmission gives dates: seconds, 0 for never.
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fields are the torrent-get fields shoal answers, by norm(name). Every
// field transmission-remote 3.00, Transmission 3.00's web UI and python
// transmissionrpc 0.11 ask for is here; the few that shoal does not track
// (seconds downloading and seeding, the sources of peers other than
// incoming connections, what peers have of what we lack) give the value
// Transmission gives when it has no figure, 0.
var fields = map[string]*field{}

func init() {
	simple := func(name string, get func(*daemon.Status) any) {
		fields[norm(name)] = &field{get: func(_ *fieldCtx, st *daemon.Status) any { return get(st) }}
	}
	simple("id", func(st *daemon.Status) any { return st.ID })
	simple("name", func(st *daemon.Status) any { return st.Name })
	simple("hashString", func(st *daemon.Status) any { return st.Hash })
	simple("status", func(st *daemon.Status) any { return st.State })
	simple("downloadDir", func(st *daemon.Status) any { return st.Dir })
	simple("magnetLink", func(st *daemon.Status) any { return st.Magnet })
	simple("comment", func(st *daemon.Status) any { return st.Comment })
	simple("creator", func(st *daemon.Status) any { return st.Creator })
	simple("dateCreated", func(st *daemon.Status) any { return unix(st.Created) })
	simple("addedDate", func(st *daemon.Status) any { return unix(st.Added) })
	simple("doneDate", func(st *daemon.Status) any { return unix(st.Done) })
	simple("activityDate", func(st *daemon.Status) any { return unix(st.Activity) })
	// shoal keeps no start time of its own; a torrent runs from when it
	// was added or the daemon started, whichever is later, which is what
	// the added date says best.
	simple("startDate", func(st *daemon.Status) any { return unix(st.Added) })
	simple("editDate", func(st *daemon.Status) any { return 0 })
	simple("isPrivate", func(st *daemon.Status) any { return st.Private })
	// Trackers' answers count: a swarm no tracker will take is the error
	// the user should see beside the torrent's name.
	fields["error"] = &field{want: daemon.WantTrackers, get: func(_ *fieldCtx, st *daemon.Status) any {
		code, _ := torrentError(st)
		return code
	}}
	fields[norm("errorString")] = &field{want: daemon.WantTrackers, get: func(_ *fieldCtx, st *daemon.Status) any {
		_, msg := torrentError(st)
		return msg
	}}
	simple("eta", func(st *daemon.Status) any {
		switch {
		case st.ETA >= 0:
			return int64(st.ETA / time.Second)
		case st.State == daemon.Downloading:
			return etaUnknown
		}
		return etaNotAvail
	})
	simple("etaIdle", func(st *daemon.Status) any { return etaNotAvail })
	simple("pieceCount", func(st *daemon.Status) any { return st.PieceCount })
	simple("pieceSize", func(st *daemon.Status) any { return st.PieceSize })
	simple("totalSize", func(st *daemon.Status) any { return st.TotalSize })
	simple("sizeWhenDone", func(st *daemon.Status) any { return st.WantedSize })
	simple("leftUntilDone", func(st *daemon.Status) any { return st.Left })
	simple("haveValid", func(st *daemon.Status) any { return st.Verified })
	// shoal writes only verified pieces' data as "have": none unchecked.
	simple("haveUnchecked", func(st *daemon.Status) any { return 0 })
	simple("desiredAvailable", func(st *daemon.Status) any { return 0 })
	simple("downloadedEver", func(st *daemon.Status) any { return st.Downloaded })
	simple("uploadedEver", func(st *daemon.Status) any { return st.Uploaded })
	simple("corruptEver", func(st *daemon.Status) any { return st.Corrupt })
	simple("rateDownload", func(st *daemon.Status) any { return st.RateDown })
	simple("rateUpload", func(st *daemon.Status) any { return st.RateUp })
	simple("peersConnected", func(st *daemon.Status) any { return st.PeersConnected })
	simple("peersSendingToUs", func(st *daemon.Status) any { return st.PeersSending })
	simple("peersGettingFromUs", func(st *daemon.Status) any { return st.PeersGetting })
	simple("webseedsSendingToUs", func(st *daemon.Status) any { return 0 })
	simple("webseeds", func(st *daemon.Status) any { return []string{} })
	simple("labels", func(st *daemon.Status) any { return []string{} })
	simple("percentDone", func(st *daemon.Status) any {
		if !st.HasMetadata || st.WantedSize <= 0 {
			return 0
		}
		return float64(st.WantedSize-st.Left) / float64(st.WantedSize)
	})
	simple("percentComplete", func(st *daemon.Status) any {
		if !st.HasMetadata || st.TotalSize <= 0 {
			return 0
		}
		return float64(st.Verified) / float64(st.TotalSize)
	})
	simple("metadataPercentComplete", func(st *daemon.Status) any { return b2i(st.HasMetadata) })
	simple("recheckProgress", func(st *daemon.Status) any { return st.RecheckProgress })
	simple("uploadRatio", func(st *daemon.Status) any {
		// Transmission's tr_getRatio, over downloaded bytes or, for a
		// torrent that came with its data, the verified ones.
		down := st.Downloaded
		if down == 0 {
			down = st.Verified
		}
		switch {
		case down > 0:
			return float64(st.Uploaded) / float64(down)
		case st.Uploaded > 0:
			return ratioInf
		}
		return ratioNA
	})
	simple("isFinished", func(st *daemon.Status) any { return false })
	simple("isStalled", func(st *daemon.Status) any { return false })
	simple("queuePosition", func(st *daemon.Status) any { return int(st.ID) })
	simple("bandwidthPriority", func(st *daemon.Status) any { return 0 })
	simple("honorsSessionLimits", func(st *daemon.Status) any { return true })
	simple("downloadLimit", func(st *daemon.Status) any { return st.DownLimit / kilo })
	simple("downloadLimited", func(st *daemon.Status) any { return st.DownLimit > 0 })
	simple("uploadLimit", func(st *daemon.Status) any { return st.UpLimit / kilo })
	simple("uploadLimited", func(st *daemon.Status) any { return st.UpLimit > 0 })
	simple("secondsDownloading", func(st *daemon.Status) any { return 0 })
	simple("secondsSeeding", func(st *daemon.Status) any { return 0 })
	simple("seedIdleLimit", func(st *daemon.Status) any { return 0 })
	simple("seedIdleMode", func(st *daemon.Status) any { return 0 })
	// 0: the torrent follows the session's ratio setting.
	simple("seedRatioMode", func(st *daemon.Status) any { return 0 })
	simple("sequentialDownload", func(st *daemon.Status) any { return st.Sequential })
	simple("manualAnnounceTime", func(st *daemon.Status) any { return -1 })
	simple("torrentFile", func(st *daemon.Status) any { return "" })
	simple("primary-mime-type", func(st *daemon.Status) any { return "" })

	session := func(name string, get func(*daemon.Settings) any) {
		fields[norm(name)] = &field{get: func(x *fieldCtx, _ *daemon.Status) any { return get(x.session()) }}
	}
	session("seedRatioLimit", func(s *daemon.Settings) any { return s.SeedRatioLimit })
	session("peer-limit", func(s *daemon.Settings) any { return s.PeerLimit })
	session("maxConnectedPeers", func(s *daemon.Settings) any { return s.PeerLimit })

	fields["files"] = &field{want: daemon.WantFiles, get: func(x *fieldCtx, st *daemon.Status) any {
		out := make([]map[string]any, len(st.Files))
		for i, f := range st.Files {
			out[i] = map[string]any{x.c.key("bytesCompleted"): f.Completed, "length": f.Length, "name": f.Name}
		}
		return out
	}}
	fields[norm("fileStats")] = &field{want: daemon.WantFiles, get: func(x *fieldCtx, st *daemon.Status) any {
		out := make([]map[string]any, len(st.Files))
		for i, f := range st.Files {
			out[i] = map[string]any{x.c.key("bytesCompleted"): f.Completed, "wanted": f.Wanted, "priority": f.Priority}
		}
		return out
	}}
	fields[norm("fileCount")] = &field{want: daemon.WantFiles, get: func(_ *fieldCtx, st *daemon.Status) any { return len(st.Files) }}
	fields["priorities"] = &field{want: daemon.WantFiles, get: func(_ *fieldCtx, st *daemon.Status) any {
		out := make([]int, len(st.Files))
		for i, f := range st.Files {
			out[i] = int(f.Priority)
		}
		return out
	}}
	// Integers, as Transmission 3.00 gives them; tools read 0/1 and
	// booleans alike.
	fields["wanted"] = &field{want: daemon.WantFiles, get: func(_ *fieldCtx, st *daemon.Status) any {
		out := make([]int, len(st.Files))
		for i, f := range st.Files {
			out[i] = b2i(f.Wanted)
		}
		return out
	}}
	fields["pieces"] = &field{want: daemon.WantPieces, get: func(_ *fieldCtx, st *daemon.Status) any {
		return base64.StdEncoding.EncodeToString(st.Pieces)
	}}
	fields["peers"] = &field{want: daemon.WantPeers, get: func(x *fieldCtx, st *daemon.Status) any {
		out := make([]map[string]any, len(st.Peers))
		for i, p := range st.Peers {
			k := x.c.key
			out[i] = map[string]any{
				"address": p.Addr.Addr().Unmap().String(), "port": p.Addr.Port(),
				k("clientName"): p.Client, k("flagStr"): flagStr(&p),
				"progress": p.Progress, k("rateToClient"): p.RateToUs, k("rateToPeer"): p.RateToPeer,
				k("isEncrypted"): p.Encrypted, k("isIncoming"): p.Incoming, k("isUTP"): false,
				k("clientIsChoked"): p.AmChoking, k("clientIsInterested"): p.AmInterested,
				k("peerIsChoked"): p.PeerChoking, k("peerIsInterested"): p.PeerInterested,
				k("isDownloadingFrom"): p.RateToUs > 0, k("isUploadingTo"): p.RateToPeer > 0,
			}
		}
		return out
	}}
	fields[norm("peersFrom")] = &field{want: daemon.WantPeers, get: func(x *fieldCtx, st *daemon.Status) any {
		in := 0
		for _, p := range st.Peers {
			if p.Incoming {
				in++
			}
		}
		k := x.c.key
		// shoal does not record where outgoing peers were learnt from.
		return map[string]any{
			k("fromIncoming"): in, k("fromCache"): 0, k("fromDht"): 0, k("fromLpd"): 0,
			k("fromLtep"): 0, k("fromPex"): 0, k("fromTracker"): 0,
		}
	}}
	fields["trackers"] = &field{want: daemon.WantTrackers, get: func(x *fieldCtx, st *daemon.Status) any {
		out := make([]map[string]any, len(st.Trackers))
		for i, t := range st.Trackers {
			out[i] = map[string]any{"announce": t.URL, "scrape": scrapeURL(t.URL), "id": i, "tier": t.Tier, "sitename": sitename(t.URL)}
		}
		return out
	}}
	// Transmission 4's trackers as text: one announce URL a line, tiers
	// apart by a blank line.
	fields[norm("trackerList")] = &field{want: daemon.WantTrackers, get: func(_ *fieldCtx, st *daemon.Status) any {
		var b strings.Builder
		for i, t := range st.Trackers {
			if i > 0 {
				b.WriteByte('\n')
				if t.Tier != st.Trackers[i-1].Tier {
					b.WriteByte('\n')
				}
			}
			b.WriteString(t.URL)
		}
		return b.String()
	}}
	fields[norm("trackerStats")] = &field{want: daemon.WantTrackers, get: func(x *fieldCtx, st *daemon.Status) any {
		out := make([]map[string]any, len(st.Trackers))
		k := x.c.key
		for i, t := range st.Trackers {
			ok := t.LastResult == "Success"
			host := t.URL
			if u, err := url.Parse(t.URL); err == nil {
				host = u.Scheme + "://" + u.Host
			}
			// 1: waiting for the next announce (Transmission's
			// TR_TRACKER_WAITING); 0 when none is planned.
			state := 0
			if !t.NextAnnounce.IsZero() {
				state = 1
			}
			next := unix(t.NextAnnounce)
			out[i] = map[string]any{
				"announce": t.URL, "id": i, "tier": t.Tier, "host": host, "sitename": sitename(t.URL),
				"scrape": scrapeURL(t.URL), k("announceState"): state, k("scrapeState"): 0,
				k("hasAnnounced"): !t.LastAnnounce.IsZero(), k("hasScraped"): false,
				k("isBackup"): false, k("lastAnnouncePeerCount"): t.LastPeers,
				k("lastAnnounceResult"): t.LastResult, k("lastAnnounceStartTime"): unix(t.LastAnnounce),
				k("lastAnnounceSucceeded"): ok, k("lastAnnounceTime"): unix(t.LastAnnounce),
				k("lastAnnounceTimedOut"): strings.Contains(t.LastResult, "timeout"),
				k("lastScrapeResult"):     "", k("lastScrapeStartTime"): 0, k("lastScrapeSucceeded"): false,
				k("lastScrapeTime"): 0, k("lastScrapeTimedOut"): false,
				k("nextAnnounceTime"): next, k("nextScrapeTime"): 0,
				k("seederCount"): t.Seeders, k("leecherCount"): t.Leechers, k("downloadCount"): -1,
			}
		}
		return out
	}}
}

// flagStr is Transmission's summary of a peer's state, which
// transmission-remote -ip prints: D/d we download from it (or would),
// U/u we upload to it (or would), K it unchoked us without our interest,
// ? we unchoked it without its interest, E encrypted, I incoming.
func flagStr(p *daemon.PeerStatus) string {
	var b strings.Builder
	switch {
	case p.RateToUs > 0:
		b.WriteByte('D')
	case p.AmInterested && p.PeerChoking:
		b.WriteByte('d')
	}
	switch {
	case p.RateToPeer > 0:
		b.WriteByte('U')
	case p.PeerInterested && p.AmChoking:
		b.WriteByte('u')
	}
	if !p.PeerChoking && !p.AmInterested {
		b.WriteByte('K')
	}
	if !p.AmChoking && !p.PeerInterested {
		b.WriteByte('?')
	}
	if p.Encrypted {
		b.WriteByte('E')
	}
	if p.Incoming {
		b.WriteByte('I')
	}
	return b.String()
}

// scrapeURL is the BEP 48 scrape URL of an HTTP announce URL, or "" when
// it has none (UDP trackers scrape at the same address).
func scrapeURL(announce string) string {
	i := strings.LastIndex(announce, "/")
	if i < 0 || !strings.HasPrefix(announce[i:], "/announce") {
		if strings.HasPrefix(announce, "udp://") {
			return announce
		}
		return ""
	}
	return announce[:i] + "/scrape" + announce[i+len("/announce"):]
}

// sitename is the tracker's host without its port, as Transmission 3
// shows it.
func sitename(announce string) string {
	u, err := url.Parse(announce)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
