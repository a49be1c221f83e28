package rpc

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// torrentGet answers torrent-get. Each requested field is answered under
// the name the request used; fields shoal does not know are left out, as
// Transmission leaves out unknown ones. Only the costly parts of a Status
// the fields need are asked for.
func (c *call) torrentGet() (json.RawMessage, error) {
	var names []string
	if err := c.arg("fields", &names); err != nil {
		return nil, err
	}
	var format string
	if err := c.arg("format", &format); err != nil {
		return nil, err
	}
	table := format == "table"
	if format != "" && !table && format != "objects" {
		return nil, fmt.Errorf("torrent-get: format %q is neither \"objects\" nor \"table\"", format)
	}
	type wanted struct {
		name string
		f    *field
	}
	var fs []wanted
	var want daemon.Want
	for _, n := range names {
		if f, ok := fields[norm(n)]; ok {
			fs = append(fs, wanted{n, f})
			want |= f.want
		}
	}
	ids, err := c.ids()
	recent := errors.Is(err, errRecent)
	if err != nil && !recent {
		return nil, err
	}
	var sts []daemon.Status
	// An empty list names no torrent, where nil (no ids) names them all.
	if ids == nil || len(ids) > 0 {
		sts = c.h.ctrl.Torrents(ids, want)
	}
	var removed []daemon.ID
	if recent {
		since := time.Now().Add(-recentWindow)
		kept := sts[:0]
		for _, st := range sts {
			if st.State != daemon.Stopped || st.Error != "" || st.Activity.After(since) ||
				st.Added.After(since) || st.Done.After(since) || c.h.editedSince(st.ID, since) {
				kept = append(kept, st)
			}
		}
		sts = kept
		removed = c.h.ctrl.Removed(since)
		if removed == nil {
			removed = []daemon.ID{}
		}
	}
	ctx := &fieldCtx{c: c}
	keys := make([][]byte, len(fs))
	for i, w := range fs {
		keys[i] = append(encodeRaw(w.name), ':')
	}
	buf := make([]byte, 0, 64+len(sts)*len(fs)*24)
	buf = append(buf, `{"torrents":[`...)
	if table {
		buf = append(buf, '[')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, k[:len(k)-1]...)
		}
		buf = append(buf, ']')
	}
	for i := range sts {
		if i > 0 || table {
			buf = append(buf, ',')
		}
		if table {
			buf = append(buf, '[')
		} else {
			buf = append(buf, '{')
		}
		for j, w := range fs {
			if j > 0 {
				buf = append(buf, ',')
			}
			if !table {
				buf = append(buf, keys[j]...)
			}
			buf = appendValue(buf, w.f.get(ctx, &sts[i]))
		}
		if table {
			buf = append(buf, ']')
		} else {
			buf = append(buf, '}')
		}
	}
	buf = append(buf, ']')
	if removed != nil {
		buf = append(buf, `,"removed":`...)
		buf = append(buf, encodeRaw(removed)...)
	}
	buf = append(buf, '}')
	return buf, nil
}

// torrentAdd answers torrent-add: filename is a magnet link, a bare
// info-hash or a .torrent on the daemon's machine; metainfo is a
// .torrent's bytes in base64. URLs are not fetched: shoal makes no
// request a remote user chose.
func (c *call) torrentAdd() (map[string]any, error) {
	req := daemon.AddRequest{Paused: c.h.startPausedNow()}
	var filename, metainfo string
	for _, a := range []struct {
		name string
		v    any
	}{
		{"filename", &filename}, {"metainfo", &metainfo}, {"downloaddir", &req.Dir},
		{"paused", &req.Paused}, {"filesunwanted", &req.Unwanted},
		{"priorityhigh", &req.PriorityHigh}, {"prioritylow", &req.PriorityLow},
		{"peerlimit", &req.PeerLimit}, {"sequentialdownload", &req.Sequential},
	} {
		if err := c.arg(a.name, a.v); err != nil {
			return nil, fmt.Errorf("torrent-add: %w", err)
		}
	}
	// Like Transmission, metainfo wins over filename: transmission-remote
	// sends both, the path as it was given and the file's bytes.
	switch {
	case metainfo != "":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(metainfo))
		if err != nil {
			return nil, fmt.Errorf(`torrent-add: "metainfo" is not base64: %w`, err)
		}
		req.Metainfo = b
	case filename == "":
		return nil, errors.New(`torrent-add: no "filename" nor "metainfo" given`)
	case strings.HasPrefix(strings.ToLower(filename), "magnet:") || isBareHash(filename):
		req.Link = filename
	case strings.HasPrefix(filename, "http://") || strings.HasPrefix(filename, "https://"):
		return nil, errors.New("torrent-add: shoal does not fetch .torrent URLs; send the file's bytes as \"metainfo\"")
	default:
		req.Path = filename
	}
	st, dup, err := c.h.ctrl.Add(req)
	if err != nil {
		return nil, fmt.Errorf("torrent-add: %w", err)
	}
	c.h.touch([]daemon.ID{st.ID})
	key := "torrent-added"
	if dup {
		key = "torrent-duplicate"
	}
	return map[string]any{c.key(key): map[string]any{
		"id": st.ID, "name": st.Name, c.key("hashString"): st.Hash,
	}}, nil
}

