package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm"
)

// errClosed is returned by every change to a closed session.
var errClosed = errors.New("daemon: session closed")

// Add adds a torrent by magnet link or hash, .torrent bytes, or the path
// of a .torrent inside the session's folders. A torrent the session has
// already, under any of its hashes, is returned with dup set.
func (s *Session) Add(req AddRequest) (Status, bool, error) {
	n := 0
	for _, set := range []bool{req.Link != "", req.Metainfo != nil, req.Path != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return Status{}, false, errors.New("add: give exactly one of a link, metainfo or a path")
	}
	var meta *piece.MetaInfo
	var mg piece.Magnet
	var err error
	switch {
	case req.Link != "":
		if mg, err = parseLink(req.Link); err != nil {
			return Status{}, false, fmt.Errorf("add: %w", err)
		}
	case req.Metainfo != nil:
		if meta, err = parseMeta(req.Metainfo); err != nil {
			return Status{}, false, fmt.Errorf("add: %w", err)
		}
	default:
		data, err := s.readInside(req.Path)
		if err != nil {
			return Status{}, false, fmt.Errorf("add %s: %w", req.Path, err)
		}
		if meta, err = parseMeta(data); err != nil {
			return Status{}, false, fmt.Errorf("add %s: %w", req.Path, err)
		}
	}
	if meta != nil {
		mg = meta.Magnet()
		for _, i := range slices.Concat(req.Unwanted, req.PriorityHigh, req.PriorityLow) {
			if i < 0 || i >= len(meta.Info.Files) {
				return Status{}, false, fmt.Errorf("add: file %d: the torrent has %d files", i, len(meta.Info.Files))
			}
		}
	}
	dir, err := s.downloadDir(req.Dir)
	if err != nil {
		return Status{}, false, fmt.Errorf("add: %w", err)
	}
	rec := record{
		Version:       recordVersion,
		Dir:           dir,
		Paused:        req.Paused,
		Unwanted:      dedup(req.Unwanted),
		Sequential:    req.Sequential,
		DownLimit:     max(req.DownLimit, 0),
		UpLimit:       max(req.UpLimit, 0),
		PeerLimit:     max(req.PeerLimit, 0),
		ExtraTrackers: slices.Clone(req.ExtraTrackers),
		Added:         time.Now().UTC().Truncate(time.Second),
	}
	if meta == nil {
		rec.Link = mg.String()
	}
	if len(req.PriorityHigh) > 0 || len(req.PriorityLow) > 0 {
		nf := 0
		if meta != nil {
			nf = len(meta.Info.Files)
		}
		for _, i := range slices.Concat(req.PriorityHigh, req.PriorityLow) {
			nf = max(nf, i+1)
		}
		rec.Priorities = make([]Priority, nf)
		for _, i := range req.PriorityHigh {
			rec.Priorities[i] = PriorityHigh
		}
		for _, i := range req.PriorityLow {
			rec.Priorities[i] = PriorityLow
		}
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Status{}, false, errClosed
	}
	hashes := hashesOf(meta, mg)
	if len(hashes) == 0 {
		s.mu.Unlock()
		return Status{}, false, errors.New("add: the link names no info-hash")
	}
	if dup := s.dupLocked(hashes); dup != nil {
		st := s.statusLocked(dup, 0)
		s.mu.Unlock()
		return st, true, nil
	}
	// The ID needs no write of session.json: its record, written below
	// before anyone hears of the torrent, names it, and Open counts on
	// from the records (a removal saves the counter before deleting one:
	// removeRecordLocked). That is two disk syncs fewer per add.
	id := s.rec.NextID
	s.rec.NextID++
	rec.ID = id
	t := &torrent{id: id, rec: rec, meta: meta, mg: mg, state: Stopped}
	files, err := s.addFilesLocked(t)
	if err == nil && meta == nil {
		// A crash between an earlier add's two renames can have left a
		// stray .torrent under this ID, which no record counted: a magnet
		// must not be paired with it at the next start. The folder sync
		// below makes the removal durable with the record.
		if rerr := os.Remove(s.metaPath(id)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}
	if err == nil {
		// The metainfo first: a crash between the renames leaves a
		// stray .torrent, never a record without its metainfo.
		err = fsutil.WriteFilesAtomic(filepath.Join(s.cfg.SessionDir, torrentsDir), files)
	}
	if err != nil {
		os.Remove(s.recordPath(id))
		os.Remove(s.metaPath(id))
		s.mu.Unlock()
		return Status{}, false, fmt.Errorf("add: %w", err)
	}
	t.dirty = false
	s.registerLocked(t)
	s.mu.Unlock()
	if !req.Paused {
		t.op.Lock()
		s.activate(t, false)
		t.op.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked(t, 0), false, nil
}

// addFilesLocked encodes the files a new torrent t has in the session's
// torrents folder: its metainfo, if known, then its record. Called with
// s.mu held.
func (s *Session) addFilesLocked(t *torrent) ([]fsutil.File, error) {
	var files []fsutil.File
	if t.meta != nil {
		data, err := t.meta.Marshal()
		if err != nil {
			return nil, fmt.Errorf("saving metainfo: %w", err)
		}
		files = append(files, fsutil.File{Name: filepath.Base(s.metaPath(t.id)), Data: data, Perm: 0o600})
	}
	data, err := s.recordDataLocked(t)
	if err != nil {
		return nil, fmt.Errorf("torrent %d: %w", t.id, err)
	}
	return append(files, fsutil.File{Name: filepath.Base(s.recordPath(t.id)), Data: data, Perm: 0o600}), nil
}

// parseMeta parses .torrent bytes, refusing oversized ones before
// parsing.
func parseMeta(data []byte) (*piece.MetaInfo, error) {
	if len(data) > piece.MaxTorrentSize {
		return nil, fmt.Errorf("metainfo of %d bytes, more than %d", len(data), piece.MaxTorrentSize)
	}
	return piece.Parse(data)
}

func dedup(xs []int) []int {
	if len(xs) == 0 {
		return nil
	}
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// inside finds path in one of folders: the folder and path relative to
// it, or ErrOutside. It goes by the names alone; opening through an
// os.Root of the folder then refuses links that lead out.
func inside(path string, folders ...string) (folder, rel string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", err
	}
	for _, f := range folders {
		r, err := filepath.Rel(f, abs)
		if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			continue
		}
		return f, r, nil
	}
	return "", "", ErrOutside
}

// readInside reads a .torrent file inside the download or session folder.
func (s *Session) readInside(path string) ([]byte, error) {
	s.mu.Lock()
	folders := []string{s.rec.DownloadDir, s.cfg.SessionDir}
	s.mu.Unlock()
	folder, rel, err := inside(path, folders...)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(folder)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		if isEscape(err) {
			return nil, ErrOutside
		}
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, piece.MaxTorrentSize+1))
}

