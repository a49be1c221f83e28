package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
	"github.com/shoal-p2p/shoal/swarm/lsd"
)

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "download by magnet link, info-hash or .torrent into a folder",
		ArgsUsage: "MAGNET | HASH | FILE.torrent",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: ".", Usage: "download into `DIR` (the data goes to DIR/NAME)", EnvVars: env("output")},
			listenFlag(),
			encryptionFlag(),
			peerFlag(),
			&cli.StringSliceFlag{Name: "tracker", Aliases: []string{"t"}, Usage: "also announce to `URL`", EnvVars: env("tracker")},
			bootstrapFlag(),
			noDHTFlag(),
			noLSDFlag(),
			noPortMapFlag(), portMapLeaseFlag(),
			&cli.BoolFlag{Name: "seed", Usage: "keep seeding after the download completes, until interrupted (a download that fails, on a disk error or --timeout, exits 1 without seeding)", EnvVars: env("seed")},
			&cli.DurationFlag{Name: "timeout", Usage: "give up if not complete after `DURATION` (30s, 5m)", EnvVars: env("timeout")},
			rateFlag("max-download-rate", "downloads"),
			rateFlag("max-upload-rate", "uploads"),
			&cli.StringSliceFlag{Name: "only", Usage: "download only the files whose path inside the torrent (a/b.txt), or a folder above it, matches `GLOB` (path.Match syntax; repeatable); a later get without --only fetches the rest", EnvVars: env("only")},
			&cli.BoolFlag{Name: "sequential", Usage: "fetch pieces in order rather than rarest first, to play a file while it downloads", EnvVars: env("sequential")},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files already at the torrent's paths that hold other data (pieces of them that match are kept); without it, get stops rather than write into them", EnvVars: env("overwrite")},
		},
		Action:      runGet,
		Description: statusHelp,
	}
}

