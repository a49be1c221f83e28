// Package v1test runs the v1-only BitTorrent clients of Debian,
// transmission-cli 3.00 and aria2c 1.36, as peers in shoal's interop tests.
//
// Each client runs on loopback in folders of the test's own, with DHT, local
// peer discovery, PEX, uTP and port mapping off, listening on a port the
// test chose, and dies with the test (its whole process group is killed in
// t.Cleanup; the kernel kills it too if the test binary dies first). Neither
// client can be told of a peer on its command line, and Transmission drops
// 127.0.0.0/8 peers that a tracker hands it, so the other side dials them:
// `shoal get --peer`/`shoal seed --peer` (or lt_peer.py's --peer) with
// Client.Addr.
//
// Both take plain v1 torrents only: transmission-cli 3.00 refuses hybrid
// metadata and aria2c 1.36 computes a wrong v1 info-hash for it, and
// neither knows BEP 47 pad files (both write them to disk).
package v1test

import (
	"maps"

	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/trsettings"
)

// Client is a running transmission-cli or aria2c.
type Client struct {
	// Name is "transmission" or "aria2", for messages.
	Name string
	// Addr is where the client accepts peers.
	Addr netip.AddrPort
	// Dir is its download folder: a torrent named N is at Dir/N.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
	// ready and complete are what the client's log says when it serves a
	// checked copy (a seeder) and when it has every piece (a downloader).
	ready, complete string
}

// Require fails the test unless the named program is on PATH. Interop is
// part of what shoal promises, so a missing client is a failure, not a
// skip; scripts/test-deps.sh (run by make test) installs them. Set
// SHOAL_NO_INTEROP=1 to skip knowingly, as for libtorrent.
func Require(t testing.TB, program string) {
	t.Helper()
	if os.Getenv("SHOAL_NO_INTEROP") == "1" {
		t.Skipf("SHOAL_NO_INTEROP=1: interop with %s not tested", program)
	}
	if _, err := exec.LookPath(program); err != nil {
		t.Fatalf("%s not found (run scripts/test-deps.sh, or make test): %v", program, err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Neither client can report the port it bound, so the test picks it.
func freePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("picking a port: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// transmissionSettings is Transmission 3.00's settings.json for a peer that
// talks to nobody but the test: transmission-cli has no flags for most of
// these, and its defaults would reach out to the DHT, LPD multicast and the
// router.
func transmissionSettings(port uint16, seed bool) map[string]any {
	s := trsettings.Quiet(int(port))
	maps.Copy(s, map[string]any{
		"rpc-enabled":                false,
		"idle-seeding-limit-enabled": false,
		// transmission-cli never exits by itself except when its torrent
		// stops; a downloader with a seed ratio of 0 stops, and so exits,
		// as soon as it is complete. A seeder has no limit.
		"ratio-limit-enabled": !seed,
		"ratio-limit":         0,
		// Debug level: the "Verification is done" and "Complete" lines the
		// harness waits for are logged there.
		"message-level": 3,
	})
	return s
}

// StartTransmission runs transmission-cli on torrent with download folder
// dir. With seed, the data must be complete at dir/<name>: Transmission
// checks it, and WaitReady returns once it is serving. Without, it
// downloads into dir and exits 0 once complete (see WaitDone). Peers must
// dial it at Addr.
func StartTransmission(t testing.TB, torrent, dir string, seed bool) *Client {
	t.Helper()
	return StartTransmissionWith(t, torrent, dir, seed, nil)
}

// StartAria2 runs aria2c on torrent with download folder dir. With seed,
// the data must be complete at dir/<name>: aria2 checks it (-V) and serves
// it until stopped. Without, it downloads into dir and exits 0 once
// complete (--seed-time=0). Peers must dial it at Addr: aria2 ignores a
// magnet's x.pe.
func StartAria2(t testing.TB, torrent, dir string, seed bool) *Client {
	t.Helper()
	Require(t, "aria2c")
	port := freePort(t)
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--no-conf", "--dir=" + abs,
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--enable-peer-exchange=false", "--disable-ipv6=true",
		// Binds the listening socket (and every outgoing one) to loopback.
		"--interface=127.0.0.1", "--listen-port=" + strconv.Itoa(int(port)),
		"--file-allocation=none", "--auto-save-interval=0",
		"--bt-save-metadata=false", "--follow-torrent=mem",
		// Dies with the test binary even if nobody kills it.
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--summary-interval=0", "--console-log-level=notice",
		"--log=-", "--log-level=info",
	}
	if seed {
		// 0.0: seed regardless of share ratio, until stopped.
		args = append(args, "--check-integrity=true", "--seed-ratio=0.0")
	} else {
		args = append(args, "--seed-time=0")
	}
	c := &Client{
		Name: "aria2",
		Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		Dir:  abs,
		// aria2 opens its peer port once the check of the data is over.
		ready:    "BitTorrent: listening on TCP port",
		complete: "Download complete: ",
	}
	c.start(t, exec.Command("aria2c", append(args, torrent)...))
	return c
}

func (c *Client) start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	c.cmd = cmd
	c.done = make(chan struct{})
	cmd.Dir = c.Dir
	w := &lockedWriter{c}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that cleanup reaches anything it forks;
	// SIGKILLed by the kernel if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.Name, err)
	}
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.Stop)
}

