// Package rpc speaks Transmission's RPC protocol at /transmission/rpc over
// a daemon.Controller, so that the tools users already have
// (transmission-remote, Transmission's web UI, python transmissionrpc,
// the many Transmission clients of other languages) drive a shoal daemon
// unchanged; it also holds a Go Client for that protocol.
//
// The handler follows Transmission 3.00's rpc-spec (RPC version 16) and
// accepts the snake_case names of Transmission 4 as well: every argument
// and field name is matched with case, '-' and '_' ignored, and replies use
// the names the request used. Torrents are named by ID, or by their 40-hex
// hashString, which is daemon.Status.Hash: the v1 info-hash for v1 and
// hybrid torrents, the v2 info-hash truncated to 20 bytes for v2-only ones;
// the full 64-hex v2 hash is accepted too.
//
// Methods not supported by shoal, answered with an error result that says
// so: torrent-set-location, torrent-rename-path, queue-move-top,
// queue-move-up, queue-move-down, queue-move-bottom, blocklist-update,
// session-close, group-get and group-set.
package rpc

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/daemon"
)

// Path is where Transmission's RPC lives, and where its tools look for it.
const Path = "/transmission/rpc"

// SessionIDHeader carries the token of the cross-site request handshake.
const SessionIDHeader = "X-Transmission-Session-Id"

// DefaultMaxBody bounds a request body: room for the base64 metainfo of a
// torrent of many thousand files (a .torrent of 20 MiB is very rare), and
// far from a body that could exhaust memory.
const DefaultMaxBody = 32 << 20

// rpcVersion is the RPC version of Transmission 3.00, whose fields and
// methods this package implements; tools pick what they ask by it.
const rpcVersion = 16

// Options configure a Handler.
type Options struct {
	// Auth, when set, requires HTTP Basic authentication with these
	// credentials (see LoadAuthFile).
	Auth *Credentials
	// Hosts are names, besides localhost, 127.0.0.1, [::1] and the address
	// a request arrived at, that a request's Host header may carry. Other
	// names are refused: a web page whose name was re-pointed at this
	// machine (DNS rebinding) must not reach the RPC.
	Hosts []string
	// Logger receives one debug line per call and warnings about refused
	// requests; nil means slog.Default().
	Logger *slog.Logger
	// MaxBody bounds a request body; 0 means DefaultMaxBody.
	MaxBody int64
}

// Handler serves Transmission's RPC over a Controller.
type Handler struct {
	ctrl      daemon.Controller
	opts      Options
	log       *slog.Logger
	hosts     map[string]bool
	sessionID string

	mu sync.Mutex
	// edited records when the RPC last changed each torrent, so that
	// "recently-active" returns a torrent paused or edited a moment ago,
	// which its own activity time does not show.
	edited map[daemon.ID]time.Time
	// startPaused is Transmission's start-added-torrents turned off:
	// transmission-remote's --start-paused sets it. It lives here, not in
	// the session, and so lasts until the daemon restarts.
	startPaused bool
}

