package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"unicode/utf8"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"

	"github.com/anacrolix/dht/v2/krpc"

	"github.com/shoal-p2p/shoal/internal/fsutil"
)

// state is what survives a restart: our node ID, so other nodes' tables
// still point at us, and the routing table, so we need no bootstrap node.
// It is a bencoded dict, so fields can be added without breaking old files.
type state struct {
	ID     krpc.ID                  `bencode:"id"`
	Nodes  krpc.CompactIPv4NodeInfo `bencode:"nodes,omitempty"`
	Nodes6 krpc.CompactIPv6NodeInfo `bencode:"nodes6,omitempty"`
}

// loadState reads path. A missing file is a cold start, not an error.
func loadState(path string) (state, bool, error) {
	var st state
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read DHT state %s: %w", path, err)
	}
	if err := bencode.Unmarshal(data, &st); err != nil {
		return state{}, false, fmt.Errorf("DHT state %s: %w", path, err)
	}
	return st, true, nil
}

// saveState writes the table atomically: a crash mid-write must not cost
// the next start its warm table.
func saveState(path string, id krpc.ID, nodes []krpc.NodeInfo) error {
	st := state{ID: id}
	for _, ni := range nodes {
		if ni.Addr.IP.To4() != nil {
			st.Nodes = append(st.Nodes, ni)
		} else if len(ni.Addr.IP) == 16 {
			st.Nodes6 = append(st.Nodes6, ni)
		}
	}
	data, err := bencode.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode DHT state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("save DHT state %s: %w", path, err)
	}
	return nil
}

// slogHandler forwards the library's log to ours at debug level: its
// messages are per-packet chatter, and what a user must hear (bootstrap
// failure) this package logs itself. A nil l means slog's default at the
// time of the message. Messages are cut to maxLibLogLen: the library
// quotes a malformed packet whole, and anyone can send 64 KB of one.
type slogHandler struct{ l *slog.Logger }

// maxLibLogLen bounds a forwarded message, in bytes.
const maxLibLogLen = 256

func (h slogHandler) Handle(r alog.Record) {
	l := h.l
	if l == nil {
		l = slog.Default()
	}
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.Debug("anacrolix/dht: " + truncate(r.Msg.String(), maxLibLogLen))
}

// truncate cuts s to at most n bytes, at a rune boundary, saying how long
// it was.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

func libLogger(l *slog.Logger) alog.Logger {
	ll := alog.NewLogger("dht")
	ll.SetHandlers(slogHandler{l})
	return ll
}

// The library also logs through anacrolix/log's global logger, which
// writes straight to stderr whatever the user's --log-level: every
// malformed packet a stranger sends, quoted whole (60 KB lines). Send that
// through slog too, at debug and cut short.
func init() {
	alog.Default.SetHandlers(slogHandler{})
}
