// Command swarmbench measures how long a swarm of shoal peers takes to
// distribute one file on loopback, with every peer's upload capped so the
// run is bandwidth-bound rather than CPU-bound, and compares it with one
// plain HTTP server held to the same upload cap and with the theoretical
// minimum distribution time of a swarm.
//
// For each N in -n it starts, as real processes: a tracker (`shoal
// tracker`), one seeder (`shoal seed --max-upload-rate UP -t URL`) and N
// downloaders (`shoal get --max-upload-rate UP -t URL --seed`), all at
// once, and records when each downloader prints its `done:` line. The
// downloaders keep seeding after they finish (`--seed`) until the whole
// swarm is done, as the fluid model behind the theoretical minimum assumes;
// -linger=false makes them exit on completion instead.
//
// The HTTP baseline serves the same file from an in-process net/http server
// on 127.0.0.1 through one token bucket of UP bytes/s shared by all
// clients, to N concurrent in-process clients.
//
// The theoretical minimum is max(F/u_s, N·F/(u_s + Σu_i), F/d_min) with
// u_s = u_i = UP; downloads are not capped, so d_min = ∞ and the last term
// is 0.
//
// With -scenarios it then runs, each once with -scenario-n downloaders,
// the adverse cases of the swarm issue (see scenario.go): the seeder
// leaving after one copy, the tracker dying, churn, a poisoning peer and
// a free-rider.
//
// Every copy, from shoal or HTTP, is checked against the source by SHA-256.
// Results go to -out: results.csv, results.md, peers.csv and completion.svg,
// and scenarios.csv and scenarios.md for the scenarios. Run it from the
// module root:
//
//	go run ./cmd/swarmbench -n 1,2,4,8,16 -size 16MiB -up 4M -out /tmp/swarmbench
//	go run ./cmd/swarmbench -n '' -scenarios all -scenario-n 16 -out /tmp/swarmbench
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
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
	"golang.org/x/time/rate"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// dataName is the base name of the benchmark file, and so the torrent's name.
const dataName = "swarmbench.bin"

type config struct {
	shoal       string
	size        int64
	sizeArg     string
	up          int64
	upArg       string
	pieceLength int64
	ns          []int
	out         string
	timeout     time.Duration
	linger      bool
	keep        bool
	skipHTTP    bool
	workDir     string
	// scenarios run after the plain runs, each with scenarioN downloaders.
	scenarios    []scenario
	scenarioN    int
	scenarioSeed uint64
}

func main() {
	log := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "swarmbench: "+format+"\n", a...)
	}
	cfg, err := parseFlags()
	if err != nil {
		log("%v", err)
		os.Exit(2)
	}
	// Children sit in their own process groups (see start), so Ctrl-C
	// reaches only us; cancelling ctx is what passes it on to them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, log)
	stop()
	os.Exit(code)
}

