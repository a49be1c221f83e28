package tracker

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAnnounceHandler measures the announce hot path without the
// network: parse, store, encode.
func BenchmarkAnnounceHandler(b *testing.B) {
	srv, err := NewServer(Config{RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, 256)
	for i := range reqs {
		r := httptest.NewRequest("GET", announceURL("", AnnounceRequest{InfoHash: ih(byte(i % 8)), PeerID: pid(i), Port: uint16(1000 + i), Left: uint64(i % 2)}, ""), nil)
		r.RemoteAddr = "192.0.2.1:1234"
		reqs[i] = r
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		srv.ServeHTTP(w, reqs[i%len(reqs)])
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
