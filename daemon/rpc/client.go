package rpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultURL is where a daemon serves the RPC unless told otherwise.
const DefaultURL = "http://127.0.0.1:9091" + Path

// Client calls a Transmission RPC server: a shoal daemon, or Transmission
// itself. It does the session-id handshake on its own and is safe for
// concurrent use.
type Client struct {
	// URL is the RPC's address, e.g. DefaultURL.
	URL string
	// User and Password, when User is set, are sent as HTTP Basic auth.
	User, Password string
	// HTTP is the client requests go through; nil means
	// http.DefaultClient.
	HTTP *http.Client

	mu        sync.Mutex
	sessionID string
	tag       atomic.Int64
}

// ErrUnreachable is wrapped by the error of a call that reached no server.
var ErrUnreachable = errors.New("daemon unreachable")

// ResultError is the error result of a call the server did answer.
type ResultError struct {
	Method, Result string
}

func (e *ResultError) Error() string { return e.Method + ": " + e.Result }

// Call calls method with args (nil for none) and decodes the answer's
// arguments into reply, when it is not nil.
func (c *Client) Call(ctx context.Context, method string, args, reply any) error {
	if args == nil {
		args = struct{}{}
	}
	tag := c.tag.Add(1)
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args, "tag": tag})
	if err != nil {
		return fmt.Errorf("%s: encoding the arguments: %w", method, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	// Two tries: the first may only fetch the session id (409).
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("rpc URL %q: %w", c.URL, err)
		}
		req.Header.Set("Content-Type", "application/json")
		c.mu.Lock()
		if c.sessionID != "" {
			req.Header.Set(SessionIDHeader, c.sessionID)
		}
		c.mu.Unlock()
		if c.User != "" {
			req.SetBasicAuth(c.User, c.Password)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", method, ctx.Err())
			}
			// The url.Error around it would repeat the URL.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.URL, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: reading the answer of %s: %w", method, c.URL, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusConflict:
			id := resp.Header.Get(SessionIDHeader)
			if id == "" || try > 0 {
				return fmt.Errorf("%s: %s keeps refusing the session id (HTTP 409)", method, c.URL)
			}
			c.mu.Lock()
			c.sessionID = id
			c.mu.Unlock()
			continue
		case http.StatusUnauthorized:
			if c.User == "" {
				return fmt.Errorf("%s: the daemon at %s wants a user name and password", method, c.URL)
			}
			return fmt.Errorf("%s: the daemon at %s refused user %q and its password", method, c.URL, c.User)
		default:
			line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
			if len(line) > 200 {
				line = line[:200]
			}
			return fmt.Errorf("%s: %s answered HTTP %d: %s", method, c.URL, resp.StatusCode, line)
		}
		var r struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
			Tag       *int64          `json:"tag"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %s answered what is not a Transmission RPC answer: %w", method, c.URL, err)
		}
		if r.Tag != nil && *r.Tag != tag {
			return fmt.Errorf("%s: answer tagged %d, sent %d", method, *r.Tag, tag)
		}
		if r.Result != "success" {
			return &ResultError{Method: method, Result: r.Result}
		}
		if reply != nil && len(r.Arguments) > 0 {
			if err := json.Unmarshal(r.Arguments, reply); err != nil {
				return fmt.Errorf("%s: decoding the answer: %w", method, err)
			}
		}
		return nil
	}
}

// Torrent is a torrent as torrent-get gives it, with the fields the
// Client's helpers ask for (TorrentFields, FileFields).
type Torrent struct {
	ID             int     `json:"id"`
	Name           string  `json:"name"`
	HashString     string  `json:"hashString"`
	Status         int     `json:"status"`
	Error          int     `json:"error"`
	ErrorString    string  `json:"errorString"`
	PercentDone    float64 `json:"percentDone"`
	TotalSize      int64   `json:"totalSize"`
	SizeWhenDone   int64   `json:"sizeWhenDone"`
	LeftUntilDone  int64   `json:"leftUntilDone"`
	HaveValid      int64   `json:"haveValid"`
	DownloadedEver int64   `json:"downloadedEver"`
	UploadedEver   int64   `json:"uploadedEver"`
	UploadRatio    float64 `json:"uploadRatio"`
	RateDownload   int64   `json:"rateDownload"`
	RateUpload     int64   `json:"rateUpload"`
	ETA            int64   `json:"eta"`
	PeersConnected int     `json:"peersConnected"`
	DownloadDir    string  `json:"downloadDir"`
	MagnetLink     string  `json:"magnetLink"`
	AddedDate      int64   `json:"addedDate"`
	DoneDate       int64   `json:"doneDate"`
	IsPrivate      bool    `json:"isPrivate"`
	Comment        string  `json:"comment"`
	PieceCount     int     `json:"pieceCount"`
	PieceSize      int64   `json:"pieceSize"`

	Files     []File     `json:"files,omitempty"`
	FileStats []FileStat `json:"fileStats,omitempty"`
}

// File is an entry of torrent-get's files.
type File struct {
	Name           string `json:"name"`
	Length         int64  `json:"length"`
	BytesCompleted int64  `json:"bytesCompleted"`
}

// FileStat is an entry of torrent-get's fileStats.
type FileStat struct {
	BytesCompleted int64 `json:"bytesCompleted"`
	Wanted         bool  `json:"wanted"`
	Priority       int   `json:"priority"`
}

// TorrentFields are the torrent-get fields of Torrent but its files.
var TorrentFields = []string{
	"id", "name", "hashString", "status", "error", "errorString", "percentDone",
	"totalSize", "sizeWhenDone", "leftUntilDone", "haveValid", "downloadedEver",
	"uploadedEver", "uploadRatio", "rateDownload", "rateUpload", "eta",
	"peersConnected", "downloadDir", "magnetLink", "addedDate", "doneDate",
	"isPrivate", "comment", "pieceCount", "pieceSize",
}

// FileFields are the torrent-get fields of Torrent's files.
var FileFields = []string{"id", "name", "files", "fileStats"}

// StatusName is what a torrent's status code means, as transmission-remote
// says it.
func StatusName(status int) string {
	names := []string{"Stopped", "Queued to verify", "Verifying", "Queued", "Downloading", "Queued to seed", "Seeding"}
	if status >= 0 && status < len(names) {
		return names[status]
	}
	return fmt.Sprintf("status %d", status)
}

// Torrents returns the torrents ids name (numbers or hash strings; all of
// them when ids is nil) with the given fields, TorrentFields if none.
func (c *Client) Torrents(ctx context.Context, ids []any, fields ...string) ([]Torrent, error) {
	if len(fields) == 0 {
		fields = TorrentFields
	}
	args := map[string]any{"fields": fields}
	if ids != nil {
		args["ids"] = ids
	}
	var reply struct {
		Torrents []Torrent `json:"torrents"`
	}
	if err := c.Call(ctx, "torrent-get", args, &reply); err != nil {
		return nil, err
	}
	return reply.Torrents, nil
}

// AddArgs are torrent-add's arguments: exactly one of Filename (a magnet
// link, an info-hash, or a path on the daemon's machine) and Metainfo (a
// .torrent's bytes).
type AddArgs struct {
	Filename      string
	Metainfo      []byte
	DownloadDir   string
	Paused        bool
	FilesUnwanted []int
}

// Added is the torrent torrent-add added, or found already there when
// Duplicate is set.
type Added struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	HashString string `json:"hashString"`
	Duplicate  bool   `json:"-"`
}

// Add adds a torrent.
func (c *Client) Add(ctx context.Context, a AddArgs) (Added, error) {
	args := map[string]any{"paused": a.Paused}
	if a.Metainfo != nil {
		args["metainfo"] = base64.StdEncoding.EncodeToString(a.Metainfo)
	} else {
		args["filename"] = a.Filename
	}
	if a.DownloadDir != "" {
		args["download-dir"] = a.DownloadDir
	}
	if len(a.FilesUnwanted) > 0 {
		args["files-unwanted"] = a.FilesUnwanted
	}
	var reply struct {
		Added *Added `json:"torrent-added"`
		Dup   *Added `json:"torrent-duplicate"`
	}
	if err := c.Call(ctx, "torrent-add", args, &reply); err != nil {
		return Added{}, err
	}
	switch {
	case reply.Added != nil:
		return *reply.Added, nil
	case reply.Dup != nil:
		reply.Dup.Duplicate = true
		return *reply.Dup, nil
	}
	return Added{}, errors.New("torrent-add: the answer names no torrent")
}

func (c *Client) idsCall(ctx context.Context, method string, ids []any, extra map[string]any) error {
	args := map[string]any{"ids": ids}
	for k, v := range extra {
		args[k] = v
	}
	return c.Call(ctx, method, args, nil)
}

// Start starts torrents.
func (c *Client) Start(ctx context.Context, ids []any) error {
	return c.idsCall(ctx, "torrent-start", ids, nil)
}

// Stop stops (pauses) torrents.
func (c *Client) Stop(ctx context.Context, ids []any) error {
	return c.idsCall(ctx, "torrent-stop", ids, nil)
}

// Verify checks torrents' data again.
func (c *Client) Verify(ctx context.Context, ids []any) error {
	return c.idsCall(ctx, "torrent-verify", ids, nil)
}

// Remove removes torrents, and their data too with deleteData.
func (c *Client) Remove(ctx context.Context, ids []any, deleteData bool) error {
	return c.idsCall(ctx, "torrent-remove", ids, map[string]any{"delete-local-data": deleteData})
}

// SetFiles marks files of torrents (by index) wanted or not.
func (c *Client) SetFiles(ctx context.Context, ids []any, wanted, unwanted []int) error {
	extra := map[string]any{}
	if len(wanted) > 0 {
		extra["files-wanted"] = wanted
	}
	if len(unwanted) > 0 {
		extra["files-unwanted"] = unwanted
	}
	return c.idsCall(ctx, "torrent-set", ids, extra)
}

// Session is part of what session-get gives.
type Session struct {
	Version     string `json:"version"`
	RPCVersion  int    `json:"rpc-version"`
	DownloadDir string `json:"download-dir"`
	PeerPort    int    `json:"peer-port"`
}

// Session returns the server's session settings.
func (c *Client) Session(ctx context.Context) (Session, error) {
	var s Session
	err := c.Call(ctx, "session-get", nil, &s)
	return s, err
}
