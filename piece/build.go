package piece

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
)

// BuildOptions says how Build makes a torrent. The zero value makes a public
// v2 torrent with no trackers and a piece length chosen from the total size.
type BuildOptions struct {
	// Format is what to make: FormatV2 (the zero value), FormatHybrid (v2
	// and v1 over the same data, with BEP 47 pad files as libtorrent 2.0
	// makes them) or FormatV1 (SHA-1 pieces over the files end to end).
	Format Format
	// PieceLength must be 0 (choose one) or a power of two ≥ 16 KiB.
	PieceLength int64
	// Name replaces the base name of the path.
	Name string
	// Trackers are announce URLs, each in a tier of its own (BEP 12).
	Trackers []string
	Private  bool
	Comment  string
	// CreatedBy names the program; CreationDate is omitted when zero.
	CreatedBy    string
	CreationDate time.Time
	// Hasher hashes the files; nil uses a zero Hasher (all cores).
	Hasher *Hasher
	// Logger reports skipped files (symlinks, devices); nil uses slog's default.
	Logger *slog.Logger
}

// DefaultPieceLength picks a piece length for content of the given size:
// about 1500 pieces, from 16 KiB to 16 MiB, so the piece layers stay small
// while pieces stay quick to fetch and verify.
func DefaultPieceLength(total int64) int64 {
	pl := int64(MinPieceLength)
	for pl < 16<<20 && total/pl > 1500 {
		pl *= 2
	}
	return pl
}

type diskFile struct {
	path string   // on disk
	tree []string // in the file tree
	size int64
}

// Build hashes the file or folder at path into a torrent of the format
// opts.Format, v2 by default. Folders are walked recursively, hidden files
// included; symbolic links and special files are skipped, never followed,
// so a torrent holds only what lies under path.
func Build(ctx context.Context, path string, opts BuildOptions) (*MetaInfo, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(path))
	}
	if err := CheckPathComponent(name); err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	var files []diskFile
	switch {
	case st.Mode().IsRegular():
		files = []diskFile{{path: path, tree: []string{name}, size: st.Size()}}
	case st.IsDir():
		if files, err = listDir(path, log); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: not a regular file or folder", path)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no files to share", path)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	if n := infoTokens(files, opts.Format); n > MaxInfoTokens {
		// Refused before hours of hashing, not by the parse that checks
		// the result: peers (libtorrent, and shoal) refuse such metadata.
		return nil, fmt.Errorf("%s: %d files need about %d bencode tokens in the info dict, more than the %d peers accept; share the folder in parts", path, len(files), n, MaxInfoTokens)
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: every file is empty; there is nothing to share", path)
	}
	pl := opts.PieceLength
	if pl == 0 {
		pl = DefaultPieceLength(total)
	}
	if pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
		return nil, fmt.Errorf("piece length %d is not a power of two from %d to %d", pl, MinPieceLength, MaxPieceLength)
	}

	infoDict := map[string]any{
		"name":         name,
		"piece length": pl,
	}
	if opts.Private {
		infoDict["private"] = 1
	}
	single := st.Mode().IsRegular()
	var layers [][]Hash
	var info *Info
	switch opts.Format {
	case FormatV2, FormatHybrid:
		hybrid := opts.Format == FormatHybrid
		roots, ls, pieces, err := hashDiskFiles(ctx, files, pl, opts.Hasher, hybrid, single)
		if err != nil {
			return nil, err
		}
		layers = ls
		infoDict["file tree"] = fileTree(files, roots)
		infoDict["meta version"] = 2
		if hybrid {
			addV1Files(infoDict, files, pl, single)
			infoDict["pieces"] = string(pieces)
		}
		if info, err = parseBuilt(infoDict); err != nil {
			return nil, err
		}
	case FormatV1:
		if info, err = buildV1(ctx, infoDict, files, pl, single, opts.Hasher); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("build: unknown format %v", opts.Format)
	}
	m := &MetaInfo{
		Info:      info,
		Comment:   opts.Comment,
		CreatedBy: opts.CreatedBy,
	}
	if !opts.CreationDate.IsZero() {
		m.CreationDate = opts.CreationDate.Unix()
	}
	if info.HasV2() {
		// files and info.Files are in the same order: both sorted by path.
		m.Layers = make([][]Hash, len(info.Files))
		copy(m.Layers, layers)
	}
	if len(opts.Trackers) > 0 {
		m.Announce = opts.Trackers[0]
		for _, t := range opts.Trackers {
			m.AnnounceList = append(m.AnnounceList, []string{t})
		}
	}
	return m, nil
}

