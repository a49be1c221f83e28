package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/picker"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

// torrent is one torrent of a session. A stopped torrent holds its record
// and metainfo only: no storage, no goroutine, no timer.
type torrent struct {
	id ID
	// op serialises what changes whether and how the torrent runs (start,
	// stop, verify, set, remove, a disk fault's stop); status reads need
	// only s.mu.
	op sync.Mutex

	// Guarded by the session's mu.
	rec   record
	meta  *piece.MetaInfo // nil while a magnet's metadata is fetched
	mg    piece.Magnet
	state State
	act   *activation // the start under way or done; nil when stopped
	st    *storage.Storage
	sw    *swarm.Torrent
	dirty bool // rec changed since it was saved
	// savedDown, savedUp and savedWasted are the swarm totals as of the
	// last save.
	savedDown, savedUp, savedWasted int64
	// sessDown and sessUp count this run's payload of past activations.
	sessDown, sessUp int64
	removed          bool
	// dhtReannounced is when Reannounce last asked the DHT.
	dhtReannounced time.Time

	// hashed counts the bytes checked so far while Checking.
	hashed atomic.Int64
}

// activation is one run of a torrent, from its start to its stop: the
// check, the metadata fetch of a magnet, then the swarm.
type activation struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
}

// hashesOf lists the 20-byte swarm hashes a torrent is known by.
func hashesOf(meta *piece.MetaInfo, mg piece.Magnet) [][20]byte {
	var out [][20]byte
	if meta != nil {
		return meta.Info.SwarmHashes()
	}
	if mg.HasV1() {
		out = append(out, mg.V1Hash)
	}
	if mg.HasV2() {
		out = append(out, mg.Hash.Truncated())
	}
	return out
}

// registerLocked files t under its hashes. Called with s.mu held.
func (s *Session) registerLocked(t *torrent) {
	s.torrents[t.id] = t
	for _, h := range hashesOf(t.meta, t.mg) {
		s.byHash[h] = t
	}
	for _, h := range hashesOf(nil, t.mg) {
		s.byHash[h] = t
	}
}

// unregisterLocked forgets t. Called with s.mu held.
func (s *Session) unregisterLocked(t *torrent) {
	delete(s.torrents, t.id)
	for h, o := range s.byHash {
		if o == t {
			delete(s.byHash, h)
		}
	}
}

// saveRecordLocked writes t's record with its current totals. Called
// with s.mu held.
func (s *Session) saveRecordLocked(t *torrent) error {
	if t.removed {
		return nil
	}
	data, err := s.recordDataLocked(t)
	if err == nil {
		err = fsutil.WriteFileAtomic(s.recordPath(t.id), data, 0o600)
	}
	if err != nil {
		return fmt.Errorf("torrent %d: %w", t.id, err)
	}
	t.dirty = false
	return nil
}

// recordDataLocked encodes t's record with its current totals, noting
// them as saved. Called with s.mu held.
func (s *Session) recordDataLocked(t *torrent) ([]byte, error) {
	out := t.rec
	out.Version, out.ID = recordVersion, t.id
	if t.sw != nil {
		st := t.sw.Stats()
		out.Downloaded += st.Downloaded
		out.Uploaded += st.Uploaded
		out.Corrupt += st.Wasted
		t.savedDown, t.savedUp, t.savedWasted = st.Downloaded, st.Uploaded, st.Wasted
	}
	return encodeJSON(out)
}

// loadTorrents brings back the torrents of the session folder, starting
// those that were not paused. A record that cannot be read is reported
// and skipped.
func (s *Session) loadTorrents() {
	ids, err := listRecords(filepath.Join(s.cfg.SessionDir, torrentsDir))
	if err != nil {
		s.log.Error("listing the session's torrents", "err", err)
		s.loadErrs = append(s.loadErrs, err)
		return
	}
	var start []*torrent
	s.mu.Lock()
	for _, id := range ids {
		s.rec.NextID = max(s.rec.NextID, id+1)
		t, err := s.loadTorrent(id)
		if err != nil {
			s.log.Error("skipping a torrent whose record is unusable", "id", id, "err", err)
			s.loadErrs = append(s.loadErrs, fmt.Errorf("torrent %d: %w", id, err))
			continue
		}
		if dup := s.dupLocked(hashesOf(t.meta, t.mg)); dup != nil {
			err := fmt.Errorf("torrent %d: the same torrent as %d", id, dup.id)
			s.log.Error("skipping a torrent recorded twice", "err", err)
			s.loadErrs = append(s.loadErrs, err)
			continue
		}
		s.registerLocked(t)
		if !t.rec.Paused {
			start = append(start, t)
		}
	}
	s.mu.Unlock()
	for _, t := range start {
		t.op.Lock()
		s.activate(t, false)
		t.op.Unlock()
	}
}

