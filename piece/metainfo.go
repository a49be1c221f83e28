// Package piece is shoal's content layer for BitTorrent v2 (BEP 52): the
// metainfo (.torrent) format, the per-file SHA-256 merkle trees, hashing of
// files on disk, and verification of pieces and blocks against those trees.
package piece

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/anacrolix/torrent/bencode"
)

// MaxTorrentSize caps the size of a .torrent file we are willing to parse.
// Piece layers make large torrents big, but 64 MiB of layers describes
// 2 million pieces, far beyond anything sane.
const MaxTorrentSize = 64 << 20

// MaxInfoSize caps an info dict, which holds only the file tree: a million
// files fit in well under this.
const MaxInfoSize = 32 << 20

// MinPieceLength is the smallest piece length BEP 52 allows: one leaf.
const MinPieceLength = BlockSize

// MaxPieceLength is the largest piece length shoal accepts. Larger pieces
// make every verification and every bad piece costlier than it is worth.
const MaxPieceLength = 256 << 20

// ErrInvalid is wrapped by every error that reports malformed metainfo, so
// callers can tell bad input from I/O failures with errors.Is.
var ErrInvalid = errors.New("invalid torrent")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// File is one file of a torrent, in file tree order.
type File struct {
	// Path is the file's place in the file tree, one element a component.
	// In a single-file torrent it is the file's own name, which may differ
	// from the torrent's Name.
	Path []string
	// Length is the file's size in bytes.
	Length int64
	// PiecesRoot is the root of the file's merkle tree; zero for an empty file.
	PiecesRoot Hash
	// FirstPiece is the index of the file's first piece in the torrent: v2
	// aligns every file to a piece boundary, so pieces never span files.
	FirstPiece int
	// NumPieces is the number of pieces the file covers (0 when empty).
	NumPieces int
	// Attr holds BEP 47 attributes (for example "x" for executable) as given.
	Attr string
}

// Info is a parsed v2 info dict: the part of a torrent that its info-hash
// covers.
type Info struct {
	// Name is the suggested name: the file name of a single-file torrent,
	// the top folder of a multi-file one.
	Name string
	// PieceLength is the number of bytes in a piece, a power of two ≥ 16 KiB.
	PieceLength int64
	// Private is set for torrents whose peers come only from trackers (BEP 27).
	Private bool
	// Files lists the files in file tree order.
	Files []File
	// NumPieces is the total count of pieces over all files.
	NumPieces int
	// TotalLength is the sum of the files' lengths.
	TotalLength int64
	// Hash is the v2 info-hash: the SHA-256 of Bytes.
	Hash Hash
	// Bytes is the bencoded info dict exactly as it was read or written.
	Bytes []byte
	// Hybrid is set when the dict also carries a v1 part (pieces, length or
	// files); shoal reads only its v2 part.
	Hybrid bool

	single bool
}

// MetaInfo is a parsed .torrent file.
type MetaInfo struct {
	Info *Info
	// Layers holds the piece layer of every file larger than one piece,
	// indexed like Info.Files (nil where a file has none).
	Layers [][]Hash
	// Announce is the primary tracker; AnnounceList its BEP 12 tiers.
	Announce     string
	AnnounceList [][]string
	Comment      string
	CreatedBy    string
	// CreationDate is in seconds since the Unix epoch; 0 when absent.
	CreationDate int64
}

// SingleFile reports whether the torrent is one file stored under its own
// name rather than a folder called Name.
func (in *Info) SingleFile() bool { return in.single }

// DiskPath returns the path components of file i relative to the download
// folder: the file's name for a single-file torrent, Name followed by the
// file tree path otherwise.
func (in *Info) DiskPath(i int) []string {
	if in.single {
		return in.Files[0].Path
	}
	return append([]string{in.Name}, in.Files[i].Path...)
}