// NewHandler returns a handler of Transmission RPC requests over ctrl. It
// answers at any path; mount it at Path.
func NewHandler(ctrl daemon.Controller, opts Options) *Handler {
	h := &Handler{ctrl: ctrl, opts: opts, log: opts.Logger, edited: map[daemon.ID]time.Time{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.opts.MaxBody <= 0 {
		h.opts.MaxBody = DefaultMaxBody
	}
	h.hosts = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, n := range opts.Hosts {
		h.hosts[strings.ToLower(strings.Trim(n, "[]"))] = true
	}
	var b [24]byte
	rand.Read(b[:])
	h.sessionID = base64.RawURLEncoding.EncodeToString(b[:])
	return h
}

// Guard serves next only to requests the RPC would admit: a Host this
// daemon answers to and, when Options.Auth is set, the right credentials.
// The web UI is guarded so, since the browser then asks for the password
// once, for the page and the RPC calls it makes alike.
func (h *Handler) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.admit(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// admit checks a request's Host header and credentials, answering it
// itself (421, 401) when they fail.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	if !h.hostAllowed(r) {
		h.log.Warn("rpc: request refused: unknown Host", "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, "421: the Host header names no address of this daemon (add it to the RPC's allowed hosts)", http.StatusMisdirectedRequest)
		return false
	}
	if h.opts.Auth != nil {
		user, pass, ok := r.BasicAuth()
		if !ok || !h.opts.Auth.check(user, pass) {
			if ok {
				h.log.Warn("rpc: wrong credentials", "remote", r.RemoteAddr)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="shoal"`)
			http.Error(w, "401: unauthorized", http.StatusUnauthorized)
			return false
		}
	}
	return true
}

// SessionID returns the token clients must send in SessionIDHeader.
func (h *Handler) SessionID() string { return h.sessionID }

// request is one RPC call as sent.
type request struct {
	Method    string                     `json:"method"`
	Arguments map[string]json.RawMessage `json:"arguments"`
	Tag       json.RawMessage            `json:"tag,omitempty"`
}

// response is one RPC answer; Arguments is pre-encoded JSON.
type response struct {
	Result    string          `json:"result"`
	Arguments json.RawMessage `json:"arguments"`
	Tag       json.RawMessage `json:"tag,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.admit(w, r) {
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(SessionIDHeader)), []byte(h.sessionID)) != 1 {
		// The handshake: a page of another site cannot read this header
		// from the answer, so it cannot send the retry.
		w.Header().Set(SessionIDHeader, h.sessionID)
		http.Error(w, "409: send the "+SessionIDHeader+" header of this answer", http.StatusConflict)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "405: RPC calls are POST requests", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > h.opts.MaxBody {
		// Refused before any of it is read; the connection cannot be
		// reused without reading the rest, so it is closed.
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("413: request body over %d bytes", h.opts.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("413: request body over %d bytes", h.opts.MaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "400: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, response{Result: "malformed JSON request: " + err.Error(), Arguments: json.RawMessage("{}")})
		return
	}
	start := time.Now()
	args, err := h.call(req)
	resp := response{Result: "success", Arguments: args, Tag: req.Tag}
	if err != nil {
		resp.Result = err.Error()
	}
	if resp.Arguments == nil {
		resp.Arguments = json.RawMessage("{}")
	}
	h.log.Debug("rpc", "method", req.Method, "result", resp.Result, "took", time.Since(start), "bytes", len(resp.Arguments))
	// Put together by hand: json.Marshal would check and compact the
	// arguments, already valid JSON and, for a thousand torrents, large.
	out := make([]byte, 0, len(resp.Arguments)+len(resp.Result)+len(req.Tag)+40)
	out = append(out, `{"arguments":`...)
	out = append(out, resp.Arguments...)
	out = append(out, `,"result":`...)
	out = append(out, encodeRaw(resp.Result)...)
	if len(req.Tag) > 0 {
		out = append(out, `,"tag":`...)
		out = append(out, req.Tag...)
	}
	out = append(out, '}')
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write(out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "500: encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	w.Write(b)
}

// hostAllowed checks the Host header against the allow-list, which always
// holds the address the request arrived at.
func (h *Handler) hostAllowed(r *http.Request) bool {
	host := r.Host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "" {
		return false
	}
	if h.hosts[host] {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok && ta.IP.String() == host {
			return true
		}
	}
	return false
}

// errUnknownMethod is Transmission's own answer to an unknown method.
var errUnknownMethod = errors.New("method name not recognized")

// unsupported are Transmission methods shoal knows and does not do.
var unsupported = map[string]bool{
	"torrent-set-location": true, "torrent-rename-path": true,
	"queue-move-top": true, "queue-move-up": true, "queue-move-down": true, "queue-move-bottom": true,
	"blocklist-update": true, "session-close": true, "group-get": true, "group-set": true,
}

// call runs one method and returns its encoded arguments.
func (h *Handler) call(req request) (json.RawMessage, error) {
	method := strings.ReplaceAll(req.Method, "_", "-")
	c := &call{h: h, args: map[string]json.RawMessage{}, snake: strings.Contains(req.Method, "_")}
	for k, v := range req.Arguments {
		if strings.Contains(k, "_") {
			c.snake = true
		}
		c.args[norm(k)] = v
	}
	var out any
	var err error
	switch method {
	case "session-get":
		out, err = c.sessionGet()
	case "session-set":
		err = c.sessionSet()
	case "session-stats":
		out, err = c.sessionStats()
	case "torrent-get":
		return c.torrentGet()
	case "torrent-add":
		out, err = c.torrentAdd()
	case "torrent-start", "torrent-start-now":
		err = c.each(h.ctrl.Start)
	case "torrent-stop":
		err = c.each(h.ctrl.Stop)
	case "torrent-verify":
		err = c.each(h.ctrl.Verify)
	case "torrent-reannounce":
		err = c.each(h.ctrl.Reannounce)
	case "torrent-remove":
		var del bool
		if err = c.arg("deletelocaldata", &del); err == nil {
			err = c.each(func(ids []daemon.ID) error { return h.ctrl.Remove(ids, del) })
		}
	case "torrent-set":
		err = c.torrentSet()
	case "free-space":
		out, err = c.freeSpace()
	case "port-test":
		out, err = c.portTest()
	default:
		if unsupported[method] {
			return nil, fmt.Errorf("%s is not supported by shoal", req.Method)
		}
		return nil, errUnknownMethod
	}
	if err != nil || out == nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the answer: %w", req.Method, err)
	}
	return b, nil
}

// norm is the form names are matched in: downloadDir, download-dir and
// download_dir are one name.
func norm(k string) string {
	if strings.IndexAny(k, "-_ABCDEFGHIJKLMNOPQRSTUVWXYZ") < 0 {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		ch := k[i]
		switch {
		case ch == '-' || ch == '_':
		case 'A' <= ch && ch <= 'Z':
			b.WriteByte(ch + 'a' - 'A')
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// call is one request being answered.
type call struct {
	h     *Handler
	args  map[string]json.RawMessage // by norm(name)
	snake bool                       // the request used Transmission 4's snake_case names
}

// key names a reply key in the request's style: legacy is the name
// Transmission 3 uses (camelCase or kebab-case).
func (c *call) key(legacy string) string {
	if !c.snake {
		return legacy
	}
	var b strings.Builder
	for i := 0; i < len(legacy); i++ {
		ch := legacy[i]
		switch {
		case ch == '-':
			b.WriteByte('_')
		case 'A' <= ch && ch <= 'Z':
			b.WriteByte('_')
			b.WriteByte(ch + 'a' - 'A')
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// has reports whether the request gave the argument.
func (c *call) has(name string) bool {
	_, ok := c.args[name]
	return ok
}

// arg decodes the argument name (in norm form) into v, leaving v as it is
// when the argument is absent.
func (c *call) arg(name string, v any) error {
	raw, ok := c.args[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		// Transmission's tools send booleans as 0/1 at times.
		if bp, ok := v.(*bool); ok {
			var n float64
			if json.Unmarshal(raw, &n) == nil {
				*bp = n != 0
				return nil
			}
		}
		return fmt.Errorf("argument %q: %s is not %s", name, clip(raw), kind(v))
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case *bool:
		return "a boolean"
	case *string:
		return "a string"
	case *int, *int64, *float64:
		return "a number"
	case *[]int:
		return "a list of numbers"
	case *[]string:
		return "a list of strings"
	}
	return "of the right type"
}

// clip shortens a raw argument for an error message.
func clip(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// each runs op on the torrents the ids argument names, and marks them
// edited for "recently-active".
func (c *call) each(op func([]daemon.ID) error) error {
	ids, err := c.ids()
	if err != nil {
		return err
	}
	if ids == nil {
		ids = allIDs(c.h.ctrl.Torrents(nil, 0))
	}
	if len(ids) == 0 {
		return nil
	}
	err = op(ids)
	c.h.touch(ids)
	return err
}

func allIDs(sts []daemon.Status) []daemon.ID {
	ids := make([]daemon.ID, len(sts))
	for i := range sts {
		ids[i] = sts[i].ID
	}
	return ids
}

func (h *Handler) touch(ids []daemon.ID) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		h.edited[id] = now
	}
	// Old marks only cost memory; drop them now and then.
	if len(h.edited) > 4096 {
		for id, t := range h.edited {
			if now.Sub(t) > recentWindow {
				delete(h.edited, id)
			}
		}
	}
}

func (h *Handler) editedSince(id daemon.ID, since time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.edited[id].After(since)
}

// recentWindow is how far back "recently-active" looks, as in Transmission.
const recentWindow = 60 * time.Second

// ids reads the ids argument: nil means every torrent (absent), an
// empty non-nil list means none. Hashes name the torrent whose Hash, V1Hash
// or V2Hash they are; names that match nothing are left out, as
// Transmission does.
func (c *call) ids() ([]daemon.ID, error) {
	raw, ok := c.args["ids"]
	if !ok {
		return nil, nil
	}
	var one any
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, fmt.Errorf("argument \"ids\": %w", err)
	}
	var list []any
	switch v := one.(type) {
	case nil:
		return nil, nil
	case string:
		if v == "recently-active" || v == "recently_active" {
			return nil, errRecent
		}
		list = []any{v}
	case float64:
		list = []any{v}
	case []any:
		list = v
	default:
		return nil, fmt.Errorf("argument \"ids\": %s is not an ID, a hash or a list of them", clip(raw))
	}
	out := make([]daemon.ID, 0, len(list))
	var byHash map[string]daemon.ID
	for _, e := range list {
		switch v := e.(type) {
		case float64:
			if v != float64(int(v)) {
				return nil, fmt.Errorf("argument \"ids\": %v is not a torrent ID", v)
			}
			out = append(out, daemon.ID(v))
		case string:
			if byHash == nil {
				byHash = map[string]daemon.ID{}
				for _, st := range c.h.ctrl.Torrents(nil, 0) {
					for _, hs := range []string{st.Hash, st.V1Hash, st.V2Hash} {
						if hs != "" {
							byHash[strings.ToLower(hs)] = st.ID
						}
					}
				}
			}
			if id, ok := byHash[strings.ToLower(v)]; ok {
				out = append(out, id)
			}
		default:
			return nil, fmt.Errorf("argument \"ids\": %v is not an ID or a hash", e)
		}
	}
	return out, nil
}

// errRecent is what ids returns for "recently-active", which only
// torrent-get answers.
var errRecent = errors.New(`ids "recently-active" is for torrent-get only`)

// encodeRaw is json.Marshal for values that cannot fail to encode.
func encodeRaw(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// appendValue appends v as JSON to b: the numbers, booleans and strings
// most torrent-get fields are go without reflection, as a web UI asks for
// a thousand torrents' fields every few seconds.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case daemon.ID:
		return strconv.AppendInt(b, int64(x), 10)
	case daemon.State:
		return strconv.AppendInt(b, int64(x), 10)
	case bool:
		return strconv.AppendBool(b, x)
	case float64:
		// As encoding/json writes them: no exponent in the usual range,
		// which every JSON reader of the tools parses alike.
		if abs := math.Abs(x); x == 0 || abs >= 1e-6 && abs < 1e21 {
			return strconv.AppendFloat(b, x, 'f', -1, 64)
		}
	case string:
		if isPlain(x) {
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"')
		}
	}
	return append(b, encodeRaw(v)...)
}

// isPlain reports whether s is JSON as it is between quotes.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}
