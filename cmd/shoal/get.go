package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "download by magnet link, info-hash or .torrent into a folder",
		ArgsUsage: "MAGNET | HASH | FILE.torrent",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: ".", Usage: "download into `DIR` (the data goes to DIR/NAME)", EnvVars: env("output")},
			listenFlag(),
			peerFlag(),
			&cli.StringSliceFlag{Name: "tracker", Aliases: []string{"t"}, Usage: "also announce to `URL`", EnvVars: env("tracker")},
			bootstrapFlag(),
			noDHTFlag(),
			&cli.BoolFlag{Name: "seed", Usage: "keep seeding after the download completes, until interrupted", EnvVars: env("seed")},
			&cli.DurationFlag{Name: "timeout", Usage: "give up if not complete after `DURATION` (30s, 5m)", EnvVars: env("timeout")},
			rateFlag("max-download-rate", "downloads"),
			rateFlag("max-upload-rate", "uploads"),
		},
		Action: runGet,
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
		if mg, err = piece.ParseMagnet(arg); err != nil {
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
	dir := c.String("output")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failure("get: %v", err)
	}
	sigCtx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	private := m != nil && m.Info.Private
	node, err := startDHTNode(sigCtx, c, cl, private)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Close()
	}
	if magnet {
		if m, err = metadataFor(ctx, c, cl, node, mg, dir, peers); err != nil {
			return err
		}
	}

	st, err := storage.Open(dir, m.Info)
	if err != nil {
		return failure("get: %v", err)
	}
	defer st.Close()
	var hashed atomic.Int64
	stopBar := showBytes(c.App.ErrWriter, "checking", m.Info.TotalLength, &hashed)
	have, err := st.Check(ctx, m, &piece.Hasher{Progress: &hashed})
	stopBar()
	if err != nil {
		return failure("get: checking what is on disk: %v", err)
	}
	t, err := cl.Add(m, st, have)
	if err != nil {
		return failure("get: %v", err)
	}
	start := time.Now()
	startDone := t.Stats().BytesDone
	if startDone > 0 {
		fmt.Fprintf(c.App.ErrWriter, "resuming: %d of %d bytes already verified on disk\n", startDone, m.Info.TotalLength)
	}
	if !m.Info.Private {
		announceDHT(node, cl, t, m.Info.Hash)
	}
	t.AddPeers(peers...)
	t.AddTrackers(trackerTiers(m, c.StringSlice("tracker")))

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
		showDownload(progCtx, c, t, m.Info)
	}()
	select {
	case <-t.Done():
	case <-ctx.Done():
	}
	stopProg()
	wg.Wait()

	s := t.Stats()
	elapsed := time.Since(start)
	summary := fmt.Sprintf("%s: %s of %s verified; downloaded %d bytes (%d wasted) in %s, %s",
		m.Info.Name, formatBytes(s.BytesDone), formatBytes(s.BytesTotal), s.Downloaded, s.Wasted,
		elapsed.Round(time.Millisecond), formatRate(float64(s.BytesDone-startDone)/max(elapsed.Seconds(), 1e-3)))
	if s.Banned > 0 {
		summary += fmt.Sprintf("; banned %d peer(s) for bad data", s.Banned)
	}
	select {
	case <-t.Done():
	default:
		if err := t.Close(); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "shoal: warning: saving the resume record: %v\n", err)
		}
		if errors.Is(context.Cause(ctx), errTimeout) {
			return failure("get: timed out after %s: %s", c.Duration("timeout"), summary)
		}
		return failure("get: interrupted; run again with the same -o to resume: %s", summary)
	}
	fmt.Fprintf(c.App.ErrWriter, "done: %s (%s since start)\n", summary, time.Since(began).Round(time.Millisecond))
	if c.Bool("seed") {
		seedCtx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer cancel()
		statusLoop(seedCtx, c.App.ErrWriter, 10*time.Second, func() string {
			s := t.Stats()
			return fmt.Sprintf("seeding %s: %d peers, up %s, uploaded %s", m.Info.Name, s.Peers, formatRate(s.UpRate), formatBytes(s.Uploaded))
		})
	}
	if err := t.Close(); err != nil {
		return failure("get: saving resume record: %v", err)
	}
	return nil
}

var errTimeout = errors.New("timeout")