// FileOfPiece returns the index of the file that holds the given piece.
func (in *Info) FileOfPiece(p int) int {
	lo, hi := 0, len(in.Files)
	// Binary search over FirstPiece; empty files have no pieces and are
	// skipped by requiring NumPieces > 0.
	for lo < hi {
		m := (lo + hi) / 2
		f := &in.Files[m]
		if f.FirstPiece+f.NumPieces <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for lo < len(in.Files) && in.Files[lo].NumPieces == 0 {
		lo++
	}
	return lo
}

// PieceSize returns the number of data bytes in piece p: the piece length,
// or less for the last piece of a file.
func (in *Info) PieceSize(p int) int64 {
	f := &in.Files[in.FileOfPiece(p)]
	off := int64(p-f.FirstPiece) * in.PieceLength
	return min(in.PieceLength, f.Length-off)
}

// HexHash returns the info-hash as 64 lowercase hex digits.
func (in *Info) HexHash() string { return hex.EncodeToString(in.Hash[:]) }

// Trackers returns every tracker URL once, in tier order; announce comes
// last when announce-list leaves it out, so that a magnet link or the
// listing of a torrent names it too.
func (m *MetaInfo) Trackers() []string {
	var out []string
	for _, tier := range m.Tiers(m.Announce) {
		out = append(out, tier...)
	}
	return out
}

// Parse reads a .torrent file. It checks the whole v2 structure, the piece
// layers against the files' roots and every path for safety; an error
// wraps ErrInvalid and says what and where.
func Parse(data []byte) (*MetaInfo, error) {
	if len(data) > MaxTorrentSize {
		return nil, invalid("%d bytes, more than the %d allowed", len(data), MaxTorrentSize)
	}
	var top map[string]any
	if err := decodeStrict(data, &top); err != nil {
		return nil, err
	}
	var raw struct {
		Info bencode.Bytes `bencode:"info"`
	}
	if err := bencode.Unmarshal(data, &raw); err != nil {
		return nil, invalid("%v", err)
	}
	if _, ok := top["info"]; !ok {
		return nil, invalid("no info dict")
	}
	info, err := ParseInfo(raw.Info)
	if err != nil {
		return nil, err
	}
	m := &MetaInfo{Info: info}
	d := dict{top, ""}
	if m.Announce, err = d.optString("announce"); err != nil {
		return nil, err
	}
	if m.Comment, err = d.optString("comment"); err != nil {
		return nil, err
	}
	if m.CreatedBy, err = d.optString("created by"); err != nil {
		return nil, err
	}
	if m.CreationDate, err = d.optInt("creation date"); err != nil {
		return nil, err
	}
	if v, ok := top["announce-list"]; ok {
		if m.AnnounceList, err = parseAnnounceList(v); err != nil {
			return nil, err
		}
	}
	if m.Layers, err = parseLayers(top["piece layers"], info); err != nil {
		return nil, err
	}
	return m, nil
}

func parseAnnounceList(v any) ([][]string, error) {
	tiers, ok := v.([]any)
	if !ok {
		return nil, invalid("announce-list: %s, want a list", typeName(v))
	}
	var out [][]string
	for i, t := range tiers {
		urls, ok := t.([]any)
		if !ok {
			return nil, invalid("announce-list[%d]: %s, want a list", i, typeName(t))
		}
		var tier []string
		for j, u := range urls {
			s, ok := u.(string)
			if !ok {
				return nil, invalid("announce-list[%d][%d]: %s, want a string", i, j, typeName(u))
			}
			tier = append(tier, s)
		}
		if len(tier) > 0 {
			out = append(out, tier)
		}
	}
	return out, nil
}

// parseLayers checks the "piece layers" dict: every file larger than a
// piece must have a layer of exactly its piece count whose padded root is
// its pieces root.
func parseLayers(v any, info *Info) ([][]Hash, error) {
	layers := make([][]Hash, len(info.Files))
	var dictv map[string]any
	if v != nil {
		var ok bool
		if dictv, ok = v.(map[string]any); !ok {
			return nil, invalid("piece layers: %s, want a dict", typeName(v))
		}
	}
	for k, lv := range dictv {
		if len(k) != 32 {
			return nil, invalid("piece layers: key of %d bytes, want a 32-byte pieces root", len(k))
		}
		if _, ok := lv.(string); !ok {
			return nil, invalid("piece layers[%x]: %s, want a string", k, typeName(lv))
		}
	}
	for i := range info.Files {
		f := &info.Files[i]
		if f.NumPieces <= 1 {
			continue
		}
		lv, ok := dictv[string(f.PiecesRoot[:])]
		if !ok {
			return nil, invalid("piece layers: none for %s (%d pieces)", strings.Join(f.Path, "/"), f.NumPieces)
		}
		layer, err := decodeLayer(lv.(string), f.NumPieces)
		if err != nil {
			return nil, invalid("piece layers: %s: %v", strings.Join(f.Path, "/"), err)
		}
		if FileRoot(layer, int(info.PieceLength)) != f.PiecesRoot {
			return nil, invalid("piece layers: %s: layer does not hash to its pieces root", strings.Join(f.Path, "/"))
		}
		layers[i] = layer
	}
	return layers, nil
}

func decodeLayer(s string, n int) ([]Hash, error) {
	if len(s) != 32*n {
		return nil, fmt.Errorf("%d bytes, want %d (%d pieces)", len(s), 32*n, n)
	}
	layer := make([]Hash, n)
	for i := range layer {
		copy(layer[i][:], s[32*i:])
	}
	return layer, nil
}

// CheckLayer reports whether layer is the piece layer of file i: the right
// length and hashing to its pieces root. Peers that send layers (BEP 52 hash
// exchange) are checked with it.
func (in *Info) CheckLayer(i int, layer []Hash) error {
	f := &in.Files[i]
	if len(layer) != f.NumPieces {
		return fmt.Errorf("file %d: layer of %d hashes, want %d", i, len(layer), f.NumPieces)
	}
	if FileRoot(layer, int(in.PieceLength)) != f.PiecesRoot {
		return fmt.Errorf("file %d: layer does not hash to its pieces root", i)
	}
	return nil
}

// ParseInfo reads a bencoded v2 info dict, such as one fetched from peers
// (BEP 9). Its info-hash is the SHA-256 of b exactly as given.
func ParseInfo(b []byte) (*Info, error) {
	if len(b) > MaxInfoSize {
		return nil, invalid("info dict of %d bytes, more than the %d allowed", len(b), MaxInfoSize)
	}
	var top map[string]any
	if err := decodeStrict(b, &top); err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	d := dict{top, "info"}
	version, err := d.int("meta version")
	if err != nil {
		return nil, err
	}
	if version != 2 {
		return nil, invalid("info: meta version %d, want 2 (v1-only torrents are not supported)", version)
	}
	info := &Info{Bytes: append([]byte(nil), b...), Hash: sha256.Sum256(b)}
	if info.Name, err = d.string("name"); err != nil {
		return nil, err
	}
	if err := CheckPathComponent(info.Name); err != nil {
		return nil, invalid("info: name %q: %v", info.Name, err)
	}
	if info.PieceLength, err = d.int("piece length"); err != nil {
		return nil, err
	}
	pl := info.PieceLength
	if pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
		return nil, invalid("info: piece length %d is not a power of two from %d to %d", pl, MinPieceLength, MaxPieceLength)
	}
	priv, err := d.optInt("private")
	if err != nil {
		return nil, err
	}
	info.Private = priv == 1
	for _, k := range []string{"pieces", "length", "files"} {
		if _, ok := top[k]; ok {
			info.Hybrid = true
		}
	}
	tree, ok := top["file tree"]
	if !ok {
		return nil, invalid("info: no file tree")
	}
	treeDict, ok := tree.(map[string]any)
	if !ok {
		return nil, invalid("info: file tree: %s, want a dict", typeName(tree))
	}
	if err := walkTree(treeDict, nil, info); err != nil {
		return nil, err
	}
	if len(info.Files) == 0 {
		return nil, invalid("info: file tree holds no files")
	}
	// BEP 52: a tree holding one file at its top is a single-file torrent,
	// stored under the file's own name; libtorrent reads it so even when
	// Name differs (as it makes them for a folder holding one file), and
	// peers must agree on where the data lives. Anything else is a folder
	// called Name.
	info.single = len(info.Files) == 1 && len(info.Files[0].Path) == 1
	return info, nil
}

