package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
)

// torrentOutput is where create or seed is about to write a .torrent, and
// the data that torrent describes.
type torrentOutput struct {
	cmd   string // "create" or "seed", for messages
	what  string // how the user named the output: "-o x.torrent", …
	flag  string // the flag that names another output: "-o", …
	path  string
	src   string // the file or folder the torrent describes
	force bool   // the user asked to replace an existing file
}

// check refuses an output that would destroy data. Never, even with
// --force: the source itself (or another link to it), or a file inside the
// source folder, which is part of what the torrent describes. Without
// --force: a new file inside the source folder (it would join the data the
// next time the folder is shared), and any existing file, unless it is
// already a torrent of the same content (ih; nil before hashing, when an
// existing torrent is let through to be checked again after).
func (o torrentOutput) check(id string) error {
	srcSt, err := os.Stat(o.src)
	if err != nil {
		return usageError("%s: %v", o.cmd, err)
	}
	src, out := realPath(o.src), realPath(o.path)
	inside := srcSt.IsDir() && within(src, out)
	st, err := os.Stat(o.path)
	exists := err == nil
	switch {
	case exists && os.SameFile(st, srcSt):
		return usageError("%s: %s is %s itself, the data the torrent describes; write the torrent elsewhere", o.cmd, o.what, o.src)
	case exists && st.IsDir():
		return usageError("%s: %s is a folder; name a file", o.cmd, o.what)
	case exists && inside:
		return usageError("%s: %s is a file of %s, which the torrent describes; write the torrent elsewhere", o.cmd, o.what, o.src)
	case inside && !o.force:
		return usageError("%s: %s lies inside %s, which the torrent describes, and would join that data when next shared; write it elsewhere or pass --force", o.cmd, o.what, o.src)
	case exists && !o.force && !sameTorrent(o.path, id):
		return usageError("%s: %s already exists; pass --force to replace it, or choose another file with %s", o.cmd, o.what, o.flag)
	}
	return nil
}

// sameTorrent reports whether path holds the torrent id names (Info.ID),
// or any torrent when id is "": replacing a torrent of the same content
// loses nothing of the user's, and lets a seed be restarted as it was
// started.
func sameTorrent(path string, id string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() > piece.MaxTorrentSize {
		return false
	}
	data, err := io.ReadAll(io.LimitReader(f, piece.MaxTorrentSize+1))
	if err != nil || len(data) > piece.MaxTorrentSize {
		return false
	}
	m, err := piece.Parse(data)
	return err == nil && (id == "" || m.Info.ID() == id)
}

// realPath is p absolute, with the links in the part of it that exists
// resolved, so that two names of one place compare equal.
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	var rest []string
	for d := abs; ; d = filepath.Dir(d) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		if filepath.Dir(d) == d {
			return abs
		}
		rest = append([]string{filepath.Base(d)}, rest...)
	}
}

// within reports whether path lies inside the folder dir (both cleaned
// and absolute).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// describeForeign says, in a clause, what is wrong with the first of the
// files storage.Check found foreign in dir, and how many more there are.
func describeForeign(dir string, ff []storage.ForeignFile) string {
	f := ff[0]
	var why string
	switch have, want := formatBytes(f.Size), formatBytes(f.Length); {
	case f.Size != f.Length && have == want:
		why = fmt.Sprintf("it is %d bytes, the torrent's file %d", f.Size, f.Length)
	case f.Size != f.Length:
		why = fmt.Sprintf("it is %s, the torrent's file %s", have, want)
	default:
		why = fmt.Sprintf("only %d of its %d pieces match", f.Good, f.Pieces)
	}
	more := ""
	if len(ff) > 1 {
		more = fmt.Sprintf(" (and %d more such files)", len(ff)-1)
	}
	return fmt.Sprintf("%s is not this torrent's data (%s)%s", filepath.Join(dir, f.Path), why, more)
}
