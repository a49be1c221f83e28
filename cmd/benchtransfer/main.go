// Command benchtransfer measures how fast a single file crosses loopback
// between shoal and libtorrent 2.0, in every seeder→downloader pairing, and
// beside them the bare pipeline (cmd/benchtransfer/bare: sendfile → recv →
// SHA-256 → pwrite, no protocol), and prints one Markdown table: per
// pairing the median rate over several rounds and its spread, the CPU
// seconds per GiB of each side, wall time and the downloader's peak RSS.
//
// It drives the programs as subprocesses: the shoal binary (`shoal create`,
// `shoal seed`, `shoal get`), testdata/interop/lt_peer.py under
// /usr/bin/python3 (the only interpreter that can import Debian's
// python3-libtorrent) and the bare pipeline. Run it from the module root:
//
//	go run ./cmd/benchtransfer -size 1GiB -rounds 5 -out docs/bench
//
// The machine's state (above all the page cache's writeback) swings the
// figures from one transfer to the next, so each round runs every pairing
// once, every other round in reverse order, and before each transfer the
// dirty data is synced and waited on until it has drained. -out also
// writes the rate over time of each pairing's median round as an SVG plot,
// from the downloader's write_bytes in /proc/PID/io every 250 ms.
//
// -formats picks the torrent formats (v2, hybrid, v1; v2 alone unless
// given); -encryption off,require runs each pair once per policy, passed
// as --encryption to every shoal process of it (libtorrent keeps its
// default, which accepts both), so MSE's cost shows against plaintext.
//
// The torrent of each format is made once, by `shoal create --format F`, and
// every pair of that format transfers it, so the formats differ only in the
// hashes each side checks (SHA-256 merkle trees, SHA-1 pieces, or both) and
// in how the peers find each other's info-hash.
//
// Every downloaded copy is checked against the source by SHA-256 before its
// figures are reported. The source file is read from the page cache, so the
// figures leave disk reads out.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/internal/benchproc"
)

// dataName is the base name of the benchmark file, and so the torrent's name.
const dataName = "benchtransfer.bin"

// allPairs are the SEEDER-DOWNLOADER pairings; "bare" is the bare pipeline
// (cmd/benchtransfer/bare), which has no torrent and so runs once per round
// whatever the formats and encryptions.
var allPairs = []string{"shoal-shoal", "lt-shoal", "shoal-lt", "lt-lt", "bare"}

// allFormats are the values of shoal create --format, in the order the table
// shows them: v2, shoal's default, first.
var allFormats = []string{"v2", "hybrid", "v1"}

type config struct {
	shoal       string
	python      string
	ltPeer      string
	size        int64
	pieceLength int64
	pairs       []string
	formats     []string
	keep        bool
	rounds      int
	outDir      string
	timeout     time.Duration
	workDir     string
	// seeders is how many seeders of the pair's seeder kind serve each
	// transfer at once (the bare pipeline has one whatever it is).
	seeders int
	// encryptions are the --encryption policies each pair runs under;
	// "" passes none (shoal's default).
	encryptions []string
}

func main() {
	log := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "benchtransfer: "+format+"\n", a...) }
	cfg, err := parseFlags()
	if err != nil {
		log("%v", err)
		os.Exit(2)
	}
	// The children sit in their own process groups (see start), so Ctrl-C
	// reaches only us; cancelling ctx is what passes it on to them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, cfg, log)
	stop()
	os.Exit(code)
}

