package v1test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

// These tests prove the harness against libtorrent with v1 torrents that
// libtorrent makes, independently of shoal: if they fail, a failing shoal
// interop test says nothing about shoal.

// files makes a multi-file v1 torrent's worth of data under dir/pack: at
// 16 KiB pieces, pieces cross every file boundary.
func files(t *testing.T, dir string) string {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 12))
	for rel, n := range map[string]int{"a.bin": 100_000, "sub/b.bin": 50_001, "sub/c.txt": 7_000} {
		p := filepath.Join(dir, "pack", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "pack")
}

func v1Torrent(t *testing.T, dir string) string {
	t.Helper()
	lttest.Require(t)
	out := filepath.Join(dir, "pack.torrent")
	if h := lttest.Run(t, "lt_torrent.py", "create", filepath.Join(dir, "pack"), "16384", out, "v1"); len(h) != 40 {
		t.Fatalf("lt_torrent.py create v1 printed %q, want a 40-hex v1 hash", h)
	}
	return out
}

func same(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	filepath.Walk(want, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: differs from the original (%v)", rel, err)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatal("nothing compared")
	}
}

// ltPeer runs lt_peer.py and returns it once it printed want on stdout.
func ltPeer(t *testing.T, want string, args ...string) (*exec.Cmd, *syncBuf) {
	t.Helper()
	cmd := exec.Command(lttest.Python, append([]string{lttest.Script("lt_peer.py")}, args...)...)
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	if want == "" {
		return cmd, stderr
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, want) {
				return cmd, stderr
			}
		case <-done:
			t.Fatalf("lt_peer.py %v exited before %q: %s", args, want, stderr.String())
		case <-timeout:
			t.Fatalf("lt_peer.py %v: no %q", args, want)
		}
	}
}

// syncBuf is a buffer a child writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLibtorrentDownloadsFromClients(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB, string, string, bool) *Client{
		"transmission": StartTransmission, "aria2": StartAria2,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := files(t, dir)
			torrent := v1Torrent(t, dir)
			c := start(t, torrent, dir, true)
			c.WaitReady(t, 15*time.Second)
			out := filepath.Join(t.TempDir(), "lt")
			cmd := exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", torrent, out, "--peer", c.Addr.String(), "--timeout", "25")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("libtorrent from %s: %v\n%s\n%s:\n%s", name, err, b, name, c.Log())
			}
			same(t, src, filepath.Join(out, "pack"))
		})
	}
}

func TestClientsDownloadFromLibtorrent(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB, string, string, bool) *Client{
		"transmission": StartTransmission, "aria2": StartAria2,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := files(t, dir)
			torrent := v1Torrent(t, dir)
			c := start(t, torrent, filepath.Join(t.TempDir(), name), false)
			_, lterr := ltPeer(t, "seeding", "seed", torrent, dir, "--peer", c.Addr.String())
			if err := c.WaitDone(25 * time.Second); err != nil {
				t.Fatalf("%v\nlibtorrent: %s", err, lterr)
			}
			same(t, src, filepath.Join(c.Dir, "pack"))
		})
	}
}

// A downloader that cannot finish says so within its deadline rather than
// hanging the test, and is stopped.
func TestWaitDoneDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files(t, dir)
	torrent := v1Torrent(t, dir)
	c := StartAria2(t, torrent, filepath.Join(t.TempDir(), "dl"), false)
	start := time.Now()
	err := c.WaitDone(2 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "not done after") {
		t.Fatalf("WaitDone with no peer: %v", err)
	}
	if _, ok := c.exited(); !ok || time.Since(start) > 5*time.Second {
		t.Fatalf("aria2 still running %v after its deadline", time.Since(start))
	}
}

// testdata/interop/v1_peer.py, the v1-only peer of the hybrid-swarm test,
// swaps a libtorrent-made hybrid torrent (pad files, tail included) with
// libtorrent both ways: it fetches from a libtorrent seeder, asking for the
// pad bytes too, and serves a libtorrent downloader.
func TestV1PeerWithLibtorrent(t *testing.T) {
	t.Parallel()
	lttest.Require(t)
	dir := t.TempDir()
	src := files(t, dir)
	torrent := filepath.Join(dir, "pack.torrent")
	lttest.Run(t, "lt_torrent.py", "create", src, "16384", torrent, "hybrid")
	v1peer := lttest.Script("v1_peer.py")

	t.Run("get from libtorrent", func(t *testing.T) {
		t.Parallel()
		port := fmt.Sprint(freePort(t))
		_, lterr := ltPeer(t, "seeding", "seed", torrent, dir, "--port", port)
		out := t.TempDir()
		b, err := exec.Command(lttest.Python, v1peer, "get", torrent, out, "--peer", "127.0.0.1:"+port, "--timeout", "20").CombinedOutput()
		if err != nil {
			t.Fatalf("v1_peer.py get: %v\n%s\nlibtorrent: %s", err, b, lterr)
		}
		same(t, src, filepath.Join(out, "pack"))
		if _, err := os.Stat(filepath.Join(out, "pack", ".pad")); !os.IsNotExist(err) {
			t.Errorf("v1_peer.py wrote pad files: %v", err)
		}
	})
	t.Run("serve libtorrent", func(t *testing.T) {
		t.Parallel()
		port := fmt.Sprint(freePort(t))
		seed := exec.Command(lttest.Python, v1peer, "seed", torrent, dir, "--port", port)
		seed.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := seed.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-seed.Process.Pid, syscall.SIGKILL)
			seed.Wait()
		})
		out := t.TempDir()
		b, err := exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", torrent, out, "--peer", "127.0.0.1:"+port, "--timeout", "20").CombinedOutput()
		if err != nil {
			t.Fatalf("libtorrent from v1_peer.py: %v\n%s", err, b)
		}
		same(t, src, filepath.Join(out, "pack"))
	})
}