// loadTorrent reads one torrent's record and metainfo.
func (s *Session) loadTorrent(id ID) (*torrent, error) {
	rec, err := readRecord(s.recordPath(id), id)
	if err != nil {
		return nil, err
	}
	t := &torrent{id: id, rec: rec, state: Stopped}
	data, err := os.ReadFile(s.metaPath(id))
	switch {
	case err == nil:
		if t.meta, err = piece.Parse(data); err != nil {
			return nil, fmt.Errorf("%s: %w", s.metaPath(id), err)
		}
		t.mg = t.meta.Magnet()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case rec.Link == "":
		return nil, fmt.Errorf("%s: missing, and no magnet to fetch it by", s.metaPath(id))
	}
	if rec.Link != "" {
		mg, err := parseLink(rec.Link)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.recordPath(id), err)
		}
		if t.meta != nil && !mg.Matches(t.meta.Info) {
			return nil, fmt.Errorf("%s: metainfo is not the magnet's", s.metaPath(id))
		}
		t.mg.Trackers, t.mg.Peers = mg.Trackers, mg.Peers
		if t.meta == nil {
			t.mg = mg
		}
	}
	return t, nil
}

// parseLink reads a magnet link, a URN or a bare info-hash (64 hex digits
// for v2, 40 hex digits or 32 base32 letters for v1).
func parseLink(s string) (piece.Magnet, error) {
	s = strings.TrimSpace(s)
	l := strings.ToLower(s)
	if len(s) == 32 && !strings.HasPrefix(l, "magnet:") && !strings.HasPrefix(l, "urn:") {
		s = "urn:btih:" + s
	}
	return piece.ParseMagnet(s)
}

// dupLocked returns the torrent known by one of hashes, if any. Called
// with s.mu held.
func (s *Session) dupLocked(hashes [][20]byte) *torrent {
	for _, h := range hashes {
		if t := s.byHash[h]; t != nil {
			return t
		}
	}
	return nil
}

// activate starts t: metadata (a magnet), check, then the swarm, in the
// background. Called with t.op held and t stopped.
func (s *Session) activate(t *torrent, recheck bool) {
	ctx, cancel := context.WithCancel(s.ctx)
	a := &activation{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		// Close has stopped every torrent already, or is doing so.
		s.mu.Unlock()
		cancel()
		return
	}
	t.act = a
	t.state = CheckWait
	s.lastStart = time.Now()
	if t.meta == nil || needsLayers(t.meta) {
		// Waiting for peers, as Transmission shows a magnet: nothing is
		// checked before the metadata is whole.
		t.state = Downloading
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(a.done)
		s.run(ctx, t, recheck)
	}()
}

// running reports whether t is starting or running, as opposed to never
// started, stopped, or ended on its own. Called with t.op held.
func (s *Session) running(t *torrent) bool {
	s.mu.Lock()
	a, sw := t.act, t.sw
	s.mu.Unlock()
	if a == nil {
		return false
	}
	select {
	case <-a.done:
		return sw != nil
	default:
		return true
	}
}

