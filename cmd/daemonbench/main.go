// Command daemonbench measures what N idle seeds cost in `shoal daemon`
// and in transmission-daemon 3.00, one after the other in the same run,
// on the same data: the 1,000-torrent figures.
//
// It writes N small random files (64 KiB to 1 MiB, most under 256 KiB)
// and a v1 .torrent of each into a temp folder (v1 because Transmission
// 3.00 refuses hybrid metadata), then, for each daemon in turn:
//
//   - starts it on loopback with a session (config) folder of its own, the
//     data folder as its download folder, DHT, local peer discovery and
//     port mapping off (and, in Transmission, PEX and uTP, which shoal's
//     daemon has no switch for: with no peers they do nothing), the same
//     peer port for both;
//   - adds the N torrents one by one through the Transmission RPC, both
//     daemons with the same client code (daemon/rpc.Client, metainfo in
//     base64), and waits until torrent-get reports all N seeding (status
//     6): the data is there, so each check passes;
//   - lets it settle (-settle), then takes its CPU time (utime+stime of
//     /proc/PID/stat) over -idle and its RSS (VmRSS, RssAnon of
//     /proc/PID/status);
//   - stops it with SIGTERM, starts it again on the same folders, and
//     times until the RPC first answers and until it lists all N torrents
//     seeding again; a torrent seen checking its data (status 1 or 2) on
//     the way, or missing, is counted, and so is the CPU the start-up
//     took; after -settle again, its RSS.
//
// It prints a Markdown table and, with -out DIR, writes it to
// DIR/daemon-results.md and the figures to DIR/daemon-results.csv. Run it
// from the module root (it builds ./cmd/shoal unless given -shoal):
//
//	go run ./cmd/daemonbench -n 1000 -idle 60s -out docs/bench
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/internal/benchproc"
)

// allTargets are the daemons -targets may name, in the table's order.
var allTargets = []string{"shoal", "transmission"}

type config struct {
	n            int
	idle, settle time.Duration
	timeout      time.Duration
	targets      []string
	out          string
	shoal        string
	transmission string
	workDir      string
	keep         bool
	seed         uint64
}

func main() {
	log := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "daemonbench: "+format+"\n", a...) }
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		log("%v", err)
		os.Exit(2)
	}
	// The daemons sit in their own process groups (benchproc.Start), so
	// Ctrl-C reaches only us; cancelling ctx is what stops them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log("%v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	var cfg config
	var targets string
	fs := flag.NewFlagSet("daemonbench", flag.ContinueOnError)
	fs.IntVar(&cfg.n, "n", 1000, "number of torrents (and files)")
	fs.DurationVar(&cfg.idle, "idle", 60*time.Second, "how long CPU at rest is measured")
	fs.DurationVar(&cfg.settle, "settle", 15*time.Second, "wait after all torrents seed before measuring (resume records are written, start-up garbage collected)")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "limit for each wait: the RPC to answer, all torrents to seed, a daemon to exit")
	fs.StringVar(&targets, "targets", strings.Join(allTargets, ","), "comma-separated daemons to measure, from "+strings.Join(allTargets, ", "))
	fs.StringVar(&cfg.out, "out", "", "also write daemon-results.md and daemon-results.csv into `DIR`")
	fs.StringVar(&cfg.shoal, "shoal", "", "shoal binary (default: go build ./cmd/shoal into the temp folder)")
	fs.StringVar(&cfg.transmission, "transmission", "transmission-daemon", "transmission-daemon binary")
	fs.StringVar(&cfg.workDir, "workdir", "", "parent of the temp folder (default $TMPDIR)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temp folder (data, torrents, session folders, daemon logs)")
	fs.Uint64Var(&cfg.seed, "seed", 0, "seed of the file sizes and contents (default: the clock)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.n < 1 {
		return nil, fmt.Errorf("bad -n %d: want at least 1", cfg.n)
	}
	if cfg.idle <= 0 || cfg.settle < 0 || cfg.timeout <= 0 {
		return nil, errors.New("-idle and -timeout must be positive, -settle not negative")
	}
	var err error
	if cfg.targets, err = parseTargets(targets); err != nil {
		return nil, err
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	return &cfg, nil
}

// parseTargets reads -targets: names from allTargets, each at most once,
// in the order given.
func parseTargets(s string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			return nil, fmt.Errorf("bad -targets %q: want %s", t, strings.Join(allTargets, ", "))
		}
		if slices.Contains(out, t) {
			return nil, fmt.Errorf("bad -targets: %q given twice", t)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no -targets to measure")
	}
	return out, nil
}

func run(ctx context.Context, cfg *config, log func(string, ...any)) error {
	tmp, err := os.MkdirTemp(cfg.workDir, "daemonbench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		log("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if cfg.shoal == "" && slices.Contains(cfg.targets, "shoal") {
		// Not tmp/shoal: that is the shoal daemon's own folder.
		cfg.shoal = filepath.Join(tmp, "shoal-bin")
		log("building ./cmd/shoal")
		if err := benchproc.BuildShoal(ctx, cfg.shoal); err != nil {
			return err
		}
	}
	began := time.Now()
	set, err := makeTorrents(ctx, filepath.Join(tmp, "data"), cfg.n, cfg.seed)
	if err != nil {
		return err
	}
	log("%d files, %s in all (%s to %s), and their v1 torrents made in %v",
		cfg.n, mib(set.total), benchproc.HumanBytes(set.min), benchproc.HumanBytes(set.max), time.Since(began).Round(time.Millisecond))
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	var results []*result
	for _, name := range cfg.targets {
		d, err := newDaemon(name, cfg, filepath.Join(tmp, name), set.dir, peerPort)
		if err != nil {
			return err
		}
		r, err := measure(ctx, cfg, d, set, log)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	table := markdown(cfg, set, results)
	fmt.Print(table)
	if cfg.out != "" {
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfg.out, "daemon-results.md"), []byte(table), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfg.out, "daemon-results.csv"), []byte(csvText(results)), 0o644); err != nil {
			return err
		}
		log("wrote %s and %s", filepath.Join(cfg.out, "daemon-results.md"), filepath.Join(cfg.out, "daemon-results.csv"))
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
