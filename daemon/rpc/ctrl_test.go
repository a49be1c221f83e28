package rpc

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// testCtrl is a small in-memory daemon.Controller: this package's tests
// are about the HTTP and JSON protocol, and check what reaches the
// session through it. It records every call it gets.
type testCtrl struct {
	mu       sync.Mutex
	dir      string // the download folder
	next     daemon.ID
	torrents []*daemon.Status
	removed  map[daemon.ID]time.Time
	settings daemon.Settings
	calls    []string
	wants    []daemon.Want
	changes  []daemon.Change
	adds     []daemon.AddRequest
	portOpen *bool
}

func newTestCtrl(dir string) *testCtrl {
	return &testCtrl{
		dir: dir, next: 1, removed: map[daemon.ID]time.Time{},
		settings: daemon.Settings{
			Version: "shoal test", ConfigDir: filepath.Join(dir, ".session"), DownloadDir: dir,
			ListenPort: 51413, DHT: true, PEX: true, Encryption: "preferred", PeerLimit: 50,
			SeedRatioLimit: 2,
		},
	}
}

func (c *testCtrl) record(format string, args ...any) {
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
}

// lastCall returns the last call recorded, "" if none.
func (c *testCtrl) lastCall() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return ""
	}
	return c.calls[len(c.calls)-1]
}

// addSample adds a torrent with two files, a tracker and a peer, half
// downloaded, and returns it.
func (c *testCtrl) addSample(name string) *daemon.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addLocked(name)
}

func (c *testCtrl) addLocked(name string) *daemon.Status {
	sum := sha1.Sum([]byte(name))
	h := hex.EncodeToString(sum[:])
	st := &daemon.Status{
		ID: c.next, Hash: h, V1Hash: h, Name: name, Dir: c.dir,
		Magnet: "magnet:?xt=urn:btih:" + h + "&dn=" + name, State: daemon.Downloading,
		HasMetadata: true, Comment: "a comment", Creator: "shoal test",
		Created: time.Unix(1700000000, 0), PieceCount: 4, PieceSize: 1 << 16,
		TotalSize: 200000, WantedSize: 200000, Left: 100000, Verified: 100000,
		Downloaded: 120000, Uploaded: 60000, Corrupt: 16384, RateDown: 5000, RateUp: 1000,
		PeersConnected: 1, PeersSending: 1, PeersGetting: 0,
		Added: time.Now().Add(-time.Hour), Activity: time.Now().Add(-time.Hour),
		ETA: 20 * time.Second, DownLimit: 0, UpLimit: 50000,
		Files: []daemon.FileStatus{
			{Name: name + "/a.bin", Length: 150000, Completed: 65536, Wanted: true, Priority: daemon.PriorityNormal},
			{Name: name + "/b.txt", Length: 50000, Completed: 34464, Wanted: true, Priority: daemon.PriorityHigh},
		},
		Peers: []daemon.PeerStatus{{
			Addr: netip.MustParseAddrPort("127.0.0.1:6881"), Client: "shoal 1.0", Progress: 0.5,
			RateToUs: 5000, Encrypted: true, AmInterested: true, PeerInterested: false,
		}},
		Trackers: []daemon.TrackerStatus{{
			URL: "http://127.0.0.1:6969/announce", Tier: 0, LastResult: "Success",
			LastAnnounce: time.Unix(1700000100, 0), NextAnnounce: time.Unix(1700001900, 0),
			Seeders: 3, Leechers: 2, LastPeers: 4,
		}},
		Pieces: []byte{0xa0},
	}
	c.next++
	c.torrents = append(c.torrents, st)
	return st
}

func (c *testCtrl) find(id daemon.ID) *daemon.Status {
	for _, st := range c.torrents {
		if st.ID == id {
			return st
		}
	}
	return nil
}

func (c *testCtrl) Torrents(ids []daemon.ID, want daemon.Want) []daemon.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wants = append(c.wants, want)
	var out []daemon.Status
	for _, st := range c.torrents {
		if ids != nil && !slices.Contains(ids, st.ID) {
			continue
		}
		s := *st
		// As a session does: the costly parts only when asked for.
		if want&daemon.WantFiles == 0 {
			s.Files = nil
		} else {
			s.Files = slices.Clone(st.Files)
		}
		if want&daemon.WantPeers == 0 {
			s.Peers = nil
		}
		if want&daemon.WantTrackers == 0 {
			s.Trackers = nil
		}
		if want&daemon.WantPieces == 0 {
			s.Pieces = nil
		}
		out = append(out, s)
	}
	return out
}