// deactivate stops t, closing its swarm torrent (which saves the resume
// record) and storage, and folds its totals into the record; pause marks
// it stopped by the user. Called with t.op held.
func (s *Session) deactivate(t *torrent, pause bool) error {
	s.mu.Lock()
	a := t.act
	t.act = nil
	s.mu.Unlock()
	if a != nil {
		a.cancel()
		<-a.done
	}
	s.mu.Lock()
	sw, st := t.sw, t.st
	s.mu.Unlock()
	var err error
	if sw != nil {
		if err = sw.Close(); err != nil {
			err = fmt.Errorf("torrent %d: saving resume record: %w", t.id, err)
		}
	}
	var have []byte
	if st != nil {
		have = st.Have()
		st.Close()
	}
	s.mu.Lock()
	// What the record on disk already says is not written again: a
	// thousand idle seeds stopping took 2,000 disk syncs for nothing.
	changed := t.dirty
	if have != nil {
		changed = changed || !bytes.Equal(have, t.rec.Have)
		t.rec.Have = have
	}
	if sw != nil {
		ss := sw.Stats()
		changed = changed || ss.Downloaded != t.savedDown || ss.Uploaded != t.savedUp || ss.Wasted != t.savedWasted
		t.rec.Downloaded += ss.Downloaded
		t.rec.Uploaded += ss.Uploaded
		t.rec.Corrupt += ss.Wasted
		t.sessDown += ss.Downloaded
		t.sessUp += ss.Uploaded
		s.sessDown += ss.Downloaded
		s.sessUp += ss.Uploaded
		s.rec.DownloadedEver += ss.Downloaded
		s.rec.UploadedEver += ss.Uploaded
		t.savedDown, t.savedUp, t.savedWasted = 0, 0, 0
		select {
		case <-sw.Done():
			// Completed since the last housekeeping tick.
			if t.rec.Done.IsZero() {
				t.rec.Done = time.Now()
				changed = true
			}
		default:
		}
	}
	t.sw, t.st = nil, nil
	t.state = Stopped
	if pause && !t.rec.Paused {
		t.rec.Paused = true
		changed = true
	}
	if changed {
		t.dirty = true
		if e := s.saveRecordLocked(t); e != nil && err == nil {
			err = e
		}
	}
	s.mu.Unlock()
	return err
}

// stopWithError stops t on its own, as a disk fault or a torrent that
// cannot be downloaded does: paused, with why in Status.Error. Called
// from t's run, which returns right after.
func (s *Session) stopWithError(t *torrent, err error) {
	s.log.Error("torrent stopped", "id", t.id, "err", err)
	s.mu.Lock()
	t.rec.Paused = true
	t.rec.Error = err.Error()
	t.state = Stopped
	if e := s.saveRecordLocked(t); e != nil {
		s.log.Warn("saving torrent record", "id", t.id, "err", e)
	}
	s.mu.Unlock()
}

// fail stops a torrent whose swarm stopped on an error (swarm.Torrent.Err:
// a disk fault, an inconsistent torrent): issue 10's rule for a daemon is
// to pause that torrent with the error, and let the others run.
func (s *Session) fail(t *torrent) {
	t.op.Lock()
	defer t.op.Unlock()
	s.mu.Lock()
	sw := t.sw
	s.mu.Unlock()
	if sw == nil || sw.Err() == nil {
		return // stopped or restarted meanwhile
	}
	cause := sw.Err()
	s.log.Error("torrent stopped", "id", t.id, "err", cause)
	// The error is in place before the state says Stopped: a status
	// never shows a torrent stopped on its own without saying why.
	s.mu.Lock()
	t.rec.Error = cause.Error()
	s.mu.Unlock()
	if err := s.deactivate(t, true); err != nil {
		s.log.Warn("stopping failed torrent", "id", t.id, "err", err)
	}
}

// Pace of a magnet's metadata fetch that found nothing: asked again after
// a while, as a seeder may come up later.
const (
	fetchRetry    = 5 * time.Second
	maxFetchRetry = 5 * time.Minute
)

