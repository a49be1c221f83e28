package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/daemon"
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

// attachFrontEnds is where the remote control of a session attaches: the
// Transmission RPC and the web UI (issue 15), served over HTTP beside the
// session. It returns what stops them. There are none yet.
func attachFrontEnds(_ *cli.Context, _ *daemon.Session) (stop func(), err error) {
	return func() {}, nil
}