func parseFlags() (*config, error) {
	var cfg config
	var ns, plen string
	flag.StringVar(&cfg.shoal, "shoal", "", "shoal binary (default: go build ./cmd/shoal into the temp dir)")
	flag.StringVar(&cfg.sizeArg, "size", "16MiB", "size of the file to distribute (bytes, or with k/KiB/M/MiB/G/GiB; powers of 1024)")
	flag.StringVar(&cfg.upArg, "up", "4M", "upload cap of the seeder, of every downloader and of the HTTP server, in bytes/s (passed as --max-upload-rate; k/M/G are powers of 1024)")
	flag.StringVar(&plen, "piece-length", "64KiB", "piece length of the torrent (shoal create would pick 16KiB for 16MiB)")
	flag.StringVar(&ns, "n", "1,2,4,8,16,32", "comma-separated numbers of downloaders (may be empty when -scenarios is given)")
	flag.StringVar(&cfg.out, "out", "swarmbench-out", "directory for results.csv, results.md, peers.csv and completion.svg")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "limit for each run (one N, shoal or HTTP, or one scenario)")
	flag.BoolVar(&cfg.linger, "linger", true, "downloaders keep seeding (--seed) until the whole swarm is done")
	flag.BoolVar(&cfg.skipHTTP, "skip-http", false, "leave out the HTTP baseline")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temp dir (data, torrent, downloads, logs)")
	flag.StringVar(&cfg.workDir, "workdir", "", "parent of the temp dir (default: $TMPDIR); needs room for (max N + 1) × -size")
	var scen string
	flag.StringVar(&scen, "scenarios", "", "comma-separated scenarios to run after the plain runs, or all: "+strings.Join(scenarioNames(), ", ")+"; results in scenarios.csv and scenarios.md")
	flag.IntVar(&cfg.scenarioN, "scenario-n", 16, "number of downloaders in each scenario")
	flag.Uint64Var(&cfg.scenarioSeed, "scenario-seed", 1, "seed of churn's random choice of victims and kill times")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	var err error
	if cfg.size, err = benchproc.ParseSize(cfg.sizeArg); err != nil || cfg.size <= 0 {
		return nil, fmt.Errorf("bad -size %q", cfg.sizeArg)
	}
	if cfg.up, err = benchproc.ParseSize(cfg.upArg); err != nil || cfg.up <= 0 {
		return nil, fmt.Errorf("bad -up %q: want a positive rate such as 4M", cfg.upArg)
	}
	if cfg.pieceLength, err = benchproc.ParseSize(plen); err != nil || cfg.pieceLength < 16<<10 || cfg.pieceLength&(cfg.pieceLength-1) != 0 {
		return nil, fmt.Errorf("bad -piece-length %q: want a power of two ≥ 16KiB", plen)
	}
	for _, s := range strings.Split(ns, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("bad -n entry %q: want 1…256", s)
		}
		cfg.ns = append(cfg.ns, n)
	}
	if cfg.scenarios, err = parseScenarios(scen); err != nil {
		return nil, err
	}
	if cfg.scenarioN < 1 || cfg.scenarioN > 256 {
		return nil, fmt.Errorf("bad -scenario-n %d: want 1…256", cfg.scenarioN)
	}
	if len(cfg.ns) == 0 && len(cfg.scenarios) == 0 {
		return nil, errors.New("-n and -scenarios list no runs")
	}
	if cfg.timeout <= 0 {
		return nil, errors.New("-timeout must be positive")
	}
	return &cfg, nil
}

// row is the outcome for one N.
type row struct {
	n          int
	tmin       float64   // seconds
	shoal      []float64 // per-downloader completion, seconds from the common start
	http       []float64
	shoalErr   error
	httpErr    error
	shoalWaste int64 // bytes downloaded and thrown away, summed over peers
}

