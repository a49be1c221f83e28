package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/daemon"
	"github.com/shoal-p2p/shoal/daemon/rpc"
	"github.com/shoal-p2p/shoal/daemon/webui"
	"github.com/shoal-p2p/shoal/swarm"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run every torrent of a session folder in one process, until interrupted",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "session", Usage: "keep the torrents, their settings and resume records in `DIR` (default $XDG_STATE_HOME/shoal, or ~/.local/state/shoal)", EnvVars: env("session")},
			&cli.StringFlag{Name: "download-dir", Aliases: []string{"o"}, Usage: "download into `DIR` (default SESSION/downloads; kept in the session once set)", EnvVars: env("download-dir")},
			listenFlag(),
			encryptionFlag(),
			bootstrapFlag(),
			noDHTFlag(),
			noLSDFlag(),
			noPortMapFlag(),
			rateFlag("max-download-rate", "downloads of all torrents together"),
			rateFlag("max-upload-rate", "uploads of all torrents together"),
			&cli.IntFlag{Name: "max-peers", Usage: "connect to at most `N` peers per torrent (0 = the default, 50)", EnvVars: env("max-peers")},
			&cli.StringFlag{Name: "rpc", Value: "127.0.0.1:9091", Usage: "serve the Transmission RPC (" + rpc.Path + ") and the web UI (/) on `HOST:PORT`; \"off\" serves neither", EnvVars: env("rpc")},
			&cli.StringFlag{Name: "rpc-auth", Usage: "require HTTP Basic auth with the `FILE`'s user:password (or user:bcrypt-hash) line", EnvVars: env("rpc-auth")},
			&cli.StringSliceFlag{Name: "rpc-host", Usage: "also answer requests whose Host header is `NAME` (localhost and the listen address always are); against DNS rebinding, others are refused", EnvVars: env("rpc-host")},
		},
		Action: runDaemon,
	}
}

// defaultSessionDir is $XDG_STATE_HOME/shoal, or ~/.local/state/shoal as
// the XDG base directory specification defaults it.
func defaultSessionDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "shoal"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "shoal"), nil
}

