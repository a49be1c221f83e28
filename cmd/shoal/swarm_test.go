package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a running shoal process with its stdout lines collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
	done   chan struct{}
}

// start runs shoal in the background; the test's cleanup kills it.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, exec.Command(shoalBin, args...))
}

// startCmd runs any command the same way (libtorrent's helper script too).
func startCmd(t *testing.T, dir string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stderr = &syncWriter{w: &p.stderr, mu: &p.mu}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.errText(), "panic:") {
			t.Errorf("%v crashed:\n%s", p.cmd.Args, p.errText())
		}
	})
	return p
}

// stop sends sig and returns the exit code once the process is gone.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait(t, 5*time.Second)
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// field waits for a "key: value" line (or a bare "key" line) on stdout.
func (p *proc) field(t *testing.T, key string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.lines {
			if l == key {
				p.mu.Unlock()
				return ""
			}
			if v, ok := strings.CutPrefix(l, key+": "); ok {
				p.mu.Unlock()
				return v
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("shoal exited before printing %q: %s", key, p.errText())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no %q line: %s", key, p.errText())
	return ""
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// wait waits for the process and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("shoal %v still running after %v: %s", p.cmd.Args[1:], d, p.errText())
		return -1
	}
}

// randomFiles writes files (relative path → size) of random bytes.
func randomFiles(t *testing.T, root string, files map[string]int) {
	t.Helper()
	for rel, n := range files {
		full := filepath.Join(root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(full), 0o755)
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(f, rngReader{seed: uint64(n) + uint64(len(rel))}, int64(n)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// rngReader yields a cheap deterministic byte stream.
type rngReader struct{ seed uint64 }

func (r rngReader) Read(b []byte) (int, error) {
	x := r.seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return len(b), nil
}

// filesEqual reports whether every file under want is under got with the
// same bytes.
func filesEqual(want, got string) bool {
	equal := true
	filepath.Walk(want, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !equal {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		equal = err == nil && bytes.Equal(a, b)
		return nil
	})
	return equal
}

func sameFiles(t *testing.T, want, got string) {
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

var multi = map[string]int{
	"video.bin":        3_000_000,
	"sub/notes.txt":    5000,
	"sub/empty":        0,
	"sub/deep/tiny":    17,
	"exact-piece.dat":  256 << 10,
	"ünïcode/名前.txt":   99_999,
	"sub/deep/big.dat": 1_234_567,
}

// One seeder and three downloaders, real processes on loopback, of a
// multi-file torrent with small, empty and odd-sized files.
func TestSeedAndThreeDownloads(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), multi)
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent", "--piece-length", "64k")
	addr := seed.field(t, "listening")
	hash := seed.field(t, "info-hash")
	if mg := seed.field(t, "magnet"); !strings.Contains(mg, hash) || !strings.Contains(mg, "x.pe=") {
		t.Fatalf("magnet %q", mg)
	}
	var downloads []*proc
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("dl%d", i))
		// Flags after the argument for one of them: they must not be dropped.
		args := []string{"get", "share.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s"}
		if i == 1 {
			args = []string{"get", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "share.torrent"}
		}
		downloads = append(downloads, start(t, dir, args...))
	}
	for i, d := range downloads {
		if code := d.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("download %d: exit %d: %s", i, code, d.errText())
		}
		sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, fmt.Sprintf("dl%d", i), "share"))
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("dl%d", i), "share", "sub", "empty")); err != nil {
			t.Errorf("empty file not created: %v", err)
		}
	}
	seed.cmd.Process.Signal(syscall.SIGTERM)
	if code := seed.wait(t, 10*time.Second); code != 0 {
		t.Errorf("seed after SIGTERM: exit %d: %s", code, seed.errText())
	}
}

var summaryRE = regexp.MustCompile(`downloaded (\d+) bytes \((\d+) wasted\)`)
var resumeRE = regexp.MustCompile(`resuming: (\d+) of (\d+) bytes`)

// kill -9 a download halfway; the next run fetches only what is missing.
func TestResumeAfterKill(t *testing.T) {
	dir := t.TempDir()
	const size = 24 << 20
	const pieceLen = 256 << 10
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": size / 2, "b.bin": size / 2})
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "--save-torrent", "share.torrent",
		"--piece-length", "256k", "--max-upload-rate", "6M")
	addr := seed.field(t, "listening")

	out := filepath.Join(dir, "dl")
	first := start(t, dir, "get", "share.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0")
	time.Sleep(2 * time.Second) // about half at 6 MiB/s
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.wait(t, 5*time.Second)

	second := start(t, dir, "get", "share.torrent", "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0")
	if code := second.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resumed download: exit %d: %s", code, second.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(out, "share"))
	log := second.errText()
	rm := resumeRE.FindStringSubmatch(log)
	sm := summaryRE.FindStringSubmatch(log)
	if rm == nil || sm == nil {
		t.Fatalf("no resume or summary line:\n%s", log)
	}
	had, _ := strconv.ParseInt(rm[1], 10, 64)
	fetched, _ := strconv.ParseInt(sm[1], 10, 64)
	if had < size/8 || had >= size {
		t.Fatalf("resumed with %d of %d bytes: the kill did not land halfway, or resume kept nothing", had, size)
	}
	// At most the missing part plus one piece per peer (one peer here).
	if limit := int64(size) - had + pieceLen; fetched > limit {
		t.Fatalf("second run fetched %d bytes, more than the %d missing plus one piece", fetched, int64(size)-had)
	}
}

func TestGetRefusesBadInput(t *testing.T) {
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	for name, args := range map[string][]string{
		"bad magnet":      {"get", "magnet:?xt=urn:btmh:1220zz"},
		"hash, no peers":  {"get", "c2519e86248b9da3c237a3d527ea7bef57b2d46b72f3cab924ba9bb567840a38", "--no-dht", "--no-lsd"},
		"wrong multihash": {"get", "urn:btmh:1114c2519e86248b9da3c237a3d527ea7bef57b2d46b72f3cab924ba9bb567840a38"},
		"bad peer":        {"get", "data.torrent", "--peer", "nonsense", "--no-dht"},
		"bad rate":        {"get", "data.torrent", "--max-download-rate", "fast", "--no-dht"},
		"bad listen":      {"get", "data.torrent", "--listen", "127.0.0.1", "--no-dht"},
		"stray arg":       {"get", "data.torrent", "extra"},
		"seed missing":    {"seed", "nope", "--no-dht"},
	} {
		if r := shoal(t, dir, nil, args...); r.code != 2 {
			t.Errorf("%s: exit %d, want 2: %s", name, r.code, r.stderr)
		}
	}
	// Nobody answers at the one address known: the timeout ends it with
	// exit 1.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, "get", "data.torrent", "-o", "out", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "1s", "--peer", deadAddr(t))
	cmd.Dir = dir
	outb, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(outb), "timed out") {
		t.Fatalf("timeout: exit %d: %s", cmd.ProcessState.ExitCode(), outb)
	}
}
