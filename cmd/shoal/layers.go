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

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

// layersFor completes a .torrent whose piece layers are missing, as
// libtorrent does: from the copy an earlier run saved in DIR's state
// folder, or else from peers, as for a magnet link, saving the result for
// the next run. Without its layers no piece of those files can be checked.
func layersFor(ctx context.Context, c *cli.Context, cl *swarm.Client, node *dht.Node, m *piece.MetaInfo, dir string, peers []netip.AddrPort) error {
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
	if node != nil && !m.Info.Private {
		sources = append(sources, swarm.DHTLookup(node))
	}
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