func parseFlags() (*config, error) {
	var (
		cfg         config
		size, plen  string
		pairs       string
		formats     string
		encryptions string
		defaultPeer = "testdata/interop/lt_peer.py"
	)
	if root, err := benchproc.ModuleRoot(); err == nil {
		defaultPeer = filepath.Join(root, defaultPeer)
	}
	flag.StringVar(&cfg.shoal, "shoal", "", "shoal binary (default: go build ./cmd/shoal into the temp dir)")
	flag.StringVar(&size, "size", "1GiB", "size of the file to transfer (bytes, or with k/KiB/M/MiB/G/GiB/KB/MB/GB)")
	flag.StringVar(&plen, "piece-length", "1MiB", "piece length of the torrent")
	flag.StringVar(&pairs, "pairs", strings.Join(allPairs, ","), "comma-separated SEEDER-DOWNLOADER pairs from "+strings.Join(allPairs, ", "))
	flag.StringVar(&formats, "formats", "v2", "comma-separated torrent formats from "+strings.Join(allFormats, ", ")+"; every pair runs for each")
	flag.IntVar(&cfg.rounds, "rounds", 5, "rounds to run; each runs every pairing once, in the opposite order to the round before")
	flag.StringVar(&cfg.outDir, "out", "", "folder to write the table (transfer.md) and the rate-over-time plot (transfer-rate.svg) into, besides stdout")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temp dir (data, torrent, downloads, logs)")
	flag.StringVar(&cfg.python, "python", "/usr/bin/python3", "Python interpreter that can import libtorrent")
	flag.StringVar(&cfg.ltPeer, "lt-peer", defaultPeer, "path of lt_peer.py")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "limit for each transfer, and for a seeder to get ready")
	flag.IntVar(&cfg.seeders, "seeders", 1, "seeders that serve each torrent transfer at once, all of the pair's seeder kind, all named to the downloader (the bare pipeline keeps one)")
	flag.StringVar(&cfg.workDir, "workdir", "", "parent of the temp dir (default: $TMPDIR); needs room for twice -size")
	flag.StringVar(&encryptions, "encryption", "", "comma-separated shoal --encryption policies from off, prefer, require; every pair runs under each, its shoal processes given the flag (default: none given)")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	var err error
	if cfg.size, err = parseSize(size); err != nil || cfg.size <= 0 {
		return nil, fmt.Errorf("bad -size %q", size)
	}
	if cfg.pieceLength, err = parseSize(plen); err != nil || cfg.pieceLength < 16<<10 || cfg.pieceLength&(cfg.pieceLength-1) != 0 {
		return nil, fmt.Errorf("bad -piece-length %q: want a power of two ≥ 16KiB", plen)
	}
	for _, p := range strings.Split(pairs, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, _, ok := splitPair(p); !ok {
			return nil, fmt.Errorf("bad pair %q: want one of %s", p, strings.Join(allPairs, ", "))
		}
		cfg.pairs = append(cfg.pairs, p)
	}
	if len(cfg.pairs) == 0 {
		return nil, errors.New("no pairs to run")
	}
	if cfg.rounds < 1 {
		return nil, fmt.Errorf("bad -rounds %d: want at least 1", cfg.rounds)
	}
	if cfg.seeders < 1 || cfg.seeders > 16 {
		return nil, fmt.Errorf("bad -seeders %d: want 1 to 16", cfg.seeders)
	}
	if cfg.formats, err = parseFormats(formats); err != nil {
		return nil, err
	}
	if cfg.encryptions, err = parseEncryptions(encryptions); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// parseFormats reads -formats: a comma-separated list of allFormats, each at
// most once (a torrent is made once per format, and its rows are one block).
func parseFormats(s string) ([]string, error) {
	var formats []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(allFormats, f) {
			return nil, fmt.Errorf("bad -formats %q: want %s", f, strings.Join(allFormats, ", "))
		}
		if slices.Contains(formats, f) {
			return nil, fmt.Errorf("bad -formats: %q given twice", f)
		}
		formats = append(formats, f)
	}
	if len(formats) == 0 {
		return nil, errors.New("no formats to run")
	}
	return formats, nil
}

// parseEncryptions reads -encryption: shoal's policies, each at most once;
// none means one run with the flag left out.
func parseEncryptions(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e != "off" && e != "prefer" && e != "require" {
			return nil, fmt.Errorf("bad -encryption %q: want off, prefer or require", e)
		}
		if slices.Contains(out, e) {
			return nil, fmt.Errorf("bad -encryption: %q given twice", e)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out, nil
}

// splitPair splits "SEEDER-DOWNLOADER" into its two implementations;
// "bare" is both sides of the bare pipeline.
func splitPair(p string) (seeder, downloader string, ok bool) {
	if p == "bare" {
		return "bare", "bare", true
	}
	s, d, found := strings.Cut(p, "-")
	valid := func(x string) bool { return x == "lt" || x == "shoal" }
	return s, d, found && valid(s) && valid(d)
}

// parseSize reads a byte count such as 1048576, 1MiB, 1M or 1MB. k/M/G mean
// powers of 1024 (as in head -c); KB/MB/GB mean powers of 1000. It is not
// benchproc.ParseSize, which reads MB as 2^20 the way shoal's rate flags do:
// -size has always meant decimal units here.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		return strconv.ParseInt(s, 10, 64)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{
		"k": 1 << 10, "K": 1 << 10, "KiB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9,
	}[s[i:]]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", s[i:])
	}
	return n * mult, nil
}

