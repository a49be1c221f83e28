package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/dht"
	"github.com/shoal-p2p/shoal/internal/portmap"
	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm"
	"github.com/shoal-p2p/shoal/swarm/lsd"
)

// Flags shared by seed and get.
func listenFlag() cli.Flag {
	return &cli.StringFlag{Name: "listen", Value: ":6881", Usage: "accept peers on `HOST:PORT`; port 0 picks a free one. An empty HOST (the default) listens on IPv4 and IPv6, an address on its family alone. The default port moves on to the next free one if taken; a port given here must be free", EnvVars: env("listen")}
}

// encryptionFlag is --encryption, MSE's policy both ways (swarm.Encryption),
// named and meant as libtorrent's out_enc_policy and in_enc_policy.
func encryptionFlag() cli.Flag {
	return &cli.StringFlag{Name: "encryption", Value: "prefer", Usage: "`POLICY` for encrypted connections (MSE): prefer (dial encrypted, dial again in plaintext if refused; accept both), require (encrypted only, both ways), off (plaintext only, both ways)", EnvVars: env("encryption"),
		// Checked before the command runs: seed hashes its data before
		// the client starts, and a typo should not wait for that.
		Action: func(_ *cli.Context, v string) error {
			if _, err := swarm.ParseEncryption(v); err != nil {
				return usageError("--encryption: %v", err)
			}
			return nil
		}}
}

func peerFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "peer", Usage: "connect to the peer at `HOST:PORT` (repeat for more)", EnvVars: env("peer")}
}

func noDHTFlag() cli.Flag {
	return &cli.BoolFlag{Name: "no-dht", Usage: "do not use the DHT", EnvVars: env("no-dht")}
}

func rateFlag(name, what string) cli.Flag {
	return &cli.StringFlag{Name: name, Usage: "cap " + what + " at `RATE` bytes/s (500k, 10M, 1G; 0 = unlimited)", EnvVars: env(name)}
}

// rateValue reads a RATE flag.
func rateValue(c *cli.Context, name string) (int64, error) {
	s := c.String(name)
	if s == "" {
		return 0, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, usageError("--%s: %v", name, err)
	}
	return n, nil
}

// parsePeers resolves --peer values (and magnet x.pe hints).
func parsePeers(list []string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range list {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, ap)
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, usageError("--peer %q: want HOST:PORT", s)
		}
		pn, err := strconv.ParseUint(port, 10, 16)
		if err != nil || pn == 0 {
			return nil, usageError("--peer %q: bad port", s)
		}
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, usageError("--peer %q: cannot resolve %s", s, host)
		}
		ip, _ := netip.AddrFromSlice(ips[0])
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(pn)))
	}
	return out, nil
}

// startClient opens the peer listener. A taken default port moves on to
// the next free one, as BitTorrent clients traditionally do; a port the
// user asked for explicitly must be free: it was chosen for a reason (a
// firewall rule, a forwarded port, an address given to peers), and
// listening elsewhere would quietly defeat it.
func startClient(ctx context.Context, c *cli.Context) (*swarm.Client, error) {
	up, err := rateValue(c, "max-upload-rate")
	if err != nil {
		return nil, err
	}
	down := int64(0)
	if c.Command.Name == "get" {
		if down, err = rateValue(c, "max-download-rate"); err != nil {
			return nil, err
		}
	}
	enc, err := swarm.ParseEncryption(c.String("encryption"))
	if err != nil {
		return nil, usageError("--encryption: %v", err)
	}
	addr := c.String("listen")
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageError("--listen %q: want HOST:PORT", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, usageError("--listen %q: bad port", addr)
	}
	tries := 1
	if !c.IsSet("listen") && port != 0 {
		tries = 50
	}
	for i := 0; ; i++ {
		cfg := swarm.Config{
			ListenAddr:      net.JoinHostPort(host, strconv.Itoa(port+i)),
			MaxUploadRate:   up,
			MaxDownloadRate: down,
			Logger:          slog.Default(),
			Version:         "shoal " + version,
			Encryption:      enc,
		}
		if c.Command.Name == "seed" {
			cfg.SuperSeed = c.Bool("super-seed")
		}
		if port == 0 {
			cfg.ListenAddr = net.JoinHostPort(host, "0")
		}
		cl, err := swarm.Listen(ctx, cfg)
		if err == nil {
			return cl, nil
		}
		if errors.Is(err, syscall.EADDRINUSE) && c.IsSet("listen") {
			return nil, failure("--listen %s: port %d is taken (by another shoal?); give another port, or 0 for any free one", addr, port)
		}
		if i+1 >= tries || port+i+1 > 65535 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, failure("%v", err)
		}
	}
}

func bootstrapFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "bootstrap", Usage: "join the DHT through `HOST:PORT` instead of the public routers (repeat for more)", EnvVars: env("bootstrap")}
}

// dhtNodes are the process's DHT nodes, one per address family the peer
// listener takes (BEP 32: an IPv6 node is a node of its own, with its own
// routing table); nil means no DHT.
type dhtNodes []*dht.Node

// Close closes every node.
func (ns dhtNodes) Close() {
	for _, n := range ns {
		n.Close()
	}
}

// lookups lists each node as a source of a torrent's peers, looking up.
func (ns dhtNodes) lookups() []swarm.Source {
	out := make([]swarm.Source, 0, len(ns))
	for _, n := range ns {
		out = append(out, swarm.DHTLookup(n))
	}
	return out
}

// startDHTNode runs a DHT node on the UDP twin of each of the peer
// listener's addresses, unless --no-dht or the torrent is private
// (BEP 27). nil means no DHT.
func startDHTNode(ctx context.Context, c *cli.Context, cl *swarm.Client, private bool) (dhtNodes, error) {
	if c.Bool("no-dht") || private {
		return nil, nil
	}
	bootstrap, err := bootstrapNodes(c.StringSlice("bootstrap"), c.IsSet("bootstrap"))
	if err != nil {
		return nil, err
	}
	var nodes dhtNodes
	for _, a := range cl.Addrs() {
		node, err := startFamilyNode(ctx, a, bootstrap)
		if err != nil {
			nodes.Close()
			return nil, err
		}
		nodes = append(nodes, node)
	}
	return nodes, nil
}

// startFamilyNode runs the DHT node of listener address a
// (dht.NewForListener), keeping its table in the user's cache.
func startFamilyNode(ctx context.Context, a net.Addr, bootstrap []string) (*dht.Node, error) {
	network, family := dht.Family(a)
	node, err := dht.NewForListener(ctx, a, dht.Config{
		Bootstrap: bootstrap,
		// One node per family: its logs say which, or a dual-stack
		// seed's warnings read as one said twice.
		Logger: slog.Default().With("family", family),
	}, func(udp net.Addr) string {
		state, err := defaultDHTState(udp, network == "udp6")
		if err != nil {
			return ""
		}
		return state
	})
	if err != nil {
		return nil, failure("%v", err)
	}
	return node, nil
}

// torrentSources lists where a running torrent finds peers besides its
// trackers (AddTrackers): the addresses given, and the DHT nodes,
// announcing our port, unless there are none or the torrent is private
// (BEP 27).
func torrentSources(cl *swarm.Client, nodes dhtNodes, m *piece.MetaInfo, peers []netip.AddrPort) []swarm.Source {
	port := 0
	if ap, err := netip.ParseAddrPort(cl.Addr().String()); err == nil {
		port = int(ap.Port())
	}
	var announcers []swarm.PeerFinder
	for _, n := range nodes {
		announcers = append(announcers, n.Announcer(port))
	}
	return swarm.RunningSources(m.Info.Private, peers, announcers, nil)
}

// magnetSources lists where a magnet's metadata fetch finds peers: the
// addresses given, the magnet's trackers and those of -t, and the DHT.
func magnetSources(cl *swarm.Client, nodes dhtNodes, mg piece.Magnet, extra []string, peers []netip.AddrPort) []swarm.Source {
	var lookups []swarm.PeerFinder
	for _, n := range nodes {
		lookups = append(lookups, n)
	}
	return cl.MagnetSources(mg, extra, peers, lookups, nil)
}

// magnetTiers lists a magnet's trackers and then those of -t, each a tier
// of its own, as the torrent fetched for it will have them.
func magnetTiers(mg piece.Magnet, extra []string) [][]string { return swarm.MagnetTiers(mg, extra) }

// seedResumePath returns where seed keeps the resume record of the torrent
// whose Info.ID is id (a v1 torrent has no v2 hash to name it by): the
// user's cache, so seeding never writes into the folder being shared.
func seedResumePath(id string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "shoal", "resume", id+".resume")
}

// statusLoop prints a status line every second on a terminal, or a plain
// line every interval otherwise, until ctx ends. The line is escaped, as it
// usually names the torrent.
func statusLoop(ctx context.Context, w io.Writer, every time.Duration, line func() string) {
	term := isTerminal(w)
	if !term {
		every = max(every, 5*time.Second)
	} else {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if term {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case <-tick.C:
			if term {
				fmt.Fprintf(w, "\r\033[K%s", termsafe.String(line()))
			} else {
				fmt.Fprintln(w, termsafe.String(line()))
			}
		}
	}
}

func formatRate(bps float64) string { return formatBytes(int64(bps)) + "/s" }

// Local service discovery (BEP 14), issue 14.

