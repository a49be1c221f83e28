package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/internal/benchproc"
)

// tailBytes is how much of a child's log goes into an error message.
const tailBytes = 1500

// proc is a running child (see benchproc.Start) that also watches its
// stderr for the lines of `shoal get` and `shoal seed` the benchmark
// reports on: the first line starting with "done: " closes doneLine, and
// the first line with each of watchedPrefixes is kept with its time.
type proc struct {
	*benchproc.Proc
	doneLine chan struct{}

	mu     sync.Mutex
	lines  map[string]stampedLine // by prefix, the first line seen
	banned []string               // peers this child banned for bad data
}

// stampedLine is a line of a child's stderr and when it arrived.
type stampedLine struct {
	at   time.Time
	text string
}

// watchedPrefixes are the stderr lines proc keeps: completion, resumption
// after a restart, a seeder leaving at its --seed-ratio, and the first
// verified piece.
var watchedPrefixes = []string{"done: ", "resuming: ", "seed ratio ", "first piece: "}

// start runs argv in its own process group; the child also gets SIGKILL if
// we die first (Pdeathsig), so no peer outlives a crashed benchmark.
func start(ctx context.Context, name, logPath string, argv []string) (*proc, error) {
	p := &proc{doneLine: make(chan struct{}), lines: map[string]stampedLine{}}
	bp, err := benchproc.Start(ctx, benchproc.Spec{
		Name: name, LogPath: logPath, Argv: argv, Lines: 64,
		OnStderr:  p.addErrLine,
		Pdeathsig: true,
	})
	if err != nil {
		return nil, err
	}
	p.Proc = bp
	return p, nil
}

func (p *proc) addErrLine(line string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// shoal logs a ban (at --log-level info) as
	// `msg="dropping peer" peer=HOST:PORT … reason="banned after …"`.
	if strings.Contains(line, "banned after") {
		if peer := logField(line, "peer"); peer != "" {
			p.banned = append(p.banned, peer)
		}
	}
	for _, prefix := range watchedPrefixes {
		if _, seen := p.lines[prefix]; !seen && strings.HasPrefix(line, prefix) {
			p.lines[prefix] = stampedLine{now, line}
			if prefix == "done: " {
				close(p.doneLine)
			}
		}
	}
}

// line returns the first stderr line starting with prefix (one of
// watchedPrefixes) and when it came, or zeros.
func (p *proc) line(prefix string) stampedLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines[prefix]
}

// doneAt is when the done: line arrived, or zero.
func (p *proc) doneAt() time.Time { return p.line("done: ").at }

func (p *proc) doneText() string { return p.line("done: ").text }

// resumedBytes reads N from `resuming: N of M bytes already verified on
// disk`, or 0 when the child printed no such line (nothing to resume).
func (p *proc) resumedBytes() int64 {
	var n int64
	fmt.Sscanf(p.line("resuming: ").text, "resuming: %d of", &n)
	return n
}

// bannedPeer reports whether the child logged banning addr.
func (p *proc) bannedPeer(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.banned {
		if b == addr {
			return true
		}
	}
	return false
}

// kill sends SIGKILL to the child's process group, as a crash would, and
// waits until it is reaped.
func (p *proc) kill() {
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.Done
}

// logField returns the value of key=VALUE in a slog text line, unquoted.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// waitLine waits for a line starting with ready and returns the value of
// the line starting with key seen up to then.
func waitLine(ctx context.Context, p *proc, key, ready string) (string, error) {
	vals, err := p.WaitReady(ctx, ready, key)
	switch {
	case errors.Is(err, benchproc.ErrExited):
		return "", fmt.Errorf("exited before getting ready: %v%s", p.Err, p.LogTail(tailBytes))
	case err != nil:
		return "", fmt.Errorf("not ready: %w%s", err, p.LogTail(tailBytes))
	case vals[key] == "":
		return "", fmt.Errorf("ready before printing %q", key)
	}
	return vals[key], nil
}

// waitDone waits for p's done: line. rctx is the run's deadline, parent
// the benchmark's own context (so an interrupt is told apart from a
// timeout), limit the deadline's length for the message.
func waitDone(parent, rctx context.Context, p *proc, limit time.Duration) (time.Time, error) {
	select {
	case <-p.doneLine:
	case <-p.Done:
		if p.doneAt().IsZero() {
			return time.Time{}, fmt.Errorf("%s exited before completing: %v%s", p.Name, p.Err, p.LogTail(tailBytes))
		}
	case <-rctx.Done():
		if parent.Err() != nil {
			return time.Time{}, parent.Err()
		}
		return time.Time{}, fmt.Errorf("%s not done after %v%s", p.Name, limit, p.LogTail(tailBytes))
	}
	return p.doneAt(), nil
}