// pairing is one row of the table: a pair of implementations on one
// torrent format under one encryption policy, run once per round.
type pairing struct {
	t    torrent // zero for the bare pipeline
	pair string
	enc  string // shoal's --encryption, "" if none was given
}

func (pg pairing) String() string {
	if pg.pair == "bare" {
		return "bare pipeline"
	}
	s := pg.t.format + " pair " + pg.pair
	if pg.enc != "" {
		s += " encryption " + pg.enc
	}
	return s
}

// result is one transfer: a pairing in one round.
type result struct {
	round    int
	seconds  float64
	peakRSS  int64 // bytes, VmHWM
	peakAnon int64 // bytes, RssAnon
	selfSecs float64
	// CPU time of the downloader, all of its life (wait4), and of the
	// seeder while the downloader ran (/proc/PID/stat before and after).
	dlCPU, seedCPU cpuTimes
	samples        []sample // the downloader's progress
	err            error
}

func (r result) mbps(size int64) float64 { return float64(size) / r.seconds / 1e6 }

// row is a pairing and its results, one per round.
type row struct {
	pairing
	results []result
}

func run(ctx context.Context, cfg *config, log func(string, ...any)) int {
	tmp, err := os.MkdirTemp(cfg.workDir, "benchtransfer-")
	if err != nil {
		log("%v", err)
		return 1
	}
	if cfg.keep {
		log("temp dir: %s (kept)", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// shoal makes the torrents, so every pair but the bare one needs it.
	torrentPairs := slices.ContainsFunc(cfg.pairs, func(p string) bool { return p != "bare" })
	if cfg.shoal == "" && torrentPairs {
		cfg.shoal = filepath.Join(tmp, "shoal")
		log("building ./cmd/shoal")
		if err := benchproc.BuildShoal(ctx, cfg.shoal); err != nil {
			log("%v", err)
			return 1
		}
	}
	var bare string
	if needsImpl(cfg.pairs, "bare") {
		bare = filepath.Join(tmp, "bare")
		log("building ./cmd/benchtransfer/bare")
		if err := buildBare(ctx, bare); err != nil {
			log("%v", err)
			return 1
		}
	}
	if needsImpl(cfg.pairs, "lt") {
		if _, err := os.Stat(cfg.ltPeer); err != nil {
			log("lt_peer.py: %v (set -lt-peer)", err)
			return 1
		}
	}

	src, srcSum, err := benchproc.WriteSource(ctx, tmp, dataName, cfg.size, log)
	if err != nil {
		log("%v", err)
		return 1
	}

	// Every torrent is made before the first transfer, so that a format
	// shoal cannot make fails the run at once, not after an hour of pairs.
	var torrents []torrent
	if torrentPairs {
		for _, f := range cfg.formats {
			path := filepath.Join(tmp, "bench-"+f+".torrent")
			out, err := benchproc.CreateTorrent(ctx, cfg.shoal, src, cfg.pieceLength, path, "--format", f)
			if err != nil {
				log("shoal create --format %s: %v", f, err)
				return 1
			}
			t := torrent{format: f, path: path, infoHash: benchproc.LineValue(out, "info-hash: ")}
			log("%s torrent %s, info-hash %s", f, path, t.infoHash)
			torrents = append(torrents, t)
		}
	}

	var rows []*row
	for _, pair := range cfg.pairs {
		if pair == "bare" {
			rows = append(rows, &row{pairing: pairing{pair: pair}})
			continue
		}
		for _, t := range torrents {
			for _, enc := range cfg.encryptions {
				if pair == "lt-lt" && enc != cfg.encryptions[0] {
					break // no shoal process to give the policy: one row
				}
				rows = append(rows, &row{pairing: pairing{t: t, pair: pair, enc: enc}})
			}
		}
	}

	b := &bench{cfg: cfg, tmp: tmp, src: src, srcSum: srcSum, bare: bare, log: log}
	load0 := loadAvg()
	for round := range cfg.rounds {
		// Every other round runs the pairings backwards, so none is always
		// first (on a quiet machine) or last (after the others' writeback).
		order := slices.Clone(rows)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, rw := range order {
			if ctx.Err() != nil {
				break
			}
			if d, err := settleWriteback(ctx, 32<<20, time.Minute); err != nil && ctx.Err() == nil {
				log("reading /proc/meminfo: %v", err)
			} else if d > 32<<20 {
				log("writeback did not settle in a minute: %d MiB dirty or under writeback", d>>20)
			}
			what := fmt.Sprintf("round %d/%d: %s", round+1, cfg.rounds, rw.pairing)
			log("%s", what)
			r := b.runPair(ctx, rw.pairing, round)
			if r.err != nil {
				log("%s failed: %v", what, r.err)
			} else {
				log("%s: %.2f s, %.1f MB/s, downloader CPU %.2f+%.2f s, seeder CPU %.2f+%.2f s", what, r.seconds, r.mbps(cfg.size),
					r.dlCPU.user.Seconds(), r.dlCPU.sys.Seconds(), r.seedCPU.user.Seconds(), r.seedCPU.sys.Seconds())
			}
			rw.results = append(rw.results, r)
		}
	}
	if ctx.Err() != nil {
		log("interrupted")
		return 130
	}
	var table strings.Builder
	printTable(&table, cfg, rows, load0, loadAvg())
	fmt.Print(table.String())
	if cfg.outDir != "" {
		if err := writeOut(cfg, rows, table.String()); err != nil {
			log("%v", err)
			return 1
		}
	}
	for _, rw := range rows {
		for _, r := range rw.results {
			if r.err != nil {
				return 1
			}
		}
	}
	return 0
}

// writeOut writes the table and the rate-over-time plot into cfg.outDir.
func writeOut(cfg *config, rows []*row, table string) error {
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.outDir, "transfer.md"), []byte(table), 0o644); err != nil {
		return err
	}
	var lines []rateLine
	for _, rw := range rows {
		if r, ok := medianRound(rw.results, cfg.size); ok {
			lines = append(lines, rateLine{label: rowLabel(rw.pairing), samples: r.samples})
		}
	}
	title := fmt.Sprintf("%s over loopback: the round of each pairing's median rate", benchproc.HumanBytes(cfg.size))
	return plotRates(filepath.Join(cfg.outDir, "transfer-rate.svg"), title, lines)
}