func runGet(c *cli.Context) error {
	if err := exactArgs(c, 1, "a magnet link, hash or .torrent file"); err != nil {
		return err
	}
	began := time.Now()
	arg := c.Args().First()
	var m *piece.MetaInfo
	var mg piece.Magnet
	magnet := looksLikeMagnet(arg)
	if magnet {
		var err error
		if mg, err = parseLink(arg); err != nil {
			return usageError("get: %v", err)
		}
	} else {
		var err error
		if m, err = readTorrent(arg); err != nil {
			return err
		}
	}
	peers, err := parsePeers(c.StringSlice("peer"))
	if err != nil {
		return err
	}
	for _, h := range mg.Peers {
		// x.pe hints are optional: a bad one is skipped, not fatal.
		if ap, err := parsePeers([]string{h}); err == nil {
			peers = append(peers, ap...)
		} else {
			fmt.Fprintf(c.App.ErrWriter, "shoal: warning: skipping the magnet's peer hint %q\n", h)
		}
	}
	useDHT := !c.Bool("no-dht") && (m == nil || !m.Info.Private)
	if len(peers) == 0 && peerSources(c, m, mg, useDHT) == "" {
		return errNoPeerSource()
	}
	dir := c.String("output")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failure("get: %v", err)
	}
	if err := storage.CheckStateDir(dir); err != nil {
		return failure("get: %v", err)
	}
	sigCtx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dump := dumpOnSignal(sigCtx, c.App.ErrWriter)
	defer dump.stop()
	// The timeout bounds the download, not the client: with --seed the
	// client goes on serving after it.
	ctx := sigCtx
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(sigCtx, d, errTimeout)
		defer cancel()
	}

	cl, err := startClient(sigCtx, c)
	if err != nil {
		return err
	}
	defer cl.Close()
	dump.set(cl)
	defer startPortMap(sigCtx, c, cl)()
	private := m != nil && m.Info.Private
	node, err := startDHTNode(sigCtx, c, cl, private)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Close()
	}
	ls := startLSD(c, cl, private)
	if ls != nil {
		defer ls.Close()
		dump.setLSD(ls)
	}
	if magnet {
		if m, err = metadataFor(ctx, c, cl, node, ls, mg, dir, peers); err != nil {
			return err
		}
	}
	// Missing piece layers come first for a v2 torrent, which has no
	// other check; a hybrid downloads by SHA-1 meanwhile and fetches them
	// from v2 peers as they come, where in a swarm of v1-only peers none
	// ever may.
	if len(m.MissingLayers()) > 0 && !m.Info.HasV1() {
		if err := layersFor(ctx, c, cl, node, ls, m, dir, peers); err != nil {
			return err
		}
	}

	st, err := storage.Open(dir, m.Info)
	if err != nil {
		return failure("get: %v", err)
	}
	defer st.Close()
	// A folder or link in the way would fail every block: refused before
	// anything is hashed or asked of peers.
	if err := st.CheckLayout(); err != nil {
		return failure("get: %v", err)
	}
	var hashed atomic.Int64
	stopBar := showBytes(c.App.ErrWriter, "checking", m.Info.TotalLength, &hashed)
	have, err := st.Check(ctx, m, &piece.Hasher{Progress: &hashed})
	stopBar()
	if err != nil {
		return failure("get: checking what is on disk: %v", err)
	}
	if ff := st.Foreign(); len(ff) > 0 {
		if !c.Bool("overwrite") {
			return failure("get: %s; move it away, download elsewhere with -o, or pass --overwrite to replace it", describeForeign(dir, ff))
		}
		fmt.Fprintf(c.App.ErrWriter, "replacing (--overwrite): %s\n", describeForeign(dir, ff))
		if err := st.Adopt(); err != nil {
			return failure("get: --overwrite: %v", err)
		}
	}
	if err := prepareDisk(st); err != nil {
		return err
	}
	sel, err := selectFiles(c, m.Info)
	if err != nil {
		return err
	}
	if sel.want != nil {
		st.KeepSparse(func(fi int) bool { return !sel.want(fi) })
	}
	t, err := cl.AddWith(m, st, have, sel.opts)
	if err != nil {
		return failure("get: %v", err)
	}
	start := time.Now()
	startDone := t.Stats().BytesDone
	if startDone > 0 {
		fmt.Fprintf(c.App.ErrWriter, "resuming: %d of %d bytes already verified on disk\n", startDone, m.Info.TotalLength)
	}
	t.AddSources(torrentSources(cl, node, m, peers)...)
	t.AddSources(lsdSources(ls, m.Info.Private)...)
	t.AddTrackers(m.Tiers(c.StringSlice("tracker")...))
	sources := peerSources(c, m, mg, node != nil)

	var wg sync.WaitGroup
	progCtx, stopProg := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		firstPiece(progCtx, c, t, began)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		showDownload(progCtx, c, t, m.Info, sources)
	}()
	select {
	case <-t.Done():
	case <-t.Failed():
	case <-ctx.Done():
	}
	stopProg()
	wg.Wait()

	s := t.Stats()
	elapsed := time.Since(start)
	summary := fmt.Sprintf("%s: %s of %s verified; downloaded %d bytes (%d wasted) in %s, %s",
		m.Info.Name, formatBytes(s.BytesDone), formatBytes(s.BytesTotal), s.Downloaded, s.Wasted,
		elapsed.Round(time.Millisecond), formatRate(float64(s.BytesDone-startDone)/max(elapsed.Seconds(), 1e-3)))
	summary += fmt.Sprintf("; %d peers, %d encrypted", s.PeersSeen, s.EncryptedSeen)
	if sel.want != nil {
		summary += fmt.Sprintf("; %d of %d files selected (--only)", sel.files, len(m.Info.Files))
	}
	if s.Banned > 0 {
		summary += fmt.Sprintf("; banned %d peer(s) for bad data", s.Banned)
	}
	select {
	case <-t.Done():
	default:
		var de *swarm.DiskError
		if derr := t.Err(); errors.As(derr, &de) && c.Bool("seed") {
			// Stopped by the disk, with --seed: the torrent is paused
			// with its error, as a daemon's would be, and what it
			// verified is served until the user stops it; the download
			// still failed, so the exit is 1 (pausedSeeding).
			return pausedSeeding(c, t, m.Info.Name, derr, summary)
		}
		closeErr := t.Close()
		var ie *swarm.InconsistentError
		if derr := t.Err(); errors.As(derr, &ie) {
			// The torrent's fault: no peer and no rerun can complete it.
			return failure("get: %v: %s", derr, summary)
		}
		if derr := t.Err(); derr != nil {
			// Stopped by the disk, not by the user.
			return failure("get: %v; %s: %s", derr, keptText(closeErr), summary)
		}
		if closeErr != nil {
			warnf(c.App.ErrWriter, "saving the resume record: %v", closeErr)
		}
		if errors.Is(context.Cause(ctx), errTimeout) {
			if w := waitingFor(s, sources, false); w != "" {
				return failure("get: timed out after %s %s: %s", c.Duration("timeout"), w, summary)
			}
			return failure("get: timed out after %s: %s", c.Duration("timeout"), summary)
		}
		return failure("get: interrupted; run again with the same -o to resume: %s", summary)
	}
	// Every piece verified; "done" also promises what verify checks of the
	// files themselves, their sizes above all.
	if err := st.CompleteFiles(sel.want); err != nil {
		t.Close()
		return failure("get: every piece verified, but %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	fmt.Fprintf(c.App.ErrWriter, "done: %s (%s since start)\n", termsafe.String(summary), time.Since(began).Round(time.Millisecond))
	if c.Bool("seed") {
		seedCtx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer cancel()
		statusLoop(seedCtx, c.App.ErrWriter, 10*time.Second, func() string {
			s := t.Stats()
			return fmt.Sprintf("seeding %s: %s, up %s, uploaded %s", m.Info.Name, peersText(s), formatRate(s.UpRate), formatBytes(s.Uploaded))
		})
	}
	// Every piece is verified and on disk: a record that cannot be saved
	// (a complete copy on read-only media, say) costs the next run a
	// re-hash, not the download.
	if err := t.Close(); err != nil {
		warnf(c.App.ErrWriter, "saving the resume record: %v", err)
	}
	return nil
}

var errTimeout = errors.New("timeout")

// keptText says what a download stopped by a disk error leaves for the
// next run, given what closing the torrent (saving its record) returned.
func keptText(closeErr error) string {
	if closeErr != nil {
		return fmt.Sprintf("the verified pieces are kept, but not the resume record (%v): run again with the same -o to check them and resume", closeErr)
	}
	return "the verified pieces are kept: run again with the same -o to resume"
}

// pausedSeeding is get --seed after a disk error stopped the download
// (issue 10: "with --seed, or in a daemon, pause the torrent with that
// error"): it says at once what failed and where, serves the verified
// pieces until interrupted, and then fails with the same line, since the
// download did not complete.
func pausedSeeding(c *cli.Context, t *swarm.Torrent, name string, derr error, summary string) error {
	fmt.Fprintf(c.App.ErrWriter, "shoal: get: %s\n", termsafe.String(fmt.Sprintf("%v; download paused, seeding what is verified until interrupted (--seed): %s", derr, summary)))
	seedCtx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	statusLoop(seedCtx, c.App.ErrWriter, 10*time.Second, func() string {
		s := t.Stats()
		return fmt.Sprintf("paused by a disk error; seeding %s: %s of %s verified, %s, up %s, uploaded %s",
			name, formatBytes(s.BytesDone), formatBytes(s.BytesTotal), peersText(s), formatRate(s.UpRate), formatBytes(s.Uploaded))
	})
	return failure("get: %v; %s: %s", derr, keptText(t.Close()), summary)
}

// prepareDisk refuses, before any peer is asked for anything, a download
// that cannot be written: a folder that takes no new file, a file that
// does not open for writing, or a disk without room for what is missing
// (see storage.Preflight). It then writes the resume record, so the state
// folder is proven writable too, and a disk that fills up later still has
// a record to update in place.
func prepareDisk(st *storage.Storage) error {
	if err := st.Preflight(); err != nil {
		return failure("get: %v", err)
	}
	if have, err := bitfield.FromBytes(st.Have(), st.Info().NumPieces); err == nil && have.All() {
		return nil // nothing to write: no need for a writable folder
	}
	if err := st.Save(); err != nil {
		return failure("get: cannot keep the resume record: %v", err)
	}
	return nil
}

// showDownload draws the progress bar (percent, rate, peers, ETA) on a
// terminal, or prints a plain line every few seconds elsewhere.
func showDownload(ctx context.Context, c *cli.Context, t *swarm.Torrent, info *piece.Info, sources string) {
	w := c.App.ErrWriter
	if !isTerminal(w) {
		stop := reportWaiting(ctx, w, t, sources)
		defer stop()
		statusLoop(ctx, w, 5*time.Second, func() string {
			s := t.Stats()
			if wait := waitingFor(s, sources, true); wait != "" {
				return fmt.Sprintf("progress: %.1f%% %s, %s", 100*float64(s.BytesDone)/float64(max(s.BytesTotal, 1)), formatBytes(s.BytesDone), wait)
			}
			eta := "?"
			if s.DownRate > 0 {
				eta = (time.Duration(float64(s.BytesTotal-s.BytesDone)/s.DownRate) * time.Second).Round(time.Second).String()
			}
			return fmt.Sprintf("progress: %.1f%% %s, %s, %s, ETA %s", 100*float64(s.BytesDone)/float64(max(s.BytesTotal, 1)),
				formatBytes(s.BytesDone), formatRate(s.DownRate), peersText(s), eta)
		})
		return
	}
	bar := progressbar.NewOptions64(info.TotalLength,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			bar.Exit()
			return
		case <-tick.C:
			s := t.Stats()
			peers := peersText(s)
			if wait := waitingFor(s, sources, true); wait != "" {
				peers = wait
			}
			bar.Describe(termsafe.String(info.Name + ", " + peers))
			bar.Set64(s.BytesDone)
		}
	}
}

