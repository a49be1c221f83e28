package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
)

// BenchmarkIdleSession measures what a session of idle seeds costs: it
// fills a session folder with 1,000 torrents of one 64 KiB file each
// (their data in the download folder), then times Open until every one
// is seeding again (start-up: no data is hashed, the resume records vouch
// for it), and then watches the idle session for a while: its RSS and
// the CPU it uses at rest, in a child process of its own:
//
//	go test -run '^$' -bench IdleSession -benchtime 1x ./daemon/
//
// SHOAL_IDLE_TORRENTS and SHOAL_IDLE_SECONDS change the count (1000) and
// the time watched at rest (20).
func BenchmarkIdleSession(b *testing.B) {
	n, idle := 1000, 20*time.Second
	if v, err := strconv.Atoi(os.Getenv("SHOAL_IDLE_TORRENTS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("SHOAL_IDLE_SECONDS")); err == nil && v > 0 {
		idle = time.Duration(v) * time.Second
	}
	dir := b.TempDir()
	cfg := testConfig(b, dir)
	cfg.housekeeping = 0 // the real pace
	cfg.MaxChecks = runtime.NumCPU()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	dl := s.Settings().DownloadDir
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 64<<10)
	for i := range n {
		for k := range data {
			data[k] = byte(r.Uint32())
		}
		p := filepath.Join(dl, fmt.Sprintf("f%04d.bin", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		m, err := piece.Build(context.Background(), p, piece.BuildOptions{PieceLength: 16 << 10})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Add(AddRequest{Metainfo: marshal(b, m)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := waitAll(s, n); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	// The session at rest is measured in a process of its own, so that
	// its RSS is the session's and not what populating it left behind.
	b.ResetTimer()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_DAEMON_IDLE_CHILD="+dir, fmt.Sprintf("SHOAL_IDLE_N=%d", n), fmt.Sprintf("SHOAL_IDLE_WATCH=%s", idle))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("idle child: %v", err)
	}
	b.StopTimer()
	var opened, startup, cpu, wall time.Duration
	var total, base, hashed, goroutines int64
	if _, err := fmt.Sscanf(string(out), "%d %d %d %d %d %d %d %d", &opened, &startup, &hashed, &base, &total, &cpu, &wall, &goroutines); err != nil {
		b.Fatalf("idle child said %q: %v", out, err)
	}
	b.ReportMetric(float64(opened.Milliseconds()), "open-ms")
	b.ReportMetric(float64(startup.Milliseconds()), "all-seeding-ms")
	b.ReportMetric(float64(total)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(total-base)/float64(n)/1024, "rss-KiB/torrent")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "idle-cpu-%")
	b.ReportMetric(float64(goroutines), "goroutines")
	b.ReportMetric(float64(hashed), "bytes-hashed")
	b.Logf("%d torrents: Open %v, all seeding after %v (%d bytes hashed); at rest %v: RSS %.1f MiB (%.1f before Open: %.1f KiB a torrent), CPU %v (%.2f%% of a core), %d goroutines",
		n, opened, startup, hashed, wall.Round(time.Millisecond), float64(total)/(1<<20), float64(base)/(1<<20), float64(total-base)/float64(n)/1024, cpu, 100*cpu.Seconds()/wall.Seconds(), goroutines)
}

// idleChild opens the session in dir, waits until its n torrents seed,
// lets it settle, watches it at rest, and prints what it measured on one
// line for BenchmarkIdleSession.
func idleChild(dir string, n int, watch time.Duration) int {
	runtime.GC()
	base := rss()
	cfg := testConfig(nil, dir)
	cfg.housekeeping = 0 // the real pace
	began := time.Now()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	opened := time.Since(began)
	if err := waitAll(s, n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	startup := time.Since(began)
	var hashed int64
	s.mu.Lock()
	for _, t := range s.torrents {
		hashed += t.hashed.Load()
	}
	s.mu.Unlock()
	// Settle: each torrent saves its resume record once, within the
	// swarm's first save interval (5s) after its check.
	time.Sleep(8 * time.Second)
	cpu0, wall0 := cpuTime(), time.Now()
	if p := os.Getenv("SHOAL_IDLE_PROFILE"); p != "" {
		// The CPU profile of the session at rest alone.
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	time.Sleep(watch)
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	if p := os.Getenv("SHOAL_IDLE_HEAP"); p != "" {
		// What the session at rest holds on to.
		if f, err := os.Create(p); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	fmt.Printf("%d %d %d %d %d %d %d %d\n", opened, startup, hashed, base, rss(), cpu, wall, runtime.NumGoroutine())
	return 0
}

// waitAll waits until the session's n torrents all seed.
func waitAll(s *Session, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		seeding := 0
		for _, st := range s.Torrents(nil, 0) {
			if st.State == Seeding {
				seeding++
			}
		}
		if seeding == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d torrents seeding after 5 minutes", seeding, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rss is the process's resident set, from /proc; 0 if unknown.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