// isBareHash reports whether s is a v1 (40 hex, 32 base32) or v2 (64 hex)
// info-hash without the magnet around it.
func isBareHash(s string) bool {
	switch len(s) {
	case 40, 64:
		_, err := hex.DecodeString(s)
		return err == nil
	case 32:
		for _, r := range strings.ToUpper(s) {
			if !('A' <= r && r <= 'Z' || '2' <= r && r <= '7') {
				return false
			}
		}
		return true
	}
	return false
}

// torrentSet answers torrent-set. Tracker IDs in trackerRemove are the ids
// torrent-get gives (a tracker's index in its torrent's list); URLs are
// accepted too.
func (c *call) torrentSet() error {
	var ch daemon.Change
	for _, a := range []struct {
		name string
		v    any
	}{
		{"fileswanted", &ch.Wanted}, {"filesunwanted", &ch.Unwanted},
		{"priorityhigh", &ch.PriorityHigh}, {"prioritynormal", &ch.PriorityNormal},
		{"prioritylow", &ch.PriorityLow}, {"trackeradd", &ch.AddTrackers},
	} {
		if err := c.arg(a.name, a.v); err != nil {
			return fmt.Errorf("torrent-set: %w", err)
		}
	}
	var err error
	if ch.DownLimit, err = c.limitArgs("downloadlimit", "downloadlimited"); err != nil {
		return fmt.Errorf("torrent-set: %w", err)
	}
	if ch.UpLimit, err = c.limitArgs("uploadlimit", "uploadlimited"); err != nil {
		return fmt.Errorf("torrent-set: %w", err)
	}
	if c.has("peerlimit") {
		var n int
		if err := c.arg("peerlimit", &n); err != nil {
			return fmt.Errorf("torrent-set: %w", err)
		}
		ch.PeerLimit = &n
	}
	if c.has("sequentialdownload") {
		var on bool
		if err := c.arg("sequentialdownload", &on); err != nil {
			return fmt.Errorf("torrent-set: %w", err)
		}
		ch.Sequential = &on
	}
	for _, k := range []string{"location", "trackerreplace", "labels", "group"} {
		if c.has(k) {
			return fmt.Errorf("torrent-set: %q is not supported by shoal", k)
		}
	}
	var remove []any
	if err := c.arg("trackerremove", &remove); err != nil {
		return fmt.Errorf("torrent-set: %w", err)
	}
	var list *string
	if c.has("trackerlist") {
		list = new(string)
		if err := c.arg("trackerlist", list); err != nil {
			return fmt.Errorf("torrent-set: %w", err)
		}
	}
	if len(remove) == 0 && list == nil {
		return c.each(func(ids []daemon.ID) error { return c.h.ctrl.Set(ids, ch) })
	}
	// Tracker IDs are per torrent: each torrent gets its own list of URLs.
	return c.each(func(ids []daemon.ID) error {
		for _, st := range c.h.ctrl.Torrents(ids, daemon.WantTrackers) {
			one := ch
			one.RemoveTrackers = nil
			if list != nil {
				// Transmission 4's trackerList replaces the list: what is
				// not in it goes, what is new comes (tiers are not kept).
				want := map[string]bool{}
				for _, l := range strings.Split(*list, "\n") {
					if l = strings.TrimSpace(l); l != "" {
						want[l] = true
					}
				}
				have := map[string]bool{}
				for _, t := range st.Trackers {
					have[t.URL] = true
					if !want[t.URL] {
						one.RemoveTrackers = append(one.RemoveTrackers, t.URL)
					}
				}
				for _, l := range strings.Split(*list, "\n") {
					if l = strings.TrimSpace(l); l != "" && !have[l] {
						have[l] = true
						one.AddTrackers = append(one.AddTrackers, l)
					}
				}
			}
			for _, r := range remove {
				switch v := r.(type) {
				case float64:
					if i := int(v); i >= 0 && i < len(st.Trackers) && float64(i) == v {
						one.RemoveTrackers = append(one.RemoveTrackers, st.Trackers[i].URL)
					}
				case string:
					one.RemoveTrackers = append(one.RemoveTrackers, v)
				default:
					return fmt.Errorf("torrent-set: trackerRemove: %v is not a tracker id", r)
				}
			}
			if err := c.h.ctrl.Set([]daemon.ID{st.ID}, one); err != nil {
				return fmt.Errorf("torrent-set %d: %w", st.ID, err)
			}
		}
		return nil
	})
}
