package tracker

import (
	"bytes"
	"testing"
)

// FuzzLeanParseHead feeds the lean HTTP/1.1 front end's request-head
// parser arbitrary bytes: it must never panic, and what it accepts must
// have a method made of token characters and a target without spaces,
// all within the head it was given.
func FuzzLeanParseHead(f *testing.F) {
	f.Add([]byte("GET /announce?info_hash=a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /scrape HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
	f.Add([]byte("POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"))
	f.Add([]byte("GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Real-IP: 10.0.0.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("GET  HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("GET /a HTTP/1.1\nHost: x\n\n"))
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\n folded: y\r\n\r\n"))
	s, err := NewServer(Config{})
	if err != nil {
		f.Fatal(err)
	}
	ls := newLeanServer(s)
	f.Fuzz(func(t *testing.T, head []byte) {
		if end := headEnd(head, 0); end < 0 || end > len(head) {
			return // not a complete head: the server reads on, or refuses
		}
		var r leanReq
		if ls.parseHead(head, &r) != nil {
			return
		}
		if len(r.method) == 0 || len(r.target) == 0 || bytes.IndexByte(r.target, ' ') >= 0 {
			t.Fatalf("accepted %q: method %q target %q", head, r.method, r.target)
		}
		for _, c := range r.method {
			if !isTokenChar(c) {
				t.Fatalf("accepted method %q with %q", r.method, c)
			}
		}
	})
}