// peersText counts a torrent's peers for status lines, the encrypted
// (MSE) ones apart: "3 peers (2 encrypted)".
func peersText(s swarm.Stats) string {
	return fmt.Sprintf("%d peers (%d encrypted)", s.Peers, s.Encrypted)
}

// metadataFor gets the torrent of a magnet: from the copy saved by an
// earlier run in DIR/.shoal, or from peers (BEP 9 and BEP 52 hash
// requests), saving it so an interrupted download resumes without asking
// again.
func metadataFor(ctx context.Context, c *cli.Context, cl *swarm.Client, node dhtNodes, ls *lsd.Service, mg piece.Magnet, dir string, peers []netip.AddrPort) (*piece.MetaInfo, error) {
	// Read and written through an os.Root, so the state folder cannot
	// lead out of DIR.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, failure("get: %v", err)
	}
	defer root.Close()
	saved := filepath.Join(storage.StateDirName, magnetID(mg)+".torrent")
	if data, err := root.ReadFile(saved); err == nil {
		if m, err := piece.Parse(data); err == nil && mg.Matches(m.Info) {
			return m, nil
		}
	}
	fmt.Fprintln(c.App.ErrWriter, "fetching metadata from peers...")
	sources := peerSources(c, nil, mg, node != nil)
	var last swarm.FetchStatus
	var printed time.Time
	lastLine := ""
	m, err := cl.FetchInfoFrom(ctx, mg, append(magnetSources(cl, node, mg, c.StringSlice("tracker"), peers), lsdSources(ls, false)...), func(s swarm.FetchStatus) {
		// Say why nothing arrives once an attempt failed; a changing
		// reason (several dead peers) at most every few seconds.
		last = s
		line := waitLine("metadata", s.Known, sources, s.LastError, true)
		if s.LastError != "" && line != lastLine && time.Since(printed) >= 5*time.Second {
			fmt.Fprintln(c.App.ErrWriter, termsafe.String(line))
			lastLine, printed = line, time.Now()
		}
	})
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			return nil, failure("get: timed out after %s %s", c.Duration("timeout"), waitLine("metadata", last.Known, sources, last.LastError, false))
		}
		return nil, failure("get: %v", err)
	}
	m.Announce = ""
	for _, tr := range mg.Trackers {
		m.AnnounceList = append(m.AnnounceList, []string{tr})
	}
	if data, err := m.Marshal(); err == nil {
		err := root.MkdirAll(storage.StateDirName, 0o755)
		if err == nil {
			err = fsutil.WriteFileAtomicIn(root, saved, data, 0o644)
		}
		if err != nil {
			warnf(c.App.ErrWriter, "saving metadata: %v", err)
		}
	}
	return m, nil
}

// firstPiece reports on stderr how long after the command started the
// first piece was verified: the wait before anything useful is on disk,
// metadata fetch included for a magnet.
func firstPiece(ctx context.Context, c *cli.Context, t *swarm.Torrent, began time.Time) {
	select {
	case <-t.FirstPiece():
	case <-ctx.Done():
		// Stopped: there is a time to report only if the piece came too.
	}
	if at := t.Stats().FirstPiece; !at.IsZero() {
		fmt.Fprintf(c.App.ErrWriter, "first piece: %s\n", at.Sub(began).Round(time.Millisecond))
	}
}
