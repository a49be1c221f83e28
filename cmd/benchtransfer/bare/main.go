// Command bare is the benchmark's floor: the data path of a download with
// no protocol around it, so that cmd/benchtransfer can show, in the same
// round and on the same file, how close each client comes to what the
// machine allows.
//
//	bare seed FILE                 listen on loopback, sendfile FILE to the first peer
//	bare get ADDR OUT SIZE [PLEN]  receive SIZE bytes, SHA-256 each PLEN piece, pwrite it to OUT
//
// The seeder prints "listening: ADDR" and then "seeding", as shoal and
// lt_peer.py print what benchtransfer waits for, and stays until its stdin
// closes or it is signalled. The downloader prints "done: BYTES SECONDS".
// Nothing is checked against a hash: the cost of hashing is what is wanted.
package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "seed":
		err = seedMain(os.Args[2])
	case (len(os.Args) == 5 || len(os.Args) == 6) && os.Args[1] == "get":
		err = getMain(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: bare seed FILE | bare get ADDR OUT SIZE [PIECE-LENGTH]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

func seedMain(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening: %s\nseeding\n", ln.Addr())
	if _, err := seed(ln, f); err != nil {
		return err
	}
	// Stay, as the other seeders do, until benchtransfer lets go of us.
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// seed accepts one connection on ln and sends it all of f: the kernel's
// sendfile, which *net.TCPConn's ReadFrom uses for an *os.File.
func seed(ln net.Listener, f *os.File) (int64, error) {
	conn, err := ln.Accept()
	if err != nil {
		return 0, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	n, err := io.Copy(conn, f)
	if err != nil {
		return n, fmt.Errorf("send %s: %w", f.Name(), err)
	}
	return n, nil
}

func getMain(args []string) error {
	size, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("bad SIZE %q", args[2])
	}
	plen := int64(1 << 20)
	if len(args) == 4 {
		if plen, err = strconv.ParseInt(args[3], 10, 64); err != nil || plen <= 0 || plen > 64<<20 {
			return fmt.Errorf("bad PIECE-LENGTH %q", args[3])
		}
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := os.Create(args[1])
	if err != nil {
		return err
	}
	defer out.Close()
	t0 := time.Now()
	if err := get(conn, out, size, int(plen)); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	fmt.Printf("done: %d %.3f\n", size, time.Since(t0).Seconds())
	return nil
}

// get reads size bytes from r a piece at a time into one buffer, hashes
// each piece and writes it at its offset: recv → SHA-256 → pwrite, the
// least a downloader does.
func get(r io.Reader, out *os.File, size int64, plen int) error {
	buf := make([]byte, plen)
	var sink [sha256.Size]byte
	for off := int64(0); off < size; {
		b := buf[:min(int64(plen), size-off)]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("receive at %d: %w", off, err)
		}
		sum := sha256.Sum256(b)
		sink[0] ^= sum[0] // keep the hash from being optimised away
		if _, err := out.WriteAt(b, off); err != nil {
			return fmt.Errorf("write at %d: %w", off, err)
		}
		off += int64(len(b))
	}
	if n, _ := r.Read(buf[:1]); n > 0 {
		return errors.New("the seeder sent more than SIZE bytes")
	}
	_ = sink
	return nil
}