// swarmEnv is the fixed part of one swarm run: its directory, a tracker,
// optionally a local DHT node, and a seeder, plus every child started for
// the run so close can stop them all.
type swarmEnv struct {
	b        *bench
	ctx      context.Context // the run's, with its deadline
	dir      string
	announce string // the tracker's announce URL
	dhtAddr  string // the local DHT node's HOST:PORT, or "" for --no-dht

	tracker, dht, seeder *proc

	mu    sync.Mutex
	procs []*proc
}

// envOptions says what a swarmEnv starts besides the tracker and seeder.
type envOptions struct {
	dht        bool     // a local DHT node, which every process then joins
	seederArgs []string // extra `shoal seed` flags
}

// newSwarm starts the tracker, the DHT node if asked, and the seeder in
// runDir, and waits until the seeder serves. On error it stops what it
// started.
func (b *bench) newSwarm(ctx context.Context, runDir string, o envOptions) (_ *swarmEnv, err error) {
	e := &swarmEnv{b: b, ctx: ctx, dir: runDir}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.tracker, err = e.start("tracker", "tracker.log",
		b.cfg.shoal, "tracker", "--listen", "127.0.0.1:0", "--interval", "2s", "--rate-limit", "-1"); err != nil {
		return nil, err
	}
	trAddr, err := waitLine(ctx, e.tracker, "listening: ", "listening: ")
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	e.announce = "http://" + trAddr + "/announce"
	if o.dht {
		// A network of its own (--bootstrap none), its table kept in the
		// run's directory: never the public DHT, never the user's cache.
		if e.dht, err = e.start("dht node", "dht.log", b.cfg.shoal, "dht", "--listen", "127.0.0.1:0",
			"--bootstrap", "none", "--state", filepath.Join(runDir, "dht.state")); err != nil {
			return nil, err
		}
		if e.dhtAddr, err = waitLine(ctx, e.dht, "listening: ", "listening: "); err != nil {
			return nil, fmt.Errorf("dht node: %w", err)
		}
	}
	argv := append([]string{b.cfg.shoal, "seed", b.src, "--torrent", b.torrent, "--listen", "127.0.0.1:0"}, e.dhtArgs()...)
	argv = append(argv, "-t", e.announce, "--max-upload-rate", b.cfg.upArg)
	if e.seeder, err = e.start("seeder", "seeder.log", append(argv, o.seederArgs...)...); err != nil {
		return nil, err
	}
	// shoal's contract is to print magnet: last, just before it serves.
	if _, err := waitLine(ctx, e.seeder, "magnet: ", "magnet: "); err != nil {
		return nil, fmt.Errorf("seeder: %w", err)
	}
	return e, nil
}

// dhtArgs points a shoal process at the local DHT node, or keeps it off
// the DHT altogether.
func (e *swarmEnv) dhtArgs() []string {
	if e.dhtAddr == "" {
		return []string{"--no-dht"}
	}
	return []string{"--bootstrap", e.dhtAddr}
}

// start runs a child whose log is logName in the run's directory, and
// remembers it for close.
func (e *swarmEnv) start(name, logName string, argv ...string) (*proc, error) {
	p, err := start(e.ctx, name, filepath.Join(e.dir, logName), argv)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// startGet starts `shoal get` of the benchmark torrent into dlDir, capped
// and announcing like every downloader, lingering as a seeder after it
// completes if -linger; pre go before "get" (global flags such as
// --log-level), extra after the usual flags.
func (e *swarmEnv) startGet(name, logName, dlDir string, pre []string, extra ...string) (*proc, error) {
	cfg := e.b.cfg
	argv := append([]string{cfg.shoal}, pre...)
	argv = append(argv, "get", e.b.torrent, "-o", dlDir, "--listen", "127.0.0.1:0")
	argv = append(argv, e.dhtArgs()...)
	argv = append(argv, "-t", e.announce, "--max-upload-rate", cfg.upArg, "--timeout", cfg.timeout.String())
	if cfg.linger {
		argv = append(argv, "--seed")
	}
	return e.start(name, logName, append(argv, extra...)...)
}

// close stops every child of the run, newest first, so downloaders go
// before the seeder and the tracker.
func (e *swarmEnv) close() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	slices.Reverse(procs)
	for _, p := range procs {
		p.Stop()
	}
}

// verifyCopy checks the downloaded file under dlDir against the source.
func (b *bench) verifyCopy(dlDir string) error {
	sum, size, err := benchproc.FileSHA256(filepath.Join(dlDir, dataName))
	if err != nil {
		return fmt.Errorf("reading its copy: %w", err)
	}
	if size != b.cfg.size || !bytes.Equal(sum, b.srcSum) {
		return fmt.Errorf("copy differs from the source (%d bytes, sha256 %x)", size, sum)
	}
	return nil
}

// makeRunDir creates the directory of one run under the temp dir and
// returns a function that removes it unless -keep.
func (b *bench) makeRunDir(name string) (string, func(), error) {
	dir := filepath.Join(b.tmp, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if !b.cfg.keep {
			os.RemoveAll(dir)
		}
	}, nil
}
