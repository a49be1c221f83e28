// Package piece is shoal's content layer for BitTorrent v2 (BEP 52): the
// metainfo (.torrent) format, the per-file SHA-256 merkle trees, hashing of
// files on disk, and verification of pieces and blocks against those trees.
package piece

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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
	// Offset is where the file starts in the torrent's piece space: piece p
	// covers bytes [p·PieceLength, (p+1)·PieceLength) of it. In v2 and
	// hybrid torrents it is FirstPiece·PieceLength (pad files are implied
	// and absent from Files); in v1 the files follow one another, pad files
	// included, and a piece may span several.
	Offset int64
	// Pad marks a BEP 47 pad file (attr "p") of a v1 torrent: zeros that
	// fill the piece space, never written to disk. v2 and hybrid Files
	// hold no pad files.
	Pad bool
}

// Format says which hash families a torrent carries.
type Format uint8

const (
	// FormatV2 is BEP 52 only: SHA-256 merkle trees, one per file.
	FormatV2 Format = iota
	// FormatHybrid carries both a v2 file tree and v1 piece hashes over
	// the same, piece-aligned data (BEP 52 "hybrid").
	FormatHybrid
	// FormatV1 is BEP 3 only: one SHA-1 per piece over the files laid end
	// to end.
	FormatV1
)

// String names the format as the CLI's --format flag spells it.
func (f Format) String() string {
	switch f {
	case FormatV2:
		return "v2"
	case FormatHybrid:
		return "hybrid"
	case FormatV1:
		return "v1"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat reads a --format value: "v2", "hybrid" or "v1".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "v2":
		return FormatV2, nil
	case "hybrid":
		return FormatHybrid, nil
	case "v1":
		return FormatV1, nil
	}
	return 0, fmt.Errorf("format %q: want v2, hybrid or v1", s)
}

// V1Hash is a SHA-1 info-hash: the v1 identity of a torrent, and the
// 20 bytes peers, trackers and the DHT know every swarm by.
type V1Hash [20]byte

// String returns the hash as 40 lowercase hex digits.
func (h V1Hash) String() string { return hex.EncodeToString(h[:]) }

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
	// Hash is the v2 info-hash: the SHA-256 of Bytes; zero in a v1 torrent.
	Hash Hash
	// V1Hash is the v1 info-hash: the SHA-1 of Bytes; zero in a v2-only
	// torrent.
	V1Hash V1Hash
	// Format says which of the two hashes the torrent carries.
	Format Format
	// Pieces holds the v1 SHA-1 piece hashes, 20 bytes a piece, in a v1 or
	// hybrid torrent; nil in a v2-only one.
	Pieces []byte
	// Bytes is the bencoded info dict exactly as it was read or written.
	Bytes []byte

	single bool
	// space is the length of the piece space: the end of the last file,
	// pad files included.
	space int64
}

// HasV1 reports whether the torrent carries v1 piece hashes and a v1
// info-hash (a v1 or hybrid torrent).
func (in *Info) HasV1() bool { return in.Format != FormatV2 }

// HasV2 reports whether the torrent carries v2 merkle roots and a v2
// info-hash (a v2 or hybrid torrent).
func (in *Info) HasV2() bool { return in.Format != FormatV1 }

// ID names the torrent in file names and logs: the v2 info-hash in hex
// when it has one, the v1 info-hash otherwise.
func (in *Info) ID() string {
	if in.HasV2() {
		return in.HexHash()
	}
	return in.V1Hash.String()
}

// SwarmHashes returns the 20-byte hashes under which the torrent's swarm
// is found on the wire, at trackers and in the DHT: the v1 info-hash and
// the truncated v2 one, whichever the torrent has, v2 first.
func (in *Info) SwarmHashes() [][20]byte {
	var out [][20]byte
	if in.HasV2() {
		out = append(out, in.Hash.Truncated())
	}
	if in.HasV1() {
		out = append(out, in.V1Hash)
	}
	return out
}

