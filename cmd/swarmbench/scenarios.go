package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-p2p/shoal/internal/benchproc"
	"github.com/shoal-p2p/shoal/internal/rogue"
	"github.com/shoal-p2p/shoal/piece"
)

const (
	// trackerKillAt is when tracker-dies kills the tracker, as a fraction
	// of the theoretical minimum.
	trackerKillAt = 0.25
	// churnEarliest and churnLatest bound when churn kills a victim, as
	// fractions of the theoretical minimum: no downloader can finish
	// before the seeder has sent every piece once, which takes at least
	// that long, so every victim dies mid-download.
	churnEarliest, churnLatest = 0.1, 0.9
	// churnRestartDelay is how long a restarted victim stays dead.
	churnRestartDelay = time.Second
)

// seederLeaves: the seeder quits after uploading one full copy, and the
// downloaders must finish from each other.
func (b *bench) seederLeaves(ctx, rctx context.Context, runDir string, res *scenarioResult) error {
	env, err := b.newSwarm(rctx, runDir, envOptions{seederArgs: []string{"--seed-ratio", "1"}})
	if err != nil {
		return err
	}
	defer env.close()
	t0 := time.Now()
	dls, err := env.startDownloaders(0, res.n, nil)
	if err != nil {
		return err
	}
	times, wasted, err := env.waitAll(ctx, dls, t0)
	if err != nil {
		return err
	}
	left := env.seeder.line("seed ratio ")
	if err := env.verifyAll(dls); err != nil {
		return err
	}
	res.times, res.total, res.wasted = times, slices.Max(times), sum(wasted)
	if left.at.IsZero() {
		res.note("the seeder had not reached ratio 1 when the last downloader finished")
		return nil
	}
	leftAt := since(t0, left.at)
	after := 0
	for _, t := range times {
		if t > leftAt {
			after++
		}
	}
	res.note("seeder left at %.2f s (%s); %d of %d downloaders finished after it left, the last at %.2f s",
		leftAt, strings.TrimPrefix(left.text, "seed ratio 1 reached: "), after, res.n, res.total)
	return nil
}

// trackerDies: peers use a local DHT as well as the tracker; the tracker
// is killed early and the last quarter of the downloaders join only after,
// so they can find the swarm through the DHT (and PEX) alone.
func (b *bench) trackerDies(ctx, rctx context.Context, runDir string, res *scenarioResult) error {
	env, err := b.newSwarm(rctx, runDir, envOptions{dht: true})
	if err != nil {
		return err
	}
	defer env.close()
	late := res.n / 4
	t0 := time.Now()
	dls, err := env.startDownloaders(0, res.n-late, nil)
	if err != nil {
		return err
	}
	if !sleepUntil(rctx, t0.Add(time.Duration(trackerKillAt*res.tmin*float64(time.Second)))) {
		return fmt.Errorf("stopped before killing the tracker: %w", context.Cause(rctx))
	}
	env.tracker.kill()
	killedAt := since(t0, time.Now())
	lateDls, err := env.startDownloaders(res.n-late, res.n, nil)
	if err != nil {
		return err
	}
	dls = append(dls, lateDls...)
	times, wasted, err := env.waitAll(ctx, dls, t0)
	if err != nil {
		return err
	}
	if err := env.verifyAll(dls); err != nil {
		return err
	}
	res.times, res.total, res.wasted = times, slices.Max(times), sum(wasted)
	res.note("tracker SIGKILLed at %.2f s", killedAt)
	if late > 0 {
		lateTimes := times[res.n-late:]
		res.note("downloaders %d–%d, started after it died, finished at %s s", res.n-late, res.n-1, fmtTimes(lateTimes))
	}
	return nil
}

// churnVictim is what happened to one downloader churn killed.
type churnVictim struct {
	d        *downloader
	killAt   time.Duration // after t0
	restart  bool
	killedAt float64 // seconds after t0
	wasDone  bool    // it had completed before the kill
	resumed  int64   // bytes verified on disk when restarted
	doneAt   float64 // completion of the restarted run, seconds after t0
	runTime  float64 // completion of the restarted run, seconds after its start
	wasted   int64
	err      error
}