// maxFiles caps the number of files so a small hostile info dict cannot
// make us allocate without bound.
const maxFiles = 1 << 20

// maxDepthTree bounds nesting in the file tree.
const maxDepthTree = 64

func walkTree(node map[string]any, path []string, info *Info) error {
	if len(path) > maxDepthTree {
		return invalid("file tree: %s: nested more than %d deep", strings.Join(path, "/"), maxDepthTree)
	}
	for _, name := range sortedKeys(node) {
		child := node[name]
		where := strings.Join(append(path[:len(path):len(path)], name), "/")
		if name == "" {
			return invalid("file tree: %q: empty path component", where)
		}
		if err := CheckPathComponent(name); err != nil {
			return invalid("file tree: %q: %v", where, err)
		}
		c, ok := child.(map[string]any)
		if !ok {
			return invalid("file tree: %q: %s, want a dict", where, typeName(child))
		}
		p := append(path[:len(path):len(path)], name)
		leaf, isFile := c[""]
		if isFile {
			if len(c) != 1 {
				return invalid("file tree: %q is both a file and a folder", where)
			}
			if err := addFile(leaf, p, info); err != nil {
				return err
			}
			continue
		}
		if len(c) == 0 {
			return invalid("file tree: %q: empty folder", where)
		}
		if err := walkTree(c, p, info); err != nil {
			return err
		}
	}
	return nil
}