// isEscape reports whether an os.Root refused a path for leading out of
// it (through "..", or a link).
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes")
}

// downloadDir checks the folder a torrent is added into: "" is the
// session's download folder; another must be inside it, and is created
// through an os.Root so no link leads the torrent out.
func (s *Session) downloadDir(dir string) (string, error) {
	s.mu.Lock()
	base := s.rec.DownloadDir
	s.mu.Unlock()
	if dir == "" {
		return base, nil
	}
	folder, rel, err := inside(dir, base)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return folder, nil
	}
	root, err := os.OpenRoot(folder)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if err := root.MkdirAll(rel, 0o755); err != nil {
		if isEscape(err) {
			return "", ErrOutside
		}
		return "", err
	}
	// A link inside the folder that points elsewhere inside it is fine;
	// one that points out is not.
	real, err := filepath.EvalSymlinks(filepath.Join(folder, rel))
	if err != nil {
		return "", err
	}
	realBase, err := filepath.EvalSymlinks(folder)
	if err != nil {
		return "", err
	}
	if _, _, err := inside(real, realBase); err != nil {
		return "", err
	}
	return filepath.Join(folder, rel), nil
}

// each runs f for each torrent of ids with its op lock held, and returns
// ErrNotFound naming the IDs that are not in the session, after doing the
// others.
func (s *Session) each(ids []ID, f func(t *torrent) error) error {
	var errs []error
	for _, id := range ids {
		s.mu.Lock()
		t, closed := s.torrents[id], s.closed
		s.mu.Unlock()
		if closed {
			return errClosed
		}
		if t == nil {
			errs = append(errs, fmt.Errorf("torrent %d: %w", id, ErrNotFound))
			continue
		}
		t.op.Lock()
		s.mu.Lock()
		removed := t.removed
		s.mu.Unlock()
		var err error
		if removed {
			err = fmt.Errorf("torrent %d: %w", id, ErrNotFound)
		} else {
			err = f(t)
		}
		t.op.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start resumes stopped torrents, clearing an error that stopped them.
func (s *Session) Start(ids []ID) error {
	return s.each(ids, func(t *torrent) error {
		s.mu.Lock()
		t.rec.Paused = false
		t.rec.Error = ""
		err := s.saveRecordLocked(t)
		s.mu.Unlock()
		if !s.running(t) {
			// Its last run may have ended on its own (an error, a
			// verify of a paused torrent): cleared first.
			if e := s.deactivate(t, false); e != nil && err == nil {
				err = e
			}
			s.activate(t, false)
		}
		return err
	})
}

// Stop pauses torrents: their peers are let go, their verified pieces
// and resume records kept.
func (s *Session) Stop(ids []ID) error {
	return s.each(ids, func(t *torrent) error { return s.deactivate(t, true) })
}

// Remove removes torrents from the session, and with deleteData their
// files and the folders those leave empty, never anything else.
func (s *Session) Remove(ids []ID, deleteData bool) error {
	return s.each(ids, func(t *torrent) error {
		err := s.deactivate(t, false)
		s.mu.Lock()
		// An ID is never given twice: once its record is gone, only
		// session.json's counter can say it was (Add does not save it).
		if s.savedNextID <= t.id {
			if e := s.saveSessionLocked(); e != nil {
				s.mu.Unlock()
				return errors.Join(err, fmt.Errorf("torrent %d: not removed: %w", t.id, e))
			}
		}
		t.removed = true
		s.unregisterLocked(t)
		s.removed = append(s.removed, removal{id: t.id, at: time.Now()})
		meta, dir := t.meta, t.rec.Dir
		s.mu.Unlock()
		// The record first: a crash half way leaves stray files, never a
		// torrent that comes back without its data.
		var errs []error
		errs = append(errs, err)
		for _, p := range []string{s.recordPath(t.id), s.metaPath(t.id), s.resumePath(t.id)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("torrent %d: %w", t.id, err))
			}
		}
		if deleteData && meta != nil {
			errs = append(errs, removeFiles(dir, meta.Info))
		}
		return errors.Join(errs...)
	})
}