// showDownload draws the progress bar (percent, rate, peers, ETA) on a
// terminal, or prints a plain line every few seconds elsewhere.
func showDownload(ctx context.Context, c *cli.Context, t *swarm.Torrent, info *piece.Info) {
	w := c.App.ErrWriter
	if !isTerminal(w) {
		statusLoop(ctx, w, 5*time.Second, func() string {
			s := t.Stats()
			eta := "?"
			if s.DownRate > 0 {
				eta = (time.Duration(float64(s.BytesTotal-s.BytesDone)/s.DownRate) * time.Second).Round(time.Second).String()
			}
			return fmt.Sprintf("progress: %.1f%% %s, %s, %d peers, ETA %s", 100*float64(s.BytesDone)/float64(max(s.BytesTotal, 1)),
				formatBytes(s.BytesDone), formatRate(s.DownRate), s.Peers, eta)
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
			bar.Describe(fmt.Sprintf("%s, %d peers", info.Name, s.Peers))
			bar.Set64(s.BytesDone)
		}
	}
}

// metadataFor gets the torrent of a magnet: from the copy saved by an
// earlier run in DIR/.shoal, or from peers (BEP 9 and BEP 52 hash
// requests), saving it so an interrupted download resumes without asking
// again.
func metadataFor(ctx context.Context, c *cli.Context, cl *swarm.Client, node *dht.Node, mg piece.Magnet, dir string, peers []netip.AddrPort) (*piece.MetaInfo, error) {
	saved := filepath.Join(dir, storage.StateDirName, fmt.Sprintf("%x.torrent", mg.Hash[:]))
	if data, err := os.ReadFile(saved); err == nil {
		if m, err := piece.Parse(data); err == nil && m.Info.Hash == mg.Hash {
			return m, nil
		}
	}
	if len(peers) == 0 && len(mg.Trackers) == 0 && len(c.StringSlice("tracker")) == 0 && node == nil {
		return nil, usageError("get: no way to find peers: give --peer, a magnet with x.pe or tr, or -t, or leave the DHT on")
	}
	ch := make(chan netip.AddrPort, 256)
	fctx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	go feedPeers(fctx, cl, node, mg, c.StringSlice("tracker"), peers, ch)
	fmt.Fprintln(c.App.ErrWriter, "fetching metadata from peers...")
	m, err := cl.FetchInfo(ctx, mg.Hash, ch)
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			return nil, failure("get: timed out: %v", err)
		}
		return nil, failure("get: %v", err)
	}
	m.Announce = ""
	for _, tr := range mg.Trackers {
		m.AnnounceList = append(m.AnnounceList, []string{tr})
	}
	if data, err := m.Marshal(); err == nil {
		os.MkdirAll(filepath.Dir(saved), 0o755)
		if err := fsutil.WriteFileAtomic(saved, data, 0o644); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "shoal: warning: saving metadata: %v\n", err)
		}
	}
	return m, nil
}

// feedPeers sends candidate addresses for a metadata fetch: the known ones
// at once, then whatever trackers return, then DHT lookups until ctx ends;
// without a DHT it closes ch when it has nothing more.
func feedPeers(ctx context.Context, cl *swarm.Client, node *dht.Node, mg piece.Magnet, extra []string, peers []netip.AddrPort, ch chan<- netip.AddrPort) {
	defer close(ch)
	for _, p := range peers {
		select {
		case ch <- p:
		case <-ctx.Done():
			return
		}
	}
	for _, p := range cl.TrackerPeers(ctx, mg.Hash, append(append([]string(nil), mg.Trackers...), extra...)) {
		select {
		case ch <- p:
		case <-ctx.Done():
			return
		}
	}
	if node == nil {
		return
	}
	seen := map[netip.AddrPort]bool{}
	// Retry soon at first (a seeder's announce may still be travelling),
	// then back off.
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		found, _ := node.Lookup(ctx, mg.Hash.Truncated())
		for _, p := range found {
			if seen[p] {
				continue
			}
			seen[p] = true
			select {
			case ch <- p:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// firstPiece reports on stderr how long after the command started the
// first piece was verified: the wait before anything useful is on disk,
// metadata fetch included for a magnet.
func firstPiece(ctx context.Context, c *cli.Context, t *swarm.Torrent, began time.Time) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if at := t.Stats().FirstPiece; !at.IsZero() {
				fmt.Fprintf(c.App.ErrWriter, "first piece: %s\n", at.Sub(began).Round(time.Millisecond))
				return
			}
			continue
		}
		// Done before the next tick: report from the record, if any.
		if at := t.Stats().FirstPiece; !at.IsZero() {
			fmt.Fprintf(c.App.ErrWriter, "first piece: %s\n", at.Sub(began).Round(time.Millisecond))
		}
		return
	}
}
