package swarm

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// blockSender sends exactly the range asked, from its offset, and a file
// that ends before the range is errShortFile, not a silent short block.
func TestBlockSenderRangeAndShortFile(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sf := newBlockSender(&prefixConn{Conn: conn})
	if sf == nil {
		t.Fatal("no sender for a plaintext TCP connection")
	}
	if err := sf.setCork(true); err != nil {
		t.Fatal(err)
	}
	if err := sf.send(f, 1000, 100000); err != nil {
		t.Fatal(err)
	}
	if err := sf.send(f, 7, 9); err != nil {
		t.Fatal(err)
	}
	// Past the file's end: 100 bytes remain of the 1000 asked.
	if err := sf.send(f, int64(len(data))-100, 1000); !errors.Is(err, errShortFile) {
		t.Fatalf("send past the end: %v, want errShortFile", err)
	}
	if err := sf.setCork(false); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	want := append(append(append([]byte(nil), data[1000:101000]...), data[7:16]...), data[len(data)-100:]...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, want %d: not the ranges asked", len(b), len(want))
	}
	// The file offset is not used: sends from several peers share a file.
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Fatalf("file offset moved to %d", off)
	}
}
