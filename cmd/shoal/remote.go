package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/daemon/rpc"
	"github.com/shoal-p2p/shoal/internal/termsafe"
)

// remoteTimeout bounds one remote command: long enough to send the
// metainfo of a large torrent over a slow link, short enough that a daemon
// that stopped answering is reported.
const remoteTimeout = 60 * time.Second

// remoteFlags are the flags of every remote subcommand: urfave/cli reads a
// subcommand's flags only after its name, and users write them anywhere.
func remoteFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "rpc", Value: rpc.DefaultURL, Usage: "the daemon's RPC at `URL` (or HOST:PORT)", EnvVars: env("remote-rpc")},
		&cli.StringFlag{Name: "auth", Usage: "user and password from `FILE` (one line user:password)", EnvVars: env("remote-auth")},
	}, extra...)
}

func remoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "remote",
		Usage: "drive a running shoal daemon (or Transmission) through its RPC",
		Description: "Talks to the Transmission RPC of `shoal daemon` at --rpc (default " + rpc.DefaultURL + ").\n" +
			"Torrents are named by the ID `list` shows or by their hash (40 hex; 64 for a v2 hash).",
		// Without a known subcommand: urfave/cli would print help and
		// exit 0, which a script would take for success.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("remote: unknown subcommand %q (see shoal remote --help)", c.Args().First())
			}
			return usageError("remote: missing subcommand: add, list, start, stop, verify, remove, files or info (see shoal remote --help)")
		},
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "add a torrent by magnet link, hash or .torrent file",
				ArgsUsage: "MAGNET | HASH | FILE.torrent",
				Flags: remoteFlags(
					&cli.BoolFlag{Name: "paused", Usage: "add it stopped", EnvVars: env("paused")},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "download into `DIR` on the daemon's machine (default: the daemon's download folder)"},
					&cli.StringSliceFlag{Name: "only", Usage: "download only the files whose path inside the torrent (a/b.txt), or a folder above it, matches `GLOB` (repeatable; needs a .torrent, as a magnet has no file list yet)"},
				),
				Action: runRemoteAdd,
			},
			{
				Name: "list", Usage: "list the daemon's torrents",
				Flags:  remoteFlags(&cli.BoolFlag{Name: "json", Usage: "print one JSON array", EnvVars: env("json")}),
				Action: runRemoteList,
			},
			remoteAction("start", "start torrents", "started", (*rpc.Client).Start),
			remoteAction("stop", "stop (pause) torrents", "stopped", (*rpc.Client).Stop),
			remoteAction("verify", "check torrents' data again", "verifying", (*rpc.Client).Verify),
			{
				Name: "remove", Usage: "remove torrents from the daemon", ArgsUsage: "ID|HASH…",
				Flags: remoteFlags(&cli.BoolFlag{Name: "delete-data", Usage: "delete their downloaded files too"}),
				Action: func(c *cli.Context) error {
					del := c.Bool("delete-data")
					verb := "removed"
					if del {
						verb = "removed with data"
					}
					return runRemoteAction(c, verb, func(cl *rpc.Client, ctx context.Context, ids []any) error {
						return cl.Remove(ctx, ids, del)
					})
				},
			},
			{
				Name: "files", Usage: "show a torrent's files, or choose which to download",
				ArgsUsage: "ID|HASH",
				Flags: remoteFlags(
					&cli.StringFlag{Name: "want", Usage: "download the files at `INDEXES` (0,2,5-7 or all)"},
					&cli.StringFlag{Name: "skip", Usage: "do not download the files at `INDEXES` (0,2,5-7 or all)"},
				),
				Action: runRemoteFiles,
			},
			{
				Name: "info", Usage: "show one torrent in detail", ArgsUsage: "ID|HASH",
				Flags:  remoteFlags(),
				Action: runRemoteInfo,
			},
		},
	}
}

