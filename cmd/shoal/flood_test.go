package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// floodConns is how many connections a flood keeps open, within what the
// test process may open (see floodSize).
const floodConns = 1000

// floodSize returns how many flood connections the test process can hold
// open, raising its soft descriptor limit if it has to, up to want.
func floodSize(t *testing.T, want int) int {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const spare = 200 // the test binary's own files, pipes and the like
	if lim.Cur < uint64(want+spare) && lim.Max > lim.Cur {
		lim.Cur = min(lim.Max, uint64(want+spare))
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Logf("raising the descriptor limit: %v", err)
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
	}
	n := min(want, int(lim.Cur)-spare)
	if n < 300 {
		t.Fatalf("descriptor limit %d leaves room for only %d flood connections", lim.Cur, n)
	}
	return n
}

// flood keeps n connections to addr open, each sending hello (a
// handshake, part of one, or nothing) and then nothing at all. Every
// fifth comes from 127.0.0.1, the rest from 16 other loopback addresses,
// so both the exempt local host and the per-host limits are exercised. One the other
// side closes is opened again after a pause: the flood goes on until the
// test ends.
type flood struct {
	opened   atomic.Int64 // connections made so far
	open     atomic.Int64 // open now
	admitted atomic.Int64 // open now, and past the handshake into a peer slot
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startFlood(t *testing.T, addr string, n int, hello []byte) *flood {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &flood{cancel: cancel}
	t.Cleanup(f.stop)
	for i := range n {
		src := net.IPv4(127, 0, 0, byte(2+i%20))
		if i%5 == 0 {
			src = net.IPv4(127, 0, 0, 1)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for ctx.Err() == nil {
				f.once(ctx, &d, addr, hello)
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
		}()
	}
	return f
}

// once makes one flood connection and holds it until the other side
// closes it or the flood stops.
func (f *flood) once(ctx context.Context, d *net.Dialer, addr string, hello []byte) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	f.opened.Add(1)
	f.open.Add(1)
	defer f.open.Add(-1)
	if len(hello) == wire.HandshakeLen {
		// Each its own peer id, or all but one would be turned away as
		// the same peer connecting twice.
		hello = slices.Clone(hello)
		rand.Read(hello[wire.HandshakeHeaderLen+8:])
	}
	if len(hello) > 0 {
		if _, err := conn.Write(hello); err != nil {
			return
		}
	}
	if len(hello) < wire.HandshakeLen {
		io.Copy(io.Discard, conn)
		return
	}
	// The seeder answers the handshake, and sends its opening messages only
	// once the connection holds a peer slot.
	var reply [wire.HandshakeLen + 1]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return
	}
	f.admitted.Add(1)
	defer f.admitted.Add(-1)
	io.Copy(io.Discard, conn)
}

func (f *flood) stop() {
	f.cancel()
	f.wg.Wait()
}

// seedForFlood starts a seeder of a small torrent and returns it, its
// address and the handshake a peer of its torrent sends.
func seedForFlood(t *testing.T, dir string) (*proc, string, []byte) {
	t.Helper()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 2 << 20, "b.bin": 1000})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	ih, err := hex.DecodeString(seed.field(t, "info-hash"))
	if err != nil || len(ih) != 32 {
		t.Fatalf("info-hash %x: %v", ih, err)
	}
	h := wire.Handshake{InfoHash: wire.TruncateV2([32]byte(ih))}
	copy(h.PeerID[:], "-FL0001-flood-flood!")
	h.Reserved.SetFast(true)
	h.Reserved.SetExtended(true)
	return seed, addr, wire.AppendHandshake(nil, h)
}

var firstPieceRE = regexp.MustCompile(`(?m)^first piece: (\S+)$`)

