package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check data on disk against a .torrent",
		ArgsUsage: "FILE.torrent",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Value: ".", Usage: "the folder holding NAME", EnvVars: env("dir")},
		},
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	if err := exactArgs(c, 1, "FILE.torrent"); err != nil {
		return err
	}
	m, err := readTorrent(c.Args().First())
	if err != nil {
		return err
	}
	dir := c.String("dir")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageError("verify: --dir %s: not a folder", dir)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var done atomic.Int64
	stopBar := showBytes(c.App.ErrWriter, "verifying", m.Info.TotalLength, &done)
	problems, err := piece.Verify(ctx, m, dir, &piece.Hasher{Progress: &done})
	stopBar()
	if err != nil {
		return failure("verify: %v", err)
	}
	w := c.App.Writer
	in := m.Info
	for _, p := range problems {
		if p.Kind != piece.BadPieces {
			fmt.Fprintf(w, "BAD %s\n", termsafe.String(p.String()))
			continue
		}
		f := in.Files[p.File]
		for _, i := range p.Pieces {
			// The piece's bytes in this file, from its place in the piece
			// space: a v1 piece may start before the file and run on into
			// the next one.
			g := f.FirstPiece + i
			at := int64(g)*in.PieceLength - f.Offset
			start, end := max(at, 0), min(at+in.PieceLength, f.Length)-1
			// v2 numbers pieces per file (each file has its own tree); v1
			// numbers them over the whole torrent, as v1 clients show them.
			n := i
			if in.Format == piece.FormatV1 {
				n = g
			}
			fmt.Fprintf(w, "BAD %s: piece %d (bytes %d-%d) does not match\n", termsafe.String(p.Path), n, start, end)
		}
	}
	if len(problems) > 0 {
		files := map[int]bool{}
		for _, p := range problems {
			files[p.File] = true
		}
		return failure("verify: %d of %d files do not match the torrent", len(files), dataFiles(in))
	}
	fmt.Fprintf(w, "OK %s: %d files, %d bytes, %d pieces verified\n", termsafe.String(in.Name), dataFiles(in), in.TotalLength, in.NumPieces)
	return nil
}

// dataFiles counts the files of the torrent that hold data: a v1
// torrent's pad files are zeros that never reach the disk, and counting
// them would promise files the user cannot find.
func dataFiles(in *piece.Info) int {
	n := 0
	for _, f := range in.Files {
		if !f.Pad {
			n++
		}
	}
	return n
}