func noLSDFlag() cli.Flag {
	return &cli.BoolFlag{Name: "no-lsd", Usage: "do not announce to or look for peers on the local network (BEP 14 local service discovery); it runs only on the interfaces --listen covers", EnvVars: env("no-lsd")}
}

// lsdListen returns the addresses whose interfaces LSD runs on: those
// the listeners are bound to, each keeping to its family (0.0.0.0 is IPv4
// alone; the LSD engineer's scope reads [::] as both), or, before they
// exist (bound nil), the host asked for: an empty one is both families,
// and a host name resolves to its addresses.
func lsdListen(requested string, bound []net.Addr) []netip.Addr {
	var out []netip.Addr
	for _, b := range bound {
		if ap, err := netip.ParseAddrPort(b.String()); err == nil {
			out = append(out, ap.Addr().Unmap())
		}
	}
	if len(out) > 0 {
		return out
	}
	host, _, err := net.SplitHostPort(requested)
	if err != nil {
		return nil
	}
	if host == "" {
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}
	}
	addrs, _ := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	return addrs
}

// lsdWanted reports whether LSD would run for a torrent: not --no-lsd,
// not private (BEP 27), and some interface in the listen address's scope.
func lsdWanted(c *cli.Context, private bool) bool {
	if c.Bool("no-lsd") || private {
		return false
	}
	ifs, err := lsd.SystemInterfaces()
	return err == nil && !lsd.SelectScope(lsdListen(c.String("listen"), nil), ifs).Empty()
}

// startLSD runs local service discovery on the interfaces the peer
// listener covers, announcing its port; nil when it is off: --no-lsd, a
// private torrent, no interface in scope, or the LSD port unusable (a
// warning: the swarm runs on without it).
func startLSD(c *cli.Context, cl *swarm.Client, private bool) *lsd.Service {
	if c.Bool("no-lsd") || private {
		return nil
	}
	ap, err := netip.ParseAddrPort(cl.Addr().String())
	if err != nil {
		return nil
	}
	ls, err := lsd.New(lsd.Config{Listen: lsdListen(c.String("listen"), cl.Addrs()), Port: ap.Port(), Logger: slog.Default()})
	if errors.Is(err, lsd.ErrNoInterface) {
		slog.Debug("local service discovery off", "err", err)
		return nil
	}
	if err != nil {
		warnf(c.App.ErrWriter, "local service discovery off: %v", err)
		return nil
	}
	slog.Debug("local service discovery", "on", ls.Scope().String())
	return ls
}

// lsdSources lists LSD as a source of a torrent's peers, unless it is off
// or the torrent private.
func lsdSources(ls *lsd.Service, private bool) []swarm.Source {
	if ls == nil || private {
		return nil
	}
	return []swarm.Source{{Kind: swarm.SourceLSD, Finder: ls}}
}

// Port mapping (issue 14): --no-port-map, and the mapper seed and get run
// beside their client.
func noPortMapFlag() cli.Flag {
	return &cli.BoolFlag{Name: "no-port-map", Usage: "do not ask the router (UPnP IGD, NAT-PMP) to forward the listen port", EnvVars: env("no-port-map")}
}

// portMapLeaseFlag sets the lease asked of the router; hidden, as only
// tests (which watch a renewal) and odd routers need another than the
// default.
func portMapLeaseFlag() cli.Flag {
	return &cli.DurationFlag{Name: "port-map-lease", Value: portmap.DefaultLease, Hidden: true, EnvVars: env("port-map-lease")}
}

// startPortMap maps the client's port in the background, unless
// --no-port-map, and prints "external: IP:PORT" on stdout whenever a
// mapping holds at a new address. The returned func removes the mapping.
func startPortMap(ctx context.Context, c *cli.Context, cl *swarm.Client) (stop func()) {
	ap, err := netip.ParseAddrPort(cl.Addr().String())
	if c.Bool("no-port-map") || err != nil {
		return func() {}
	}
	lease := c.Duration("port-map-lease")
	if lease < 2*time.Second {
		// Renewal runs at half the lease, and a router's answer takes
		// a round trip: less leaves no margin.
		warnf(c.App.ErrWriter, "--port-map-lease %v is too short to renew in time; asking for 2s", lease)
		lease = 2 * time.Second
	}
	m := portmap.Start(ctx, portmap.Config{
		Listen:      ap,
		Lease:       lease,
		Description: "shoal " + version,
		Logger:      slog.Default(),
		OnExternal: func(ext netip.AddrPort) {
			fmt.Fprintf(c.App.Writer, "external: %s\n", ext)
			if f, ok := c.App.Writer.(*os.File); ok {
				f.Sync()
			}
		},
	})
	return m.Close
}
