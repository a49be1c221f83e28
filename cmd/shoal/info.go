package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show what a .torrent, magnet link or hash holds",
		ArgsUsage: "FILE.torrent | MAGNET | HASH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object", EnvVars: env("json")},
		},
		Action: runInfo,
	}
}

// jsonFile and jsonInfo are the --json schema of CLI.md.
type jsonFile struct {
	Path []string `json:"path"`
	Size int64    `json:"size"`
}

type jsonInfo struct {
	Name        string     `json:"name"`
	InfoHash    string     `json:"info_hash"`
	PieceLength int64      `json:"piece_length,omitempty"`
	TotalSize   int64      `json:"total_size,omitempty"`
	NumPieces   int        `json:"num_pieces,omitempty"`
	Files       []jsonFile `json:"files,omitempty"`
	Trackers    []string   `json:"trackers"`
	Peers       []string   `json:"peers,omitempty"`
	Private     bool       `json:"private"`
	Comment     string     `json:"comment,omitempty"`
	CreatedBy   string     `json:"created_by,omitempty"`
	Created     string     `json:"creation_date,omitempty"`
	Magnet      string     `json:"magnet"`
}

func runInfo(c *cli.Context) error {
	if err := exactArgs(c, 1, "a torrent file, magnet link or hash"); err != nil {
		return err
	}
	arg := c.Args().First()
	var out jsonInfo
	if looksLikeMagnet(arg) {
		mg, err := piece.ParseMagnet(arg)
		if err != nil {
			return usageError("info: %v", err)
		}
		out = jsonInfo{
			Name: mg.Name, InfoHash: fmt.Sprintf("%x", mg.Hash), Trackers: mg.Trackers,
			Peers: mg.Peers, Magnet: mg.String(),
		}
	} else {
		m, err := readTorrent(arg)
		if err != nil {
			return err
		}
		in := m.Info
		out = jsonInfo{
			Name: in.Name, InfoHash: in.HexHash(), PieceLength: in.PieceLength,
			TotalSize: in.TotalLength, NumPieces: in.NumPieces, Trackers: m.Trackers(),
			Private: in.Private, Comment: m.Comment, CreatedBy: m.CreatedBy, Magnet: m.Magnet().String(),
		}
		out.Files = []jsonFile{}
		for i, f := range in.Files {
			out.Files = append(out.Files, jsonFile{Path: in.DiskPath(i)[boolInt(!in.SingleFile()):], Size: f.Length})
		}
		if m.CreationDate != 0 {
			out.Created = time.Unix(m.CreationDate, 0).UTC().Format(time.RFC3339)
		}
	}
	if out.Trackers == nil {
		out.Trackers = []string{}
	}
	if c.Bool("json") {
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return failure("info: %v", err)
		}
		// encoding/json leaves DEL, C1 controls and bidi overrides raw.
		_, err = c.App.Writer.Write(append(termsafe.JSON(data), '\n'))
		return err
	}
	printInfo(c.App.Writer, out)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// looksLikeMagnet tells a magnet link, URN or bare hash from a file name.
// A file that exists wins, so a torrent named like a hash still opens.
func looksLikeMagnet(s string) bool {
	if strings.HasPrefix(s, "magnet:") || strings.HasPrefix(strings.ToLower(s), "urn:btmh:") {
		return true
	}
	if _, err := os.Stat(s); err == nil {
		return false
	}
	return len(s) == 64 || len(s) == 40
}

// readTorrent loads and parses a .torrent file; any problem is bad input.
func readTorrent(path string) (*piece.MetaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageError("%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, piece.MaxTorrentSize+1))
	if err != nil {
		return nil, usageError("%s: %v", path, err)
	}
	m, err := piece.Parse(data)
	if err != nil {
		if errors.Is(err, piece.ErrInvalid) {
			return nil, usageError("%s: %v", path, err)
		}
		return nil, usageError("%s: %v", path, err)
	}
	return m, nil
}

// printInfo shows in for people. Everything but the numbers comes from the
// torrent or magnet, so every value is escaped.
func printInfo(w io.Writer, in jsonInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, termsafe.String(v)) }
	if in.Name != "" {
		row("name", in.Name)
	}
	row("info-hash", in.InfoHash)
	if in.PieceLength > 0 {
		row("size", fmt.Sprintf("%s (%d bytes) in %d files", formatBytes(in.TotalSize), in.TotalSize, len(in.Files)))
		row("pieces", fmt.Sprintf("%d of %s", in.NumPieces, formatBytes(in.PieceLength)))
		row("private", map[bool]string{true: "yes", false: "no"}[in.Private])
	}
	for _, t := range in.Trackers {
		row("tracker", t)
	}
	for _, p := range in.Peers {
		row("peer", p)
	}
	if in.Comment != "" {
		row("comment", in.Comment)
	}
	if in.CreatedBy != "" {
		row("created by", in.CreatedBy)
	}
	if in.Created != "" {
		row("created", in.Created)
	}
	row("magnet", in.Magnet)
	tw.Flush()
	if len(in.Files) > 0 {
		fmt.Fprintln(w, "files:")
		for _, f := range in.Files {
			fmt.Fprintf(w, "  %12d  %s\n", f.Size, termsafe.String(strings.Join(f.Path, "/")))
		}
	}
}