// remoteClient makes the client --rpc and --auth describe.
func remoteClient(c *cli.Context) (*rpc.Client, error) {
	u := c.String("rpc")
	if !strings.Contains(u, "://") {
		// HOST:PORT, as `shoal daemon --rpc` takes it.
		u = "http://" + u + rpc.Path
	}
	cl := &rpc.Client{URL: u}
	if f := c.String("auth"); f != "" {
		user, pass, err := rpc.LoadClientAuth(f)
		if err != nil {
			return nil, usageError("remote %s: --auth: %v", c.Command.Name, err)
		}
		cl.User, cl.Password = user, pass
	}
	return cl, nil
}

// remoteContext is a command's context: cancelled on SIGINT/SIGTERM or
// after remoteTimeout.
func remoteContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	return ctx, func() { cancel(); stop() }
}

// remoteError turns a client error into one line and exit 1; a daemon
// that cannot be reached is said so, with where it was looked for.
func remoteError(c *cli.Context, cl *rpc.Client, err error) error {
	if errors.Is(err, rpc.ErrUnreachable) {
		return failure("remote %s: %v (is shoal daemon running there? see --rpc)", c.Command.Name, err)
	}
	return failure("remote %s: %v", c.Command.Name, err)
}

// torrentRefs reads ID|HASH arguments: a number, or a 40- or 64-hex hash.
func torrentRefs(c *cli.Context) ([]any, error) {
	if c.NArg() == 0 {
		return nil, usageError("remote %s: missing ID|HASH (see shoal remote %s --help)", c.Command.Name, c.Command.Name)
	}
	var refs []any
	for _, a := range c.Args().Slice() {
		if n, err := strconv.Atoi(a); err == nil && n > 0 {
			refs = append(refs, n)
			continue
		}
		if (len(a) == 40 || len(a) == 64) && strings.Trim(strings.ToLower(a), "0123456789abcdef") == "" {
			refs = append(refs, strings.ToLower(a))
			continue
		}
		return nil, usageError("remote %s: %q is neither a torrent ID (a number `shoal remote list` shows) nor a hash (40 or 64 hex digits)", c.Command.Name, a)
	}
	return refs, nil
}

// resolve finds the torrents refs name, failing on any the daemon does
// not have: Transmission silently ignores unknown IDs, and a user who
// mistyped one should hear of it.
func resolve(ctx context.Context, c *cli.Context, cl *rpc.Client, refs []any, fields ...string) ([]rpc.Torrent, error) {
	ts, err := cl.Torrents(ctx, refs, fields...)
	if err != nil {
		return nil, remoteError(c, cl, err)
	}
	for _, r := range refs {
		if s, ok := r.(string); ok && len(s) == 64 {
			// A v2 hash: the daemon matches it, HashString does not.
			one, err := cl.Torrents(ctx, []any{s}, "id")
			if err != nil {
				return nil, remoteError(c, cl, err)
			}
			if len(one) == 0 {
				return nil, failure("remote %s: the daemon at %s has no torrent %s", c.Command.Name, cl.URL, s)
			}
			continue
		}
		found := false
		for _, t := range ts {
			if n, ok := r.(int); ok && t.ID == n || r == strings.ToLower(t.HashString) {
				found = true
			}
		}
		if !found {
			return nil, failure("remote %s: the daemon at %s has no torrent %v", c.Command.Name, cl.URL, r)
		}
	}
	return ts, nil
}

func remoteAction(name, usage, verb string, op func(*rpc.Client, context.Context, []any) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "ID|HASH…", Flags: remoteFlags(),
		Action: func(c *cli.Context) error { return runRemoteAction(c, verb, op) },
	}
}

