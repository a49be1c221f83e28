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
			// The piece's bytes in the file: in v1 a piece may begin
			// before the file does.
			pieceStart := int64(f.FirstPiece+i) * in.PieceLength
			start := max(0, pieceStart-f.Offset)
			end := min(pieceStart+in.PieceLength-f.Offset, f.Length) - 1
			fmt.Fprintf(w, "BAD %s: piece %d (bytes %d-%d) does not match\n", termsafe.String(p.Path), i, start, end)
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

// dataFiles counts the torrent's files, leaving out v1 pad files, which
// are never on disk.
func dataFiles(in *piece.Info) int {
	n := 0
	for _, f := range in.Files {
		if !f.Pad {
			n++
		}
	}
	return n
}