// churn: a third of the downloaders are killed at random points, half of
// those restarted into the same directory; survivors and restarted ones
// must finish with correct data, the restarted ones resuming.
func (b *bench) churn(ctx, rctx context.Context, runDir string, res *scenarioResult) error {
	env, err := b.newSwarm(rctx, runDir, envOptions{})
	if err != nil {
		return err
	}
	defer env.close()
	t0 := time.Now()
	dls, err := env.startDownloaders(0, res.n, nil)
	if err != nil {
		return err
	}
	victims, survivors := b.pickVictims(dls, res.tmin)
	var wg sync.WaitGroup
	for _, v := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env.runVictim(ctx, v, t0)
		}()
	}
	times, wasted, err := env.waitAll(ctx, survivors, t0)
	wg.Wait()
	if err != nil {
		return err
	}
	checked := slices.Clone(survivors)
	res.times, res.total, res.wasted = times, slices.Max(times), sum(wasted)
	for _, v := range victims {
		if v.err != nil {
			return v.err
		}
		if v.restart {
			checked = append(checked, v.d)
			res.total = max(res.total, v.doneAt)
			res.wasted += v.wasted
		}
	}
	if err := env.verifyAll(checked); err != nil {
		return err
	}
	res.note("random seed %d; %d survivors, %d killed, %d of them restarted", b.cfg.scenarioSeed, len(survivors), len(victims), len(checked)-len(survivors))
	for _, v := range victims {
		res.note("%s", v.describe(b.cfg.size))
	}
	return nil
}

// pickVictims chooses a third of dls (seeded by -scenario-seed) to kill at
// random points, the first half of them (rounded up) to be restarted, and
// returns them and the rest.
func (b *bench) pickVictims(dls []*downloader, tmin float64) (victims []*churnVictim, survivors []*downloader) {
	rng := rand.New(rand.NewPCG(b.cfg.scenarioSeed, 0))
	order := rng.Perm(len(dls))
	k := len(dls) / 3
	for j, i := range order {
		if j >= k {
			survivors = append(survivors, dls[i])
			continue
		}
		frac := churnEarliest + rng.Float64()*(churnLatest-churnEarliest)
		victims = append(victims, &churnVictim{
			d:       dls[i],
			killAt:  time.Duration(frac * tmin * float64(time.Second)),
			restart: j < (k+1)/2,
		})
	}
	slices.SortFunc(survivors, func(a, b *downloader) int { return a.i - b.i })
	slices.SortFunc(victims, func(a, b *churnVictim) int { return a.d.i - b.d.i })
	return victims, survivors
}

// runVictim kills v's downloader at its time and, if v is to be restarted,
// starts it again into the same directory and waits for it to complete.
// It records the outcome, error included, in v.
func (e *swarmEnv) runVictim(ctx context.Context, v *churnVictim, t0 time.Time) {
	if !sleepUntil(e.ctx, t0.Add(v.killAt)) {
		v.err = fmt.Errorf("%s: stopped before its kill: %w", v.d.name(), context.Cause(e.ctx))
		return
	}
	v.wasDone = !v.d.p.doneAt().IsZero()
	v.d.p.kill()
	v.killedAt = since(t0, time.Now())
	if !v.restart {
		return
	}
	if !sleepUntil(e.ctx, time.Now().Add(churnRestartDelay)) {
		v.err = fmt.Errorf("%s: stopped before its restart: %w", v.d.name(), context.Cause(e.ctx))
		return
	}
	restarted := time.Now()
	if v.err = v.d.start(e, nil); v.err != nil {
		return
	}
	at, err := waitDone(ctx, e.ctx, v.d.p, e.b.cfg.timeout)
	if err != nil {
		v.err = fmt.Errorf("restarted: %w", err)
		return
	}
	v.resumed = v.d.p.resumedBytes()
	v.doneAt, v.runTime = since(t0, at), since(restarted, at)
	v.wasted = wastedBytes(v.d.p.doneText())
}

// describe is one line of the report about v.
func (v *churnVictim) describe(size int64) string {
	s := fmt.Sprintf("%s killed at %.2f s", v.d.name(), v.killedAt)
	if v.wasDone {
		s += " (after it had completed)"
	}
	if !v.restart {
		return s + ", not restarted"
	}
	return s + fmt.Sprintf(", restarted %.1f s later resuming %s of %s (%.0f%%), done at %.2f s (%.2f s after its restart)",
		churnRestartDelay.Seconds(), benchproc.HumanBytes(v.resumed), benchproc.HumanBytes(size),
		100*float64(v.resumed)/float64(size), v.doneAt, v.runTime)
}

// loadTorrent parses the benchmark's torrent for the in-process rogue
// peers.
func (b *bench) loadTorrent() (*piece.MetaInfo, error) {
	data, err := os.ReadFile(b.torrent)
	if err != nil {
		return nil, err
	}
	return piece.Parse(data)
}