// fileTree returns the v2 "file tree" of files with their pieces roots.
func fileTree(files []diskFile, roots []Hash) map[string]any {
	tree := map[string]any{}
	for i, f := range files {
		leaf := map[string]any{"length": f.size}
		if f.size > 0 {
			leaf["pieces root"] = string(roots[i][:])
		}
		node := tree
		for _, c := range f.tree[:len(f.tree)-1] {
			next, ok := node[c].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[c] = next
			}
			node = next
		}
		node[f.tree[len(f.tree)-1]] = map[string]any{"": leaf}
	}
	return tree
}

// hybridPad reports whether, in a multi-file hybrid torrent, a pad file
// follows a file of the given size. libtorrent 2.0 pads every file that
// does not end on a piece boundary, the last one included, so that every
// file starts a v1 piece as it starts a v2 one (BEP 47); making the same
// pads gives the same info dict, and so the same swarm, for the same
// content.
func hybridPad(size, pl int64) bool {
	return size%pl != 0
}

// addV1Files adds the v1 file description to an info dict: "length" for a
// single file, otherwise "files" in the given order, with BEP 47 pad files
// (path [".pad", "<size>"], attr "p") where a hybrid needs them (pl > 0;
// 0 for a v1 torrent, which has none).
func addV1Files(infoDict map[string]any, files []diskFile, pl int64, single bool) {
	if single {
		infoDict["length"] = files[0].size
		return
	}
	list := make([]any, 0, len(files))
	for _, f := range files {
		list = append(list, map[string]any{"length": f.size, "path": f.tree})
		if pl > 0 && hybridPad(f.size, pl) {
			n := pl - f.size%pl
			list = append(list, map[string]any{"attr": "p", "length": n, "path": []string{".pad", fmt.Sprint(n)}})
		}
	}
	infoDict["files"] = list
}

