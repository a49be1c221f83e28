package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/shoal-p2p/shoal/internal/units"
)

// ErrInTheWay is wrapped by the error for something other than a regular
// file (a folder, a symbolic link, a device) standing where the torrent
// puts a file, or other than a folder where it puts a folder.
var ErrInTheWay = errors.New("in the way")

// ErrNoSpace is wrapped by Preflight's error when a file system has less
// room than what is still to be downloaded onto it.
var ErrNoSpace = errors.New("not enough space")

// LayoutError is something standing in the way of one of the torrent's
// paths. It wraps ErrInTheWay.
type LayoutError struct {
	Path string // as the caller named it: under the download folder
	What string // e.g. "a folder stands where the torrent's file goes"
}

func (e *LayoutError) Error() string { return e.Path + ": " + e.What }

// Unwrap makes the error match ErrInTheWay.
func (e *LayoutError) Unwrap() error { return ErrInTheWay }

// inTheWay describes what of type mode stands at path where the torrent
// wants a folder (folder) or a regular file.
func inTheWay(path string, mode fs.FileMode, folder bool) *LayoutError {
	want := "file"
	if folder {
		want = "folder"
	}
	var what string
	switch t := mode.Type(); {
	case t == 0:
		what = "a file"
	case t&fs.ModeDir != 0:
		what = "a folder"
	case t&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case t&fs.ModeSocket != 0:
		what = "a socket"
	case t&fs.ModeDevice != 0:
		what = "a device"
	default:
		what = fmt.Sprintf("something of type %v", t)
	}
	return &LayoutError{Path: path, What: fmt.Sprintf("%s stands where the torrent's %s goes", what, want)}
}

// SpaceError is Preflight's refusal for a file system without room for
// what is still missing. It wraps ErrNoSpace.
type SpaceError struct {
	Dir        string // a folder on the file system, as the caller named it
	Free, Need int64  // bytes available, bytes still to be written there
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("not enough space in %s: %s free, %s still to download", e.Dir, units.FormatBytes(e.Free), units.FormatBytes(e.Need))
}

// Unwrap makes the error match ErrNoSpace.
func (e *SpaceError) Unwrap() error { return ErrNoSpace }

// CheckLayout makes sure that every path of the torrent in the download
// folder is absent, a folder where the torrent has a folder, or a regular
// file where it has a file. It writes nothing; a download that would only
// fail block after block on a folder or link in its way is refused here,
// before any peer is asked for anything. Links are refused whatever they
// point to: storage never follows them.
func (s *Storage) CheckLayout() error {
	folders := map[string]bool{}
	for i := range s.info.Files {
		if s.info.Files[i].Pad {
			continue // never on disk
		}
		if _, _, err := s.layoutOf(i, folders); err != nil {
			return err
		}
	}
	return nil
}

// layoutOf looks at file i's path without following links and returns the
// deepest folder of it that exists (relative to the download folder, "."
// for the folder itself), and the file's own info when it exists as a
// regular file (nil when absent or when a folder of its path is). folders
// remembers the folders already seen, so files sharing folders cost one
// look each, not one per folder of their path.
func (s *Storage) layoutOf(i int, folders map[string]bool) (deepest string, file fs.FileInfo, err error) {
	comps := s.comps[i]
	deepest = "."
	for j := 1; j < len(comps); j++ {
		prefix := filepath.Join(comps[:j]...)
		if folders[prefix] {
			deepest = prefix
			continue
		}
		st, err := s.root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) {
			return deepest, nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", filepath.Join(s.dir, prefix), cause(err))
		}
		if !st.IsDir() {
			return "", nil, inTheWay(filepath.Join(s.dir, prefix), st.Mode(), true)
		}
		folders[prefix] = true
		deepest = prefix
	}
	st, err := s.root.Lstat(s.paths[i])
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return deepest, nil, nil
	case err != nil:
		return "", nil, fmt.Errorf("%s: %w", filepath.Join(s.dir, s.paths[i]), cause(err))
	case !st.Mode().IsRegular():
		return "", nil, inTheWay(filepath.Join(s.dir, s.paths[i]), st.Mode(), false)
	}
	return deepest, st, nil
}

// Preflight checks, after Check, that what is still missing can be
// written, so a download that cannot succeed is refused before it starts
// instead of fetching blocks only to throw them away: the layout is
// checked as by CheckLayout; every existing file with pieces still to
// write must open for writing, and every folder where a file is still to
// be created must take a new file (a file is created and removed there:
// this catches a read-only mount even for root, which permission bits do
// not); and each file system must have room for the missing bytes. Space
// already allocated to an existing file (preallocated, or written by an
// earlier run) is counted as needing nothing new. Errors name the path
// under the download folder; a lack of space wraps ErrNoSpace, something
// in the way ErrInTheWay.
func (s *Storage) Preflight() error {
	s.haveMu.Lock()
	have := s.have.Clone()
	s.haveMu.Unlock()

	type fsNeed struct {
		dir  string // a folder on that file system, relative to the download folder
		need int64
	}
	byDev := map[uint64]*fsNeed{}
	devs := map[string]uint64{} // folder → its file system, looked up once
	probed := map[string]bool{}
	folders := map[string]bool{}
	for i, f := range s.info.Files {
		if f.Pad {
			continue // never on disk
		}
		deepest, st, err := s.layoutOf(i, folders)
		if err != nil {
			return err
		}
		// The file's bytes in its missing pieces: in v1 its first and last
		// pieces may hold other files' bytes too.
		var missing int64
		for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
			if !have.Has(p) {
				start := int64(p) * s.info.PieceLength
				missing += max(0, min(start+s.info.PieceSize(p), f.Offset+f.Length)-max(start, f.Offset))
			}
		}
		if missing == 0 {
			continue
		}
		var allocated int64
		if st != nil {
			h, err := s.root.OpenFile(s.paths[i], os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("cannot write %s: %w", filepath.Join(s.dir, s.paths[i]), cause(err))
			}
			h.Close()
			allocated = allocatedBytes(st)
		} else if !probed[deepest] {
			probed[deepest] = true
			if err := s.probeWrite(deepest); err != nil {
				return err
			}
		}
		dev, ok := devs[deepest]
		if !ok {
			if dev, ok = s.devOf(deepest); !ok {
				continue // no way to tell the file system: no space check
			}
			devs[deepest] = dev
		}
		n := byDev[dev]
		if n == nil {
			n = &fsNeed{dir: deepest}
			byDev[dev] = n
		}
		n.need += min(missing, max(0, f.Length-allocated))
	}
	for _, n := range byDev {
		if n.need == 0 {
			continue
		}
		free, ok := s.freeSpace(n.dir)
		if ok && free < n.need {
			return &SpaceError{Dir: filepath.Join(s.dir, n.dir), Free: free, Need: n.need}
		}
	}
	return nil
}

// probeWrite creates and removes a file in folder dir (relative to the
// download folder) to learn whether files can be created there.
func (s *Storage) probeWrite(dir string) error {
	name := filepath.Join(dir, fmt.Sprintf(".shoal-probe-%016x", rand.Uint64()))
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", filepath.Join(s.dir, dir), cause(err))
	}
	f.Close()
	if err := s.root.Remove(name); err != nil {
		return fmt.Errorf("cannot write in %s: removing %s: %w", filepath.Join(s.dir, dir), filepath.Join(s.dir, name), cause(err))
	}
	return nil
}

// cause strips a path error down to what went wrong: callers name the path
// themselves, as the user knows it rather than as the root saw it.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