func addFile(leaf any, path []string, info *Info) error {
	where := strings.Join(path, "/")
	m, ok := leaf.(map[string]any)
	if !ok {
		return invalid("file tree: %q: %s, want a dict", where, typeName(leaf))
	}
	if len(info.Files) >= maxFiles {
		return invalid("file tree: more than %d files", maxFiles)
	}
	d := dict{m, "file tree: " + where}
	length, err := d.int("length")
	if err != nil {
		return err
	}
	if length < 0 {
		return invalid("file tree: %q: negative length %d", where, length)
	}
	if info.TotalLength+length < info.TotalLength || info.TotalLength+length > 1<<62 {
		return invalid("file tree: %q: total length overflows", where)
	}
	f := File{Path: path, Length: length, FirstPiece: info.NumPieces}
	if f.Attr, err = d.optString("attr"); err != nil {
		return err
	}
	root, hasRoot := m["pieces root"]
	switch {
	case length == 0 && hasRoot:
		return invalid("file tree: %q: empty file with a pieces root", where)
	case length > 0 && !hasRoot:
		return invalid("file tree: %q: no pieces root", where)
	case hasRoot:
		s, ok := root.(string)
		if !ok || len(s) != 32 {
			return invalid("file tree: %q: pieces root is not 32 bytes", where)
		}
		copy(f.PiecesRoot[:], s)
	}
	f.NumPieces = int((length + info.PieceLength - 1) / info.PieceLength)
	info.NumPieces += f.NumPieces
	info.TotalLength += length
	info.Files = append(info.Files, f)
	return nil
}

// CheckPathComponent refuses a path component (a torrent's name or one
// element of a file's path) that could lead out of the download folder or
// that some file system cannot hold: empty, "." or "..", one holding a
// separator of any system ('/' or '\') or a NUL. Parse applies it to every
// component; storage applies it again before touching the disk, as the last
// line of defence for an Info that did not come from Parse.
func CheckPathComponent(c string) error {
	switch {
	case c == "":
		return errors.New("empty path component")
	case c == "." || c == "..":
		return fmt.Errorf("path component %q", c)
	case strings.ContainsRune(c, '/'):
		return errors.New("path component contains '/'")
	case strings.ContainsRune(c, '\\'):
		// A separator on Windows: refused so a torrent means one layout on
		// every system.
		return errors.New("path component contains '\\'")
	case strings.IndexByte(c, 0) >= 0:
		return errors.New("path component contains NUL")
	}
	return nil
}

// decodeStrict decodes bencode into generic values, which makes the decoder
// refuse unsorted and duplicate dict keys, and refuses trailing bytes.
func decodeStrict(b []byte, v *map[string]any) (err error) {
	var x any
	if err := bencode.Unmarshal(b, &x); err != nil {
		return invalid("bencode: %v", err)
	}
	m, ok := x.(map[string]any)
	if !ok {
		return invalid("%s at top level, want a dict", typeName(x))
	}
	*v = m
	return nil
}

// dict reads typed keys out of a decoded bencode dict, naming the dict in
// its errors.
type dict struct {
	m     map[string]any
	where string
}

func (d dict) name(k string) string {
	if d.where == "" {
		return k
	}
	return d.where + ": " + k
}

func (d dict) int(k string) (int64, error) {
	v, ok := d.m[k]
	if !ok {
		return 0, invalid("%s: missing", d.name(k))
	}
	n, ok := v.(int64)
	if !ok {
		return 0, invalid("%s: %s, want an integer", d.name(k), typeName(v))
	}
	return n, nil
}

func (d dict) optInt(k string) (int64, error) {
	if _, ok := d.m[k]; !ok {
		return 0, nil
	}
	return d.int(k)
}

func (d dict) string(k string) (string, error) {
	v, ok := d.m[k]
	if !ok {
		return "", invalid("%s: missing", d.name(k))
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("%s: %s, want a string", d.name(k), typeName(v))
	}
	return s, nil
}

func (d dict) optString(k string) (string, error) {
	if _, ok := d.m[k]; !ok {
		return "", nil
	}
	return d.string(k)
}

func typeName(v any) string {
	switch v.(type) {
	case int64, *big.Int:
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Bencode orders dict keys by raw bytes, which is Go's string order.
	slices.Sort(keys)
	return keys
}
