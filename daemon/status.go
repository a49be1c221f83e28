package daemon

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/swarm"
)

// Torrents returns the status of the given torrents, or of all of them
// when ids is nil, in ID order; unknown IDs are left out.
func (s *Session) Torrents(ids []ID, want Want) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ts []*torrent
	if ids == nil {
		ts = s.listLocked()
	} else {
		sorted := slices.Clone(ids)
		slices.Sort(sorted)
		for _, id := range slices.Compact(sorted) {
			if t := s.torrents[id]; t != nil {
				ts = append(ts, t)
			}
		}
	}
	out := make([]Status, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.statusLocked(t, want))
	}
	return out
}

// statusLocked builds t's Status. Called with s.mu held.
func (s *Session) statusLocked(t *torrent, want Want) Status {
	r := t.rec
	st := Status{
		ID:         t.id,
		Dir:        r.Dir,
		State:      t.state,
		Error:      r.Error,
		Added:      r.Added,
		Done:       r.Done,
		Downloaded: r.Downloaded,
		Uploaded:   r.Uploaded,
		Corrupt:    r.Corrupt,
		DownLimit:  r.DownLimit,
		UpLimit:    r.UpLimit,
		Sequential: r.Sequential,
		ETA:        ETAUnknown,
	}
	mg := t.mg
	if mg.HasV1() {
		st.V1Hash = mg.V1Hash.String()
		st.Hash = st.V1Hash
	}
	if mg.HasV2() {
		st.V2Hash = hex.EncodeToString(mg.Hash[:])
		if st.Hash == "" {
			tr := mg.Hash.Truncated()
			st.Hash = hex.EncodeToString(tr[:])
		}
	}
	st.Magnet = mg.String()
	st.Name = mg.Name
	if st.Name == "" {
		st.Name = st.Hash
	}
	if t.state == Checking && t.meta != nil {
		st.RecheckProgress = float64(t.hashed.Load()) / float64(max(t.meta.Info.TotalLength, 1))
	}
	if t.meta == nil {
		return st // sizes unknown until the metadata arrives
	}
	m := t.meta
	in := m.Info
	st.HasMetadata = true
	st.Name = in.Name
	st.Private = in.Private
	st.Comment = m.Comment
	st.Creator = m.CreatedBy
	if m.CreationDate > 0 {
		st.Created = time.Unix(m.CreationDate, 0)
	}
	st.PieceCount = in.NumPieces
	st.PieceSize = in.PieceLength
	st.TotalSize = in.TotalLength

	var have *bitfield.Bitfield
	switch {
	case t.st != nil:
		have, _ = bitfield.FromBytes(t.st.Have(), in.NumPieces)
	case r.Have != nil:
		have, _ = bitfield.FromBytes(r.Have, in.NumPieces)
	}
	if t.sw != nil {
		if st.State == Downloading {
			// housekeep records the change within a tick; a client that
			// saw 100% must not see it still downloading meanwhile.
			select {
			case <-t.sw.Done():
				st.State = Seeding
				if st.Done.IsZero() {
					st.Done = time.Now()
				}
			default:
			}
		}
		ss := t.sw.Stats()
		st.Downloaded += ss.Downloaded
		st.Uploaded += ss.Uploaded
		st.Corrupt += ss.Wasted
		st.RateDown, st.RateUp = int64(ss.DownRate), int64(ss.UpRate)
		st.PeersConnected = ss.Peers
		st.Verified = ss.BytesDone
		if ss.DownRate > 0 || ss.UpRate > 0 {
			st.Activity = time.Now()
		}
		if ss.Peers > 0 {
			for _, p := range t.sw.Peers() {
				if !p.PeerChoking && p.AmInterested {
					st.PeersSending++
				}
				if !p.AmChoking && p.PeerInterested {
					st.PeersGetting++
				}
				if want&WantPeers != 0 {
					st.Peers = append(st.Peers, PeerStatus{
						Addr: p.Addr, Client: p.Client, Progress: p.Progress,
						RateToUs: int64(p.DownRate), RateToPeer: int64(p.UpRate),
						Encrypted: p.Encrypted, Incoming: p.Incoming,
						AmChoking: p.AmChoking, AmInterested: p.AmInterested,
						PeerChoking: p.PeerChoking, PeerInterested: p.PeerInterested,
					})
				}
			}
		}
	}
	files := filePriorities(in, r)
	for i, f := range in.Files {
		if f.Pad {
			continue
		}
		wanted := files == nil || files[i] != 0
		done := fileDone(in, i, have)
		if t.sw == nil {
			st.Verified += done
		}
		if wanted {
			st.WantedSize += f.Length
			st.Left += f.Length - done
		}
		if want&WantFiles != 0 {
			fs := FileStatus{Name: strings.Join(in.DiskPath(i), "/"), Length: f.Length, Completed: done, Wanted: wanted}
			if i < len(r.Priorities) {
				fs.Priority = r.Priorities[i]
			}
			st.Files = append(st.Files, fs)
		}
	}
	if st.State == Downloading && st.RateDown > 0 && st.Left > 0 {
		st.ETA = time.Duration(float64(st.Left)/float64(st.RateDown)) * time.Second
	}
	if want&WantTrackers != 0 {
		var infos []swarm.TrackerInfo
		if t.sw != nil {
			infos = t.sw.Trackers()
		}
		for tier, urls := range m.Tiers(r.ExtraTrackers...) {
			for _, u := range urls {
				ts := TrackerStatus{URL: u, Tier: tier, Seeders: -1, Leechers: -1}
				// Of the tier's announcers (one per address family),
				// the latest that went to this tracker.
				for _, in := range infos {
					if in.Tier == tier && in.URL == u && in.LastAnnounce.After(ts.LastAnnounce) {
						ts.LastAnnounce, ts.LastResult, ts.NextAnnounce = in.LastAnnounce, in.LastResult, in.NextAnnounce
						ts.Seeders, ts.Leechers, ts.LastPeers = in.Seeders, in.Leechers, in.Peers
					}
				}
				st.Trackers = append(st.Trackers, ts)
			}
		}
	}
	if want&WantPieces != 0 {
		if have != nil {
			st.Pieces = have.Bytes()
		} else {
			st.Pieces = make([]byte, (in.NumPieces+7)/8)
		}
	}
	return st
}

// fileDone is the bytes of file fi in verified pieces; 0 when have is nil.
func fileDone(in *piece.Info, fi int, have *bitfield.Bitfield) int64 {
	f := in.Files[fi]
	if have == nil || f.Length == 0 {
		return 0
	}
	var n int64
	for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
		if !have.Has(p) {
			continue
		}
		start := int64(p) * in.PieceLength
		n += max(0, min(start+in.PieceSize(p), f.Offset+f.Length)-max(start, f.Offset))
	}
	return n
}