// poison: a peer that serves only corrupted blocks is offered to every
// downloader; each must find it out through the merkle tree, ban it and
// finish with correct data.
func (b *bench) poison(ctx, rctx context.Context, runDir string, res *scenarioResult) error {
	m, err := b.loadTorrent()
	if err != nil {
		return err
	}
	env, err := b.newSwarm(rctx, runDir, envOptions{})
	if err != nil {
		return err
	}
	defer env.close()
	poisoner, err := rogue.StartPoisoner(rctx, m, b.src, filepath.Join(runDir, "poisoner"), rogue.Options{MaxUploadRate: b.cfg.up})
	if err != nil {
		return err
	}
	defer poisoner.Close()
	addr := poisoner.Addr().String()
	t0 := time.Now()
	// At --log-level info shoal logs whom it bans, which is how we tell.
	dls, err := env.startDownloaders(0, res.n, []string{"--log-level", "info"}, "--peer", addr)
	if err != nil {
		return err
	}
	times, wasted, err := env.waitAll(ctx, dls, t0)
	if err != nil {
		return err
	}
	served := poisoner.Stats().Uploaded
	poisoner.Close()
	if err := env.verifyAll(dls); err != nil {
		return err
	}
	res.times, res.total, res.wasted = times, slices.Max(times), sum(wasted)
	var per []string
	banned := 0
	for i, d := range dls {
		verdict := "not banned"
		if d.p.bannedPeer(addr) {
			verdict, banned = "banned", banned+1
		}
		per = append(per, fmt.Sprintf("%d %s", wasted[i], verdict))
	}
	res.note("poisoner served %s of corrupted blocks; %d of %d downloaders banned it", benchproc.HumanBytes(served), banned, res.n)
	res.note("wasted bytes per downloader: %s", strings.Join(per, ", "))
	return nil
}

// freeRider: a peer that never uploads downloads alongside n contributors;
// it should get served only through optimistic unchokes (and by peers
// that have finished) and complete later than they do.
func (b *bench) freeRider(ctx, rctx context.Context, runDir string, res *scenarioResult) error {
	m, err := b.loadTorrent()
	if err != nil {
		return err
	}
	res.tmin = minTime(res.n+1, res.n, b.cfg.size, b.cfg.up)
	env, err := b.newSwarm(rctx, runDir, envOptions{})
	if err != nil {
		return err
	}
	defer env.close()
	frDir := filepath.Join(runDir, "freerider")
	t0 := time.Now()
	dls, err := env.startDownloaders(0, res.n, nil)
	if err != nil {
		return err
	}
	// The free-rider joins the running swarm, as the contributors' peer:
	// started in this process it would otherwise reach the seeder before
	// any of them and be served as a lone downloader. Its time counts from
	// its own start.
	if err := waitFirstPiece(rctx, dls); err != nil {
		return err
	}
	frStart := time.Now()
	fr, err := rogue.StartFreeRider(rctx, m, frDir, rogue.Options{Trackers: []string{env.announce}})
	if err != nil {
		return err
	}
	defer fr.Close()
	frDone := make(chan time.Time, 1)
	go func() {
		select {
		case <-fr.Done():
			frDone <- time.Now()
		case <-rctx.Done():
		}
	}()
	times, wasted, err := env.waitAll(ctx, dls, t0)
	if err != nil {
		return err
	}
	var frAt float64
	select {
	case at := <-frDone:
		frAt = since(frStart, at)
	case <-rctx.Done():
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("free-rider not done after %v (%d of %d bytes)", b.cfg.timeout, fr.Stats().BytesDone, b.cfg.size)
	}
	st := fr.Stats()
	// Closing flushes its storage, so its copy can be checked.
	if err := fr.Close(); err != nil {
		return err
	}
	if err := env.verifyAll(dls); err != nil {
		return err
	}
	if err := b.verifyCopy(frDir); err != nil {
		return fmt.Errorf("free-rider: %w", err)
	}
	res.times, res.total, res.wasted = times, max(slices.Max(times), since(t0, frStart)+frAt), sum(wasted)+st.Wasted
	res.note("free-rider joined at %.2f s, when a contributor had its first piece, and was done %.2f s later: %.2f× the contributors' mean (%.2f s), %.2f× their max (%.2f s); it uploaded %d bytes",
		since(t0, frStart), frAt, frAt/mean(times), mean(times), frAt/slices.Max(times), slices.Max(times), st.Uploaded)
	return nil
}

// waitFirstPiece returns once some downloader has verified a piece.
func waitFirstPiece(ctx context.Context, dls []*downloader) error {
	for {
		for _, d := range dls {
			if !d.p.line("first piece: ").at.IsZero() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no downloader got a first piece: %w", context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
}
