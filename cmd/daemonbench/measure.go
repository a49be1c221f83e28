package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-p2p/shoal/daemon/rpc"
)

// result is one daemon's figures.
type result struct {
	target, version string
	n               int
	// add is the wall time of the N torrent-add calls; seeding the time
	// from the first of them until all N seed.
	add, seeding time.Duration
	// mem is taken at the end of the idle window, idleCPU over it.
	mem                   memory
	idleCPU, idleWall     time.Duration
	loadBefore, loadAfter string
	// stop and stop2 are the clean stops (SIGTERM to exit) before and
	// after the restart.
	stop, stop2 time.Duration
	// The restart: until the RPC answers, until all N seed again, the
	// CPU it took until then, the torrents seen checking their data on
	// the way, and those listed at the end.
	restartRPC, restartSeeding, restartCPU time.Duration
	restartChecked, restartListed          int
	// restartRead is what the restarted daemon read until all seeded.
	restartRead         int64
	restartSeedingCount int
	restartErr          string
	memRestart          memory
}

// idlePercent is the CPU used at rest as a percentage of one core.
func (r *result) idlePercent() float64 {
	if r.idleWall <= 0 {
		return 0
	}
	return 100 * r.idleCPU.Seconds() / r.idleWall.Seconds()
}

// measure runs d through the benchmark: add, seed, rest, restart.
func measure(ctx context.Context, cfg *config, d *daemon, set *torrentSet, log func(string, ...any)) (*result, error) {
	r := &result{target: d.name, n: len(set.torrents)}
	if err := d.setup(); err != nil {
		return nil, err
	}
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	defer func() { d.proc.Stop() }()
	c := d.client()
	var err error
	if r.version, err = d.waitRPC(ctx, c); err != nil {
		return nil, err
	}
	log("%s: %s, pid %d, RPC %s; adding %d torrents", d.name, r.version, d.pid(), d.rpcURL, r.n)
	began := time.Now()
	for i, t := range set.torrents {
		a, err := c.Add(ctx, rpc.AddArgs{Metainfo: t})
		if err != nil {
			return nil, fmt.Errorf("torrent-add #%d: %w", i, err)
		}
		if a.Duplicate {
			return nil, fmt.Errorf("torrent-add #%d: reported a duplicate of %s", i, a.HashString)
		}
	}
	r.add = time.Since(began)
	log("%s: added in %v; waiting until all seed", d.name, r.add.Round(time.Millisecond))
	if _, err := d.waitSeeding(ctx, c, r.n); err != nil {
		return nil, err
	}
	r.seeding = time.Since(began)
	log("%s: all %d seeding %v after the first add; settling %v, then at rest for %v", d.name, r.n, r.seeding.Round(time.Millisecond), cfg.settle, cfg.idle)
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	r.loadBefore = loadAvg()
	cpu0, err := readCPU(d.pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := sleep(ctx, cfg.idle); err != nil {
		return nil, err
	}
	cpu1, err := readCPU(d.pid())
	if err != nil {
		return nil, err
	}
	r.idleCPU, r.idleWall = cpu1-cpu0, time.Since(t0)
	r.loadAfter = loadAvg()
	if r.mem, err = readMemory(d.pid()); err != nil {
		return nil, err
	}
	log("%s: at rest: %.2f%% of a core, RSS %s (anon %s), load %s→%s", d.name, r.idlePercent(), mib(r.mem.RSS), mib(r.mem.Anon), r.loadBefore, r.loadAfter)

	if r.stop, err = d.stop(); err != nil {
		return nil, fmt.Errorf("stopping: %w", err)
	}
	log("%s: stopped in %v; starting again", d.name, r.stop.Round(time.Millisecond))
	began = time.Now()
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	c = d.client()
	if _, err := d.waitRPC(ctx, c); err != nil {
		return nil, fmt.Errorf("after restart: %w", err)
	}
	r.restartRPC = time.Since(began)
	p, err := d.waitSeeding(ctx, c, r.n)
	r.restartSeeding = time.Since(began)
	r.restartChecked, r.restartListed, r.restartSeedingCount, r.restartErr = p.checked, p.listed, p.seeding, p.errs
	if err != nil {
		// Lost or stuck torrents are a finding, not a reason to drop the
		// run: the table shows them.
		log("%s: after restart: %v", d.name, err)
		r.restartErr = err.Error()
	}
	if r.restartCPU, err = readCPU(d.pid()); err != nil {
		return nil, err
	}
	if r.restartRead, err = readRchar(d.pid()); err != nil {
		return nil, err
	}
	log("%s: restart: RPC after %v, %d/%d seeding after %v (%v CPU, %s read), %d seen checking", d.name,
		r.restartRPC.Round(time.Millisecond), r.restartSeedingCount, r.n, r.restartSeeding.Round(time.Millisecond), r.restartCPU, mib(r.restartRead), r.restartChecked)
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	if r.memRestart, err = readMemory(d.pid()); err != nil {
		return nil, err
	}
	if r.stop2, err = d.stop(); err != nil {
		return nil, fmt.Errorf("stopping after the restart: %w", err)
	}
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
