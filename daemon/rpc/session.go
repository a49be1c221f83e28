package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// kilo is Transmission's speed unit: its RPC gives rate limits in kB/s of
// 1000 bytes (the "units" of session-get say so).
const kilo = 1000

// sessionValues are session-get's keys and values, in Transmission 3's
// names.
func (c *call) sessionValues(s *daemon.Settings) map[string]any {
	return map[string]any{
		"alt-speed-down": 0, "alt-speed-enabled": false, "alt-speed-time-begin": 540,
		"alt-speed-time-day": 127, "alt-speed-time-enabled": false, "alt-speed-time-end": 1020,
		"alt-speed-up": 0, "blocklist-enabled": false, "blocklist-size": 0, "blocklist-url": "",
		"cache-size-mb": 0, "config-dir": s.ConfigDir, "dht-enabled": s.DHT,
		"download-dir": s.DownloadDir, "download-queue-enabled": false, "download-queue-size": 0,
		"encryption": s.Encryption, "idle-seeding-limit": 30, "idle-seeding-limit-enabled": false,
		"incomplete-dir": s.DownloadDir, "incomplete-dir-enabled": false, "lpd-enabled": s.LSD,
		"peer-limit-global": s.PeerLimit, "peer-limit-per-torrent": s.PeerLimit,
		"peer-port": s.ListenPort, "peer-port-random-on-start": false, "pex-enabled": s.PEX,
		"port-forwarding-enabled": s.PortMapping, "queue-stalled-enabled": false,
		"queue-stalled-minutes": 30, "rename-partial-files": false,
		"rpc-version": rpcVersion, "rpc-version-minimum": 1, "rpc-version-semver": "5.2.0",
		"script-torrent-done-enabled": false, "script-torrent-done-filename": "",
		"seed-queue-enabled": false, "seed-queue-size": 0,
		"seedRatioLimit": s.SeedRatioLimit, "seedRatioLimited": s.SeedRatioOn,
		"session-id":       c.h.sessionID,
		"speed-limit-down": s.DownLimit / kilo, "speed-limit-down-enabled": s.DownLimit > 0,
		"speed-limit-up": s.UpLimit / kilo, "speed-limit-up-enabled": s.UpLimit > 0,
		"start-added-torrents": !c.h.startPausedNow(), "trash-original-torrent-files": false,
		"utp-enabled": false, "version": s.Version,
		"units": map[string]any{
			"speed-units": []string{"kB/s", "MB/s", "GB/s", "TB/s"}, "speed-bytes": kilo,
			"size-units": []string{"kB", "MB", "GB", "TB"}, "size-bytes": kilo,
			"memory-units": []string{"KiB", "MiB", "GiB", "TiB"}, "memory-bytes": 1024,
		},
	}
}

// sessionGet answers session-get: Transmission 3.00's keys, filtered by
// the fields argument when given. Keys shoal has no setting for get the
// value that describes what shoal does (no alt speeds, no queue, no
// blocklist).
func (c *call) sessionGet() (map[string]any, error) {
	s := c.h.ctrl.Settings()
	all := c.sessionValues(&s)
	var fields []string
	if err := c.arg("fields", &fields); err != nil {
		return nil, err
	}
	wantFree := len(fields) == 0
	byNorm := make(map[string]string, len(all))
	for k := range all {
		byNorm[norm(k)] = k
	}
	out := map[string]any{}
	if len(fields) == 0 {
		for k, v := range all {
			out[c.key(k)] = v
		}
	}
	for _, f := range fields {
		if norm(f) == "downloaddirfreespace" {
			wantFree = true
			continue
		}
		if k, ok := byNorm[norm(f)]; ok {
			out[f] = all[k]
		}
	}
	if wantFree {
		// Transmission 3 still sends this deprecated key, which
		// transmission-remote -si prints.
		if free, err := c.h.ctrl.FreeSpace(s.DownloadDir); err == nil {
			name := c.key("download-dir-free-space")
			for _, f := range fields {
				if norm(f) == "downloaddirfreespace" {
					name = f
				}
			}
			out[name] = free
		}
	}
	return out, nil
}

// limitArgs reads a rate limit given as a value in kB/s and a flag
// saying whether it applies: Transmission's speed-limit-down and
// speed-limit-down-enabled, or a torrent's downloadLimit and
// downloadLimited. The limit is nil when the request changes nothing.
// shoal keeps no disabled limit to turn on later, so a value sent without
// the flag applies at once, where Transmission would store it unused.
func (c *call) limitArgs(value, enabled string) (*int64, error) {
	var v int64
	on := true
	if err := c.arg(value, &v); err != nil {
		return nil, err
	}
	if err := c.arg(enabled, &on); err != nil {
		return nil, err
	}
	if v < 0 {
		return nil, fmt.Errorf("argument %q: %d is below zero", value, v)
	}
	switch {
	case c.has(enabled) && !on:
		zero := int64(0)
		return &zero, nil
	case c.has(value):
		b := v * kilo
		return &b, nil
	}
	// Enabling a limit without a value: shoal keeps no disabled limit to
	// turn back on, so nothing changes.
	return nil, nil
}

// sameJSON reports whether the JSON raw says the value v, with
// Transmission's 0/1 for booleans allowed.
func sameJSON(raw json.RawMessage, v any) bool {
	var got any
	if json.Unmarshal(raw, &got) != nil {
		return false
	}
	if b, ok := v.(bool); ok {
		if n, ok := got.(float64); ok {
			return (n != 0) == b
		}
	}
	var want any
	js, err := json.Marshal(v)
	if err != nil || json.Unmarshal(js, &want) != nil {
		return false
	}
	return reflect.DeepEqual(got, want)
}

