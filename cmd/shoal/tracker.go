package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/tracker"
)

func trackerCommand() *cli.Command {
	return &cli.Command{
		Name:  "tracker",
		Usage: "run a BitTorrent tracker over HTTP and UDP (announce, scrape, stats)",
		Description: "Serves /announce (BEP 3, compact peers BEP 23, IPv6 peers BEP 7), /scrape (BEP 48)\n" +
			"and /stats (JSON) over HTTP, and the UDP tracker protocol (BEP 15, passkeys in\n" +
			"BEP 41 URL data: udp://HOST:PORT/announce/KEY) on the same port number.\n" +
			"Prints \"listening: HOST:PORT\" on stdout once it accepts connections. SIGINT or\n" +
			"SIGTERM stops it; SIGHUP re-reads --allow-file and --keys.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "0.0.0.0:6969", Usage: "serve on `HOST:PORT` (port 0 picks a free one)", EnvVars: env("listen")},
			&cli.DurationFlag{Name: "interval", Value: tracker.DefaultInterval, Usage: "re-announce `DURATION` told to clients", EnvVars: env("interval")},
			&cli.StringSliceFlag{Name: "allow-hash", Usage: "track only this info-hash (`HEX`, 40 or 64 digits; repeat for more)", EnvVars: env("allow-hash")},
			&cli.StringFlag{Name: "allow-file", Usage: "track only the info-hashes listed in `FILE`, one per line (re-read on SIGHUP)", EnvVars: env("allow-file")},
			&cli.BoolFlag{Name: "private", Usage: "require a passkey in the path: /announce/KEY (needs --keys)", EnvVars: env("private")},
			&cli.StringFlag{Name: "keys", Usage: "passkeys for --private, one per line in `FILE` (re-read on SIGHUP)", EnvVars: env("keys")},
			&cli.IntFlag{Name: "max-peers", Usage: "cap on stored peers, oldest evicted first (`N`, 0 = 1,000,000)", EnvVars: env("max-peers")},
			&cli.IntFlag{Name: "max-torrents", Usage: "cap on tracked torrents (`N`, 0 = 100,000)", EnvVars: env("max-torrents")},
			&cli.IntFlag{Name: "max-peers-per-torrent", Usage: "cap on one swarm (`N`, 0 = 50,000)", EnvVars: env("max-peers-per-torrent")},
			&cli.Float64Flag{Name: "rate-limit", Usage: "requests per second per client address (`N`, 0 = 20, -1 = no limit)", EnvVars: env("rate-limit")},
			&cli.BoolFlag{Name: "no-udp", Usage: "serve HTTP only, not the UDP tracker protocol", EnvVars: env("no-udp")},
			&cli.StringFlag{Name: "store", Value: "memory", Usage: "keep swarms in `STORE`: memory, or redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS, unix://[:PASSWORD@]/PATH?db=N) shared by every instance given the same URL", EnvVars: env("store")},
			&cli.DurationFlag{Name: "store-timeout", Value: tracker.DefaultRedisTimeout, Usage: "bound each round trip to a redis store by `DURATION`; past it announces are refused with a retry", EnvVars: env("store-timeout")},
			&cli.StringFlag{Name: "secret-file", Usage: "key UDP connection IDs with the secret in `FILE` (16 bytes or more), so that trackers given the same file accept each other's", EnvVars: env("secret-file")},
		},
		Action: runTracker,
	}
}

