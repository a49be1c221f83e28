package rpc

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkTorrentGetWebUI is the web UI's periodic refresh (its Stats
// fields) over 1,000 torrents, the daemon's target size.
func BenchmarkTorrentGetWebUI(b *testing.B) {
	ctrl := newTestCtrl(b.TempDir())
	for i := range 1000 {
		ctrl.addSample(fmt.Sprintf("t%d", i))
	}
	h := NewHandler(ctrl, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := `{"method":"torrent-get","arguments":{"fields":["id","error","errorString","eta","isFinished","isStalled","leftUntilDone","metadataPercentComplete","peersConnected","peersGettingFromUs","peersSendingToUs","percentDone","queuePosition","rateDownload","rateUpload","recheckProgress","seedRatioMode","seedRatioLimit","sizeWhenDone","status","trackers","downloadDir","uploadedEver","uploadRatio","webseedsSendingToUs"]}}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
		req.Host = "localhost"
		req.Header.Set(SessionIDHeader, h.SessionID())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
