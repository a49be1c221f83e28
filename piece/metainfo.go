// Package piece is shoal's content layer for BitTorrent v2 (BEP 52): the
// metainfo (.torrent) format, the per-file SHA-256 merkle trees, hashing of
// files on disk, and verification of pieces and blocks against those trees.
package piece

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxTorrentSize caps the size of a .torrent file we are willing to parse.
// Piece layers make large torrents big, but 64 MiB of layers describes
// 2 million pieces, far beyond anything sane.
const MaxTorrentSize = 64 << 20

// MaxInfoSize caps an info dict, which holds only the file tree. It is
// libtorrent's max_metadata_size, the most it fetches from peers (BEP 9),
// so no torrent shoal refuses is one libtorrent could share by magnet.
// MaxInfoTokens bounds what so many bytes may describe.
const MaxInfoSize = 30 << 20

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
	// skipped by requiring NumPieces > 0. An empty file is searched as if
	// it ended after the piece it sits in: one part-way through a v1
	// piece would otherwise end before the file it follows, and the
	// search, taking it for past p, would miss that file.
	for lo < hi {
		m := (lo + hi) / 2
		f := &in.Files[m]
		if f.FirstPiece+max(f.NumPieces, 1) <= p {
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
// layer nil when the torrent lacks it (see MissingLayers). Like
// libtorrent it refuses a file of more than 3,000,000 bencode tokens.
func Parse(data []byte) (*MetaInfo, error) {
	if len(data) > MaxTorrentSize {
		return nil, invalid("%d bytes, more than the %d allowed", len(data), MaxTorrentSize)
	}
	// Mainstream clients ignore what follows the top-level dict (often a
	// newline an editor or a web server added); the info-hash covers only
	// the info dict, so nothing is lost by doing the same.
	if len(data) == 0 || data[0] != 'd' {
		k := byte(0)
		if len(data) > 0 {
			k = data[0]
		}
		return nil, invalid("%s at top level, want a dict", kindName(k))
	}
	w := newWalker(data, maxTorrentTokens)
	f, err := w.fields(nil)
	if err != nil {
		return nil, err
	}
	w.maxTokens = 0 // all counted
	top := obj{w: w, f: f}
	fi := top.get("info")
	if fi == nil {
		return nil, invalid("no info dict")
	}
	if fi.kind != 'd' {
		return nil, invalid("info: %s, want a dict", kindName(fi.kind))
	}
	info, err := parseInfo(data[fi.val.start:fi.val.end], maxTorrentTokens)
	if err != nil {
		return nil, err
	}
	m := &MetaInfo{Info: info}
	if m.Announce, err = top.optString("announce"); err != nil {
		return nil, err
	}
	if m.Comment, err = top.optString("comment"); err != nil {
		return nil, err
	}
	if m.CreatedBy, err = top.optString("created by"); err != nil {
		return nil, err
	}
	if m.CreationDate, err = top.optInt("creation date"); err != nil {
		return nil, err
	}
	if k, ok := top.at("announce-list"); ok {
		if m.AnnounceList, err = parseAnnounceList(w, k); err != nil {
			return nil, err
		}
	}
	if info.HasV2() {
		if m.Layers, err = parseLayers(top, info); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// parseAnnounceList reads the announce-list at the walker, whose kind is k.
func parseAnnounceList(w *walker, k byte) ([][]string, error) {
	if k != 'l' {
		return nil, invalid("announce-list: %s, want a list", kindName(k))
	}
	var out [][]string
	err := w.list(func(i int) error {
		k, _ := w.peek()
		if k != 'l' {
			return invalid("announce-list[%d]: %s, want a list", i, kindName(k))
		}
		var tier []string
		err := w.list(func(j int) error {
			k, _ := w.peek()
			if !isString(k) {
				return invalid("announce-list[%d][%d]: %s, want a string", i, j, kindName(k))
			}
			u, err := w.str()
			tier = append(tier, string(u))
			return err
		})
		if len(tier) > 0 {
			out = append(out, tier)
		}
		return err
	})
	return out, err
}

// parseLayers reads the "piece layers" dict of top. A layer that is there
// must be exactly its file's piece count and hash to its pieces root; a
// file whose layer is missing (the whole dict may be) keeps a nil layer,
// to be fetched from peers as for a magnet link, which is what libtorrent
// does with such a torrent too.
func parseLayers(top obj, info *Info) ([][]Hash, error) {
	layers := make([][]Hash, len(info.Files))
	k, ok := top.at("piece layers")
	if !ok {
		return layers, nil
	}
	if k != 'd' {
		return nil, invalid("piece layers: %s, want a dict", kindName(k))
	}
	w := top.w
	byRoot := map[Hash][]byte{}
	err := w.dict(func(key []byte) error {
		if len(key) != 32 {
			return invalid("piece layers: key of %d bytes, want a 32-byte pieces root", len(key))
		}
		if k, _ := w.peek(); !isString(k) {
			return invalid("piece layers[%x]: %s, want a string", key, kindName(k))
		}
		s, err := w.str()
		byRoot[Hash(key)] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range info.Files {
		f := &info.Files[i]
		if f.NumPieces <= 1 {
			continue
		}
		s, ok := byRoot[f.PiecesRoot]
		if !ok {
			continue
		}
		layer, err := decodeLayer(s, f.NumPieces)
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

func decodeLayer(s []byte, n int) ([]Hash, error) {
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
// Name and Files; two files at one path, after repair, are refused. A
// dict of more than MaxInfoSize bytes or MaxInfoTokens tokens is refused
// before anything is built of it, as libtorrent refuses it.
func ParseInfo(b []byte) (*Info, error) { return parseInfo(b, MaxInfoTokens) }

func parseInfo(b []byte, maxTokens int) (*Info, error) {
	if len(b) > MaxInfoSize {
		return nil, invalid("info dict of %d bytes, more than the %d allowed", len(b), MaxInfoSize)
	}
	if len(b) == 0 || b[0] != 'd' {
		k := byte(0)
		if len(b) > 0 {
			k = b[0]
		}
		return nil, invalid("info: %s at top level, want a dict", kindName(k))
	}
	// The first walk checks all of it (syntax, sorted keys, nesting,
	// tokens) and notes where each key's value lies; what is built comes
	// after, from values known to be well formed.
	w := newWalker(b, maxTokens)
	f, err := w.fields(nil)
	if err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	if w.pos() != len(b) {
		return nil, invalid("info: %d trailing bytes after the dict", len(b)-w.pos())
	}
	w.maxTokens = 0
	d := obj{w: w, f: f, where: "info"}
	hasVersion, hasTree := d.has("meta version"), d.has("file tree")
	hasV1 := d.has("pieces") || d.has("length") || d.has("files")
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
		k, ok := d.at("file tree")
		if !ok {
			return nil, invalid("info: no file tree")
		}
		if k != 'd' {
			return nil, invalid("info: file tree: %s, want a dict", kindName(k))
		}
		info.Files = make([]File, 0, min(d.tokens("file tree")/minFileTokens, maxFiles))
		if err := walkTree(w, nil, info); err != nil {
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
// files are never on disk and are not counted. The paths are sorted by
// component: two equal paths, or a file's path and a path below it, then
// lie next to each other (whatever sorts between a path and one below
// it is below it too). Memory is one index a file, however deep the
// paths.
func checkUnique(files []File) error {
	order := make([]int32, 0, len(files))
	for i := range files {
		if !files[i].Pad {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(a, b int32) int {
		return slices.Compare(files[a].Path, files[b].Path)
	})
	for k := 1; k < len(order); k++ {
		a, b := &files[order[k-1]], &files[order[k]]
		i := max(order[k-1], order[k]) // the later one in the torrent
		switch {
		case slices.Equal(a.Path, b.Path):
			return invalid("info: files[%d]: %q: two files at one path", i, strings.Join(b.Path, "/"))
		case len(a.Path) < len(b.Path) && slices.Equal(a.Path, b.Path[:len(a.Path)]):
			return invalid("info: files[%d]: %q is both a file and a folder", i, strings.Join(a.Path, "/"))
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
func parseV1(d obj, info *Info) error {
	hasLength, hasFiles := d.has("length"), d.has("files")
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
		k, _ := d.at("files")
		var err error
		if v1, err = parseV1Files(d.w, k, d.items("files")); err != nil {
			return err
		}
	default:
		return invalid("info: pieces but neither length nor files")
	}
	if !d.has("pieces") {
		return invalid("info: v1 files but no pieces")
	}
	pieces, err := d.bytes("pieces")
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
	info.Pieces = slices.Clone(pieces)
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

// minFileTokens is the fewest tokens that describe a file in a v2 tree
// (a name, two dicts and a key "", length and its key, two ends). From
// the tree's token count it bounds the file count, so the files can be
// allocated at once: growing a slice of a few hundred thousand files by
// appending costs more than the parse.
const minFileTokens = 8

// parseV1Files reads the v1 "files" list at the walker, whose kind is k
// and which holds n entries.
func parseV1Files(w *walker, k byte, n int) ([]File, error) {
	if k != 'l' {
		return nil, invalid("info: files: %s, want a list", kindName(k))
	}
	var (
		out   = make([]File, 0, min(n, maxFiles))
		total int64
		f     []field // reused from file to file
	)
	err := w.list(func(i int) error {
		if len(out) >= maxFiles {
			return invalid("info: files: more than %d files", maxFiles)
		}
		if k, _ := w.peek(); k != 'd' {
			return invalid("info: files[%d]: %s, want a dict", i, kindName(k))
		}
		end := 0
		var err error
		if f, err = w.fields(f); err != nil {
			return err
		}
		end = w.pos()
		fd := obj{w: w, f: f, where: "info: files", index: i + 1}
		file, err := parseV1File(fd, i, &total)
		if err != nil {
			return err
		}
		out = append(out, file)
		w.seek(end)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, invalid("info: files: empty list")
	}
	return out, nil
}

// parseV1File reads entry i of a v1 files list, adding its length to
// total.
func parseV1File(fd obj, i int, total *int64) (File, error) {
	var f File
	var err error
	if f.Length, err = fd.int("length"); err != nil {
		return f, err
	}
	if f.Length < 0 {
		return f, invalid("info: files[%d]: negative length %d", i, f.Length)
	}
	if f.Length > maxFileLength {
		return f, invalid("info: files[%d]: length %d beyond %d bytes", i, f.Length, int64(maxFileLength))
	}
	if *total += f.Length; *total > maxTotalLength || *total < 0 {
		return f, invalid("info: files[%d]: total length beyond %d bytes", i, int64(maxTotalLength))
	}
	if f.Attr, err = fd.optString("attr"); err != nil {
		return f, err
	}
	f.Pad = strings.ContainsRune(f.Attr, 'p')
	k, ok := fd.at("path")
	if !ok {
		return f, invalid("info: files[%d]: path: missing", i)
	}
	if k != 'l' {
		return f, invalid("info: files[%d]: path: want a list of strings", i)
	}
	w := fd.w
	safe := true
	f.Path = make([]string, 0, min(fd.items("path"), maxDepthTree))
	err = w.list(func(j int) error {
		if j >= maxDepthTree {
			return invalid("info: files[%d]: path nested more than %d deep", i, maxDepthTree)
		}
		if k, _ := w.peek(); !isString(k) {
			return invalid("info: files[%d]: path: %s, want a string", i, kindName(k))
		}
		c, err := w.str()
		if err != nil {
			return err
		}
		s, err := pathComponent(string(c))
		if err != nil {
			if !f.Pad {
				return invalid("info: files[%d]: %v", i, err)
			}
			safe = false
		}
		f.Path = append(f.Path, s)
		return nil
	})
	if err != nil {
		return f, err
	}
	if len(f.Path) == 0 {
		return f, invalid("info: files[%d]: path: want a list of strings", i)
	}
	if !safe {
		// A pad file is never on disk, so its path does not matter;
		// still, no unsafe path is ever handed on.
		f.Path = []string{".pad", strconv.FormatInt(f.Length, 10)}
	}
	return f, nil
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

// maxPathComponents caps the components of all files' paths together. A
// v1 list spells out every component, so its token limit bounds them; a
// v2 tree names a folder once for all the files below it, and each file
// keeps its own path: without this cap 250,000 files 60 folders deep,
// a 20 MiB tree, would ask for 250 MB of paths.
const maxPathComponents = MaxInfoTokens

// maxDepthTree bounds nesting in the file tree.
const maxDepthTree = 64

// walkTree reads the file tree folder at the walker, whose files lie at
// path. A dict whose first key is "" (which sorts first) is a file, any
// other a folder.
func walkTree(w *walker, path []string, info *Info) error {
	if len(path) > maxDepthTree {
		return invalid("file tree: %s: nested more than %d deep", strings.Join(path, "/"), maxDepthTree)
	}
	// where names a node in errors only: joining the path of every node
	// would cost as much as the paths themselves.
	where := func(name []byte) string { return strings.Join(append(path[:len(path):len(path)], string(name)), "/") }
	return w.dict(func(name []byte) error {
		if len(name) == 0 {
			return invalid("file tree: %q: empty path component", where(name))
		}
		safe, err := pathComponent(string(name))
		if err != nil {
			return invalid("file tree: %q: %v", where(name), err)
		}
		if k, _ := w.peek(); k != 'd' {
			return invalid("file tree: %q: %s, want a dict", where(name), kindName(k))
		}
		// Every node has a path of its own, and a file keeps it.
		if w.components += len(path) + 1; w.components > maxPathComponents {
			return invalid("file tree: more than %d path components in all", maxPathComponents)
		}
		// Exactly sized: append would double the capacity.
		p := make([]string, len(path)+1)
		copy(p, path)
		p[len(path)] = safe
		first, ok, err := w.firstKey()
		switch {
		case err != nil:
			return err
		case !ok:
			return invalid("file tree: %q: empty folder", where(name))
		case len(first) > 0:
			return walkTree(w, p, info)
		}
		return w.dict(func(key []byte) error {
			if len(key) > 0 {
				return invalid("file tree: %q is both a file and a folder", where(name))
			}
			return addFile(w, p, info)
		})
	})
}

// addFile reads the file at path, whose dict (the value of key "") is at
// the walker.
func addFile(w *walker, path []string, info *Info) error {
	// where names the file in errors only: joining every file's path
	// would cost as much again as the paths.
	where := func() string { return strings.Join(path, "/") }
	if k, _ := w.peek(); k != 'd' {
		return invalid("file tree: %q: %s, want a dict", where(), kindName(k))
	}
	if len(info.Files) >= maxFiles {
		return invalid("file tree: more than %d files", maxFiles)
	}
	fs, err := w.fields(w.scratch)
	if err != nil {
		return err
	}
	w.scratch = fs
	end := w.pos()
	defer w.seek(end)
	d := obj{w: w, f: fs, where: "file tree: ", path: path}
	length, err := d.int("length")
	if err != nil {
		return err
	}
	if length < 0 {
		return invalid("file tree: %q: negative length %d", where(), length)
	}
	if length > maxFileLength {
		return invalid("file tree: %q: length %d beyond %d bytes", where(), length, int64(maxFileLength))
	}
	if info.TotalLength+length > maxTotalLength {
		return invalid("file tree: %q: total length beyond %d bytes", where(), int64(maxTotalLength))
	}
	f := File{Path: path, Length: length, FirstPiece: info.NumPieces}
	if f.Attr, err = d.optString("attr"); err != nil {
		return err
	}
	if strings.ContainsRune(f.Attr, 'p') {
		// v2 aligns files by itself; pad files belong to the v1 list of a
		// hybrid. libtorrent refuses them here too.
		return invalid("file tree: %q: a pad file (attr p) in a v2 file tree", where())
	}
	hasRoot := d.has("pieces root")
	switch {
	case length == 0 && hasRoot:
		return invalid("file tree: %q: empty file with a pieces root", where())
	case length > 0 && !hasRoot:
		return invalid("file tree: %q: no pieces root", where())
	case hasRoot:
		var s []byte
		if r := d.get("pieces root"); isString(r.kind) {
			s = r.s
		}
		if len(s) != 32 {
			return invalid("file tree: %q: pieces root is not 32 bytes", where())
		}
		f.PiecesRoot = Hash(s)
		if f.PiecesRoot == (Hash{}) {
			// No data hashes to zeros: it stands for a root never computed.
			return invalid("file tree: %q: pieces root is all zeros", where())
		}
	}
	np := (length + info.PieceLength - 1) / info.PieceLength
	if int64(info.NumPieces)+np > MaxPieces {
		return invalid("file tree: %q: more than %d pieces in the torrent", where(), MaxPieces)
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
