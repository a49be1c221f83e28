package main

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// row is a line of the Markdown table: a label and how each result shows.
type row struct {
	label string
	cell  func(r *result) string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func rows(cfg *config, set *torrentSet) []row {
	return []row{
		{"version (session-get)", func(r *result) string { return r.version }},
		{fmt.Sprintf("add %d torrents (torrent-add, one after another)", cfg.n), func(r *result) string { return secs(r.add) }},
		{"all seeding, from the first add", func(r *result) string { return secs(r.seeding) }},
		{"RSS at rest (VmRSS)", func(r *result) string { return mib(r.mem.RSS) }},
		{"of it anonymous (RssAnon)", func(r *result) string { return mib(r.mem.Anon) }},
		{"peak RSS so far (VmHWM)", func(r *result) string { return mib(r.mem.HWM) }},
		{"threads", func(r *result) string { return strconv.Itoa(r.mem.Threads) }},
		{fmt.Sprintf("CPU at rest, %% of one core over %v", cfg.idle), func(r *result) string {
			return fmt.Sprintf("%.2f %% (%.2f s)", r.idlePercent(), r.idleCPU.Seconds())
		}},
		{"1-min load before → after the rest", func(r *result) string { return r.loadBefore + " → " + r.loadAfter }},
		{"stop (SIGTERM to exit)", func(r *result) string { return secs(r.stop) }},
		{"restart: RPC answers", func(r *result) string { return secs(r.restartRPC) }},
		{"restart: all seeding again", func(r *result) string {
			s := secs(r.restartSeeding)
			if r.restartErr != "" {
				s += " (" + r.restartErr + ")"
			}
			return s
		}},
		{"restart: CPU until then", func(r *result) string { return secs(r.restartCPU) }},
		{"restart: torrents listed / seeding", func(r *result) string {
			return fmt.Sprintf("%d / %d of %d", r.restartListed, r.restartSeedingCount, r.n)
		}},
		{"restart: bytes read until then (rchar; the data is " + mib(set.total) + ")", func(r *result) string { return mib(r.restartRead) }},
		{"restart: torrents seen queued to check or checking (status 1, 2)", func(r *result) string { return strconv.Itoa(r.restartChecked) }},
		{"RSS after restart (anonymous)", func(r *result) string {
			return fmt.Sprintf("%s (%s)", mib(r.memRestart.RSS), mib(r.memRestart.Anon))
		}},
	}
}

// displayName is the column heading of a target.
func displayName(target string) string {
	if target == "transmission" {
		return "transmission-daemon"
	}
	return "shoal daemon"
}

// markdown renders the results as a table, a column per daemon, under a
// line saying what was measured.
func markdown(cfg *config, set *torrentSet, results []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d idle seeds (v1 torrents of one file each, %s to %s, %s in all), settled %v; measured %s\n\n",
		cfg.n, mibOrKiB(set.min), mibOrKiB(set.max), mib(set.total), cfg.settle, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| |")
	for _, r := range results {
		b.WriteString(" " + displayName(r.target) + " |")
	}
	b.WriteString("\n|---|")
	for range results {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, rw := range rows(cfg, set) {
		b.WriteString("| " + rw.label + " |")
		for _, r := range results {
			b.WriteString(" " + strings.ReplaceAll(rw.cell(r), "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func mibOrKiB(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return mib(n)
}

// csvHeader names the columns of csvText: sizes in bytes, times in
// seconds.
var csvHeader = []string{
	"target", "version", "n", "add_s", "all_seeding_s",
	"rss_bytes", "anon_bytes", "hwm_bytes", "threads",
	"idle_cpu_s", "idle_wall_s", "idle_cpu_pct", "load1_before", "load1_after",
	"stop_s", "restart_rpc_s", "restart_all_seeding_s", "restart_cpu_s",
	"restart_listed", "restart_seeding", "restart_checked", "restart_read_bytes", "restart_error",
	"restart_rss_bytes", "restart_anon_bytes", "stop_after_restart_s",
}

// csvText is one line per daemon under csvHeader.
func csvText(results []*result) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(csvHeader)
	f := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, r := range results {
		w.Write([]string{
			r.target, r.version, strconv.Itoa(r.n), f(r.add), f(r.seeding),
			i(r.mem.RSS), i(r.mem.Anon), i(r.mem.HWM), strconv.Itoa(r.mem.Threads),
			f(r.idleCPU), f(r.idleWall), strconv.FormatFloat(r.idlePercent(), 'f', 3, 64), r.loadBefore, r.loadAfter,
			f(r.stop), f(r.restartRPC), f(r.restartSeeding), f(r.restartCPU),
			strconv.Itoa(r.restartListed), strconv.Itoa(r.restartSeedingCount), strconv.Itoa(r.restartChecked), i(r.restartRead), r.restartErr,
			i(r.memRestart.RSS), i(r.memRestart.Anon), f(r.stop2),
		})
	}
	w.Flush()
	return b.String()
}
