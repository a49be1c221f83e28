// Package webui is shoal daemon's web UI: a few hand-written HTML, CSS and
// JavaScript files embedded in the binary, with no framework, no build
// step and nothing fetched from elsewhere, so the UI works on a machine
// without internet and what is served is what is in this folder.
//
// The UI speaks only the Transmission RPC, at /transmission/rpc on the same
// origin, like transmission-daemon's own web UI: whatever serves that RPC
// (shoal's daemon/rpc, or transmission-daemon itself, which the test uses)
// can be driven by it. It does the X-Transmission-Session-Id handshake
// itself and leaves Basic auth to the browser.
//
// What it asks of the RPC, in Transmission 3.00's names (camelCase, which
// 4.x still accepts): torrent-get with "ids" a list or "recently-active"
// (answered with "torrents" and "removed"), the fields id, name, status,
// percentDone, rateDownload, rateUpload, peersConnected, eta, sizeWhenDone,
// error, errorString and metadataPercentComplete for the list, and
// hashString, downloadDir, addedDate, downloadedEver, uploadedEver,
// uploadRatio, files, fileStats, peers and trackerStats for one torrent;
// session-stats; torrent-add with filename (a magnet: a bare hash is
// turned into one) or metainfo, and paused; torrent-start, torrent-stop,
// torrent-remove with delete-local-data; torrent-set with files-wanted,
// files-unwanted and priority-low/normal/high.
//
// The expected mount, beside the RPC handler:
//
//	mux.Handle("/transmission/rpc", rpcHandler)
//	mux.Handle("/", webui.Handler())
//
// Handler also answers /transmission/web and /transmission/web/… (where
// Transmission's users bookmarked its UI) with a redirect to /. If the RPC
// requires Basic auth, put the same check in front of Handler, so the
// browser asks for the password once, when the page loads, and then sends
// it with the RPC calls too.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. Scripts, styles and
// images come from this origin only, never inline, so a torrent name that
// slipped through as markup could still not run; the page may talk only to
// its own origin (the RPC), may not be framed (clickjacking on the remove
// button) and submits no form anywhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// contentTypes are the types of the files in static/, set explicitly
// rather than sniffed or taken from the system's mime tables: a module
// script served as anything but JavaScript is refused by the browser.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// assets maps each URL path to its file, built once from the embedded
// files: they cannot change while the binary runs.
var assets = mustLoad()

func mustLoad() map[string]asset {
	m, err := load(static)
	if err != nil {
		// The files are compiled in; failing here is a broken build.
		panic(err)
	}
	return m
}

func load(fsys fs.FS) (map[string]asset, error) {
	m := map[string]asset{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("webui: %s: no content type for %q", p, path.Ext(p))
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("webui: %w", err)
		}
		sum := sha256.Sum256(body)
		urlPath := strings.TrimPrefix(p, "static")
		if urlPath == "/index.html" {
			urlPath = "/"
		}
		m[urlPath] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return m, err
}

// Handler serves the web UI. See the package comment for where to mount it.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "/transmission/web" || strings.HasPrefix(r.URL.Path, "/transmission/web/") {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := assets[r.URL.Path]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// The names carry no version, so a long max-age would let a browser
	// mix an old app.js with a new index.html after an upgrade. "no-cache"
	// keeps the copy but asks each time; the ETag makes the answer a body-
	// less 304 while the binary is the same.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
