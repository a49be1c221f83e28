package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
	"github.com/shoal-p2p/shoal/swarm/lsd"
)

// layersFor completes a .torrent whose piece layers are missing, as
// libtorrent does: from the copy an earlier run saved in DIR's state
// folder, or else from peers, as for a magnet link, saving the result for
// the next run. Without its layers no piece of those files can be checked.
func layersFor(ctx context.Context, c *cli.Context, cl *swarm.Client, node dhtNodes, ls *lsd.Service, m *piece.MetaInfo, dir string, peers []netip.AddrPort) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return failure("get: %v", err)
	}
	defer root.Close()
	saved := filepath.Join(storage.StateDirName, m.Info.ID()+".torrent")
	if data, err := root.ReadFile(saved); err == nil {
		if s, err := piece.Parse(data); err == nil && s.Info.Hash == m.Info.Hash && len(s.MissingLayers()) == 0 {
			m.Layers = s.Layers
			return nil
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "the torrent lacks the piece layers of %d file(s); fetching them from peers...\n", len(m.MissingLayers()))
	sources := []swarm.Source{swarm.FixedPeers(peers...)}
	for _, tier := range m.Tiers(c.StringSlice("tracker")...) {
		for _, u := range tier {
			sources = append(sources, cl.TrackerLookup(u))
		}
	}
	if !m.Info.Private {
		sources = append(sources, node.lookups()...)
	}
	sources = append(sources, lsdSources(ls, m.Info.Private)...)
	described := peerSources(c, m, piece.Magnet{}, node != nil)
	var last swarm.FetchStatus
	var printed time.Time
	lastLine := ""
	err = cl.FetchLayersFrom(ctx, m, sources, func(s swarm.FetchStatus) {
		last = s
		line := waitLine("piece layers", s.Known, described, s.LastError, true)
		if s.LastError != "" && line != lastLine && time.Since(printed) >= 5*time.Second {
			fmt.Fprintln(c.App.ErrWriter, termsafe.String(line))
			lastLine, printed = line, time.Now()
		}
	})
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			return failure("get: timed out after %s %s", c.Duration("timeout"), waitLine("piece layers", last.Known, described, last.LastError, false))
		}
		return failure("get: %v", err)
	}
	if data, err := m.Marshal(); err == nil {
		err := root.MkdirAll(storage.StateDirName, 0o755)
		if err == nil {
			err = fsutil.WriteFileAtomicIn(root, saved, data, 0o644)
		}
		if err != nil {
			warnf(c.App.ErrWriter, "saving the piece layers: %v", err)
		}
	}
	return nil
}

// layersFromDisk derives the piece layers m lacks from the data a seeder
// has: a file whose bytes under dir (its top-level entry named topName
// when set, as storage.Options.TopName) hash to the file's pieces root
// yields the layer the .torrent left out. It returns the paths of the
// files it could not complete, which then cannot be seeded.
func layersFromDisk(ctx context.Context, m *piece.MetaInfo, dir, topName string) []string {
	var failed []string
	if len(m.Layers) != len(m.Info.Files) {
		m.Layers = append(m.Layers, make([][]piece.Hash, len(m.Info.Files)-len(m.Layers))...)
	}
	for _, i := range m.MissingLayers() {
		comps := m.Info.DiskPath(i)
		if topName != "" {
			comps = append([]string{topName}, comps[1:]...)
		}
		path := filepath.Join(append([]string{dir}, comps...)...)
		f := m.Info.Files[i]
		b, err := piece.Build(ctx, path, piece.BuildOptions{PieceLength: m.Info.PieceLength})
		if err != nil || len(b.Info.Files) != 1 || b.Info.Files[0].PiecesRoot != f.PiecesRoot || m.Info.CheckLayer(i, b.Layers[0]) != nil {
			failed = append(failed, path)
			continue
		}
		m.Layers[i] = b.Layers[0]
	}
	return failed
}