func runTracker(c *cli.Context) error {
	if err := exactArgs(c, 0, ""); err != nil {
		return err
	}
	cfg, err := trackerConfig(c)
	if err != nil {
		return err
	}
	addr := c.String("listen")
	if err := checkListenAddr(addr); err != nil {
		return usageError("--listen %q: %v", addr, err)
	}
	if os.Getenv("GOGC") == "" {
		// The memory store keeps its records outside the Go heap, so
		// the heap is mostly connection buffers: a low target keeps it
		// small under a burst of connections. (Measured at 100,000 peers
		// on 10,000 torrents: 25 and 100 give the same RSS now; 25 took
		// 80-92 bytes per peer to 70-72 when the records were on the
		// heap.)
		debug.SetGCPercent(25)
	}
	if rs, ok := cfg.Store.(*tracker.RedisStore); ok {
		defer rs.Close()
		if err := rs.Ping(c.Context); err != nil {
			// Not fatal: announces get a retry until Redis is up, and
			// serving resumes by itself then.
			slog.Warn("tracker store not reachable yet; refusing announces with a retry until it is", "store", c.String("store"))
		}
	}
	srv, err := tracker.NewServer(cfg)
	if err != nil {
		// Only a passkey file that cannot be read or parsed gets here: the
		// flags were checked above, so it is bad input.
		return usageError("tracker: %v", err)
	}
	// Signals are caught before listening so a SIGTERM sent right after the
	// "listening" line is seen never kills the process uncleanly.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, udp, err := listenTracker(ctx, addr, !c.Bool("no-udp"))
	if err != nil {
		return failure("tracker: %v", err)
	}
	fmt.Fprintf(c.App.Writer, "listening: %s\n", ln.Addr())

	// Both front ends stop together: when one fails, the other is told to.
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	done := make(chan error, 2)
	running := 1
	go func() { done <- srv.Serve(sctx, ln) }()
	if udp != nil {
		running++
		go func() { done <- srv.ServeUDP(sctx, udp...) }()
	}
	var firstErr error
	for running > 0 {
		select {
		case err := <-done:
			running--
			if err != nil && firstErr == nil {
				firstErr = err
				stopServing()
			}
		case <-hup:
			reloadTracker(c, srv)
		}
	}
	if firstErr != nil {
		return failure("%v", firstErr)
	}
	return nil
}

// listenTracker opens the HTTP listener on addr and, with udp, the UDP
// sockets on the same address and port. When addr asks for any port and
// the one picked for TCP is taken for UDP, it tries another.
func listenTracker(ctx context.Context, addr string, udp bool) (net.Listener, []*net.UDPConn, error) {
	_, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		ln, err := tracker.Listen(ctx, "tcp", addr)
		if err != nil || !udp {
			return ln, nil, err
		}
		conns, err := tracker.ListenUDP(ctx, "udp", ln.Addr().String(), 0)
		if err == nil {
			return ln, conns, nil
		}
		ln.Close()
		if port != "0" || try == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("udp: %w", err)
		}
	}
}