// buildV1 hashes files, laid end to end in the given order, into the
// SHA-1 pieces of a v1 info dict and returns it parsed.
func buildV1(ctx context.Context, infoDict map[string]any, files []diskFile, pl int64, single bool, h *Hasher) (*Info, error) {
	if h == nil {
		h = &Hasher{}
	}
	addV1Files(infoDict, files, 0, single)
	var total int64
	for _, f := range files {
		total += f.size
	}
	// The layout (offsets, spans) comes from parsing the dict with
	// placeholder hashes, so it is the one every reader of it computes.
	infoDict["pieces"] = string(make([]byte, 20*((total+pl-1)/pl)))
	layout, err := parseBuilt(infoDict)
	if err != nil {
		return nil, err
	}
	in := make([]HashFile, len(files))
	for i, f := range files {
		in[i] = HashFile{Size: f.size, Open: openDiskFile(f.path), Map: true}
	}
	pieces := []byte(infoDict["pieces"].(string))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var failed error
	err = h.HashSpace(ctx, layout, in, func(p *PieceHashes) {
		copy(pieces[20*p.Piece:], p.V1[:])
		if p.Err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if failed == nil {
			failed = describeHashError(files[p.File].path, p.Err)
			cancel()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		return nil, failed
	}
	if err != nil {
		return nil, err
	}
	infoDict["pieces"] = string(pieces)
	return parseBuilt(infoDict)
}

// parseBuilt encodes an info dict Build made and parses it back, so that
// a torrent is only ever made of what Parse accepts.
func parseBuilt(infoDict map[string]any) (*Info, error) {
	b, err := bencode.Marshal(infoDict)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	info, err := ParseInfo(b)
	if err != nil {
		// Build only makes what Parse accepts; reaching here is a bug.
		return nil, fmt.Errorf("built an info dict that does not parse: %w", err)
	}
	return info, nil
}

// openDiskFile opens path for the hashing engine, a job at a time.
func openDiskFile(path string) func() (io.ReaderAt, func(), error) {
	return func() (io.ReaderAt, func(), error) {
		fh, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		return fh, func() { fh.Close() }, nil
	}
}

// listDir returns the regular files under root sorted in file tree order.
func listDir(root string, log *slog.Logger) ([]diskFile, error) {
	var files []diskFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			log.Warn("skipping: not a regular file", "path", p, "type", d.Type().String())
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		tree := strings.Split(filepath.ToSlash(rel), "/")
		for _, c := range tree {
			if err := CheckPathComponent(c); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, diskFile{path: p, tree: tree, size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// File tree order: dict keys sorted bytewise at every level, which is
	// the same as comparing the paths component by component.
	slices.SortFunc(files, func(a, b diskFile) int { return slices.Compare(a.tree, b.tree) })
	return files, nil
}

// hashDiskFiles returns each file's pieces root and, for files larger than
// a piece, its piece layer; for a hybrid also the v1 piece hashes, from
// the same read of the data. It stops at the first file that fails.
func hashDiskFiles(ctx context.Context, files []diskFile, pl int64, h *Hasher, hybrid, single bool) ([]Hash, [][]Hash, []byte, error) {
	if h == nil {
		h = &Hasher{}
	}
	in := make([]HashFile, len(files))
	layers := make([][]Hash, len(files))
	first := make([]int, len(files)) // each file's first piece in the torrent
	pieces := 0
	for i, f := range files {
		// A single file has no pad (its v1 part is "length"), which
		// also leaves its SHA-1 the plain one of the file.
		in[i] = HashFile{Size: f.size, Open: openDiskFile(f.path), Map: true, Pad: hybrid && !single && hybridPad(f.size, pl)}
		layers[i] = make([]Hash, (f.size+pl-1)/pl)
		first[i] = pieces
		pieces += len(layers[i])
	}
	var want HashKind
	var v1 []byte
	if hybrid {
		want = HashV1
		v1 = make([]byte, 20*pieces)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var failed error
	err := h.HashFiles(ctx, pl, in, want, func(p *PieceHashes) {
		layers[p.File][p.Piece] = p.Root
		if hybrid {
			copy(v1[20*(first[p.File]+p.Piece):], p.V1[:])
		}
		if p.Err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if failed == nil {
			failed = describeHashError(files[p.File].path, p.Err)
			cancel() // the torrent cannot be made; hashing on is wasted
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		return nil, nil, nil, failed
	}
	if err != nil {
		return nil, nil, nil, err
	}
	roots := make([]Hash, len(files))
	for i := range files {
		switch len(layers[i]) {
		case 0:
		case 1:
			roots[i] = layers[i][0]
			layers[i] = nil
		default:
			roots[i] = FileRoot(layers[i], int(pl))
		}
	}
	return roots, layers, v1, nil
}

// describeHashError names the file in err unless err already does.
func describeHashError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w (did it change while being hashed?)", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Marshal encodes the torrent as a .torrent file.
func (m *MetaInfo) Marshal() ([]byte, error) {
	if m.Info == nil || len(m.Info.Bytes) == 0 {
		return nil, errors.New("marshal torrent: no info dict")
	}
	top := map[string]any{"info": bencode.Bytes(m.Info.Bytes)}
	if m.Announce != "" {
		top["announce"] = m.Announce
	}
	if len(m.AnnounceList) > 0 {
		top["announce-list"] = m.AnnounceList
	}
	if m.Comment != "" {
		top["comment"] = m.Comment
	}
	if m.CreatedBy != "" {
		top["created by"] = m.CreatedBy
	}
	if m.CreationDate != 0 {
		top["creation date"] = m.CreationDate
	}
	layers := map[string]string{}
	for i, l := range m.Layers {
		if len(l) < 2 {
			continue
		}
		buf := make([]byte, 0, 32*len(l))
		for _, h := range l {
			buf = append(buf, h[:]...)
		}
		// Identical files share a root and so one entry.
		layers[string(m.Info.Files[i].PiecesRoot[:])] = string(buf)
	}
	if len(layers) > 0 {
		top["piece layers"] = layers
	}
	return bencode.Marshal(top)
}

// infoTokens bounds from above the bencode tokens that the info dict of
// files takes in format f, as Parse counts them: a v2 tree spends a leaf
// dict on each file and a key, dict and end on each path component; a v1
// list a dict, its keys and a path list on each file, and a pad file
// after most of them in a hybrid.
func infoTokens(files []diskFile, f Format) int {
	n := 32 // the top-level keys
	for _, df := range files {
		comps := len(df.tree)
		if f != FormatV1 {
			n += 9 + 3*comps
		}
		if f != FormatV2 {
			n += 8 + comps
		}
		if f == FormatHybrid {
			n += 12 // its pad file: [".pad", "N"] and attr "p"
		}
	}
	return n
}
