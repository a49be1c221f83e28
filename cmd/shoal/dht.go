package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/dht"
)

func dhtCommand() *cli.Command {
	return &cli.Command{
		Name:  "dht",
		Usage: "run a standalone DHT node for others to bootstrap from",
		Description: "Joins the mainline DHT (BEP 5) and answers other nodes. Prints \"listening: HOST:PORT\"\n" +
			"on stdout once the UDP socket is bound, and the routing table size on stderr now\n" +
			"and then. The table is saved on exit and reloaded on start. SIGINT or SIGTERM\n" +
			"stops it. --bootstrap none starts a network of its own.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "0.0.0.0:6881", Usage: "UDP `HOST:PORT` to listen on (port 0 picks a free one)", EnvVars: env("listen")},
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "join through the node at `HOST:PORT` instead of the public routers (repeat for more; \"none\" for no node)", EnvVars: env("bootstrap")},
			&cli.StringFlag{Name: "state", Usage: "save the routing table in `FILE` (default: the user cache folder, shoal/dht-PORT.state)", EnvVars: env("state")},
		},
		Action: runDHT,
	}
}

func runDHT(c *cli.Context) error {
	if err := exactArgs(c, 0, ""); err != nil {
		return err
	}
	addr := c.String("listen")
	if err := checkListenAddr(addr); err != nil {
		return usageError("--listen %q: %v", addr, err)
	}
	bootstrap, err := bootstrapNodes(c.StringSlice("bootstrap"), c.IsSet("bootstrap"))
	if err != nil {
		return err
	}
	// Caught before binding, so a signal right after the listening line
	// still stops the node cleanly and saves its table.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return failure("dht: %v", err)
	}
	statePath := c.String("state")
	if statePath == "" {
		if statePath, err = defaultDHTState(conn.LocalAddr(), false); err != nil {
			// Without a place for the table the node still works; only
			// the next start is cold.
			slog.Warn("dht: routing table will not be saved", "err", err)
		}
	}
	node, err := dht.New(ctx, dht.Config{
		Conn:      conn,
		Bootstrap: bootstrap,
		StateFile: statePath,
		Logger:    slog.Default(),
	})
	if err != nil {
		conn.Close()
		return failure("%v", err)
	}
	fmt.Fprintf(c.App.Writer, "listening: %s\n", node.Addr())

	status := func() string {
		s := node.Stats()
		return fmt.Sprintf("dht: %d nodes in table, %d good", s.Nodes, s.GoodNodes)
	}
	statusLoop(ctx, c.App.ErrWriter, time.Minute, status)
	if err := node.Close(); err != nil {
		return failure("%v", err)
	}
	return nil
}

// bootstrapNodes turns --bootstrap into dht.Config.Bootstrap: unset means
// the public routers (nil), "none" means no node at all.
func bootstrapNodes(flags []string, set bool) ([]string, error) {
	if !set {
		return nil, nil
	}
	nodes := []string{}
	for _, f := range flags {
		if f == "none" {
			if len(flags) > 1 {
				return nil, usageError("--bootstrap none cannot be combined with other nodes")
			}
			return nodes, nil
		}
		host, port, err := net.SplitHostPort(f)
		if err != nil || host == "" {
			return nil, usageError("--bootstrap %q: want HOST:PORT", f)
		}
		if err := checkListenAddr(net.JoinHostPort("0.0.0.0", port)); err != nil || port == "0" {
			return nil, usageError("--bootstrap %q: port must be a number from 1 to 65535", f)
		}
		nodes = append(nodes, f)
	}
	return nodes, nil
}

// defaultDHTState names the state file by port, so that several nodes on one
// host (one per port) do not overwrite each other's tables, and the IPv6
// node of a dual-stack process (v6only) its own.
func defaultDHTState(a net.Addr, v6only bool) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir = filepath.Join(dir, "shoal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	port, name := 0, "dht"
	if ua, ok := a.(*net.UDPAddr); ok {
		port = ua.Port
	}
	if v6only {
		// The IPv6 node of a dual-stack process shares the port with
		// the IPv4 one but not its table (BEP 32).
		name = "dht6"
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%d.state", name, port)), nil
}