// Verify checks torrents' data again, hashing all of it whatever the
// resume record says. A paused torrent stays paused.
func (s *Session) Verify(ids []ID) error {
	return s.each(ids, func(t *torrent) error {
		s.mu.Lock()
		hasMeta := t.meta != nil
		s.mu.Unlock()
		if !hasMeta {
			return nil // nothing to check yet
		}
		err := s.deactivate(t, false)
		s.activate(t, true)
		return err
	})
}

// Reannounce asks the torrents' trackers for peers now and, for a torrent
// not private, the DHT: each node of the session looks the torrent's
// peers up and announces it at once, rather than at its next round a
// quarter of an hour away (dht.DefaultAnnounceInterval).
func (s *Session) Reannounce(ids []ID) error {
	return s.each(ids, func(t *torrent) error {
		s.mu.Lock()
		sw := t.sw
		private := t.meta != nil && t.meta.Info.Private
		now := time.Now()
		dhtNow := !private && len(s.nodes) > 0 && now.Sub(t.dhtReannounced) >= minDHTReannounce
		if sw != nil && dhtNow {
			t.dhtReannounced = now
		}
		s.mu.Unlock()
		if sw == nil {
			return nil
		}
		sw.Reannounce()
		if dhtNow {
			// A new announcer replaces the torrent's running one for
			// each hash (dht.Announcer.FindPeers), whose source then
			// ends: its round starts in its turn of the session's
			// stagger (at once for a lone reannounce; a reannounce of
			// every torrent spreads them as a start does, and they stay
			// spread), and the rounds after it keep the usual pace. It
			// lives as long as the swarm torrent, as the one it
			// replaces did.
			var announcers []swarm.Source
			for _, n := range s.nodes {
				announcers = append(announcers, swarm.DHTAnnounce(staggered{f: n.Announcer(s.peerPort()), g: &s.announces}))
			}
			sw.AddSources(announcers...)
		}
		return nil
	})
}

// minDHTReannounce spaces a torrent's DHT announces on demand: each is a
// traversal of some dozens of queries, which a client clicking away must
// not multiply.
const minDHTReannounce = 30 * time.Second

