package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/internal/fsutil"
)

// The session folder:
//
//	session.json        the session's settings and counters (sessionRecord)
//	torrents/ID.json    a torrent's settings and state (record)
//	torrents/ID.torrent its metainfo, once known (a magnet's comes later)
//	resume/ID.resume    its resume record (piece/storage), which keeps the
//	                    download folder free of shoal's files
//
// Every file is replaced atomically (fsutil), so a crash leaves the old
// or the new one, never half of either.
const (
	sessionFile   = "session.json"
	torrentsDir   = "torrents"
	resumeDir     = "resume"
	recordVersion = 1
)

// sessionRecord is session.json.
type sessionRecord struct {
	Version int `json:"version"`
	// NextID is the ID the next torrent gets: kept so that an ID is never
	// given twice, even after its torrent was removed.
	NextID         ID      `json:"next_id"`
	DownloadDir    string  `json:"download_dir,omitempty"`
	DownLimit      int64   `json:"down_limit,omitempty"`
	UpLimit        int64   `json:"up_limit,omitempty"`
	PeerLimit      int     `json:"peer_limit,omitempty"`
	SeedRatioLimit float64 `json:"seed_ratio_limit,omitempty"`
	SeedRatioOn    bool    `json:"seed_ratio_on,omitempty"`
	DownloadedEver int64   `json:"downloaded_ever,omitempty"`
	UploadedEver   int64   `json:"uploaded_ever,omitempty"`
}

// record is a torrent's settings and state, torrents/ID.json.
type record struct {
	Version int `json:"version"`
	ID      ID  `json:"id"`
	// Link is the magnet the torrent was added by ("" for a .torrent);
	// with no ID.torrent beside it, the metadata is still to be fetched.
	Link string `json:"link,omitempty"`
	Dir  string `json:"dir"`
	// Paused is the user's stop, or an error's (Error).
	Paused bool   `json:"paused,omitempty"`
	Error  string `json:"error,omitempty"`
	// Unwanted lists the files not wanted; Priorities has one entry per
	// file once any differs from normal.
	Unwanted      []int      `json:"unwanted,omitempty"`
	Priorities    []Priority `json:"priorities,omitempty"`
	Sequential    bool       `json:"sequential,omitempty"`
	DownLimit     int64      `json:"down_limit,omitempty"`
	UpLimit       int64      `json:"up_limit,omitempty"`
	PeerLimit     int        `json:"peer_limit,omitempty"`
	ExtraTrackers []string   `json:"extra_trackers,omitempty"`
	Added         time.Time  `json:"added"`
	Done          time.Time  `json:"done,omitzero"`
	Downloaded    int64      `json:"downloaded,omitempty"`
	Uploaded      int64      `json:"uploaded,omitempty"`
	Corrupt       int64      `json:"corrupt,omitempty"`
	// Have is the verified pieces when the torrent last stopped, for the
	// status of a stopped torrent only: what is on disk is always checked
	// against the resume record and the data before it is trusted.
	Have []byte `json:"have,omitempty"`
}

func (s *Session) recordPath(id ID) string {
	return filepath.Join(s.cfg.SessionDir, torrentsDir, strconv.Itoa(int(id))+".json")
}

func (s *Session) metaPath(id ID) string {
	return filepath.Join(s.cfg.SessionDir, torrentsDir, strconv.Itoa(int(id))+".torrent")
}

func (s *Session) resumePath(id ID) string {
	return filepath.Join(s.cfg.SessionDir, resumeDir, strconv.Itoa(int(id))+".resume")
}

// writeJSON replaces path with v, atomically.
func writeJSON(path string, v any) error {
	data, err := encodeJSON(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, data, 0o600)
}

// encodeJSON is how the session folder's JSON files are written.
func encodeJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "\t")
	return append(data, '\n'), err
}

// readRecord reads torrents/ID.json and checks what it says of itself.
func readRecord(path string, id ID) (record, error) {
	var r record
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case r.Version != recordVersion:
		return r, fmt.Errorf("%s: version %d, want %d", path, r.Version, recordVersion)
	case r.ID != id:
		return r, fmt.Errorf("%s: names torrent %d", path, r.ID)
	case r.Dir == "" || !filepath.IsAbs(r.Dir):
		return r, fmt.Errorf("%s: folder %q is not absolute", path, r.Dir)
	}
	return r, nil
}

// listRecords returns the IDs of the torrent records in the session
// folder, ignoring anything else there (a leftover temporary file).
func listRecords(dir string) ([]ID, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []ID
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(name)
		if err != nil || n <= 0 || strconv.Itoa(n) != name {
			continue
		}
		ids = append(ids, ID(n))
	}
	return ids, nil
}