// getDuringFlood runs a real download from the seeder and returns how long
// it took to its first piece and to the end, and the least value gauge
// took meanwhile: how much of the flood was there all along.
func getDuringFlood(t *testing.T, dir, addr string, gauge func() int64) (first, total time.Duration, least int64) {
	t.Helper()
	least = gauge()
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				least = min(least, gauge())
			}
		}
	}()
	began := time.Now()
	// Debug logs say, should it fail, whether it was refused or cut off.
	get := start(t, dir, "--log-level", "debug", "get", "share.torrent", "-o", "out", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "15s")
	code := get.wait(t, 25*time.Second)
	total = time.Since(began)
	close(stop)
	<-sampled
	if code != 0 {
		t.Fatalf("get during the flood: exit %d after %v: %s", code, total, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "out", "share"))
	m := firstPieceRE.FindStringSubmatch(get.errText())
	if m == nil {
		t.Fatalf("no first piece line:\n%s", get.errText())
	}
	first, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return first, total, least
}

// A flood of connections that complete the handshake for the seeder's
// torrent and then say nothing fills every peer slot, but a real
// downloader still gets in (a silent peer gives up its slot) and finishes
// in about the time it would take without the flood.
func TestSeederUnderHandshakeFlood(t *testing.T) {
	dir := t.TempDir()
	seed, addr, hello := seedForFlood(t, dir)
	n := floodSize(t, floodConns)
	f := startFlood(t, addr, n, hello)
	// The seeder's 50 slots are all held by the flood, and the rest of it
	// keeps knocking, before the download starts and while it runs.
	deadline := time.Now().Add(10 * time.Second)
	for f.admitted.Load() < 50 || f.opened.Load() < int64(n)*3/2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, %d flood connections made, %d hold a peer slot: %s", f.opened.Load(), f.admitted.Load(), seed.errText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first, total, least := getDuringFlood(t, dir, addr, f.admitted.Load)
	t.Logf("flood of %d connections, %d opened in all, at least %d in peer slots: first piece after %v, done after %v",
		n, f.opened.Load(), least, first, total)
	if least < 40 {
		t.Fatalf("only %d flood connections held a peer slot during the download: the flood did not go on", least)
	}
	if first > 3*time.Second || total > 6*time.Second {
		t.Fatalf("download during the flood: first piece after %v, done after %v; want a few seconds", first, total)
	}
}

// A flood of connections that never finish the handshake (half of them
// send nothing, half stop midway) does not hold up a real downloader's
// handshake: its first piece arrives as fast as without the flood, not
// after a handshake timeout.
func TestSeederUnderPreHandshakeFlood(t *testing.T) {
	dir := t.TempDir()
	_, addr, hello := seedForFlood(t, dir)
	n := floodSize(t, floodConns)
	silent, half := startFlood(t, addr, n/2, nil), startFlood(t, addr, n-n/2, hello[:30])
	open := func() int64 { return silent.open.Load() + half.open.Load() }
	// Let the flood fill every handshake slot and run past the time
	// the seeder waits for a handshake, so that slots free up and are
	// taken again.
	began := time.Now()
	for time.Since(began) < 4*time.Second || silent.opened.Load()+half.opened.Load() < int64(n)*3/2 {
		if time.Since(began) > 10*time.Second {
			t.Fatalf("after 10s the flood made only %d connections", silent.opened.Load()+half.opened.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first, total, least := getDuringFlood(t, dir, addr, open)
	t.Logf("flood of %d connections, %d opened in all, at least %d open: first piece after %v, done after %v",
		n, silent.opened.Load()+half.opened.Load(), least, first, total)
	// The flood reopens what the seeder closes, so how many stand open at
	// a given moment dips when the machine is loaded (CI runs under -race);
	// a hundred held throughout is still past the 64 half-open handshakes
	// that used to lock real peers out.
	if least < 100 {
		t.Fatalf("only %d flood connections open during the download: the flood did not go on", least)
	}
	if first > 2*time.Second {
		t.Fatalf("first piece after %v during a pre-handshake flood; want under 2s", first)
	}
}