// Set changes torrents' settings. A running torrent takes a new selection,
// order or rate cap at once; one whose selection grows after it completed,
// or whose trackers change, is restarted (no data is hashed again: the
// resume record vouches for it).
func (s *Session) Set(ids []ID, ch Change) error {
	return s.each(ids, func(t *torrent) error {
		s.mu.Lock()
		r := &t.rec
		nf := -1
		if t.meta != nil {
			nf = len(t.meta.Info.Files)
		}
		for _, i := range slices.Concat(ch.Wanted, ch.Unwanted, ch.PriorityHigh, ch.PriorityNormal, ch.PriorityLow) {
			if i < 0 || nf >= 0 && i >= nf {
				s.mu.Unlock()
				return fmt.Errorf("torrent %d: file %d: the torrent has %d files", t.id, i, nf)
			}
		}
		sel := len(ch.Wanted)+len(ch.Unwanted)+len(ch.PriorityHigh)+len(ch.PriorityNormal)+len(ch.PriorityLow) > 0 || ch.Sequential != nil
		unwanted := map[int]bool{}
		for _, i := range r.Unwanted {
			unwanted[i] = true
		}
		for _, i := range ch.Wanted {
			delete(unwanted, i)
		}
		for _, i := range ch.Unwanted {
			unwanted[i] = true
		}
		r.Unwanted = nil
		for i := range unwanted {
			r.Unwanted = append(r.Unwanted, i)
		}
		slices.Sort(r.Unwanted)
		setPrio := func(list []int, p Priority) {
			for _, i := range list {
				if i >= len(r.Priorities) {
					r.Priorities = append(r.Priorities, make([]Priority, i+1-len(r.Priorities))...)
				}
				r.Priorities[i] = p
			}
		}
		setPrio(ch.PriorityHigh, PriorityHigh)
		setPrio(ch.PriorityNormal, PriorityNormal)
		setPrio(ch.PriorityLow, PriorityLow)
		if ch.Sequential != nil {
			r.Sequential = *ch.Sequential
		}
		if ch.DownLimit != nil {
			r.DownLimit = max(*ch.DownLimit, 0)
		}
		if ch.UpLimit != nil {
			r.UpLimit = max(*ch.UpLimit, 0)
		}
		if ch.PeerLimit != nil {
			r.PeerLimit = max(*ch.PeerLimit, 0)
		}
		trackers := len(ch.AddTrackers)+len(ch.RemoveTrackers) > 0
		for _, u := range ch.AddTrackers {
			if !slices.Contains(r.ExtraTrackers, u) {
				r.ExtraTrackers = append(r.ExtraTrackers, u)
			}
		}
		r.ExtraTrackers = slices.DeleteFunc(r.ExtraTrackers, func(u string) bool { return slices.Contains(ch.RemoveTrackers, u) })
		rec, sw, meta := *r, t.sw, t.meta
		err := s.saveRecordLocked(t)
		s.mu.Unlock()
		if err != nil || sw == nil {
			return err
		}
		sw.SetRateLimits(rec.DownLimit, rec.UpLimit)
		sw.SetMaxPeers(rec.PeerLimit)
		restart := trackers
		if sel && !restart {
			prio, err := piecePriorities(meta.Info, rec)
			if err != nil {
				return fmt.Errorf("torrent %d: %w", t.id, err)
			}
			err = sw.SetPriorities(prio, rec.Sequential)
			switch {
			case errors.Is(err, swarm.ErrComplete):
				restart = true
			case err != nil:
				return fmt.Errorf("torrent %d: %w", t.id, err)
			}
		}
		if restart {
			if err := s.deactivate(t, false); err != nil {
				return err
			}
			s.mu.Lock()
			t.rec.Done = time.Time{}
			// Saved with the record's next write even if nothing is
			// fetched before a stop: a restart must not show the
			// torrent done.
			t.dirty = true
			s.mu.Unlock()
			s.activate(t, false)
		}
		return nil
	})
}

// Removed returns the IDs of torrents removed since the given time.
func (s *Session) Removed(since time.Time) []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ID
	for _, r := range s.removed {
		if !r.at.Before(since) {
			out = append(out, r.id)
		}
	}
	return out
}