// run is one activation of t: the metadata of a magnet, the check of
// what is on disk, and then the swarm, until ctx ends.
func (s *Session) run(ctx context.Context, t *torrent, recheck bool) {
	s.mu.Lock()
	meta := t.meta
	s.mu.Unlock()
	if meta == nil {
		var ok bool
		if meta, ok = s.fetchMeta(ctx, t); !ok {
			return
		}
	}
	if needsLayers(meta) {
		var ok bool
		if meta, ok = s.fetchLayers(ctx, t, meta); !ok {
			return
		}
	}
	select {
	case s.checks <- struct{}{}:
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	t.state = Checking
	rec := t.rec
	s.mu.Unlock()
	t.hashed.Store(0)
	have, st, err := s.check(ctx, t, meta, rec, recheck)
	<-s.checks
	if err != nil {
		if ctx.Err() == nil {
			s.stopWithError(t, err)
		}
		return
	}
	s.mu.Lock()
	paused := t.rec.Paused
	rec = t.rec
	s.mu.Unlock()
	if paused {
		// A verify of a paused torrent: the new record, and it stays
		// paused.
		if err := st.Save(); err != nil {
			s.log.Warn("saving resume record", "id", t.id, "err", err)
		}
		st.Close()
		s.mu.Lock()
		t.state = Stopped
		t.rec.Have = have
		t.dirty = true
		s.mu.Unlock()
		return
	}
	prio, err := piecePriorities(meta.Info, rec)
	if err != nil {
		st.Close()
		s.stopWithError(t, err)
		return
	}
	sw, err := s.cl.AddWith(meta, st, have, swarm.AddOptions{Priority: prio, Sequential: rec.Sequential})
	if err != nil {
		st.Close()
		s.stopWithError(t, err)
		return
	}
	sw.SetRateLimits(rec.DownLimit, rec.UpLimit)
	sw.SetMaxPeers(rec.PeerLimit)
	sw.AddSources(s.sources(meta.Info.Private, t.mg)...)
	sw.AddTrackers(meta.Tiers(rec.ExtraTrackers...))
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		// Stopped while starting: deactivate has waited for us, and
		// finds nothing to close.
		sw.Close()
		st.Close()
		return
	}
	t.sw, t.st = sw, st
	t.state = Downloading
	if !bytes.Equal(t.rec.Have, have) {
		// Saved by housekeep now rather than by the stop: a thousand
		// seeds then stop without a write each.
		t.rec.Have = have
		t.dirty = true
	}
	select {
	case <-sw.Done():
		t.state = Seeding
		if t.rec.Done.IsZero() {
			t.rec.Done = time.Now()
			t.dirty = true
		}
	default:
	}
	if t.rec.Error != "" {
		t.rec.Error = ""
		t.dirty = true
	}
}

// check opens t's storage and finds the verified pieces: through the
// resume record and file stamps, hashing only what they do not vouch for;
// with recheck, everything. It refuses, before any peer is asked, a
// download that cannot be written (storage.Preflight).
func (s *Session) check(ctx context.Context, t *torrent, meta *piece.MetaInfo, rec record, recheck bool) ([]byte, *storage.Storage, error) {
	resume := s.resumePath(t.id)
	if recheck {
		if err := os.Remove(resume); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("verify: %w", err)
		}
	}
	st, err := storage.OpenWith(rec.Dir, meta.Info, storage.Options{ResumePath: resume, Logger: s.log})
	if err != nil {
		return nil, nil, err
	}
	if err := st.CheckLayout(); err != nil {
		st.Close()
		return nil, nil, err
	}
	have, err := st.Check(ctx, meta, &piece.Hasher{Progress: &t.hashed})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("checking what is on disk: %w", err)
	}
	if ff := st.Foreign(); len(ff) > 0 {
		if !recheck && rec.Done.IsZero() && !haveAny(have) {
			st.Close()
			return nil, nil, fmt.Errorf("%s holds data that is not this torrent's; move it away or add the torrent into another folder", filepath.Join(rec.Dir, ff[0].Path))
		}
		// Files the torrent had written: ours, whatever a verify found
		// in them.
		if err := st.Adopt(); err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	if err := st.Preflight(); err != nil {
		st.Close()
		return nil, nil, err
	}
	return have, st, nil
}

// haveAny reports whether a wire-order bitfield has a piece.
func haveAny(have []byte) bool {
	return slices.ContainsFunc(have, func(b byte) bool { return b != 0 })
}

