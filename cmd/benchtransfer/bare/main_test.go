package main

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The bare pipeline over real loopback: what seed sends with sendfile,
// get receives and writes at the right offsets, a short last piece too.
func TestSeedGetLoopback(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type sent struct {
		n   int64
		err error
	}
	done := make(chan sent, 1)
	go func() { n, err := seed(ln, f); done <- sent{n, err} }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := get(conn, out, int64(len(data)), 1<<20); err != nil {
		t.Fatal(err)
	}
	if s := <-done; s.err != nil || s.n != int64(len(data)) {
		t.Fatalf("seed sent %d bytes, %v; want %d", s.n, s.err, len(data))
	}
	got, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("copy differs from the source (%d bytes, want %d)", len(got), len(data))
	}
}

// A seeder that sends more than the downloader was told is an error, not
// a silently truncated benchmark.
func TestGetRefusesExtraBytes(t *testing.T) {
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := get(bytes.NewReader(make([]byte, 100)), out, 99, 64); err == nil {
		t.Fatal("get accepted 100 bytes for a size of 99")
	}
}