func (c *testCtrl) Removed(since time.Time) []daemon.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []daemon.ID
	for id, t := range c.removed {
		if t.After(since) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (c *testCtrl) Add(req daemon.AddRequest) (daemon.Status, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adds = append(c.adds, req)
	var name string
	switch {
	case req.Link != "":
		name = req.Link
		if i := strings.Index(req.Link, "dn="); i >= 0 {
			name = req.Link[i+3:]
		}
	case req.Metainfo != nil:
		name = "meta-" + string(req.Metainfo)
	case req.Path != "":
		abs, err := filepath.Abs(req.Path)
		if err != nil || !strings.HasPrefix(abs, c.dir+"/") {
			return daemon.Status{}, false, daemon.ErrOutside
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return daemon.Status{}, false, err
		}
		name = "file-" + string(data)
	default:
		return daemon.Status{}, false, fmt.Errorf("nothing to add")
	}
	for _, st := range c.torrents {
		if st.Name == name {
			return *st, true, nil
		}
	}
	st := c.addLocked(name)
	if req.Paused {
		st.State = daemon.Stopped
	}
	c.record("add %s", name)
	return *st, false, nil
}

func (c *testCtrl) op(what string, ids []daemon.ID, f func(*daemon.Status)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("%s %v", what, ids)
	for _, id := range ids {
		st := c.find(id)
		if st == nil {
			return daemon.ErrNotFound
		}
		if f != nil {
			f(st)
		}
	}
	return nil
}

func (c *testCtrl) Start(ids []daemon.ID) error {
	return c.op("start", ids, func(st *daemon.Status) { st.State = daemon.Downloading })
}

func (c *testCtrl) Stop(ids []daemon.ID) error {
	return c.op("stop", ids, func(st *daemon.Status) { st.State = daemon.Stopped })
}

func (c *testCtrl) Verify(ids []daemon.ID) error {
	return c.op("verify", ids, func(st *daemon.Status) { st.State = daemon.CheckWait })
}

func (c *testCtrl) Reannounce(ids []daemon.ID) error { return c.op("reannounce", ids, nil) }

func (c *testCtrl) Remove(ids []daemon.ID, deleteData bool) error {
	if err := c.op(fmt.Sprintf("remove(delete=%v)", deleteData), ids, nil); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.torrents = slices.DeleteFunc(c.torrents, func(st *daemon.Status) bool {
		if slices.Contains(ids, st.ID) {
			c.removed[st.ID] = time.Now()
			return true
		}
		return false
	})
	return nil
}

func (c *testCtrl) Set(ids []daemon.ID, ch daemon.Change) error {
	c.mu.Lock()
	c.changes = append(c.changes, ch)
	c.mu.Unlock()
	return c.op("set", ids, func(st *daemon.Status) {
		for _, i := range ch.Unwanted {
			if i >= 0 && i < len(st.Files) {
				st.Files[i].Wanted = false
			}
		}
		for _, i := range ch.Wanted {
			if i >= 0 && i < len(st.Files) {
				st.Files[i].Wanted = true
			}
		}
		for _, p := range []struct {
			idx []int
			p   daemon.Priority
		}{{ch.PriorityHigh, daemon.PriorityHigh}, {ch.PriorityNormal, daemon.PriorityNormal}, {ch.PriorityLow, daemon.PriorityLow}} {
			for _, i := range p.idx {
				if i >= 0 && i < len(st.Files) {
					st.Files[i].Priority = p.p
				}
			}
		}
		if ch.DownLimit != nil {
			st.DownLimit = *ch.DownLimit
		}
		if ch.UpLimit != nil {
			st.UpLimit = *ch.UpLimit
		}
		for _, u := range ch.AddTrackers {
			st.Trackers = append(st.Trackers, daemon.TrackerStatus{URL: u, Tier: len(st.Trackers), Seeders: -1, Leechers: -1})
		}
		st.Trackers = slices.DeleteFunc(st.Trackers, func(t daemon.TrackerStatus) bool {
			return slices.Contains(ch.RemoveTrackers, t.URL)
		})
	})
}

func (c *testCtrl) Settings() daemon.Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings
}

func (c *testCtrl) SetSettings(ch daemon.SettingsChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("settings")
	if ch.DownloadDir != nil {
		if !filepath.IsAbs(*ch.DownloadDir) {
			return fmt.Errorf("download folder %q is not absolute", *ch.DownloadDir)
		}
		c.settings.DownloadDir = *ch.DownloadDir
	}
	if ch.DownLimit != nil {
		c.settings.DownLimit = *ch.DownLimit
	}
	if ch.UpLimit != nil {
		c.settings.UpLimit = *ch.UpLimit
	}
	if ch.PeerLimit != nil {
		c.settings.PeerLimit = *ch.PeerLimit
	}
	if ch.SeedRatioLimit != nil {
		c.settings.SeedRatioLimit = *ch.SeedRatioLimit
	}
	if ch.SeedRatioOn != nil {
		c.settings.SeedRatioOn = *ch.SeedRatioOn
	}
	return nil
}

func (c *testCtrl) Stats() daemon.SessionStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := daemon.SessionStats{Torrents: len(c.torrents), Started: time.Now().Add(-time.Minute),
		Downloaded: 1000, Uploaded: 500, DownloadedEver: 5000, UploadedEver: 2500}
	for _, st := range c.torrents {
		if st.State == daemon.Stopped {
			s.Paused++
		} else {
			s.Active++
		}
		s.RateDown += st.RateDown
		s.RateUp += st.RateUp
	}
	return s
}

func (c *testCtrl) FreeSpace(path string) (int64, error) {
	if path != c.dir && !strings.HasPrefix(path, c.dir+"/") {
		return 0, daemon.ErrOutside
	}
	return 123456789, nil
}

func (c *testCtrl) PortOpen() (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.portOpen == nil {
		return false, false
	}
	return *c.portOpen, true
}

// lastChange, addRequests and count read what the session got under its
// lock: the tests read them while the handler's goroutines may write.
func (c *testCtrl) lastChange() daemon.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes[len(c.changes)-1]
}

func (c *testCtrl) addRequests() []daemon.AddRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.adds)
}

func (c *testCtrl) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.torrents)
}

func (c *testCtrl) hasCall(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.calls, s)
}

func (c *testCtrl) hashOf(id daemon.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.find(id); st != nil {
		return st.Hash
	}
	return ""
}

func (c *testCtrl) lastWant() daemon.Want {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wants[len(c.wants)-1]
}
