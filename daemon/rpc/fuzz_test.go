package rpc

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest feeds any body to the handler: it must never panic, and
// must always answer a JSON object with a result (or refuse the body with
// 400). The seed corpus in testdata/fuzz/FuzzRequest holds calls the real
// tools make.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"method":"torrent-get","arguments":{"fields":["id","name","files","peers","trackerStats","pieces"],"ids":[1,"recently-active"]},"tag":4}`,
		`{"method":"torrent-set","arguments":{"ids":1,"files-unwanted":[0,-1,99],"trackerRemove":[0,"x"],"downloadLimit":-1}}`,
		`{"method":"torrent-add","arguments":{"metainfo":"ZDQ6aW5mb2Vl","paused":1}}`,
		`{"method":"session_set","arguments":{"speed_limit_down":1e30}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctrl := newTestCtrl(t.TempDir())
		ctrl.addSample("alpha")
		ctrl.addSample("beta")
		h := NewHandler(ctrl, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(string(body)))
		req.Host = "localhost"
		req.Header.Set(SessionIDHeader, h.SessionID())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp struct {
			Result *string `json:"result"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Result == nil {
			t.Fatalf("answer %d to %q is not a result: %q", rec.Code, body, rec.Body.String())
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d to %q", rec.Code, body)
		}
	})
}