// encryptionNames are the Transmission names of swarm's policies.
var encryptionNames = map[swarm.Encryption]string{
	swarm.EncryptionPrefer:  "preferred",
	swarm.EncryptionRequire: "required",
	swarm.EncryptionOff:     "tolerated",
}

// Settings returns the session's settings.
func (s *Session) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	port := 0
	if ap, err := netip.ParseAddrPort(s.cl.Addr().String()); err == nil {
		port = int(ap.Port())
	}
	return Settings{
		Version:        s.cfg.Version,
		ConfigDir:      s.cfg.SessionDir,
		DownloadDir:    s.rec.DownloadDir,
		ListenPort:     port,
		DHT:            len(s.nodes) > 0,
		PEX:            true,
		LSD:            s.lsd != nil,
		PortMapping:    s.pm != nil,
		Encryption:     encryptionNames[s.cfg.Encryption],
		DownLimit:      s.rec.DownLimit,
		UpLimit:        s.rec.UpLimit,
		PeerLimit:      s.peerLimit(),
		SeedRatioLimit: s.rec.SeedRatioLimit,
		SeedRatioOn:    s.rec.SeedRatioOn,
	}
}

// peerLimit is the connections allowed per torrent: the Config's, else
// the session's setting, else swarm's default.
func (s *Session) peerLimit() int {
	switch {
	case s.cfg.PeerLimit > 0:
		return s.cfg.PeerLimit
	case s.rec.PeerLimit > 0:
		return s.rec.PeerLimit
	}
	return swarm.DefaultMaxPeers
}

// SetSettings changes session settings and keeps them in session.json.
// A new download folder applies to torrents added from then on. The peer
// limit is kept but takes effect at the next start, as the listener's
// limit is fixed while it runs.
func (s *Session) SetSettings(ch SettingsChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if ch.DownloadDir != nil {
		d, err := filepath.Abs(*ch.DownloadDir)
		if err != nil {
			return fmt.Errorf("download folder: %w", err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("download folder: %w", err)
		}
		s.rec.DownloadDir = d
	}
	if ch.DownLimit != nil {
		s.rec.DownLimit = max(*ch.DownLimit, 0)
	}
	if ch.UpLimit != nil {
		s.rec.UpLimit = max(*ch.UpLimit, 0)
	}
	if ch.PeerLimit != nil {
		s.rec.PeerLimit = max(*ch.PeerLimit, 0)
	}
	if ch.SeedRatioLimit != nil {
		s.rec.SeedRatioLimit = *ch.SeedRatioLimit
	}
	if ch.SeedRatioOn != nil {
		s.rec.SeedRatioOn = *ch.SeedRatioOn
	}
	s.cl.SetRateLimits(s.rec.DownLimit, s.rec.UpLimit)
	return s.saveSessionLocked()
}

// Stats returns the session's totals.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SessionStats{
		Torrents:       len(s.torrents),
		Downloaded:     s.sessDown,
		Uploaded:       s.sessUp,
		DownloadedEver: s.rec.DownloadedEver,
		UploadedEver:   s.rec.UploadedEver,
		Started:        s.started,
	}
	for _, t := range s.torrents {
		if t.state == Stopped {
			st.Paused++
			continue
		}
		st.Active++
		if t.sw != nil {
			ss := t.sw.Stats()
			st.RateDown += int64(ss.DownRate)
			st.RateUp += int64(ss.UpRate)
			st.Downloaded += ss.Downloaded
			st.Uploaded += ss.Uploaded
			st.DownloadedEver += ss.Downloaded
			st.UploadedEver += ss.Uploaded
		}
	}
	return st
}

// FreeSpace returns the bytes free to an unprivileged user at path, one
// of the daemon's folders or inside one.
func (s *Session) FreeSpace(path string) (int64, error) {
	s.mu.Lock()
	folders := []string{s.rec.DownloadDir, s.cfg.SessionDir}
	s.mu.Unlock()
	folder, rel, err := inside(path, folders...)
	if err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(folder)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		if isEscape(err) {
			return 0, ErrOutside
		}
		return 0, err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// PortOpen says whether the listen port is reachable from outside as far
// as the session knows: a router mapping that holds says yes; without
// one, it cannot tell (shoal asks no third party).
func (s *Session) PortOpen() (open, known bool) {
	if s.pm != nil && s.pm.External().IsValid() {
		return true, true
	}
	return false, false
}