// trackerConfig turns the flags into a tracker.Config, refusing values
// that would otherwise be silently replaced by defaults.
func trackerConfig(c *cli.Context) (tracker.Config, error) {
	cfg := tracker.Config{Logger: slog.Default()}
	if d := c.Duration("interval"); d < time.Second {
		return cfg, usageError("--interval %v: must be at least 1s", d)
	} else {
		cfg.Interval = d
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"max-peers", &cfg.MaxPeers},
		{"max-torrents", &cfg.MaxTorrents},
		{"max-peers-per-torrent", &cfg.MaxPeersPerTorrent},
	} {
		n := c.Int(f.name)
		if n < 0 {
			return cfg, usageError("--%s %d: must be 0 (default) or more", f.name, n)
		}
		*f.dst = n
	}
	switch r := c.Float64("rate-limit"); {
	case r == -1:
		cfg.RateLimit = -1
	case r >= 0:
		cfg.RateLimit = r
	default:
		return cfg, usageError("--rate-limit %v: must be 0 (default), more, or -1 (off)", r)
	}
	allow, err := allowHashes(c)
	if err != nil {
		return cfg, usageError("%v", err)
	}
	cfg.AllowHashes = allow
	if c.IsSet("allow-file") && len(allow) == 0 {
		// An empty allow-list would open the tracker to every torrent,
		// the opposite of what the operator asked for.
		return cfg, usageError("--allow-file %s: lists no info-hash", c.String("allow-file"))
	}
	cfg.Private = c.Bool("private")
	cfg.KeysFile = c.String("keys")
	switch {
	case cfg.Private && cfg.KeysFile == "":
		return cfg, usageError("--private needs --keys FILE")
	case !cfg.Private && cfg.KeysFile != "":
		return cfg, usageError("--keys needs --private")
	}
	if f := c.String("secret-file"); f != "" {
		if c.Bool("no-udp") {
			return cfg, usageError("--secret-file is for UDP connection IDs; it makes no sense with --no-udp")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, usageError("--secret-file: %v", err)
		}
		if len(bytes.TrimSpace(b)) < 16 {
			return cfg, usageError("--secret-file %s: the secret must be at least 16 bytes (e.g. head -c 32 /dev/urandom | base64 > %s)", f, f)
		}
		cfg.UDPSecret = b
	}
	if err := trackerStore(c, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// trackerStore sets cfg.Store from --store: nil (the default memory store)
// or a Redis store shared with other instances.
func trackerStore(c *cli.Context, cfg *tracker.Config) error {
	u := c.String("store")
	if u == "memory" {
		return nil
	}
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		return usageError("--store %q: want memory, redis://, rediss:// or unix://", u)
	}
	for _, f := range []string{"max-peers", "max-torrents"} {
		if c.IsSet(f) {
			// Redis bounds its own memory (maxmemory); a per-instance cap
			// on a shared store would mean nothing.
			return usageError("--%s applies to the memory store; bound a redis store with its maxmemory", f)
		}
	}
	d := c.Duration("store-timeout")
	if d <= 0 {
		return usageError("--store-timeout %v: must be more than 0", d)
	}
	rs, err := tracker.NewRedisStore(tracker.RedisStoreConfig{
		URL:                u,
		PeerTTL:            2 * cfg.Interval,
		MaxPeersPerTorrent: cfg.MaxPeersPerTorrent,
		Timeout:            d,
		Logger:             cfg.Logger,
	})
	if err != nil {
		return usageError("--store: %v", err)
	}
	cfg.Store = rs
	return nil
}

// allowHashes merges --allow-hash and --allow-file. Each --allow-hash goes
// through the allow-list parser so both accept exactly the same forms.
func allowHashes(c *cli.Context) ([]tracker.InfoHash, error) {
	var hs []tracker.InfoHash
	if f := c.String("allow-file"); f != "" {
		l, err := tracker.LoadAllowList(f)
		if err != nil {
			return nil, fmt.Errorf("--allow-file: %v", err)
		}
		hs = append(hs, l...)
	}
	for _, v := range c.StringSlice("allow-hash") {
		h, err := parseHexHash(v)
		if err != nil {
			return nil, fmt.Errorf("--allow-hash %q: %v", v, err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func parseHexHash(v string) (tracker.InfoHash, error) {
	var h tracker.InfoHash
	if len(v) != 40 && len(v) != 64 {
		return h, errors.New("need 40 or 64 hex digits")
	}
	var full [32]byte
	for i := 0; i+1 < len(v); i += 2 {
		b, err := strconv.ParseUint(v[i:i+2], 16, 8)
		if err != nil {
			return h, errors.New("not hex")
		}
		full[i/2] = byte(b)
	}
	copy(h[:], full[:20])
	return h, nil
}

// checkListenAddr rejects addresses that are malformed, as opposed to ones
// that merely cannot be bound right now (a port in use is a failure).
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return errors.New("host must be an IP address")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// reloadTracker re-reads the allow-list and passkeys on SIGHUP. A file that
// fails to load leaves the old list in force: a typo must not open a
// private tracker or lock everybody out.
func reloadTracker(c *cli.Context, srv *tracker.Server) {
	if c.IsSet("allow-file") {
		hs, err := allowHashes(c)
		switch {
		case err != nil:
			slog.Error("tracker allow-list not reloaded", "err", err)
		case len(hs) == 0:
			slog.Error("tracker allow-list not reloaded: it lists no info-hash", "file", c.String("allow-file"))
		default:
			srv.SetAllowHashes(hs)
			slog.Info("tracker allow-list reloaded", "hashes", len(hs))
		}
	}
	if c.Bool("private") {
		if err := srv.ReloadKeys(); err != nil {
			slog.Error("tracker passkeys not reloaded", "err", err)
		}
	}
}
