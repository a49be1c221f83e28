package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// scenario is one of the adverse conditions of the swarm issue, run with
// -scenario-n honest downloaders. run sets up its own swarm in runDir
// under rctx (the scenario's deadline; ctx is the benchmark's, to tell an
// interrupt from a timeout) and fills in res.
type scenario struct {
	name string
	doc  string // what the scenario does, one sentence for scenarios.md
	run  func(b *bench, ctx, rctx context.Context, runDir string, res *scenarioResult) error
}

// scenarios lists every scenario in the order they run.
var scenarios = []scenario{
	{"seeder-leaves", "The seeder runs with `--seed-ratio 1`: it quits once it has uploaded one full copy in total; every downloader must still finish.", (*bench).seederLeaves},
	{"tracker-dies", "Every process also joins a local DHT node; the tracker is SIGKILLed at 25% of the theoretical minimum, and the last quarter of the downloaders only start after that, with the dead tracker and the DHT node to go on.", (*bench).trackerDies},
	{"churn", "A third of the downloaders are SIGKILLed at random points (uniform in 10–90% of the theoretical minimum, before anyone can have finished); half of those (rounded up) are restarted 1 s later with the same -o directory.", (*bench).churn},
	{"poison", "An in-process poisoner (internal/rogue) claims every piece and serves every block corrupted, at the same upload cap; every downloader is given its address with --peer.", (*bench).poison},
	{"free-rider", "An in-process free-rider (internal/rogue) that never unchokes anyone joins through the tracker alongside the N contributing downloaders.", (*bench).freeRider},
}

// scenarioNames lists the names -scenarios accepts besides "all".
func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// parseScenarios turns the -scenarios list into scenarios, in the order of
// the scenarios table.
func parseScenarios(list string) ([]scenario, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == "all":
			for _, name := range scenarioNames() {
				want[name] = true
			}
		case slices.Contains(scenarioNames(), s):
			want[s] = true
		default:
			return nil, fmt.Errorf("unknown scenario %q: want all or some of %s", s, strings.Join(scenarioNames(), ","))
		}
	}
	var out []scenario
	for _, s := range scenarios {
		if want[s.name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// scenarioResult is the outcome of one scenario.
type scenarioResult struct {
	name string
	n    int     // honest downloaders
	tmin float64 // theoretical minimum, seconds
	// total is from starting the downloaders until the last peer that was
	// to finish (restarted ones and the free-rider included) did.
	total float64
	// times are the completion times of the honest downloaders that ran
	// uninterrupted, seconds from the common start.
	times  []float64
	wasted int64    // bytes downloaded and thrown away, summed over peers
	notes  []string // what the scenario observed, for the report
	err    error
}

func (r *scenarioResult) note(format string, a ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

// runScenarios runs each scenario once with cfg.scenarioN downloaders.
func (b *bench) runScenarios(ctx context.Context, list []scenario) []scenarioResult {
	// Children that use the DHT keep their routing tables, and seeders
	// their resume records, in the user's cache: give them one of their
	// own so the runs neither read stale state nor leave any behind.
	if err := os.Setenv("XDG_CACHE_HOME", filepath.Join(b.tmp, "cache")); err != nil {
		b.log("%v", err)
	}
	var results []scenarioResult
	for _, sc := range list {
		if ctx.Err() != nil {
			break
		}
		n := b.cfg.scenarioN
		res := scenarioResult{name: sc.name, n: n, tmin: theoreticalMin(n, b.cfg.size, b.cfg.up)}
		syscall.Sync()
		b.log("scenario %s, N=%d (theoretical minimum %.2f s)", sc.name, n, res.tmin)
		res.err = b.runScenario(ctx, sc, &res)
		if res.err != nil {
			b.log("scenario %s failed: %v", sc.name, res.err)
		} else {
			b.log("scenario %s: total %.2f s, max %.2f s, mean %.2f s; %s", sc.name, res.total,
				slices.Max(res.times), mean(res.times), strings.Join(res.notes, "; "))
		}
		results = append(results, res)
	}
	return results
}

// runScenario gives sc a directory and a deadline of its own and runs it.
func (b *bench) runScenario(ctx context.Context, sc scenario, res *scenarioResult) error {
	runDir, cleanup, err := b.makeRunDir("scenario-" + sc.name)
	if err != nil {
		return err
	}
	defer cleanup()
	rctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	if err := sc.run(b, ctx, rctx, runDir, res); err != nil {
		return err
	}
	if len(res.times) == 0 {
		return fmt.Errorf("no downloader completed")
	}
	return nil
}

// downloader is one honest `shoal get` of a scenario; churn starts some
// more than once, into the same directory.
type downloader struct {
	i    int
	dir  string
	runs int   // how many times it was started
	p    *proc // the latest run
}

// name is how logs and errors call the downloader.
func (d *downloader) name() string { return fmt.Sprintf("downloader %d", d.i) }

// start runs the downloader (again), logging to dlNN.log for the first
// run and dlNN.runK.log for later ones.
func (d *downloader) start(e *swarmEnv, pre []string, extra ...string) error {
	logName := fmt.Sprintf("dl%02d.log", d.i)
	if d.runs > 0 {
		logName = fmt.Sprintf("dl%02d.run%d.log", d.i, d.runs)
	}
	p, err := e.startGet(d.name(), logName, d.dir, pre, extra...)
	if err != nil {
		return err
	}
	d.runs++
	d.p = p
	return nil
}

// startDownloaders starts downloaders numbered from … to-1, each into a
// directory of its own; pre and extra are passed to startGet.
func (e *swarmEnv) startDownloaders(from, to int, pre []string, extra ...string) ([]*downloader, error) {
	var dls []*downloader
	for i := from; i < to; i++ {
		d := &downloader{i: i, dir: filepath.Join(e.dir, fmt.Sprintf("dl%02d", i))}
		if err := d.start(e, pre, extra...); err != nil {
			return nil, err
		}
		dls = append(dls, d)
	}
	return dls, nil
}

// waitAll waits for the done: line of each downloader's latest run and
// returns the completion times in seconds from t0, and the bytes each
// wasted.
func (e *swarmEnv) waitAll(ctx context.Context, dls []*downloader, t0 time.Time) (times []float64, wasted []int64, err error) {
	for _, d := range dls {
		at, err := waitDone(ctx, e.ctx, d.p, e.b.cfg.timeout)
		if err != nil {
			return nil, nil, err
		}
		times = append(times, at.Sub(t0).Seconds())
		wasted = append(wasted, wastedBytes(d.p.doneText()))
	}
	return times, wasted, nil
}

// verifyAll stops every child of the run, so hashing has the CPU, and
// checks each downloader's copy against the source.
func (e *swarmEnv) verifyAll(dls []*downloader) error {
	e.close()
	for _, d := range dls {
		if err := e.b.verifyCopy(d.dir); err != nil {
			return fmt.Errorf("%s: %w", d.name(), err)
		}
	}
	return nil
}

// sleepUntil waits until t or the end of ctx, and reports which.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// since returns the seconds from t0 to t.
func since(t0, t time.Time) float64 { return t.Sub(t0).Seconds() }

// sum adds up xs.
func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}