// runRemoteAction applies op to the torrents named and prints one line
// per torrent: the verb, its ID and name.
func runRemoteAction(c *cli.Context, verb string, op func(*rpc.Client, context.Context, []any) error) error {
	refs, err := torrentRefs(c)
	if err != nil {
		return err
	}
	cl, err := remoteClient(c)
	if err != nil {
		return err
	}
	ctx, cancel := remoteContext()
	defer cancel()
	ts, err := resolve(ctx, c, cl, refs, "id", "name", "hashString")
	if err != nil {
		return err
	}
	ids := make([]any, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	if err := op(cl, ctx, ids); err != nil {
		return remoteError(c, cl, err)
	}
	for _, t := range ts {
		fmt.Fprintf(c.App.Writer, "%s %d %s\n", verb, t.ID, termsafe.String(t.Name))
	}
	return nil
}

func runRemoteAdd(c *cli.Context) error {
	if err := exactArgs(c, 1, "a magnet link, hash or .torrent file"); err != nil {
		return err
	}
	arg := c.Args().First()
	args := rpc.AddArgs{DownloadDir: c.String("output"), Paused: c.Bool("paused")}
	if args.DownloadDir != "" && !strings.HasPrefix(args.DownloadDir, "/") {
		// The daemon resolves it, perhaps on another machine, from a
		// folder the user does not see.
		return usageError("remote add: -o %s: give an absolute folder on the daemon's machine", args.DownloadDir)
	}
	globs := c.StringSlice("only")
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return usageError("remote add: --only %q: %v", g, err)
		}
	}
	if looksLikeMagnet(arg) {
		mg, err := parseLink(arg)
		if err != nil {
			return usageError("remote add: %v", err)
		}
		if len(globs) > 0 {
			return usageError("remote add: --only needs the torrent's file list, which a magnet does not carry; add it, then choose with `shoal remote files ID --skip …` once its metadata has arrived")
		}
		args.Filename = arg
		if !strings.HasPrefix(strings.ToLower(arg), "magnet:") {
			args.Filename = mg.String()
		}
	} else {
		m, err := readTorrent(arg)
		if err != nil {
			return err
		}
		if len(globs) > 0 {
			n := 0
			for _, f := range m.Info.Files {
				if !f.Pad && matchesAny(globs, f.Path) {
					n++
				}
			}
			if n == 0 {
				return usageError("remote add: --only %s matches no file of %s (paths are inside the torrent, like %q)",
					strings.Join(globs, ", "), m.Info.Name, strings.Join(m.Info.Files[0].Path, "/"))
			}
			// Added stopped, so nothing of the files left out is
			// fetched before the selection is made.
			args.Paused = true
		}
		if args.Metainfo, err = os.ReadFile(arg); err != nil {
			return usageError("remote add: %v", err)
		}
	}
	cl, err := remoteClient(c)
	if err != nil {
		return err
	}
	ctx, cancel := remoteContext()
	defer cancel()
	a, err := cl.Add(ctx, args)
	if err != nil {
		return remoteError(c, cl, err)
	}
	if a.Duplicate {
		warnf(c.App.ErrWriter, "the daemon already has this torrent (id %d); left as it was", a.ID)
	} else if len(globs) > 0 {
		if err := selectRemote(ctx, c, cl, a.ID, globs); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.App.Writer, "id: %d\nhash: %s\nname: %s\n", a.ID, a.HashString, termsafe.String(a.Name))
	return nil
}

// selectRemote leaves out of torrent id the files no glob matches, by the
// file list the daemon has, then starts it unless --paused.
func selectRemote(ctx context.Context, c *cli.Context, cl *rpc.Client, id int, globs []string) error {
	ts, err := cl.Torrents(ctx, []any{id}, rpc.FileFields...)
	if err != nil || len(ts) != 1 {
		return remoteError(c, cl, fmt.Errorf("torrent %d's files: %v", id, err))
	}
	t := ts[0]
	var skip []int
	for i, f := range t.Files {
		// Names start with the torrent's name in a multi-file torrent;
		// a single file's name is the torrent's, with no '/'.
		p := strings.TrimPrefix(f.Name, t.Name+"/")
		if !matchesAny(globs, strings.Split(p, "/")) {
			skip = append(skip, i)
		}
	}
	if len(skip) > 0 {
		if err := cl.SetFiles(ctx, []any{id}, nil, skip); err != nil {
			return remoteError(c, cl, err)
		}
	}
	if !c.Bool("paused") {
		if err := cl.Start(ctx, []any{id}); err != nil {
			return remoteError(c, cl, err)
		}
	}
	return nil
}

