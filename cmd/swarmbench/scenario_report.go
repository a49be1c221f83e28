package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/shoal-p2p/shoal/internal/benchproc"
)

// writeScenarios writes scenarios.csv and scenarios.md to -out and the
// Markdown to stdout, and returns the exit code: 1 if a file could not be
// written or a scenario failed.
func writeScenarios(cfg *config, results []scenarioResult, log func(string, ...any)) int {
	code := 0
	for _, w := range []struct {
		name string
		fn   func(io.Writer, *config, []scenarioResult) error
	}{{"scenarios.csv", writeScenariosCSV}, {"scenarios.md", writeScenariosMarkdown}} {
		if err := writeFile(filepath.Join(cfg.out, w.name), func(f io.Writer) error { return w.fn(f, cfg, results) }); err != nil {
			log("writing %s: %v", w.name, err)
			code = 1
		}
	}
	writeScenariosMarkdown(os.Stdout, cfg, results)
	for _, r := range results {
		if r.err != nil {
			code = 1
		}
	}
	return code
}

// firstLine is the first line of err's message (the rest is a log tail).
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

func writeScenariosCSV(w io.Writer, cfg *config, results []scenarioResult) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"scenario", "n", "size_bytes", "upload_cap_bytes_per_s", "total_s", "mean_s", "max_s",
		"theoretical_min_s", "max_over_min", "wasted_bytes", "notes", "error"})
	f := csvSeconds
	for _, r := range results {
		mx, mn := stats(r.times, r.err)
		total, errText := r.total, ""
		if r.err != nil {
			total, errText = math.NaN(), firstLine(r.err)
		}
		cw.Write([]string{r.name, strconv.Itoa(r.n), strconv.FormatInt(cfg.size, 10), strconv.FormatInt(cfg.up, 10),
			f(total), f(mn), f(mx), f(r.tmin), f(mx / r.tmin), strconv.FormatInt(r.wasted, 10),
			strings.Join(r.notes, "; "), errText})
	}
	cw.Flush()
	return cw.Error()
}

func writeScenariosMarkdown(w io.Writer, cfg *config, results []scenarioResult) error {
	fmt.Fprintf(w, "Scenarios: %s (%d bytes, piece length %s) over loopback; seeder and every downloader capped at %s/s upload; downloads uncapped; %d CPUs, %s/%s.\n\n",
		benchproc.HumanBytes(cfg.size), cfg.size, benchproc.HumanBytes(cfg.pieceLength), benchproc.HumanBytes(cfg.up), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(w, "| scenario | N | total (s) | mean (s) | max (s) | theoretical min (s) | max / min | wasted bytes | result |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	f := mdSeconds
	for _, r := range results {
		mx, mn := stats(r.times, r.err)
		total, verdict := r.total, "all finished, copies verified"
		if r.err != nil {
			total, verdict = math.NaN(), "FAILED"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %d | %s |\n", r.name, r.n, f(total), f(mn), f(mx), f(r.tmin), f(mx/r.tmin), r.wasted, verdict)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, `- N is the number of honest downloaders. Total: from starting the downloaders until the last peer that was to finish did (restarted ones and the free-rider included). Mean and max: the completion times of the honest downloaders that ran uninterrupted. Times include process start-up.
- Theoretical min: max(F/u_s, N·F/(u_s + Σu_i)) with every uploader at the cap (the free-rider counts as a receiver, not an uploader).
- Wasted bytes: downloaded and thrown away (duplicates and bad pieces), from each peer's done: line, summed.
- One tracker and one seeder (`+"`shoal seed`"+`) per scenario, downloaders are `+"`shoal get --seed`"+` processes on 127.0.0.1, all without the DHT except in tracker-dies, which uses a local `+"`shoal dht --bootstrap none`"+` node. Every finished copy matched the source's SHA-256 (a scenario where one did not is reported as failed).
`)
	fmt.Fprintln(w)
	for _, r := range results {
		sc := scenarioByName(r.name)
		fmt.Fprintf(w, "**%s.** %s\n\n", r.name, sc.doc)
		if r.err != nil {
			fmt.Fprintf(w, "- FAILED: %s\n", firstLine(r.err))
		}
		for _, n := range r.notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if r.err == nil {
			fmt.Fprintf(w, "- completion times (s): %s\n", fmtTimes(r.times))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// scenarioByName returns the scenario called name.
func scenarioByName(name string) scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	return scenario{name: name}
}