// medianRound is the successful result of the median rate.
func medianRound(rs []result, size int64) (result, bool) {
	ok := slices.DeleteFunc(slices.Clone(rs), func(r result) bool { return r.err != nil })
	if len(ok) == 0 {
		return result{}, false
	}
	slices.SortFunc(ok, func(a, b result) int { return cmp.Compare(a.mbps(size), b.mbps(size)) })
	return ok[len(ok)/2], true
}

// rowLabel names a pairing for the plot's legend.
func rowLabel(pg pairing) string {
	if pg.pair == "bare" {
		return "bare pipeline"
	}
	s, d, _ := splitPair(pg.pair)
	l := implNames[s] + " → " + implNames[d]
	if len(pg.t.format) > 0 && pg.t.format != "v2" {
		l += " (" + pg.t.format + ")"
	}
	if pg.enc != "" && pg.pair != "lt-lt" {
		l += ", shoal --encryption " + pg.enc
	}
	return l
}

// loadAvg is /proc/loadavg's three load averages, for the table's header.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// buildBare builds the bare pipeline into dst.
func buildBare(ctx context.Context, dst string) error {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return fmt.Errorf("finding the module root for go build: %w", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", dst, "./cmd/benchtransfer/bare")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/benchtransfer/bare: %w", err)
	}
	return nil
}