func run(ctx context.Context, cfg *config, log func(string, ...any)) int {
	tmp, err := os.MkdirTemp(cfg.workDir, "swarmbench-")
	if err != nil {
		log("%v", err)
		return 1
	}
	if cfg.keep {
		log("temp dir: %s (kept)", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		log("%v", err)
		return 1
	}

	if cfg.shoal == "" {
		cfg.shoal = filepath.Join(tmp, "shoal")
		log("building ./cmd/shoal")
		if err := benchproc.BuildShoal(ctx, cfg.shoal); err != nil {
			log("%v", err)
			return 1
		}
	}

	src, srcSum, err := benchproc.WriteSource(ctx, tmp, dataName, cfg.size, log)
	if err != nil {
		log("%v", err)
		return 1
	}
	torrent := filepath.Join(tmp, "bench.torrent")
	if _, err := benchproc.CreateTorrent(ctx, cfg.shoal, src, cfg.pieceLength, torrent); err != nil {
		log("shoal create: %v", err)
		return 1
	}

	b := &bench{cfg: cfg, tmp: tmp, src: src, srcSum: srcSum, torrent: torrent, log: log}
	rows := b.runPlain(ctx)
	var results []scenarioResult
	if len(cfg.scenarios) > 0 && ctx.Err() == nil {
		results = b.runScenarios(ctx, cfg.scenarios)
	}
	if ctx.Err() != nil {
		log("interrupted")
		return 130
	}
	code := 0
	if len(rows) > 0 {
		code = max(code, writePlain(cfg, rows, log))
	}
	if len(results) > 0 {
		code = max(code, writeScenarios(cfg, results, log))
	}
	log("wrote %s", cfg.out)
	return code
}

// runPlain runs the swarm, and the HTTP baseline unless -skip-http, for
// every N in -n.
func (b *bench) runPlain(ctx context.Context) []row {
	cfg, log := b.cfg, b.log
	var rows []row
	for _, n := range cfg.ns {
		if ctx.Err() != nil {
			break
		}
		r := row{n: n, tmin: theoreticalMin(n, cfg.size, cfg.up)}
		// Each run starts with the dirty pages of the last one written back,
		// so no run pays for another's writeback.
		syscall.Sync()
		log("N=%d: shoal swarm (theoretical minimum %.2f s)", n, r.tmin)
		r.shoal, r.shoalWaste, r.shoalErr = b.runSwarm(ctx, n)
		if r.shoalErr != nil {
			log("N=%d: shoal failed: %v", n, r.shoalErr)
		} else {
			log("N=%d: shoal max %.2f s, mean %.2f s; per peer %s", n, slices.Max(r.shoal), mean(r.shoal), fmtTimes(r.shoal))
		}
		if !cfg.skipHTTP && ctx.Err() == nil {
			log("N=%d: HTTP baseline", n)
			r.http, r.httpErr = b.runHTTP(ctx, n)
			if r.httpErr != nil {
				log("N=%d: HTTP failed: %v", n, r.httpErr)
			} else {
				log("N=%d: HTTP max %.2f s, mean %.2f s", n, slices.Max(r.http), mean(r.http))
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// writePlain writes results.csv, peers.csv, results.md and completion.svg
// to -out and the Markdown table to stdout, and returns the exit code: 1
// if a file could not be written or a run failed.
func writePlain(cfg *config, rows []row, log func(string, ...any)) int {
	code := 0
	for _, w := range []struct {
		name string
		fn   func(io.Writer, *config, []row) error
	}{{"results.csv", writeCSV}, {"peers.csv", writePeersCSV}, {"results.md", writeMarkdown}} {
		if err := writeFile(filepath.Join(cfg.out, w.name), func(f io.Writer) error { return w.fn(f, cfg, rows) }); err != nil {
			log("writing %s: %v", w.name, err)
			code = 1
		}
	}
	if err := writePlot(filepath.Join(cfg.out, "completion.svg"), cfg, rows); err != nil {
		log("writing completion.svg: %v", err)
		code = 1
	}
	writeMarkdown(os.Stdout, cfg, rows)
	for _, r := range rows {
		if r.shoalErr != nil || r.httpErr != nil {
			code = 1
		}
	}
	return code
}

// theoreticalMin is the minimum time to get a file of f bytes to n
// downloaders from a seeder uploading u bytes/s, every downloader also
// uploading u bytes/s and downloading without limit (d_min = ∞):
// max(F/u_s, N·F/(u_s + N·u)).
func theoreticalMin(n int, f, u int64) float64 { return minTime(n, n, f, u) }

// minTime is the theoretical minimum for n receivers of whom only
// uploaders upload (a free-rider receives without uploading), every
// uploader and the seeder at u bytes/s: max(F/u_s, N·F/(u_s + Σu_i)).
func minTime(n, uploaders int, f, u int64) float64 {
	F, us := float64(f), float64(u)
	return max(F/us, float64(n)*F/(us+float64(uploaders)*us))
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func fmtTimes(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

type bench struct {
	cfg     *config
	tmp     string
	src     string
	srcSum  []byte
	torrent string
	log     func(string, ...any)
}

// runSwarm distributes the file to n shoal downloaders through a fresh
// tracker and seeder, and returns each downloader's completion time in
// seconds from the moment they were all started.
func (b *bench) runSwarm(ctx context.Context, n int) (times []float64, wasted int64, err error) {
	runDir, cleanup, err := b.makeRunDir(fmt.Sprintf("n%d", n))
	if err != nil {
		return nil, 0, err
	}
	defer cleanup()
	rctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	env, err := b.newSwarm(rctx, runDir, envOptions{})
	if err != nil {
		return nil, 0, err
	}
	defer env.close()

	dls := make([]*proc, n)
	dirs := make([]string, n)
	t0 := time.Now()
	for i := range n {
		dirs[i] = filepath.Join(runDir, fmt.Sprintf("dl%02d", i))
		if dls[i], err = env.startGet(fmt.Sprintf("downloader %d", i), fmt.Sprintf("dl%02d.log", i), dirs[i], nil); err != nil {
			return nil, 0, err
		}
	}
	// Wait for every downloader's done: line (or, without --seed, its exit).
	times = make([]float64, n)
	for i, p := range dls {
		at, err := waitDone(ctx, rctx, p, b.cfg.timeout)
		if err != nil {
			return nil, 0, err
		}
		times[i] = at.Sub(t0).Seconds()
		wasted += wastedBytes(p.doneText())
	}
	// Stop everyone before hashing, so nothing competes for the CPU.
	env.close()
	for i, dir := range dirs {
		if err := b.verifyCopy(dir); err != nil {
			return nil, 0, fmt.Errorf("downloader %d: %w", i, err)
		}
	}
	return times, wasted, nil
}

// wastedBytes reads "(N wasted)" from a done: line.
func wastedBytes(done string) int64 {
	i := strings.Index(done, " wasted)")
	if i < 0 {
		return 0
	}
	j := strings.LastIndexByte(done[:i], '(')
	if j < 0 {
		return 0
	}
	n, _ := strconv.ParseInt(done[j+1:i], 10, 64)
	return n
}

// runHTTP serves the file to n concurrent clients from one net/http server
// whose writes all draw on one token bucket of -up bytes/s, and returns each
// client's completion time.
func (b *bench) runHTTP(ctx context.Context, n int) ([]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	// The same bucket shape as shoal's upload limiter: a few blocks, or an
	// eighth of a second of traffic.
	lim := rate.NewLimiter(rate.Limit(b.cfg.up), int(max(4*16<<10, b.cfg.up/8)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(b.src)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(b.cfg.size, 10))
		buf := make([]byte, 16<<10)
		for {
			k, rerr := f.Read(buf)
			if k > 0 {
				if lim.WaitN(r.Context(), k) != nil {
					return
				}
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
			}
			if rerr != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true, Proxy: nil}}
	url := "http://" + ln.Addr().String() + "/" + dataName
	times := make([]float64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			got, err := io.Copy(h, resp.Body)
			times[i] = time.Since(t0).Seconds()
			switch {
			case err != nil:
				errs[i] = err
			case resp.StatusCode != http.StatusOK:
				errs[i] = fmt.Errorf("HTTP %s", resp.Status)
			case got != b.cfg.size || !bytes.Equal(h.Sum(nil), b.srcSum):
				errs[i] = fmt.Errorf("copy differs from the source (%d bytes, sha256 %x)", got, h.Sum(nil))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
	}
	return times, nil
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if err := fn(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stats returns max, mean and max/tmin of xs, or NaNs when the run failed.
func stats(xs []float64, err error) (mx, mn float64) {
	if err != nil || len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Max(xs), mean(xs)
}

func writeCSV(w io.Writer, cfg *config, rows []row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"n", "size_bytes", "upload_cap_bytes_per_s", "theoretical_min_s",
		"shoal_max_s", "shoal_mean_s", "http_max_s", "http_mean_s",
		"shoal_max_over_min", "shoal_max_over_http_max", "http_max_over_min", "shoal_wasted_bytes", "error"})
	f := csvSeconds
	for _, r := range rows {
		smax, smean := stats(r.shoal, r.shoalErr)
		hmax, hmean := stats(r.http, r.httpErr)
		var errs []string
		for _, e := range []error{r.shoalErr, r.httpErr} {
			if e != nil {
				msg, _, _ := strings.Cut(e.Error(), "\n")
				errs = append(errs, msg)
			}
		}
		cw.Write([]string{strconv.Itoa(r.n), strconv.FormatInt(cfg.size, 10), strconv.FormatInt(cfg.up, 10), f(r.tmin),
			f(smax), f(smean), f(hmax), f(hmean), f(smax / r.tmin), f(smax / hmax), f(hmax / r.tmin),
			strconv.FormatInt(r.shoalWaste, 10), strings.Join(errs, "; ")})
	}
	cw.Flush()
	return cw.Error()
}

func writePeersCSV(w io.Writer, cfg *config, rows []row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"n", "kind", "peer", "completion_s"})
	for _, r := range rows {
		for kind, xs := range map[string][]float64{"shoal": r.shoal, "http": r.http} {
			for i, x := range xs {
				cw.Write([]string{strconv.Itoa(r.n), kind, strconv.Itoa(i), strconv.FormatFloat(x, 'f', 3, 64)})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeMarkdown(w io.Writer, cfg *config, rows []row) error {
	fmt.Fprintf(w, "Distribution of %s (%d bytes, piece length %s) over loopback; seeder, every downloader and the HTTP server capped at %s/s upload (%d B/s); downloads uncapped; %d CPUs, %s/%s.\n\n",
		benchproc.HumanBytes(cfg.size), cfg.size, benchproc.HumanBytes(cfg.pieceLength), benchproc.HumanBytes(cfg.up), cfg.up, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(w, "| N | theoretical min (s) | shoal max (s) | shoal mean (s) | HTTP max (s) | HTTP mean (s) | shoal max / min | shoal max / HTTP max | HTTP max / min |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	f := mdSeconds
	for _, r := range rows {
		smax, smean := stats(r.shoal, r.shoalErr)
		hmax, hmean := stats(r.http, r.httpErr)
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.n, f(r.tmin), f(smax), f(smean), f(hmax), f(hmean),
			f(smax/r.tmin), f(smax/hmax), f(hmax/r.tmin))
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.shoalErr != nil {
			msg, _, _ := strings.Cut(r.shoalErr.Error(), "\n")
			fmt.Fprintf(w, "- N=%d shoal failed: %s\n", r.n, msg)
		}
		if r.httpErr != nil {
			msg, _, _ := strings.Cut(r.httpErr.Error(), "\n")
			fmt.Fprintf(w, "- N=%d HTTP failed: %s\n", r.n, msg)
		}
	}
	for _, r := range rows {
		if r.n != 16 {
			continue
		}
		smax, _ := stats(r.shoal, r.shoalErr)
		hmax, _ := stats(r.http, r.httpErr)
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "NOT met"
		}
		vsHTTP := "not measured (-skip-http)"
		if len(r.http) > 0 || r.httpErr != nil {
			vsHTTP = fmt.Sprintf("%.2f — %s", smax/hmax, verdict(smax*3 <= hmax))
		}
		fmt.Fprintf(w, "- Goal at N=16: shoal within 1.3× of the theoretical minimum: %.2f× — %s; shoal at most ⅓ of HTTP: %s.\n",
			smax/r.tmin, verdict(smax <= 1.3*r.tmin), vsHTTP)
	}
	linger := "keep seeding (`--seed`) after completing, until the whole swarm is done"
	if !cfg.linger {
		linger = "exit as soon as they complete (-linger=false)"
	}
	fmt.Fprintf(w, `- Theoretical min: max(F/u_s, N·F/(u_s + Σu_i), F/d_min) with u_s = u_i = the cap; downloads are not capped, so d_min = ∞ and F/d_min = 0. With u_i = u_s the first term always wins: the minimum is F/u_s for every N.
- shoal: one tracker, one seeder and N downloaders, all separate processes on 127.0.0.1, no DHT; the N downloaders are started together and find peers through the tracker (and PEX); they %s. Completion time: from starting the N downloaders to each one's done: line. Process start-up is included.
- HTTP: one in-process net/http server, one token bucket at the cap shared by all its connections; N concurrent in-process clients. Completion time: from starting the clients to the end of each body.
- Every copy, shoal and HTTP, matched the source's SHA-256 (a run that did not is reported as failed).
- Per-peer completion times are in peers.csv.
`, linger)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per-peer completion times (s), in the order the peers were started:")
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.shoalErr == nil {
			fmt.Fprintf(w, "- N=%d shoal: %s\n", r.n, fmtTimes(r.shoal))
		}
		if r.httpErr == nil && len(r.http) > 0 {
			fmt.Fprintf(w, "- N=%d HTTP: %s\n", r.n, fmtTimes(r.http))
		}
	}
	return nil
}

func writePlot(path string, cfg *config, rows []row) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Time to distribute %s, every uploader capped at %s/s", benchproc.HumanBytes(cfg.size), benchproc.HumanBytes(cfg.up))
	p.X.Label.Text = "downloaders N"
	p.Y.Label.Text = "completion time (s)"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, r := range rows {
		ticks = append(ticks, plot.Tick{Value: float64(r.n), Label: strconv.Itoa(r.n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	series := []struct {
		name string
		y    func(row) float64
	}{
		{"theoretical minimum", func(r row) float64 { return r.tmin }},
		{"shoal, last peer", func(r row) float64 { mx, _ := stats(r.shoal, r.shoalErr); return mx }},
		{"shoal, mean", func(r row) float64 { _, mn := stats(r.shoal, r.shoalErr); return mn }},
		{"HTTP, last client", func(r row) float64 { mx, _ := stats(r.http, r.httpErr); return mx }},
		{"HTTP, mean", func(r row) float64 { _, mn := stats(r.http, r.httpErr); return mn }},
	}
	for i, s := range series {
		var xys plotter.XYs
		for _, r := range rows {
			if y := s.y(r); !math.IsNaN(y) {
				xys = append(xys, plotter.XY{X: float64(r.n), Y: y})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		l.Color, pts.Color = c, c
		if i%2 == 0 && i > 0 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		if i == 0 {
			l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// csvSeconds formats seconds for a CSV cell; NaN (no figure) is empty.
func csvSeconds(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}

// mdSeconds formats seconds for a Markdown table; NaN (no figure) is a dash.
func mdSeconds(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}
