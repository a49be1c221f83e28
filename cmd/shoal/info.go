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

// jsonFile and jsonInfo are the --json schema of CLI.md, with what v1
// added. format is v2, hybrid or v1 (for a magnet, what its hashes say: a
// btih link may name a hybrid). info_hash is the torrent's ID, the v2 hash
// when it has one, else the v1 hash; info_hash_v2 and info_hash_v1 are
// each hash it has. pad_files counts the BEP 47 pad files of a v1
// torrent, left out of files: zeros that align files to pieces and never
// reach the disk.
type jsonFile struct {
	Path []string `json:"path"`
	Size int64    `json:"size"`
}

type jsonInfo struct {
	Name        string     `json:"name"`
	Format      string     `json:"format"`
	InfoHash    string     `json:"info_hash"`
	InfoHashV2  string     `json:"info_hash_v2,omitempty"`
	InfoHashV1  string     `json:"info_hash_v1,omitempty"`
	PieceLength int64      `json:"piece_length,omitempty"`
	TotalSize   int64      `json:"total_size,omitempty"`
	NumPieces   int        `json:"num_pieces,omitempty"`
	Files       []jsonFile `json:"files,omitempty"`
	PadFiles    int        `json:"pad_files,omitempty"`
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
		mg, err := parseLink(arg)
		if err != nil {
			return usageError("info: %v", err)
		}
		out = jsonInfo{
			Name: mg.Name, InfoHash: magnetID(mg), Trackers: mg.Trackers,
			Peers: mg.Peers, Magnet: mg.String(),
		}
		switch {
		case mg.HasV1() && mg.HasV2():
			out.Format = piece.FormatHybrid.String()
		case mg.HasV2():
			out.Format = piece.FormatV2.String()
		default:
			out.Format = piece.FormatV1.String()
		}
		if mg.HasV2() {
			out.InfoHashV2 = fmt.Sprintf("%x", mg.Hash[:])
		}
		if mg.HasV1() {
			out.InfoHashV1 = mg.V1Hash.String()
		}
	} else {
		m, err := readTorrent(arg)
		if err != nil {
			return err
		}
		in := m.Info
		out = jsonInfo{
			Name: in.Name, Format: in.Format.String(), InfoHash: in.ID(), PieceLength: in.PieceLength,
			TotalSize: in.TotalLength, NumPieces: in.NumPieces, Trackers: m.Trackers(),
			Private: in.Private, Comment: m.Comment, CreatedBy: m.CreatedBy, Magnet: m.Magnet().String(),
		}
		if in.HasV2() {
			out.InfoHashV2 = in.HexHash()
		}
		if in.HasV1() {
			out.InfoHashV1 = in.V1Hash.String()
		}
		out.Files = []jsonFile{}
		for i, f := range in.Files {
			if f.Pad {
				// Not data: listing them would show files that never
				// appear on disk (v2 and hybrid Files hold none).
				out.PadFiles++
				continue
			}
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
	if in.PieceLength > 0 {
		row("format", formatName(in.Format))
	} else {
		row("format", in.Format+" (as the link's hashes say)")
	}
	// "info-hash" is the torrent's ID, as create and seed print it; a
	// hybrid's v1 hash follows under its own name.
	row("info-hash", in.InfoHash)
	if in.InfoHashV1 != "" && in.InfoHashV1 != in.InfoHash {
		row("info-hash v1", in.InfoHashV1)
	}
	if in.PieceLength > 0 {
		size := fmt.Sprintf("%s (%d bytes) in %d files", formatBytes(in.TotalSize), in.TotalSize, len(in.Files))
		if in.PadFiles > 0 {
			size += fmt.Sprintf(" (and %d BEP 47 pad files, zeros never written to disk, not listed)", in.PadFiles)
		}
		row("size", size)
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