// notSettable are the session-set keys shoal applies; others that
// Transmission knows are refused by name rather than ignored, so that a
// user who turns off the DHT from a remote tool is not told it worked.
var notSettable = []string{
	"alt-speed-down", "alt-speed-enabled", "alt-speed-time-begin", "alt-speed-time-day",
	"alt-speed-time-enabled", "alt-speed-time-end", "alt-speed-up", "blocklist-enabled",
	"blocklist-url", "cache-size-mb", "dht-enabled", "download-queue-enabled",
	"download-queue-size", "encryption", "idle-seeding-limit", "idle-seeding-limit-enabled",
	"incomplete-dir", "incomplete-dir-enabled", "lpd-enabled", "peer-limit-global", "peer-port",
	"peer-port-random-on-start", "pex-enabled", "port-forwarding-enabled",
	"queue-stalled-enabled", "queue-stalled-minutes", "rename-partial-files",
	"script-torrent-done-enabled", "script-torrent-done-filename", "seed-queue-enabled",
	"seed-queue-size", "trash-original-torrent-files", "utp-enabled",
}

func (c *call) sessionSet() error {
	var cur map[string]any
	for _, k := range notSettable {
		raw, ok := c.args[norm(k)]
		if !ok {
			continue
		}
		if cur == nil {
			st := c.h.ctrl.Settings()
			cur = c.sessionValues(&st)
		}
		// Remote tools that save every preference at once send these
		// too, unchanged: only a change is refused.
		if !sameJSON(raw, cur[k]) {
			return fmt.Errorf("session-set: shoal cannot change %q at run time (see shoal daemon --help)", k)
		}
	}
	var ch daemon.SettingsChange
	var err error
	if c.has("downloaddir") {
		var d string
		if err := c.arg("downloaddir", &d); err != nil {
			return err
		}
		ch.DownloadDir = &d
	}
	if ch.DownLimit, err = c.limitArgs("speedlimitdown", "speedlimitdownenabled"); err != nil {
		return err
	}
	if ch.UpLimit, err = c.limitArgs("speedlimitup", "speedlimitupenabled"); err != nil {
		return err
	}
	if c.has("peerlimitpertorrent") {
		var n int
		if err := c.arg("peerlimitpertorrent", &n); err != nil {
			return err
		}
		ch.PeerLimit = &n
	}
	if c.has("seedratiolimit") {
		var r float64
		if err := c.arg("seedratiolimit", &r); err != nil {
			return err
		}
		ch.SeedRatioLimit = &r
	}
	if c.has("seedratiolimited") {
		var on bool
		if err := c.arg("seedratiolimited", &on); err != nil {
			return err
		}
		ch.SeedRatioOn = &on
	}
	var start *bool
	if c.has("startaddedtorrents") {
		start = new(bool)
		if err := c.arg("startaddedtorrents", start); err != nil {
			return err
		}
	}
	if ch != (daemon.SettingsChange{}) {
		if err := c.h.ctrl.SetSettings(ch); err != nil {
			return fmt.Errorf("session-set: %w", err)
		}
	}
	if start != nil {
		c.h.mu.Lock()
		c.h.startPaused = !*start
		c.h.mu.Unlock()
	}
	return nil
}

func (h *Handler) startPausedNow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.startPaused
}

func (c *call) sessionStats() (map[string]any, error) {
	st := c.h.ctrl.Stats()
	secs := int64(0)
	if !st.Started.IsZero() {
		secs = int64(time.Since(st.Started).Seconds())
	}
	return map[string]any{
		c.key("activeTorrentCount"): st.Active,
		c.key("pausedTorrentCount"): st.Paused,
		c.key("torrentCount"):       st.Torrents,
		c.key("downloadSpeed"):      st.RateDown,
		c.key("uploadSpeed"):        st.RateUp,
		c.key("cumulative-stats"): map[string]any{
			c.key("downloadedBytes"): st.DownloadedEver, c.key("uploadedBytes"): st.UploadedEver,
			// Not counted by shoal: 0 says "unknown" to every tool.
			c.key("filesAdded"): 0, c.key("sessionCount"): 0, c.key("secondsActive"): 0,
		},
		c.key("current-stats"): map[string]any{
			c.key("downloadedBytes"): st.Downloaded, c.key("uploadedBytes"): st.Uploaded,
			c.key("filesAdded"): 0, c.key("sessionCount"): 1, c.key("secondsActive"): secs,
		},
	}, nil
}

func (c *call) freeSpace() (map[string]any, error) {
	var path string
	if err := c.arg("path", &path); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New(`free-space: argument "path" is missing`)
	}
	n, err := c.h.ctrl.FreeSpace(path)
	if err != nil {
		return nil, fmt.Errorf("free-space %s: %w", path, err)
	}
	return map[string]any{"path": path, c.key("size-bytes"): n}, nil
}

// portTest answers from what the session knows; shoal asks no third
// party to connect to it, so when the session cannot tell, the answer is
// an error saying so, not a guess.
func (c *call) portTest() (map[string]any, error) {
	open, known := c.h.ctrl.PortOpen()
	if !known {
		return nil, errors.New("port-test: shoal cannot test its port from outside (it asks no third party); whether peers reach it is not known yet")
	}
	return map[string]any{c.key("port-is-open"): open}, nil
}