// needsImpl reports whether any pair runs impl ("shoal", "lt", "bare").
func needsImpl(pairs []string, impl string) bool {
	for _, p := range pairs {
		if s, d, _ := splitPair(p); s == impl || d == impl {
			return true
		}
	}
	return false
}

type bench struct {
	cfg    *config
	tmp    string
	src    string
	srcSum []byte
	bare   string // the bare pipeline's binary
	log    func(string, ...any)
}

// torrent is the benchmark file's torrent in one format.
type torrent struct {
	format   string
	path     string
	infoHash string // as shoal create prints it: v2 if the torrent has one, else v1
}

func (b *bench) runPair(ctx context.Context, pg pairing, round int) (r result) {
	r.round = round
	t, pair, enc := pg.t, pg.pair, pg.enc
	seeder, downloader, _ := splitPair(pair)
	name := fmt.Sprintf("r%d-%s-%s", round+1, t.format, pair) // of the download dir and the logs
	if pair == "bare" {
		name = fmt.Sprintf("r%d-bare", round+1)
	}
	if enc != "" {
		name += "-" + enc
	}
	dlDir := filepath.Join(b.tmp, "dl-"+name)
	if err := os.Mkdir(dlDir, 0o755); err != nil {
		r.err = err
		return r
	}
	if !b.cfg.keep {
		defer os.RemoveAll(dlDir)
	}

	nSeeds := b.cfg.seeders
	if pair == "bare" {
		nSeeds = 1
	}
	var seeds []*proc
	var addrs []string
	for i := range nSeeds {
		sname := name
		if nSeeds > 1 {
			sname = fmt.Sprintf("%s-s%d", name, i+1)
		}
		seed, addr, err := b.startSeeder(ctx, t, seeder, sname, enc)
		if seed != nil {
			seeds = append(seeds, seed)
			defer seed.Stop()
		}
		if err != nil {
			r.err = fmt.Errorf("%s seeder: %w", seeder, err)
			return r
		}
		addrs = append(addrs, addr)
	}

	var argv []string
	peers := func() (a []string) {
		for _, addr := range addrs {
			a = append(a, "--peer", addr)
		}
		return a
	}
	switch downloader {
	case "lt":
		argv = append([]string{b.cfg.python, b.cfg.ltPeer, "get", t.path, dlDir}, peers()...)
		argv = append(argv, "--timeout", strconv.Itoa(int(b.cfg.timeout.Seconds())))
	case "shoal":
		argv = append([]string{b.cfg.shoal, "get", t.path, "-o", dlDir}, peers()...)
		argv = append(argv, "--no-dht", "--listen", "127.0.0.1:0")
		if enc != "" {
			argv = append(argv, "--encryption", enc)
		}
	case "bare":
		argv = []string{b.bare, "get", addrs[0], filepath.Join(dlDir, dataName),
			strconv.FormatInt(b.cfg.size, 10), strconv.FormatInt(b.cfg.pieceLength, 10)}
	}
	dctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	// The seeders' CPU is summed: it is what serving the file cost.
	seedCPU0 := make([]cpuTimes, len(seeds))
	var seedErr error
	for i, s := range seeds {
		var err error
		if seedCPU0[i], err = procCPU(s.Cmd.Process.Pid); err != nil {
			seedErr = err
		}
	}
	t0 := time.Now()
	dl, err := start(dctx, downloader+" downloader", filepath.Join(b.tmp, name+"-downloader.log"), argv)
	if err != nil {
		r.err = err
		return r
	}
	samples := make(chan []sample, 1)
	go func() { samples <- sampleProgress(dl.Cmd.Process.Pid, 250*time.Millisecond, dl.Done) }()
	<-dl.Done
	r.seconds = time.Since(t0).Seconds()
	for i, s := range seeds {
		c, err := procCPU(s.Cmd.Process.Pid)
		if err != nil {
			seedErr = err
		}
		d := c.sub(seedCPU0[i])
		r.seedCPU.user += d.user
		r.seedCPU.sys += d.sys
	}
	if seedErr != nil {
		r.seedCPU = cpuTimes{}
	}
	r.samples = <-samples
	r.dlCPU = rusageCPU(dl.Cmd.ProcessState)
	r.peakRSS, r.peakAnon = dl.peak()
	if v := benchproc.LineValue(dl.stdout(), "done: "); v != "" && downloader == "lt" {
		// lt_peer.py times itself from adding the torrent; the gap to our
		// wall time is interpreter start-up and session set-up and teardown.
		if f := strings.Fields(v); len(f) >= 2 {
			r.selfSecs, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if dl.Err != nil {
		if dctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			r.err = fmt.Errorf("%s downloader timed out after %v%s", downloader, b.cfg.timeout, dl.LogTail(tailBytes))
		} else {
			r.err = fmt.Errorf("%s downloader: %v%s", downloader, dl.Err, dl.LogTail(tailBytes))
		}
		return r
	}
	// Stop the seeders before hashing so they do not compete for the CPU
	// (nor keep serving a finished peer) while we read the copy back.
	for _, s := range seeds {
		s.Stop()
	}

	sum, n, err := benchproc.FileSHA256(filepath.Join(dlDir, dataName))
	if err != nil {
		r.err = fmt.Errorf("reading the downloaded copy: %w", err)
		return r
	}
	if n != b.cfg.size || !bytes.Equal(sum, b.srcSum) {
		r.err = fmt.Errorf("downloaded copy differs from the source (%d bytes, sha256 %x; want %d bytes, %x)", n, sum, b.cfg.size, b.srcSum)
	}
	return r
}

// startSeeder starts a seeder of t and waits until it serves, returning its
// listen address. name tells its log apart. The returned proc, if any, must
// be stopped even when err is set.
func (b *bench) startSeeder(ctx context.Context, t torrent, impl, name, enc string) (*proc, string, error) {
	logPath := filepath.Join(b.tmp, name+"-seeder.log")
	var argv []string
	switch impl {
	case "lt":
		argv = []string{b.cfg.python, b.cfg.ltPeer, "seed", t.path, filepath.Dir(b.src)}
	case "shoal":
		argv = []string{b.cfg.shoal, "seed", b.src, "--torrent", t.path,
			"--listen", "127.0.0.1:0", "--no-dht"}
		if enc != "" {
			argv = append(argv, "--encryption", enc)
		}
	case "bare":
		argv = []string{b.bare, "seed", b.src}
	}
	p, err := start(ctx, impl+" seeder", logPath, argv)
	if err != nil {
		return nil, "", err
	}
	// lt_peer.py says "seeding" once its hash check is done; shoal's
	// contract is to print magnet: last, just before it serves.
	ready := "seeding"
	if impl == "shoal" {
		ready = "magnet: "
	}
	// The child runs under ctx, not wctx: reaching the deadline fails the
	// pair but leaves stopping the seeder to the caller.
	wctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	vals, err := p.WaitReady(wctx, ready, "listening: ", "info-hash: ", "info-hash-v1: ")
	switch {
	case errors.Is(err, benchproc.ErrExited):
		return p, "", fmt.Errorf("exited before serving: %v%s", p.Err, p.LogTail(tailBytes))
	case err != nil && ctx.Err() != nil:
		return p, "", ctx.Err()
	case err != nil:
		return p, "", fmt.Errorf("not serving after %v%s", b.cfg.timeout, p.LogTail(tailBytes))
	}
	addr := vals["listening: "]
	if addr == "" {
		return p, "", errors.New("ready before printing listening:")
	}
	if ih := seededHash(vals); ih != "" && t.infoHash != "" && !strings.EqualFold(ih, t.infoHash) {
		return p, "", fmt.Errorf("seeds info-hash %s, the %s torrent has %s", ih, t.format, t.infoHash)
	}
	return p, addr, nil
}

// seededHash is the info-hash a ready seeder printed, in the form shoal
// create prints it (v2 if the torrent has one, else v1), or "" if the seeder
// did not say. lt_peer.py prints the v2 hash, all zeros for a v1 torrent,
// and the v1 hash under a key of its own (if its version prints it).
func seededHash(vals map[string]string) string {
	ih := vals["info-hash: "]
	if ih != "" && strings.Trim(ih, "0") == "" {
		ih = vals["info-hash-v1: "]
	}
	return ih
}

// tailBytes is how much of a child's log goes into an error message.
const tailBytes = 2000

// proc is a running child. Its stdout lines arrive on Lines; stdout and
// stderr both go to a log file for post-mortems. proc keeps all of stdout
// and the child's peak memory as well.
type proc struct {
	*benchproc.Proc

	mu   sync.Mutex
	out  strings.Builder
	hwm  int64
	anon int64
}

// start runs argv in its own process group (see benchproc.Start) and
// samples its memory until it is reaped.
func start(ctx context.Context, name, logPath string, argv []string) (*proc, error) {
	p := &proc{}
	bp, err := benchproc.Start(ctx, benchproc.Spec{
		Name: name, LogPath: logPath, Argv: argv, Lines: 256,
		OnStdout:  p.addLine,
		StdinPipe: true, // lt_peer.py seeders exit when it closes
	})
	if err != nil {
		return nil, err
	}
	p.Proc = bp
	go p.pollRSS()
	return p, nil
}

func (p *proc) addLine(line string) {
	p.mu.Lock()
	p.out.WriteString(line + "\n")
	p.mu.Unlock()
}

// stdout returns everything the child printed on stdout so far.
func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// peak returns the highest VmHWM and RssAnon seen, in bytes.
func (p *proc) peak() (hwm, anon int64) {
	p.mu.Lock()
	hwm, anon = p.hwm, p.anon
	p.mu.Unlock()
	if hwm == 0 && p.Cmd.ProcessState != nil {
		// Exited before the first poll. ru_maxrss is the same peak, though
		// it may also count our own RSS from before the child's exec.
		if ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			hwm = ru.Maxrss << 10
		}
	}
	return hwm, anon
}