// PieceHash returns the v1 SHA-1 of piece p; the torrent must have v1
// hashes.
func (in *Info) PieceHash(p int) (h [20]byte) {
	copy(h[:], in.Pieces[20*p:])
	return h
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

// PieceSize returns the number of bytes of piece p that peers request
// and send: in v2 and hybrid torrents the file data in it (the piece
// length, or less for the last piece of a file); in v1 the piece length,
// or less for the torrent's last piece, pad bytes included.
func (in *Info) PieceSize(p int) int64 {
	if in.Format == FormatV1 {
		return min(in.PieceLength, in.space-int64(p)*in.PieceLength)
	}
	f := &in.Files[in.FileOfPiece(p)]
	off := int64(p-f.FirstPiece) * in.PieceLength
	return min(in.PieceLength, f.Length-off)
}

// V1PieceSize returns the length of piece p in the v1 piece space: what
// its SHA-1 covers and the most a v1 peer may ask of it. It is PieceSize
// except in a hybrid torrent, where a file's last piece runs on through
// its pad file to the piece boundary.
func (in *Info) V1PieceSize(p int) int64 {
	if in.Format == FormatV2 {
		return in.PieceSize(p)
	}
	return min(in.PieceLength, in.space-int64(p)*in.PieceLength)
}

// Span is a run of bytes of one piece that lies in one file, or in
// padding when File is -1.
type Span struct {
	File int   // index in Files; -1 for padding, which is all zeros
	Off  int64 // offset in the file
	Len  int64
}

// AppendSpans appends to dst the spans that bytes [begin, begin+n) of
// piece p occupy and returns the extended slice. The range must lie in
// the piece's V1PieceSize; callers check it, as storage does for peers'
// requests. Reusing dst keeps it free of allocation per block.
func (in *Info) AppendSpans(dst []Span, p int, begin, n int64) []Span {
	if n <= 0 {
		return dst
	}
	if in.Format != FormatV1 {
		fi := in.FileOfPiece(p)
		f := &in.Files[fi]
		data := in.PieceSize(p)
		if begin < data {
			l := min(n, data-begin)
			dst = append(dst, Span{File: fi, Off: int64(p-f.FirstPiece)*in.PieceLength + begin, Len: l})
			begin, n = begin+l, n-l
		}
		if n > 0 {
			dst = append(dst, Span{File: -1, Len: n})
		}
		return dst
	}
	pos := int64(p)*in.PieceLength + begin
	end := pos + n
	// The first file that ends after pos.
	lo, hi := 0, len(in.Files)
	for lo < hi {
		m := (lo + hi) / 2
		if f := &in.Files[m]; f.Offset+f.Length <= pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo; i < len(in.Files) && pos < end; i++ {
		f := &in.Files[i]
		if f.Length == 0 {
			continue
		}
		l := min(end, f.Offset+f.Length) - pos
		if f.Pad {
			dst = append(dst, Span{File: -1, Len: l})
		} else {
			dst = append(dst, Span{File: i, Off: pos - f.Offset, Len: l})
		}
		pos += l
	}
	return dst
}

// HexHash returns the v2 info-hash as 64 lowercase hex digits.
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

// Parse reads a .torrent file. It checks the whole structure, the piece
// layers it carries against the files' roots and every path for safety;
// an error wraps ErrInvalid and says what and where. Like mainstream
// clients it ignores bytes after the top-level dict and leaves a file's
// layer nil when the torrent lacks it (see MissingLayers).
func Parse(data []byte) (*MetaInfo, error) {
	if len(data) > MaxTorrentSize {
		return nil, invalid("%d bytes, more than the %d allowed", len(data), MaxTorrentSize)
	}
	// Mainstream clients ignore what follows the top-level dict (often a
	// newline an editor or a web server added); the info-hash covers only
	// the info dict, so nothing is lost by doing the same.
	var top map[string]any
	n, err := decodeFirst(data, &top)
	if err != nil {
		return nil, err
	}
	data = data[:n]
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
	if info.HasV2() {
		if m.Layers, err = parseLayers(top["piece layers"], info); err != nil {
			return nil, err
		}
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

// parseLayers reads the "piece layers" dict. A layer that is there must
// be exactly its file's piece count and hash to its pieces root; a file
// whose layer is missing (the whole dict may be) keeps a nil layer, to be
// fetched from peers as for a magnet link, which is what libtorrent does
// with such a torrent too.
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
			continue
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

// MissingLayers returns the indexes of the files whose piece layer the
// torrent lacks: files of more than one piece in a v2 or hybrid torrent
// whose .torrent left the layer out. Their pieces cannot be checked until
// the layers are fetched from peers (swarm.Client.FetchLayersFrom).
func (m *MetaInfo) MissingLayers() []int {
	if !m.Info.HasV2() {
		return nil
	}
	var out []int
	for i, f := range m.Info.Files {
		if f.NumPieces > 1 && (i >= len(m.Layers) || len(m.Layers[i]) != f.NumPieces) {
			out = append(out, i)
		}
	}
	return out
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

// ParseInfo reads a bencoded info dict, such as one fetched from peers
// (BEP 9): v2 (meta version 2 and a file tree), v1 (pieces with length or
// files) or hybrid (both, describing the same files). Its info-hashes are
// the SHA-256 and SHA-1 of b exactly as given, so b must end with the
// dict. File names are repaired as SanitizePathComponent says, only in
// Name and Files; two files at one path, after repair, are refused.
func ParseInfo(b []byte) (*Info, error) {
	if len(b) > MaxInfoSize {
		return nil, invalid("info dict of %d bytes, more than the %d allowed", len(b), MaxInfoSize)
	}
	var top map[string]any
	if err := decodeStrict(b, &top); err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	d := dict{top, "info"}
	_, hasVersion := top["meta version"]
	_, hasTree := top["file tree"]
	_, hasPieces := top["pieces"]
	_, hasLength := top["length"]
	_, hasFiles := top["files"]
	hasV1 := hasPieces || hasLength || hasFiles
	info := &Info{Bytes: append([]byte(nil), b...)}
	switch {
	case hasVersion || hasTree:
		version, err := d.int("meta version")
		if err != nil {
			return nil, err
		}
		if version != 2 {
			return nil, invalid("info: meta version %d, want 2", version)
		}
		info.Format = FormatV2
		if hasV1 {
			info.Format = FormatHybrid
		}
	case hasV1:
		info.Format = FormatV1
	default:
		return nil, invalid("info: neither a v2 file tree nor v1 pieces")
	}
	if info.HasV2() {
		info.Hash = sha256.Sum256(b)
	}
	if info.HasV1() {
		info.V1Hash = sha1.Sum(b)
	}
	var err error
	if info.Name, err = d.string("name"); err != nil {
		return nil, err
	}
	if info.Name, err = pathComponent(info.Name); err != nil {
		return nil, invalid("info: name: %v", err)
	}
	if info.PieceLength, err = d.int("piece length"); err != nil {
		return nil, err
	}
	pl := info.PieceLength
	if info.HasV2() {
		if pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
			return nil, invalid("info: piece length %d is not a power of two from %d to %d", pl, MinPieceLength, MaxPieceLength)
		}
	} else if pl < MinV1PieceLength || pl > MaxPieceLength {
		// v1 does not ask for a power of two, and old torrents use others.
		return nil, invalid("info: piece length %d is not from %d to %d", pl, MinV1PieceLength, MaxPieceLength)
	}
	priv, err := d.optInt("private")
	if err != nil {
		return nil, err
	}
	info.Private = priv == 1
	if info.HasV2() {
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
		if info.TotalLength == 0 {
			// Nothing to share, and no piece to number: libtorrent refuses
			// it too.
			return nil, invalid("info: no data in any file")
		}
		for i := range info.Files {
			f := &info.Files[i]
			f.Offset = int64(f.FirstPiece) * pl
			if f.Length > 0 {
				info.space = f.Offset + f.Length
			}
		}
		// BEP 52: a tree holding one file at its top is a single-file
		// torrent, stored under the file's own name; libtorrent reads it so
		// even when Name differs (as it makes them for a folder holding one
		// file), and peers must agree on where the data lives. Anything
		// else is a folder called Name.
		info.single = len(info.Files) == 1 && len(info.Files[0].Path) == 1
	}
	if info.HasV1() {
		if err := parseV1(d, info); err != nil {
			return nil, err
		}
	}
	if err := checkUnique(info.Files); err != nil {
		return nil, err
	}
	return info, nil
}

// MaxPieces caps a torrent's piece count, as libtorrent caps it (2^21 at
// 16 KiB pieces): the bitfield, the picker and the piece layers all grow
// with it, and a torrent can claim any size in a few bytes.
const MaxPieces = 1 << 21

// pathComponent returns c sanitized as mainstream clients sanitize it
// (SanitizePathComponent), or an error naming c if it is still unsafe.
func pathComponent(c string) (string, error) {
	s := SanitizePathComponent(c)
	if err := CheckPathComponent(s); err != nil {
		return "", fmt.Errorf("%q: %v", c, err)
	}
	return s, nil
}

// SanitizePathComponent returns a torrent's path component (or name) as
// shoal stores it: invalid UTF-8 becomes U+FFFD and a '/' or '\' inside
// the component becomes '_', where libtorrent and others likewise repair
// the name rather than refuse the torrent. Only the local file name
// changes: the info-hash covers the original bytes, and peers exchange
// pieces, never paths. "", ".", ".." and NUL are left for
// CheckPathComponent to refuse: no honest torrent holds them.
func SanitizePathComponent(c string) string {
	if utf8.ValidString(c) && !strings.ContainsAny(c, `/\`) {
		return c
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, strings.ToValidUTF8(c, "\uFFFD"))
}

// checkUnique refuses two files at one path, and a path that is a file
// and a folder of another file at once: one would overwrite the other on
// disk. It runs on sanitized paths, so "a/b" and "a_b" collide too. Pad
// files are never on disk and are not counted. The paths go into a tree
// of components, so memory stays proportional to the info dict however
// deep the paths.
func checkUnique(files []File) error {
	type node struct {
		file bool
		kids map[string]*node
	}
	root := &node{}
	for i := range files {
		f := &files[i]
		if f.Pad {
			continue
		}
		n := root
		for k, c := range f.Path {
			last := k == len(f.Path)-1
			next, ok := n.kids[c]
			switch {
			case !ok:
				if n.kids == nil {
					n.kids = map[string]*node{}
				}
				next = &node{file: last}
				n.kids[c] = next
			case last && next.file:
				return invalid("info: files[%d]: %q: two files at one path", i, strings.Join(f.Path, "/"))
			case last || next.file:
				return invalid("info: files[%d]: %q is both a file and a folder", i, strings.Join(f.Path[:k+1], "/"))
			}
			n = next
		}
	}
	return nil
}

// MinV1PieceLength is the smallest v1 piece length shoal accepts: v1 sets
// no floor, but smaller pieces only multiply the hashes to keep.
const MinV1PieceLength = 1 << 10

// parseV1 reads the v1 part of an info dict: the file list (or the single
// file's length) and the SHA-1 piece hashes. In a hybrid, info already
// holds the v2 files, and the v1 list must describe exactly them, padded
// to piece boundaries; in a v1 torrent it fills info.Files.
func parseV1(d dict, info *Info) error {
	_, hasLength := d.m["length"]
	_, hasFiles := d.m["files"]
	var v1 []File
	switch {
	case hasLength && hasFiles:
		return invalid("info: both length and files")
	case hasLength:
		n, err := d.int("length")
		if err != nil {
			return err
		}
		if n < 0 || n > maxFileLength {
			return invalid("info: length %d outside 0 to %d", n, int64(maxFileLength))
		}
		v1 = []File{{Path: []string{info.Name}, Length: n}}
	case hasFiles:
		var err error
		if v1, err = parseV1Files(d.m["files"]); err != nil {
			return err
		}
	default:
		return invalid("info: pieces but neither length nor files")
	}
	if _, ok := d.m["pieces"]; !ok {
		return invalid("info: v1 files but no pieces")
	}
	pieces, err := d.string("pieces")
	if err != nil {
		return err
	}
	if info.Format == FormatV1 {
		info.single = hasLength
		var off int64
		for i := range v1 {
			f := &v1[i]
			f.Offset = off
			f.FirstPiece = int(off / info.PieceLength)
			if f.Length > 0 {
				f.NumPieces = int((off+f.Length+info.PieceLength-1)/info.PieceLength) - f.FirstPiece
			}
			off += f.Length
			if !f.Pad {
				info.TotalLength += f.Length
			}
		}
		if np := (off + info.PieceLength - 1) / info.PieceLength; np > MaxPieces {
			return invalid("info: %d pieces, more than the %d allowed", np, MaxPieces)
		}
		info.Files, info.space = v1, off
		info.NumPieces = int((off + info.PieceLength - 1) / info.PieceLength)
		if info.TotalLength == 0 {
			return invalid("info: no data in any file")
		}
	} else if err := matchHybrid(v1, info); err != nil {
		return err
	}
	if len(pieces) != 20*info.NumPieces {
		return invalid("info: pieces: %d bytes, want %d (20 for each of %d pieces)", len(pieces), 20*info.NumPieces, info.NumPieces)
	}
	info.Pieces = []byte(pieces)
	return nil
}

// maxFileLength and maxTotalLength bound a file's size and a torrent's
// (pad files included) where libtorrent bounds them, just under 16 TiB
// and 256 TiB: no real torrent lies beyond, and a few bytes could
// otherwise claim sizes that overflow offsets.
const (
	maxFileLength  = 1<<44 - 1<<14 - 1
	maxTotalLength = 1<<48 - 1
)

// parseV1Files reads a v1 "files" list.
func parseV1Files(v any) ([]File, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, invalid("info: files: %s, want a list", typeName(v))
	}
	if len(list) == 0 {
		return nil, invalid("info: files: empty list")
	}
	if len(list) > maxFiles {
		return nil, invalid("info: files: more than %d files", maxFiles)
	}
	out := make([]File, 0, len(list))
	var total int64
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, invalid("info: files[%d]: %s, want a dict", i, typeName(e))
		}
		fd := dict{m, fmt.Sprintf("info: files[%d]", i)}
		var f File
		var err error
		if f.Length, err = fd.int("length"); err != nil {
			return nil, err
		}
		if f.Length < 0 {
			return nil, invalid("info: files[%d]: negative length %d", i, f.Length)
		}
		if f.Length > maxFileLength {
			return nil, invalid("info: files[%d]: length %d beyond %d bytes", i, f.Length, int64(maxFileLength))
		}
		if total += f.Length; total > maxTotalLength || total < 0 {
			return nil, invalid("info: files[%d]: total length beyond %d bytes", i, int64(maxTotalLength))
		}
		if f.Attr, err = fd.optString("attr"); err != nil {
			return nil, err
		}
		f.Pad = strings.ContainsRune(f.Attr, 'p')
		pv, ok := m["path"]
		if !ok {
			return nil, invalid("info: files[%d]: path: missing", i)
		}
		comps, ok := pv.([]any)
		if !ok || len(comps) == 0 {
			return nil, invalid("info: files[%d]: path: want a list of strings", i)
		}
		if len(comps) > maxDepthTree {
			return nil, invalid("info: files[%d]: path nested more than %d deep", i, maxDepthTree)
		}
		safe := true
		for _, c := range comps {
			cs, ok := c.(string)
			if !ok {
				return nil, invalid("info: files[%d]: path: %s, want a string", i, typeName(c))
			}
			s, err := pathComponent(cs)
			if err != nil {
				if !f.Pad {
					return nil, invalid("info: files[%d]: %v", i, err)
				}
				safe = false
			}
			f.Path = append(f.Path, s)
		}
		if !safe {
			// A pad file is never on disk, so its path does not matter;
			// still, no unsafe path is ever handed on.
			f.Path = []string{".pad", strconv.FormatInt(f.Length, 10)}
		}
		out = append(out, f)
	}
	return out, nil
}

// matchHybrid checks that the v1 file list of a hybrid describes the v2
// file tree: the same files, sizes and order, each file that does not end
// on a piece boundary followed by a pad file up to it, as BEP 52 requires
// so that the v1 and v2 pieces cover the same bytes. It follows
// libtorrent: the last file with data may have its pad or not (libtorrent
// writes one when empty files follow it, other creators add one at the
// very end), but a pad is always exactly the way to the next piece
// boundary and follows only a file that needs it. It sets the v1 piece
// space, which runs through the pad that may follow the last file with
// data.
func matchHybrid(v1 []File, info *Info) error {
	pl := info.PieceLength
	lastData := -1
	for i := range info.Files {
		if info.Files[i].Length > 0 {
			lastData = i
		}
	}
	j := 0
	var off int64
	for i := range info.Files {
		f := &info.Files[i]
		if j >= len(v1) {
			return invalid("hybrid: v1 files end before v2 file %q", strings.Join(f.Path, "/"))
		}
		g := &v1[j]
		if g.Pad {
			return invalid("hybrid: v1 files[%d] is a pad file where v2 has %q", j, strings.Join(f.Path, "/"))
		}
		// A v1 single file is called Name, which must then be the v2
		// file's name too, as libtorrent requires.
		if g.Length != f.Length || !slices.Equal(g.Path, f.Path) {
			return invalid("hybrid: v1 files[%d] %q (%d bytes) is not v2 file %q (%d bytes)",
				j, strings.Join(g.Path, "/"), g.Length, strings.Join(f.Path, "/"), f.Length)
		}
		if f.Length > 0 && off != f.Offset {
			// Cannot happen once the pads before were checked; kept so
			// the two piece spaces provably agree.
			return invalid("hybrid: v1 file %q at byte %d, v2 at %d", strings.Join(f.Path, "/"), off, f.Offset)
		}
		off += g.Length
		j++
		rem := f.Length % pl
		if rem == 0 {
			continue
		}
		hasPad := j < len(v1) && v1[j].Pad
		switch {
		case hasPad && v1[j].Length != pl-rem:
			return invalid("hybrid: v1 files[%d]: pad file of %d bytes after %q, want %d to reach the piece boundary",
				j, v1[j].Length, strings.Join(f.Path, "/"), pl-rem)
		case !hasPad && i < lastData:
			return invalid("hybrid: v2 file %q is not followed by a pad file of %d bytes in the v1 list", strings.Join(f.Path, "/"), pl-rem)
		}
		if hasPad {
			off += v1[j].Length
			j++
		}
	}
	if j < len(v1) && v1[j].Pad {
		return invalid("hybrid: v1 files[%d]: a pad file after the last file, which needs none", j)
	}
	if j != len(v1) {
		return invalid("hybrid: v1 files[%d] %q has no v2 counterpart", j, strings.Join(v1[j].Path, "/"))
	}
	if n := (off + pl - 1) / pl; n != int64(info.NumPieces) {
		return invalid("hybrid: v1 files span %d pieces, v2 %d", n, info.NumPieces)
	}
	info.space = off
	return nil
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
		safe, err := pathComponent(name)
		if err != nil {
			return invalid("file tree: %q: %v", where, err)
		}
		c, ok := child.(map[string]any)
		if !ok {
			return invalid("file tree: %q: %s, want a dict", where, typeName(child))
		}
		p := append(path[:len(path):len(path)], safe)
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
	if length > maxFileLength {
		return invalid("file tree: %q: length %d beyond %d bytes", where, length, int64(maxFileLength))
	}
	if info.TotalLength+length > maxTotalLength {
		return invalid("file tree: %q: total length beyond %d bytes", where, int64(maxTotalLength))
	}
	f := File{Path: path, Length: length, FirstPiece: info.NumPieces}
	if f.Attr, err = d.optString("attr"); err != nil {
		return err
	}
	if strings.ContainsRune(f.Attr, 'p') {
		// v2 aligns files by itself; pad files belong to the v1 list of a
		// hybrid. libtorrent refuses them here too.
		return invalid("file tree: %q: a pad file (attr p) in a v2 file tree", where)
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
		if f.PiecesRoot == (Hash{}) {
			// No data hashes to zeros: it stands for a root never computed.
			return invalid("file tree: %q: pieces root is all zeros", where)
		}
	}
	np := (length + info.PieceLength - 1) / info.PieceLength
	if int64(info.NumPieces)+np > MaxPieces {
		return invalid("file tree: %q: more than %d pieces in the torrent", where, MaxPieces)
	}
	f.NumPieces = int(np)
	info.NumPieces += f.NumPieces
	info.TotalLength += length
	info.Files = append(info.Files, f)
	return nil
}

// CheckPathComponent refuses a path component (a torrent's name or one
// element of a file's path) that could lead out of the download folder or
// that some file system cannot hold: empty, "." or "..", one holding a
// separator of any system ('/' or '\') or a NUL. Parse applies it to every
// component once SanitizePathComponent has repaired what it can; storage
// applies it again before touching the disk, as the last line of defence
// for an Info that did not come from Parse.
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

// decodeFirst is decodeStrict for the first value of b, whatever
// follows it; it returns that value's length.
func decodeFirst(b []byte, v *map[string]any) (int, error) {
	var x any
	dec := bencode.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&x); err != nil {
		return 0, invalid("bencode: %v", err)
	}
	m, ok := x.(map[string]any)
	if !ok {
		return 0, invalid("%s at top level, want a dict", typeName(x))
	}
	*v = m
	return int(dec.Offset), nil
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