// remoteJSON is one torrent of `remote list --json`.
type remoteJSON struct {
	ID          int     `json:"id"`
	Hash        string  `json:"hash"`
	Name        string  `json:"name"`
	Status      string  `json:"status"`
	Error       string  `json:"error,omitempty"`
	PercentDone float64 `json:"percent_done"`
	Size        int64   `json:"size"`
	Left        int64   `json:"left"`
	Downloaded  int64   `json:"downloaded"`
	Uploaded    int64   `json:"uploaded"`
	Ratio       float64 `json:"ratio"`
	RateDown    int64   `json:"rate_down"`
	RateUp      int64   `json:"rate_up"`
	ETA         int64   `json:"eta"`
	Peers       int     `json:"peers"`
	Dir         string  `json:"dir"`
}

func runRemoteList(c *cli.Context) error {
	if err := exactArgs(c, 0, ""); err != nil {
		return err
	}
	cl, err := remoteClient(c)
	if err != nil {
		return err
	}
	ctx, cancel := remoteContext()
	defer cancel()
	ts, err := cl.Torrents(ctx, nil)
	if err != nil {
		return remoteError(c, cl, err)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	if c.Bool("json") {
		out := make([]remoteJSON, len(ts))
		for i, t := range ts {
			out[i] = remoteJSON{
				ID: t.ID, Hash: t.HashString, Name: t.Name, Status: rpc.StatusName(t.Status),
				Error: t.ErrorString, PercentDone: t.PercentDone, Size: t.SizeWhenDone,
				Left: t.LeftUntilDone, Downloaded: t.DownloadedEver, Uploaded: t.UploadedEver,
				Ratio: t.UploadRatio, RateDown: t.RateDownload, RateUp: t.RateUpload, ETA: t.ETA,
				Peers: t.PeersConnected, Dir: t.DownloadDir,
			}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		c.App.Writer.Write(termsafe.JSON(append(b, '\n')))
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDone\tSize\tETA\tDown\tUp\tRatio\tStatus\tName")
	for _, t := range ts {
		status := rpc.StatusName(t.Status)
		if t.ErrorString != "" {
			status = "Error"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s/s\t%s/s\t%s\t%s\t%s\n", t.ID, percent(t.PercentDone),
			formatBytes(t.SizeWhenDone), eta(t.ETA), formatBytes(t.RateDownload), formatBytes(t.RateUpload),
			ratio(t.UploadRatio), status, termsafe.String(t.Name))
	}
	return tw.Flush()
}

func percent(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// eta shows Transmission's eta: seconds, or -1/-2 for none.
func eta(s int64) string {
	if s < 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

// ratio shows Transmission's ratio, with its -1 (none) and -2 (infinite).
func ratio(r float64) string {
	switch {
	case r == -2:
		return "Inf"
	case r < 0:
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// parseIndexes reads a file index list: "0,2,5-7", or "all" (n files).
func parseIndexes(s string, n int) ([]int, error) {
	if s == "all" {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q is not a file index list like 0,2,5-7", s)
		}
		if b >= n {
			return nil, fmt.Errorf("file %d: the torrent has %d files (0 to %d)", b, n, n-1)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// oneTorrent connects to the daemon and looks up the one torrent named by
// the command's argument, with the given fields; cancel ends the context
// of the calls that follow, and is a no-op after an error.
func oneTorrent(c *cli.Context, fields ...string) (ctx context.Context, cancel context.CancelFunc, cl *rpc.Client, t rpc.Torrent, err error) {
	cancel = func() {}
	if err = exactArgs(c, 1, "ID|HASH"); err != nil {
		return
	}
	refs, err := torrentRefs(c)
	if err != nil {
		return
	}
	if cl, err = remoteClient(c); err != nil {
		return
	}
	ctx, cancel = remoteContext()
	ts, err := resolve(ctx, c, cl, refs, fields...)
	if err != nil {
		cancel()
		return ctx, func() {}, nil, t, err
	}
	return ctx, cancel, cl, ts[0], nil
}

func runRemoteFiles(c *cli.Context) error {
	ctx, cancel, cl, t, err := oneTorrent(c, rpc.FileFields...)
	if err != nil {
		return err
	}
	defer cancel()
	if c.IsSet("want") || c.IsSet("skip") {
		if len(t.Files) == 0 {
			return failure("remote files: torrent %d has no file list yet (its metadata has not arrived)", t.ID)
		}
		want, err := parseIndexes(c.String("want"), len(t.Files))
		if err != nil && c.IsSet("want") {
			return usageError("remote files: --want: %v", err)
		}
		skip, err := parseIndexes(c.String("skip"), len(t.Files))
		if err != nil && c.IsSet("skip") {
			return usageError("remote files: --skip: %v", err)
		}
		if !c.IsSet("want") {
			want = nil
		}
		if !c.IsSet("skip") {
			skip = nil
		}
		if err := cl.SetFiles(ctx, []any{t.ID}, want, skip); err != nil {
			return remoteError(c, cl, err)
		}
		ts, err := cl.Torrents(ctx, []any{t.ID}, rpc.FileFields...)
		if err != nil || len(ts) != 1 {
			return remoteError(c, cl, fmt.Errorf("torrent %d: %v", t.ID, err))
		}
		t = ts[0]
	}
	printRemoteFiles(c.App.Writer, t)
	return nil
}

func printRemoteFiles(w io.Writer, t rpc.Torrent) {
	if len(t.Files) == 0 {
		fmt.Fprintf(w, "%s: no file list yet (metadata not arrived)\n", termsafe.String(t.Name))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tDone\tPriority\tGet\tSize\tName")
	for i, f := range t.Files {
		get, prio := "Yes", "Normal"
		if i < len(t.FileStats) {
			if !t.FileStats[i].Wanted {
				get = "No"
			}
			switch t.FileStats[i].Priority {
			case 1:
				prio = "High"
			case -1:
				prio = "Low"
			}
		}
		done := 1.0
		if f.Length > 0 {
			done = float64(f.BytesCompleted) / float64(f.Length)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, percent(done), prio, get, formatBytes(f.Length), termsafe.String(f.Name))
	}
	tw.Flush()
}

func runRemoteInfo(c *cli.Context) error {
	_, cancel, _, t, err := oneTorrent(c)
	if err != nil {
		return err
	}
	defer cancel()
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, termsafe.String(v)) }
	date := func(s int64) string {
		if s <= 0 {
			return "-"
		}
		return time.Unix(s, 0).Format(time.DateTime)
	}
	row("id", strconv.Itoa(t.ID))
	row("name", t.Name)
	row("hash", t.HashString)
	row("status", rpc.StatusName(t.Status))
	if t.ErrorString != "" {
		row("error", t.ErrorString)
	}
	row("location", t.DownloadDir)
	row("size", fmt.Sprintf("%s (%s wanted)", formatBytes(t.TotalSize), formatBytes(t.SizeWhenDone)))
	row("done", fmt.Sprintf("%s (%s verified, %s left)", percent(t.PercentDone), formatBytes(t.HaveValid), formatBytes(t.LeftUntilDone)))
	row("downloaded", formatBytes(t.DownloadedEver))
	row("uploaded", formatBytes(t.UploadedEver))
	row("ratio", ratio(t.UploadRatio))
	row("rates", fmt.Sprintf("%s/s down, %s/s up", formatBytes(t.RateDownload), formatBytes(t.RateUpload)))
	row("eta", eta(t.ETA))
	row("peers", strconv.Itoa(t.PeersConnected))
	row("pieces", fmt.Sprintf("%d × %s", t.PieceCount, formatBytes(t.PieceSize)))
	row("private", strconv.FormatBool(t.IsPrivate))
	row("added", date(t.AddedDate))
	row("completed", date(t.DoneDate))
	if t.Comment != "" {
		row("comment", t.Comment)
	}
	row("magnet", t.MagnetLink)
	return tw.Flush()
}