// pollRSS samples the child's memory every 100 ms until it is reaped.
// VmHWM is the kernel's own high-water mark, but /proc/PID vanishes with the
// process, so the last sample before exit is the one that counts.
func (p *proc) pollRSS() {
	path := fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil {
			hwm, anon := statusKB(data, "VmHWM:"), statusKB(data, "RssAnon:")
			p.mu.Lock()
			p.hwm, p.anon = max(p.hwm, hwm<<10), max(p.anon, anon<<10)
			p.mu.Unlock()
		}
		select {
		case <-p.Done:
			return
		case <-t.C:
		}
	}
}

// statusKB reads a "Key:   123 kB" field from /proc/PID/status.
func statusKB(data []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// seedersText says how many seeders served each torrent transfer.
func seedersText(n int) string {
	if n == 1 {
		return "one seeder"
	}
	return fmt.Sprintf("%d seeders at once (their CPU summed; the bare pipeline has one)", n)
}

var implNames = map[string]string{"lt": "libtorrent 2.0", "shoal": "shoal", "bare": "bare pipeline"}

// printTable writes one row per pairing: the median of its rounds and
// their spread, and each round's rate so a reader can compare pairings
// round by round (the machine's state changes between rounds, much less
// within one).
func printTable(w io.Writer, cfg *config, rows []*row, load0, load1 string) {
	fmt.Fprintf(w, "Transfer of %s (%d bytes) over loopback, piece length %s, TCP only, %s, one downloader; %d rounds; %d CPUs, %s/%s; load average %s at the start, %s at the end.\n\n",
		benchproc.HumanBytes(cfg.size), cfg.size, benchproc.HumanBytes(cfg.pieceLength), seedersText(cfg.seeders), cfg.rounds, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, load0, load1)
	// The encryption column is there only when -encryption was given.
	encCol, encSep := "", ""
	if cfg.encryptions[0] != "" {
		encCol, encSep = " shoal --encryption |", "---|"
	}
	gib := float64(cfg.size) / (1 << 30)
	fmt.Fprintln(w, "| Format | Seeder | Downloader |"+encCol+" MB/s median | MB/s min–max | MB/s by round | Seconds median | Downloader CPU s/GiB user+sys | Seeder CPU s/GiB user+sys | Downloader peak RSS (MiB) | peak RssAnon (MiB) | Notes |")
	fmt.Fprintln(w, "|---|---|---|"+encSep+"---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, rw := range rows {
		s, d, _ := splitPair(rw.pair)
		format := rw.t.format
		if rw.pair == "bare" {
			format, s, d = "–", "bare sendfile", "bare recv+SHA-256+pwrite"
		} else {
			s, d = implNames[s], implNames[d]
		}
		enc := ""
		if encCol != "" {
			enc = " " + rw.enc + " |"
			if rw.pair == "lt-lt" || rw.pair == "bare" {
				enc = " – |"
			}
		}
		var rates, secs, dlU, dlS, sdU, sdS []float64
		var byRound []string
		var hwm, anon int64
		var fails []string
		for _, r := range rw.results {
			if r.err != nil {
				msg, _, _ := strings.Cut(r.err.Error(), "\n")
				fails = append(fails, fmt.Sprintf("round %d failed: %s", r.round+1, strings.ReplaceAll(msg, "|", `\|`)))
				byRound = append(byRound, "–")
				continue
			}
			rates = append(rates, r.mbps(cfg.size))
			byRound = append(byRound, fmt.Sprintf("%.0f", r.mbps(cfg.size)))
			secs = append(secs, r.seconds)
			dlU, dlS = append(dlU, r.dlCPU.user.Seconds()/gib), append(dlS, r.dlCPU.sys.Seconds()/gib)
			sdU, sdS = append(sdU, r.seedCPU.user.Seconds()/gib), append(sdS, r.seedCPU.sys.Seconds()/gib)
			hwm, anon = max(hwm, r.peakRSS), max(anon, r.peakAnon)
		}
		notes := "sha256 ok"
		if len(fails) > 0 {
			notes = strings.Join(fails, "; ")
		}
		if len(rates) == 0 {
			fmt.Fprintf(w, "| %s | %s | %s |%s – | – | %s | – | – | – | – | – | %s |\n", format, s, d, enc, strings.Join(byRound, " "), notes)
			continue
		}
		rt := spreadOf(rates)
		cpu := func(u, s []float64) string {
			mu, ms := spreadOf(u).med, spreadOf(s).med
			return fmt.Sprintf("%.2f (%.2f+%.2f)", mu+ms, mu, ms)
		}
		fmt.Fprintf(w, "| %s | %s | %s |%s %.0f | %.0f–%.0f | %s | %.2f | %s | %s | %.0f | %.0f | %s |\n", format, s, d, enc,
			rt.med, rt.lo, rt.hi, strings.Join(byRound, " "), spreadOf(secs).med, cpu(dlU, dlS), cpu(sdU, sdS),
			float64(hwm)/(1<<20), float64(anon)/(1<<20), notes)
	}
	fmt.Fprintln(w, `
- Rounds: each runs every pairing once, every other round in reverse order. Before each transfer the page cache's dirty data is synced and waited on until Dirty+Writeback in /proc/meminfo is at most 32 MiB, so no transfer pays for the writeback of the one before it. MB/s by round lists the rounds in the order they ran.
- Format: of the torrent, made once by shoal create --format for all its pairs. A v2 downloader checks each piece against the SHA-256 merkle tree, a v1 downloader against its SHA-1; a hybrid one, shoal or libtorrent, checks both. The bare pipeline has no format: its seeder sendfiles the file to one TCP connection; its downloader reads a piece at a time, SHA-256es it and pwrites it, with no protocol, no request pipeline and no checks: the least a downloader can do on this machine.
- Seconds: wall time of the downloader process, from start to exit, including its start-up and shutdown; the seeder had finished its own start-up (and hash check) before the downloader started. MB/s: 1 MB = 10^6 bytes, over those seconds. Figures are medians, with the least and greatest round beside.
- CPU s/GiB: user+system CPU seconds per GiB transferred, medians over the rounds (user and system apart in parentheses). The downloader's is all of its life, from wait4's rusage; the seeder's is what /proc/PID/stat counted while the downloader ran.
- Peak RSS: the downloader's VmHWM from /proc/PID/status, sampled every 100 ms, the greatest over the rounds. It counts resident file-backed pages, so a client that memory-maps its files (libtorrent 2.0 does) shows much of the file here; RssAnon (heap and stacks) is the part the client allocated itself.
- The source file was just written, so the seeder reads it from the page cache, and the downloader writes into the page cache: disk reads are left out, and writeback counts only as far as the kernel makes writers wait for it.`)
}