// sources lists where a running torrent finds peers besides its trackers
// (swarm.RunningSources): a magnet's peer hints, the DHT (announcing our
// port, each torrent's first announce in its turn: stagger.go) and local
// discovery.
func (s *Session) sources(private bool, mg piece.Magnet) []swarm.Source {
	port := s.peerPort()
	var announcers []swarm.PeerFinder
	for _, n := range s.nodes {
		announcers = append(announcers, staggered{f: n.Announcer(port), g: &s.announces})
	}
	return swarm.RunningSources(private, hintPeers(mg), announcers, s.lsdFinder())
}

// peerPort is the peer listener's port, which DHT announces name.
func (s *Session) peerPort() int {
	if ap, err := netip.ParseAddrPort(s.cl.Addr().String()); err == nil {
		return int(ap.Port())
	}
	return 0
}

// lsdFinder is local discovery as a PeerFinder, nil when it is off (a
// nil *lsd.Service in the interface would not be).
func (s *Session) lsdFinder() swarm.PeerFinder {
	if s.lsd == nil {
		return nil
	}
	return s.lsd
}

// hintPeers are a magnet's x.pe addresses that parse; a bad one is
// skipped, as they are optional.
func hintPeers(mg piece.Magnet) []netip.AddrPort {
	var out []netip.AddrPort
	for _, h := range mg.Peers {
		if ap, err := netip.ParseAddrPort(h); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// fetchMeta gets a magnet's metainfo from peers, trying again with
// back-off until it arrives or ctx ends, and keeps it in the session
// folder.
func (s *Session) fetchMeta(ctx context.Context, t *torrent) (*piece.MetaInfo, bool) {
	s.mu.Lock()
	mg, extra := t.mg, t.rec.ExtraTrackers
	s.mu.Unlock()
	wait := fetchRetry
	for {
		var lookups []swarm.PeerFinder
		for _, n := range s.nodes {
			lookups = append(lookups, n)
		}
		sources := s.cl.MagnetSources(mg, extra, hintPeers(mg), lookups, s.lsdFinder())
		m, err := s.cl.FetchInfoFrom(ctx, mg, sources, nil)
		if err == nil {
			m.Announce = ""
			m.AnnounceList = nil
			for _, tr := range mg.Trackers {
				m.AnnounceList = append(m.AnnounceList, []string{tr})
			}
			s.saveMeta(t.id, m, "saving fetched metainfo")
			s.mu.Lock()
			t.meta = m
			t.mg.Hash, t.mg.V1Hash = m.Info.Hash, m.Info.V1Hash
			if !t.removed {
				s.registerLocked(t)
			}
			s.mu.Unlock()
			return m, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		s.log.Debug("metadata fetch found nothing; asking again later", "id", t.id, "err", err, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, false
		}
		wait = min(2*wait, maxFetchRetry)
	}
}

// needsLayers reports whether m is a v2-only torrent whose piece layers
// are missing: nothing of those files can be checked until peers send
// them. A hybrid downloads by SHA-1 meanwhile (swarm's hybrid.go).
func needsLayers(m *piece.MetaInfo) bool {
	return len(m.MissingLayers()) > 0 && !m.Info.HasV1()
}

// fetchLayers gets the piece layers a v2 .torrent left out from the peers
// the torrent would find (its trackers, the DHT unless private, local
// discovery, a magnet's hints), as `shoal get` does, trying again with
// back-off until they arrive or ctx ends, and keeps the completed
// metainfo in the session folder so that a restart does not ask again.
func (s *Session) fetchLayers(ctx context.Context, t *torrent, meta *piece.MetaInfo) (*piece.MetaInfo, bool) {
	s.mu.Lock()
	mg, extra := t.mg, t.rec.ExtraTrackers
	s.mu.Unlock()
	s.log.Info("the torrent lacks piece layers; fetching them from peers", "id", t.id, "files", len(meta.MissingLayers()))
	wait := fetchRetry
	for {
		sources := []swarm.Source{swarm.FixedPeers(hintPeers(mg)...)}
		for _, tier := range meta.Tiers(extra...) {
			for _, u := range tier {
				sources = append(sources, s.cl.TrackerLookup(u))
			}
		}
		if !meta.Info.Private {
			for _, n := range s.nodes {
				sources = append(sources, swarm.DHTLookup(n))
			}
			if lf := s.lsdFinder(); lf != nil {
				sources = append(sources, swarm.Source{Kind: swarm.SourceLSD, Finder: lf})
			}
		}
		// A copy takes the layers: status reads t.meta meanwhile.
		m := *meta
		m.Layers = slices.Clone(meta.Layers)
		err := s.cl.FetchLayersFrom(ctx, &m, sources, nil)
		if err == nil {
			s.saveMeta(t.id, &m, "saving the piece layers")
			s.mu.Lock()
			t.meta = &m
			s.mu.Unlock()
			s.log.Info("piece layers fetched", "id", t.id)
			return &m, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		s.log.Debug("piece layers fetch found nothing; asking again later", "id", t.id, "err", err, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, false
		}
		wait = min(2*wait, maxFetchRetry)
	}
}

// filePriorities turns a record's selection into per-file picker
// priorities; nil when every file is wanted at normal priority.
func filePriorities(info *piece.Info, rec record) []picker.Priority {
	if len(rec.Unwanted) == 0 && !slices.ContainsFunc(rec.Priorities, func(p Priority) bool { return p != PriorityNormal }) {
		return nil
	}
	files := make([]picker.Priority, len(info.Files))
	for i := range files {
		files[i] = picker.Normal
		if i < len(rec.Priorities) {
			switch rec.Priorities[i] {
			case PriorityLow:
				files[i] = picker.Low
			case PriorityHigh:
				files[i] = picker.High
			}
		}
	}
	for _, i := range rec.Unwanted {
		if i >= 0 && i < len(files) {
			files[i] = picker.Skip
		}
	}
	return files
}

// piecePriorities is filePriorities mapped to pieces (AddOptions).
func piecePriorities(info *piece.Info, rec record) ([]picker.Priority, error) {
	files := filePriorities(info, rec)
	if files == nil {
		return nil, nil
	}
	return swarm.PiecePriorities(info, files)
}

// removeFiles removes the torrent's own files from dir, and then the
// folders on their paths that are left empty; never dir itself, nor
// anything not the torrent's. Everything goes through an os.Root, so no
// name or link leads out of dir.
func removeFiles(dir string, info *piece.Info) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete data: %w", err)
	}
	defer root.Close()
	var errs []error
	folders := map[string]bool{}
	for i, f := range info.Files {
		if f.Pad {
			continue
		}
		comps := info.DiskPath(i)
		if slices.ContainsFunc(comps, func(c string) bool { return piece.CheckPathComponent(c) != nil }) {
			continue // never on disk: storage refuses such a torrent
		}
		p := filepath.Join(comps...)
		if st, err := root.Lstat(p); err == nil && st.IsDir() {
			continue // not a file of ours: the user's folder
		}
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete %s: %w", filepath.Join(dir, p), err))
		}
		for k := 1; k < len(comps); k++ {
			folders[filepath.Join(comps[:k]...)] = true
		}
	}
	list := make([]string, 0, len(folders))
	for f := range folders {
		list = append(list, f)
	}
	// Deepest first, so a folder is empty by the time it is tried.
	slices.SortFunc(list, func(a, b string) int {
		return strings.Count(b, string(filepath.Separator)) - strings.Count(a, string(filepath.Separator))
	})
	for _, f := range list {
		if st, err := root.Lstat(f); err != nil || !st.IsDir() {
			continue
		}
		root.Remove(f) // fails, as it should, if something else is in it
	}
	return errors.Join(errs...)
}

// saveMeta writes what a torrent fetched (its metainfo, or the piece
// layers it lacked) into its .torrent in the session folder. A failure
// is logged as what, not returned: the metainfo is kept in memory, so
// this run downloads, and a restart fetches it again.
func (s *Session) saveMeta(id ID, m *piece.MetaInfo, what string) {
	data, err := m.Marshal()
	if err == nil {
		err = fsutil.WriteFileAtomic(s.metaPath(id), data, 0o600)
	}
	if err != nil {
		s.log.Warn(what, "id", id, "err", err)
	}
}
