package main

import (
	"path"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/picker"
	"github.com/shoal-p2p/shoal/swarm"
)

// selection is what get's --only and --sequential make of a torrent.
type selection struct {
	opts swarm.AddOptions
	// want reports whether a file is selected; nil when every file is.
	want func(fi int) bool
	// files counts the selected files.
	files int
}

// selectFiles turns --only GLOBs into per-piece priorities. A file is
// selected when a glob matches its path inside the torrent (components
// joined by "/", without the torrent's name) or one of the folders above
// it, so `--only sub` takes a whole folder. A glob that is malformed, or
// that selects nothing, is a usage error: downloading nothing and saying
// done would hide a typo.
func selectFiles(c *cli.Context, info *piece.Info) (selection, error) {
	sel := selection{opts: swarm.AddOptions{Sequential: c.Bool("sequential")}}
	globs := c.StringSlice("only")
	if len(globs) == 0 {
		return sel, nil
	}
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return sel, usageError("get: --only %q: %v", g, err)
		}
	}
	files := make([]picker.Priority, len(info.Files))
	chosen := make([]bool, len(info.Files))
	n := 0
	for i, f := range info.Files {
		if f.Pad || !matchesAny(globs, f.Path) {
			continue
		}
		files[i], chosen[i] = picker.Normal, true
		n++
	}
	if n == 0 {
		return sel, usageError("get: --only %s matches no file of %s (paths are inside the torrent, like %q)",
			strings.Join(globs, ", "), info.Name, strings.Join(info.Files[0].Path, "/"))
	}
	prio, err := swarm.PiecePriorities(info, files)
	if err != nil {
		return sel, failure("get: --only: %v", err)
	}
	sel.opts.Priority = prio
	sel.want = func(fi int) bool { return chosen[fi] }
	sel.files = n
	return sel, nil
}

// matchesAny reports whether a glob matches the path p or a folder above it.
func matchesAny(globs []string, p []string) bool {
	for k := len(p); k > 0; k-- {
		sub := strings.Join(p[:k], "/")
		for _, g := range globs {
			if ok, _ := path.Match(g, sub); ok {
				return true
			}
		}
	}
	return false
}
