package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// Redirects are part of what is tested: do not follow them.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return res, string(body)
}

// Each file is served with its own type (a module script served as
// anything else is refused by the browser), the CSP and the cache policy,
// and a second request with the ETag costs no body.
func TestHandlerServesAssets(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, ctype := range map[string]string{
		"/":            "text/html; charset=utf-8",
		"/app.js":      "text/javascript; charset=utf-8",
		"/rpc.js":      "text/javascript; charset=utf-8",
		"/format.js":   "text/javascript; charset=utf-8",
		"/style.css":   "text/css; charset=utf-8",
		"/favicon.svg": "image/svg+xml",
	} {
		res, body := get(t, srv, "GET", path, nil)
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %s", path, res.Status)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, got)
		}
		etag := res.Header.Get("ETag")
		if etag == "" || body == "" {
			t.Errorf("GET %s: ETag %q, %d bytes", path, etag, len(body))
			continue
		}
		again, body := get(t, srv, "GET", path, map[string]string{"If-None-Match": etag})
		if again.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with its ETag: %s, %d bytes; want 304 and no body", path, again.Status, len(body))
		}
		head, body := get(t, srv, "HEAD", path, nil)
		if head.StatusCode != 200 || body != "" || head.Header.Get("Content-Type") != ctype {
			t.Errorf("HEAD %s: %s, %q, %d bytes", path, head.Status, head.Header.Get("Content-Type"), len(body))
		}
	}
}

func TestHandlerRefusesTheRest(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, path := range []string{"/index.html", "/static/app.js", "/nope.js", "/transmission/rpc", "/../webui.go"} {
		if res, _ := get(t, srv, "GET", path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, res.Status)
		}
	}
	res, _ := get(t, srv, "POST", "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s, Allow %q; want 405 and GET, HEAD", res.Status, res.Header.Get("Allow"))
	}
	// Where Transmission's users have bookmarked its UI.
	for _, path := range []string{"/transmission/web", "/transmission/web/", "/transmission/web/index.html"} {
		res, _ := get(t, srv, "GET", path, nil)
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/" {
			t.Errorf("GET %s: %s to %q, want 302 to /", path, res.Status, res.Header.Get("Location"))
		}
	}
}

// The CSP allows no inline script or style, so the page must have none:
// every script is an external file, and no element has a style or on…
// attribute. (The browser test would see the CSP refuse them; this says
// which line.)
func TestPageHasNothingInline(t *testing.T) {
	for name, a := range assets {
		if !strings.HasPrefix(a.ctype, "text/html") {
			continue
		}
		page := string(a.body)
		for _, m := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(page, -1) {
			if !strings.Contains(m, ` src="`) {
				t.Errorf("%s: inline script %s", name, m)
			}
		}
		if regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]`).MatchString(page) {
			t.Errorf("%s: a script element with a body", name)
		}
		for _, re := range []string{`(?i)<style\b`, `(?i)\sstyle\s*=`, `(?i)\son[a-z]+\s*=`, `(?i)javascript:`} {
			if m := regexp.MustCompile(re).FindString(page); m != "" {
				t.Errorf("%s: %q is inline and the CSP refuses it", name, m)
			}
		}
	}
	// Data from the server must never be parsed as markup.
	for name, a := range assets {
		if a.ctype != contentTypes[".js"] {
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(a.body), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}