func runDaemon(c *cli.Context) error {
	if err := exactArgs(c, 0, ""); err != nil {
		return err
	}
	dir := c.String("session")
	if dir == "" {
		var err error
		if dir, err = defaultSessionDir(); err != nil {
			return failure("daemon: no session folder: %v; give one with --session", err)
		}
	}
	down, err := rateValue(c, "max-download-rate")
	if err != nil {
		return err
	}
	up, err := rateValue(c, "max-upload-rate")
	if err != nil {
		return err
	}
	enc, err := swarm.ParseEncryption(c.String("encryption"))
	if err != nil {
		return usageError("--encryption: %v", err)
	}
	bootstrap, err := bootstrapNodes(c.StringSlice("bootstrap"), c.IsSet("bootstrap"))
	if err != nil {
		return err
	}
	cfg := daemon.Config{
		SessionDir:  dir,
		DownloadDir: c.String("download-dir"),
		Encryption:  enc,
		PeerLimit:   c.Int("max-peers"),
		NoDHT:       c.Bool("no-dht"),
		Bootstrap:   bootstrap,
		NoLSD:       c.Bool("no-lsd"),
		NoPortMap:   c.Bool("no-port-map"),
		Logger:      slog.Default(),
		Version:     "shoal " + version,
	}
	// The default port moves on to the next free one; one given must be
	// free (see startClient).
	if c.IsSet("listen") {
		cfg.ListenAddr = c.String("listen")
		if err := checkListenAddr(cfg.ListenAddr); err != nil {
			return usageError("--listen %q: %v", cfg.ListenAddr, err)
		}
	}
	if c.IsSet("max-download-rate") {
		cfg.DownLimit = down
	}
	if c.IsSet("max-upload-rate") {
		cfg.UpLimit = up
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := daemon.Open(ctx, cfg)
	if err != nil {
		return failure("daemon: %v", err)
	}
	// Rates given on the command line win over those the session kept.
	if c.IsSet("max-download-rate") || c.IsSet("max-upload-rate") {
		ch := daemon.SettingsChange{}
		if c.IsSet("max-download-rate") {
			ch.DownLimit = &down
		}
		if c.IsSet("max-upload-rate") {
			ch.UpLimit = &up
		}
		if err := s.SetSettings(ch); err != nil {
			s.Close()
			return failure("daemon: %v", err)
		}
	}
	if cfg.DownloadDir != "" {
		if err := s.SetSettings(daemon.SettingsChange{DownloadDir: &cfg.DownloadDir}); err != nil {
			s.Close()
			return failure("daemon: %v", err)
		}
	}
	for _, err := range s.LoadErrors() {
		warnf(c.App.ErrWriter, "session %s: %v", dir, err)
	}
	for _, a := range s.ListenAddrs() {
		fmt.Fprintf(c.App.Writer, "listening: %s\n", displayAddr(a, c.String("listen")))
	}
	if f, ok := c.App.Writer.(*os.File); ok {
		f.Sync()
	}
	stopFront, err := attachFrontEnds(c, s)
	if err != nil {
		s.Close()
		return err
	}
	<-ctx.Done()
	stopFront()
	if err := s.Close(); err != nil {
		return failure("daemon: saving the session: %v", err)
	}
	return nil
}

// attachFrontEnds serves the session's remote control over HTTP: the
// Transmission RPC, and the web UI that drives it. It returns what stops
// them.
func attachFrontEnds(c *cli.Context, s *daemon.Session) (stop func(), err error) {
	addr := c.String("rpc")
	if addr == "off" {
		return func() {}, nil
	}
	if err := checkListenAddr(addr); err != nil {
		return nil, usageError("--rpc %q: %v", addr, err)
	}
	opts := rpc.Options{Hosts: c.StringSlice("rpc-host"), Logger: slog.Default()}
	if f := c.String("rpc-auth"); f != "" {
		if opts.Auth, err = rpc.LoadAuthFile(f); err != nil {
			return nil, usageError("--rpc-auth: %v", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, failure("daemon: RPC: %v (choose another with --rpc HOST:PORT)", err)
	}
	h := rpc.NewHandler(s, opts)
	mux := http.NewServeMux()
	mux.Handle(rpc.Path, h)
	// transmission-remote asks for the path with a trailing slash.
	mux.Handle(rpc.Path+"/", h)
	mux.Handle("/", h.Guard(webui.Handler()))
	srv := &http.Server{
		Handler: mux,
		// A client that opens connections and sends its headers a byte at
		// a time must not hold them open.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	at := ln.Addr().(*net.TCPAddr)
	base := "http://" + net.JoinHostPort(displayHost(at, addr), strconv.Itoa(at.Port))
	fmt.Fprintf(c.App.Writer, "rpc: %s%s\n", base, rpc.Path)
	fmt.Fprintf(c.App.Writer, "web: %s/\n", base)
	if opts.Auth == nil && !at.IP.IsLoopback() {
		// Anyone who can reach the port could add torrents, delete data
		// or read the file list: say so where it cannot be missed.
		warnf(c.App.ErrWriter, "the RPC on %s is reachable from other machines and has NO PASSWORD: anyone who can reach it controls this daemon; give --rpc-auth FILE or --rpc 127.0.0.1:PORT", ln.Addr())
		slog.Warn("rpc exposed without authentication", "addr", ln.Addr().String())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// displayHost is the host to print for an RPC bound to at: the one the
// user gave, or localhost's address for a wildcard, which a browser on
// this machine can open.
func displayHost(at *net.TCPAddr, requested string) string {
	host, _, err := net.SplitHostPort(requested)
	if err == nil && host != "" && !at.IP.IsUnspecified() {
		return host
	}
	if at.IP.To4() == nil && !at.IP.IsUnspecified() {
		return at.IP.String()
	}
	return "127.0.0.1"
}
