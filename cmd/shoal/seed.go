package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

func seedCommand() *cli.Command {
	return &cli.Command{
		Name:      "seed",
		Usage:     "share a file or folder with peers until interrupted",
		ArgsUsage: "PATH",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "torrent", Usage: "seed this `FILE.torrent` (PATH is checked against it) instead of hashing PATH", EnvVars: env("torrent")},
			&cli.StringFlag{Name: "save-torrent", Usage: "also write the torrent to `FILE`", EnvVars: env("save-torrent")},
			&cli.BoolFlag{Name: "force", Usage: "let --save-torrent replace an existing file (never the data being seeded)", EnvVars: env("force")},
			listenFlag(),
			encryptionFlag(),
			&cli.StringSliceFlag{Name: "tracker", Aliases: []string{"t"}, Usage: "announce `URL` (repeat for more)", EnvVars: env("tracker")},
			bootstrapFlag(),
			noDHTFlag(),
			noLSDFlag(),
			noPortMapFlag(), portMapLeaseFlag(),
			peerFlag(),
			rateFlag("max-upload-rate", "uploads"),
			&cli.BoolFlag{Name: "super-seed", Value: true, Usage: "until every piece has reached some peer, show each peer only pieces no peer has yet (BEP 16), so the first full copy leaves at the full upload rate; --super-seed=false seeds plainly", EnvVars: env("super-seed")},
			&cli.Float64Flag{Name: "seed-ratio", Usage: "stop once `RATIO` times the content has been uploaded (0 = seed until interrupted)", EnvVars: env("seed-ratio")},
			&cli.StringFlag{Name: "piece-length", Usage: "piece length in `BYTES` when hashing PATH", EnvVars: env("piece-length")},
			formatFlag(),
		},
		Action:      runSeed,
		Description: statusHelp,
	}
}