type lockedWriter struct{ c *Client }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.log.Write(b)
}

// Log returns what the client has printed so far (stdout and stderr).
func (c *Client) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	// transmission-cli redraws its status line with carriage returns.
	return strings.ReplaceAll(c.log.String(), "\r", "\n")
}

// logTail is the end of the log, for failure messages, without all but
// the last of transmission-cli's status lines, which it redraws twice a
// second.
func (c *Client) logTail() string {
	lines := strings.Split(c.Log(), "\n")
	var kept []string
	status := ""
	for _, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "Progress: ") || strings.HasPrefix(t, "Seeding, ") {
			status = t
			continue
		}
		if strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	if status != "" {
		kept = append(kept, "last status: "+status)
	}
	s := strings.Join(kept, "\n")
	const max = 6000
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// Stop kills the client's process group and waits for it to be gone. It is
// safe to call more than once; t.Cleanup calls it.
func (c *Client) Stop() {
	if c.cmd.Process != nil {
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-c.done
}

// exited reports whether the client has exited, and its exit code if so.
func (c *Client) exited() (int, bool) {
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode(), true
	default:
		return 0, false
	}
}

// WaitReady waits until a seeder has checked its data and accepts peers,
// failing the test if it exits or d passes first.
func (c *Client) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if strings.Contains(c.Log(), c.ready) && listening(c.Addr) {
			return
		}
		if code, ok := c.exited(); ok {
			t.Fatalf("%s exited (%d) before serving:\n%s", c.Name, code, c.logTail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving at %v after %v:\n%s", c.Name, c.Addr, d, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitDone waits until a downloader has every piece and has exited 0. It
// returns an error, with the client's log, if the client exits otherwise
// or d passes first (the client is then killed).
func (c *Client) WaitDone(d time.Duration) error {
	select {
	case <-c.done:
	case <-time.After(d):
		c.Stop()
		return fmt.Errorf("%s not done after %v:\n%s", c.Name, d, c.logTail())
	}
	code := c.cmd.ProcessState.ExitCode()
	if code != 0 {
		return fmt.Errorf("%s exited %d:\n%s", c.Name, code, c.logTail())
	}
	if !strings.Contains(c.Log(), c.complete) {
		return fmt.Errorf("%s exited 0 without saying %q:\n%s", c.Name, c.complete, c.logTail())
	}
	return nil
}

// listening reports whether a TCP socket listens on addr, read from
// /proc/net/tcp rather than by connecting: a probe connection would be a
// peer that never handshakes, which the client may count against the
// address.
func listening(addr netip.AddrPort) bool {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	a := addr.Addr().As4()
	// /proc/net/tcp writes the address as a little-endian uint32.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], addr.Port())
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st ...; st 0A is LISTEN.
		if len(f) > 3 && f[1] == want && f[3] == "0A" {
			return true
		}
	}
	return false
}
