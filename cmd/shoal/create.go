package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
)

func createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "make a .torrent (BitTorrent v2 by default, or hybrid or v1) from a file or folder",
		ArgsUsage: "PATH",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the torrent to `FILE` (default NAME.torrent)", EnvVars: env("output")},
			&cli.BoolFlag{Name: "force", Usage: "replace the output file if it exists (never the data being hashed)", EnvVars: env("force")},
			&cli.StringSliceFlag{Name: "tracker", Aliases: []string{"t"}, Usage: "announce `URL` (repeat for more, each its own tier)", EnvVars: env("tracker")},
			&cli.StringFlag{Name: "piece-length", Usage: "piece length in `BYTES`, a power of two ≥ 16k (default: from the total size)", EnvVars: env("piece-length")},
			&cli.BoolFlag{Name: "private", Usage: "mark the torrent private (peers from trackers only)", EnvVars: env("private")},
			&cli.StringFlag{Name: "comment", Usage: "a comment stored in the torrent", EnvVars: env("comment")},
			&cli.StringFlag{Name: "name", Usage: "the torrent's name (default: the base name of PATH)", EnvVars: env("name")},
			formatFlag(),
		},
		Action: runCreate,
	}
}

func runCreate(c *cli.Context) error {
	if err := exactArgs(c, 1, "PATH"); err != nil {
		return err
	}
	path := c.Args().First()
	var pl int64
	if s := c.String("piece-length"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return usageError("--piece-length: %v", err)
		}
		if n < piece.MinPieceLength || n > piece.MaxPieceLength || n&(n-1) != 0 {
			return usageError("--piece-length %d: must be a power of two from %d to %d", n, piece.MinPieceLength, piece.MaxPieceLength)
		}
		pl = n
	}
	format, err := formatOf(c)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err != nil {
		return usageError("create: %v", err)
	}
	output := func(name string) torrentOutput {
		o := torrentOutput{cmd: "create", what: "-o " + name, flag: "-o", path: name, src: path, force: c.Bool("force")}
		if c.String("output") == "" {
			o.what = name
		}
		return o
	}
	// Checked before hashing too, so a refusal costs no wait.
	if out := c.String("output"); out != "" {
		if err := output(out).check(""); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := buildTorrent(ctx, c, path, piece.BuildOptions{
		PieceLength: pl,
		Name:        c.String("name"),
		Trackers:    c.StringSlice("tracker"),
		Private:     c.Bool("private"),
		Comment:     c.String("comment"),
		Format:      format,
	})
	if err != nil {
		return err
	}
	data, err := m.Marshal()
	if err != nil {
		return failure("create: %v", err)
	}
	out := c.String("output")
	if out == "" {
		out = m.Info.Name + ".torrent"
	}
	if err := output(out).check(m.Info.ID()); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(out, data, 0o644); err != nil {
		return failure("create: %v", err)
	}
	printHashes(c.App.Writer, m.Info, m.Magnet())
	return nil
}

// formatFlag is --format of create and seed: what kind of torrent to make.
func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Value: "v2", Usage: "hash PATH into a `v2|hybrid|v1` torrent: v2 (BEP 52), hybrid (v1 and v2 over the same data, for v1-only clients too) or v1", EnvVars: env("format")}
}

// formatOf reads --format; a value it does not know is a usage error.
func formatOf(c *cli.Context) (piece.Format, error) {
	f, err := piece.ParseFormat(c.String("format"))
	if err != nil {
		return 0, usageError("--format: %v", err)
	}
	return f, nil
}

// buildTorrent hashes path with a progress bar and the creator's defaults.
// Bad names and unusable paths are usage errors; I/O trouble is a failure.
func buildTorrent(ctx context.Context, c *cli.Context, path string, opts piece.BuildOptions) (*piece.MetaInfo, error) {
	var done atomic.Int64
	opts.Hasher = &piece.Hasher{Progress: &done}
	opts.CreatedBy = "shoal/" + version
	opts.CreationDate = time.Now()
	total := dirSize(path)
	stopBar := showBytes(c.App.ErrWriter, "hashing", total, &done)
	m, err := piece.Build(ctx, path, opts)
	stopBar()
	if ctx.Err() != nil {
		return nil, failure("create: interrupted")
	}
	if err != nil {
		return nil, usageError("create: %v", err)
	}
	return m, nil
}

// dirSize sums regular files under path for the progress bar; errors only
// make the estimate low.
func dirSize(path string) int64 {
	var n int64
	filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