func runSeed(c *cli.Context) error {
	if err := exactArgs(c, 1, "PATH"); err != nil {
		return err
	}
	path := filepath.Clean(c.Args().First())
	if _, err := os.Lstat(path); err != nil {
		return usageError("seed: %v", err)
	}
	peers, err := parsePeers(c.StringSlice("peer"))
	if err != nil {
		return err
	}
	format, err := formatOf(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dump := dumpOnSignal(ctx, c.App.ErrWriter)
	defer dump.stop()

	var saveTo *torrentOutput
	if out := c.String("save-torrent"); out != "" {
		saveTo = &torrentOutput{cmd: "seed", what: "--save-torrent " + out, flag: "--save-torrent", path: out, src: path, force: c.Bool("force")}
		if err := saveTo.check(""); err != nil {
			return err
		}
	}

	var m *piece.MetaInfo
	// fresh: hashed just now, so every piece is known good. dir: where the
	// torrent's paths start. topName: PATH's name, when the torrent calls
	// it otherwise. against: what PATH is checked against, for messages.
	fresh, dir, topName, against := false, "", "", "the torrent"
	if tf := c.String("torrent"); tf != "" {
		if m, err = readTorrent(tf); err != nil {
			return err
		}
		against = tf
		isDir := false
		if st, err := os.Stat(path); err == nil {
			isDir = st.IsDir()
		}
		want := m.Info.DiskPath(0)[0]
		switch {
		case m.Info.SingleFile() && isDir:
			// The file inside PATH, as for a folder holding one file.
			dir = path
		case !m.Info.SingleFile() && !isDir:
			return usageError("seed: %s describes a folder, %s; PATH must be a folder", tf, want)
		default:
			// PATH is the data, whatever its name: the torrent's name is
			// only what peers are told.
			abs, err := filepath.Abs(path)
			if err != nil {
				return failure("seed: %v", err)
			}
			if name := filepath.Base(abs); name != want {
				topName, dir = name, filepath.Dir(abs)
			}
		}
	} else {
		var pl int64
		if s := c.String("piece-length"); s != "" {
			if pl, err = parseSize(s); err != nil {
				return usageError("--piece-length: %v", err)
			}
		}
		m, err = buildTorrent(ctx, c, path, piece.BuildOptions{PieceLength: pl, Trackers: c.StringSlice("tracker"), Format: format})
		if err != nil {
			return err
		}
		fresh = true
	}
	if saveTo != nil {
		if err := saveTo.check(m.Info.ID()); err != nil {
			return err
		}
		data, err := m.Marshal()
		if err == nil {
			err = fsutil.WriteFileAtomic(saveTo.path, data, 0o644)
		}
		if err != nil {
			return failure("seed: --save-torrent: %v", err)
		}
	}
	if dir == "" {
		dir = dataDir(path, m.Info)
	}
	if len(m.MissingLayers()) > 0 {
		// A .torrent without its piece layers: the data itself supplies them.
		for _, p := range layersFromDisk(ctx, m, dir, topName) {
			warnf(c.App.ErrWriter, "%s lacks the piece layers of %s, and its data does not hash to the file's root; not seeding it", against, p)
		}
	}

	st, err := storage.OpenWith(dir, m.Info, storage.Options{ResumePath: seedResumePath(m.Info.ID()), TopName: topName})
	if err != nil {
		return failure("seed: %v", err)
	}
	defer st.Close()
	var have []byte
	if fresh {
		for p := range m.Info.NumPieces {
			st.MarkVerified(p)
		}
		have = st.Have()
	} else {
		var done atomic.Int64
		stopBar := showBytes(c.App.ErrWriter, "checking", m.Info.TotalLength, &done)
		have, err = st.Check(ctx, m, &piece.Hasher{Progress: &done})
		stopBar()
		if err != nil {
			return failure("seed: checking %s: %v", path, err)
		}
	}
	count := 0
	for p := range m.Info.NumPieces {
		if have[p/8]&(0x80>>(p%8)) != 0 {
			count++
		}
	}
	if count == 0 {
		return failure("seed: no piece of %s matches %s; is it the data the torrent describes?", path, against)
	}
	if topName != "" {
		fmt.Fprintf(c.App.ErrWriter, "seeding %s as %s (the torrent's name)\n", path, m.Info.DiskPath(0)[0])
	}
	if count < m.Info.NumPieces {
		fmt.Fprintf(c.App.ErrWriter, "shoal: warning: only %d of %d pieces of %s match %s; seeding those\n", count, m.Info.NumPieces, path, against)
	}
	if ff := st.Foreign(); len(ff) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "shoal: warning: %s; seeding the pieces that match and never writing to it\n", describeForeign(dir, ff))
	}

	cl, err := startClient(ctx, c)
	if err != nil {
		return err
	}
	defer cl.Close()
	dump.set(cl)
	t, err := cl.Add(m, st, have)
	if err != nil {
		return failure("seed: %v", err)
	}
	// Local discovery listens before "listening:" is printed, so a peer
	// started on that line is heard.
	ls := startLSD(c, cl, m.Info.Private)
	if ls != nil {
		defer ls.Close()
		dump.setLSD(ls)
	}
	mg := m.Magnet()
	for _, a := range cl.Addrs() {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil && !ap.Addr().IsUnspecified() {
			mg.Peers = append(mg.Peers, ap.String())
		}
	}
	// One line per address family listened on, IPv4 first, as a
	// script reading the first line found it before dual stack.
	for _, a := range cl.Addrs() {
		fmt.Fprintf(c.App.Writer, "listening: %s\n", displayAddr(a, c.String("listen")))
	}
	printHashes(c.App.Writer, m.Info, mg)
	if f, ok := c.App.Writer.(*os.File); ok {
		f.Sync()
	}
	defer startPortMap(ctx, c, cl)()
	node, err := startDHTNode(ctx, c, cl, m.Info.Private)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Close()
	}
	t.AddSources(lsdSources(ls, m.Info.Private)...)
	t.AddSources(torrentSources(cl, node, m, peers)...)
	t.AddTrackers(m.Tiers(c.StringSlice("tracker")...))

	var wg sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		statusLoop(statusCtx, c.App.ErrWriter, 10e9, func() string {
			s := t.Stats()
			return fmt.Sprintf("seeding %s: %s, up %s, uploaded %s", m.Info.Name, peersText(s), formatRate(s.UpRate), formatBytes(s.Uploaded))
		})
	}()
	if ratio := c.Float64("seed-ratio"); ratio > 0 {
		waitRatio(ctx, t, ratio)
		fmt.Fprintf(c.App.ErrWriter, "seed ratio %g reached: uploaded %s\n", ratio, formatBytes(t.Stats().Uploaded))
	} else {
		<-ctx.Done()
	}
	stopStatus()
	wg.Wait()
	if err := t.Close(); err != nil {
		warnf(c.App.ErrWriter, "saving resume record: %v", err)
	}
	return nil
}

// waitRatio returns once ratio times the content has been uploaded, or
// when ctx ends.
func waitRatio(ctx context.Context, t *swarm.Torrent, ratio float64) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if s := t.Stats(); float64(s.Uploaded) >= ratio*float64(s.BytesTotal) {
				return
			}
		}
	}
}

// dataDir is the folder the torrent's disk paths start from: the parent of
// PATH, except for a single-file torrent made from a folder holding one
// file, whose data is that file inside PATH.
func dataDir(path string, info *piece.Info) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() && info.SingleFile() {
		return path
	}
	return filepath.Dir(path)
}

// displayAddr renders a listener address as HOST:PORT, IPv6 in brackets.
// A wildcard listener shows the host the user asked for: Go binds
// 0.0.0.0 as the dual-stack [::], which would read as a surprise.
func displayAddr(a net.Addr, requested string) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	if host, _, err := net.SplitHostPort(requested); err == nil && ap.Addr().IsUnspecified() && host != "" {
		return net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
	}
	return ap.String()
}
