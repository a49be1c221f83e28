package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/internal/fsutil"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// ResumeVersion is the format version SaveResume writes and LoadResume
// accepts; a record of any other version is ignored, costing a re-hash.
const ResumeVersion = 1

// ErrBadResume is wrapped by LoadResume's errors for a record that exists
// but cannot be used: corrupt, of another version, or for another torrent.
var ErrBadResume = errors.New("unusable resume record")

// FileStamp is a file's size and modification time (Unix nanoseconds) when
// the resume record was saved. A file whose stamp still matches has not
// been touched since, so its recorded pieces can be trusted unhashed.
// Size -1 means the file did not exist.
type FileStamp struct {
	Size    int64
	ModTime int64
}

// Record is a decoded resume record.
type Record struct {
	// InfoHash, V1Hash and NumPieces are the torrent's; LoadResume refuses
	// a record whose differ. The record holds the one that names the
	// torrent (Info.ID): the v2 info-hash, or the v1 one of a v1 torrent.
	InfoHash  piece.Hash
	V1Hash    piece.V1Hash
	NumPieces int
	// Have is the verified-pieces bitfield in wire order: piece 0 is the
	// high bit of byte 0.
	Have []byte
	// Files holds one stamp per file of the torrent, in file tree order.
	Files []FileStamp

	have *bitfield.Bitfield
}

// wireRecord is the bencoded form. Keys are short but readable, so a record
// can be inspected with any bencode tool.
type wireRecord struct {
	Version  int64      `bencode:"version"`
	InfoHash []byte     `bencode:"info hash"`
	Pieces   int64      `bencode:"pieces"`
	Have     []byte     `bencode:"have"`
	Files    []wireFile `bencode:"files"`
}

type wireFile struct {
	Size  int64 `bencode:"size"`
	MTime int64 `bencode:"mtime"`
}

// MarkVerified records that piece p was written and verified, for the next
// Save.
func (s *Storage) MarkVerified(p int) error { return s.mark(p, true) }

// MarkMissing records that piece p is no longer good (it failed a later
// check, or is being downloaded again), for the next Save.
func (s *Storage) MarkMissing(p int) error { return s.mark(p, false) }

func (s *Storage) mark(p int, ok bool) error {
	if p < 0 || p >= s.info.NumPieces {
		return fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	s.haveMu.Lock()
	defer s.haveMu.Unlock()
	changed := false
	if ok {
		changed = s.have.Set(p)
	} else {
		changed = s.have.Clear(p)
	}
	if changed {
		s.changes++
	}
	return nil
}

// Have returns the verified pieces as a wire-order bitfield: what Check
// found, plus MarkVerified, minus MarkMissing.
func (s *Storage) Have() []byte {
	s.haveMu.Lock()
	defer s.haveMu.Unlock()
	return s.have.Bytes()
}

// Unsaved reports whether Have changed since the last Save, so a periodic
// saver can skip writing (and syncing) when nothing happened.
func (s *Storage) Unsaved() bool {
	s.haveMu.Lock()
	defer s.haveMu.Unlock()
	return s.changes != s.saved
}

// Save writes Have as the resume record; see SaveResume.
func (s *Storage) Save() error {
	s.haveMu.Lock()
	have, changes := s.have.Bytes(), s.changes
	s.haveMu.Unlock()
	if err := s.SaveResume(have); err != nil {
		return err
	}
	s.haveMu.Lock()
	s.saved = max(s.saved, changes)
	s.haveMu.Unlock()
	return nil
}

// SaveResume writes the resume record for the verified pieces in have
// (wire order). It syncs the written files first, so no piece is recorded
// before its data is durable, then stamps each file as it is now; the
// record replaces the old one atomically, so a crash leaves one or the
// other. The state folder is created if missing. A file that cannot be
// synced (deleted, or a folder now stands in its place) has its pieces
// left out of the record, which is still written for the others; the
// sync error is returned all the same.
func (s *Storage) SaveResume(have []byte) error {
	bf, err := bitfield.FromBytes(have, s.info.NumPieces)
	if err != nil {
		return fmt.Errorf("save resume %s: %w", s.resumePath, err)
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	failed, syncErr := s.sync()
	if errors.Is(syncErr, ErrClosed) {
		return fmt.Errorf("save resume %s: %w", s.resumePath, syncErr)
	}
	for _, fi := range failed {
		f := &s.info.Files[fi]
		for p := f.FirstPiece; p < f.FirstPiece+f.NumPieces; p++ {
			bf.Clear(p)
		}
	}
	if len(failed) > 0 {
		have = bf.Bytes()
	}
	if err := s.writeRecord(have); err != nil {
		return errors.Join(err, syncErr)
	}
	if syncErr != nil {
		return fmt.Errorf("save resume %s: %w", s.resumePath, syncErr)
	}
	return nil
}

// writeRecord stamps the files and writes the record for have. Called with
// saveMu held.
func (s *Storage) writeRecord(have []byte) error {
	stamps, err := s.stamps()
	if err != nil {
		return fmt.Errorf("save resume %s: %w", s.resumePath, err)
	}
	w := wireRecord{
		Version:  ResumeVersion,
		InfoHash: recordHash(s.info),
		Pieces:   int64(s.info.NumPieces),
		Have:     have,
		Files:    make([]wireFile, len(stamps)),
	}
	for i, st := range stamps {
		w.Files[i] = wireFile{Size: st.Size, MTime: st.ModTime}
	}
	data, err := bencode.Marshal(w)
	if err != nil {
		return fmt.Errorf("save resume %s: encode: %w", s.resumePath, err)
	}
	if s.resumeRel != "" {
		// Through the folder's os.Root: a state folder swapped for a link
		// to elsewhere makes the save fail, never write out there.
		if err := s.root.MkdirAll(filepath.Dir(s.resumeRel), 0o755); err != nil {
			return fmt.Errorf("save resume: %w", err)
		}
		if err := fsutil.WriteFileAtomicIn(s.root, s.resumeRel, data, 0o644); err != nil {
			open := func() (*os.File, error) { return s.root.OpenFile(s.resumeRel, os.O_WRONLY, 0) }
			if !errors.Is(err, syscall.ENOSPC) || overwrite(open, data) != nil {
				return fmt.Errorf("save resume %s: %w", s.resumePath, err)
			}
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.resumePath), 0o755); err != nil {
		return fmt.Errorf("save resume: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.resumePath, data, 0o644); err != nil {
		open := func() (*os.File, error) { return os.OpenFile(s.resumePath, os.O_WRONLY, 0) }
		if !errors.Is(err, syscall.ENOSPC) || overwrite(open, data) != nil {
			return fmt.Errorf("save resume %s: %w", s.resumePath, err)
		}
	}
	return nil
}

// relInside returns path relative to dir when it lies inside dir, and ""
// otherwise (or when either cannot be made absolute).
func relInside(dir, path string) string {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return ""
	}
	rel, err := filepath.Rel(ad, ap)
	if err != nil || !filepath.IsLocal(rel) {
		return ""
	}
	return rel
}

// checkNoLinkOut refuses a symbolic link among the existing components of
// rel (a folder inside root's folder dir) that leads out of dir, or
// anywhere os.Root will not follow: the state folder .shoal linked to
// elsewhere would otherwise take the resume record and saved metadata out
// of the download folder.
func checkNoLinkOut(root *os.Root, dir, rel string) error {
	if rel == "." {
		return nil
	}
	prefix := ""
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		prefix = filepath.Join(prefix, c)
		st, err := root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created later, as a real folder
		}
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if _, err := root.Stat(prefix); err != nil {
			return fmt.Errorf("%s is a symbolic link leading out of %s; shoal keeps its state inside the download folder: remove the link or make it a real folder",
				filepath.Join(dir, prefix), dir)
		}
	}
	return nil
}

// CheckStateDir checks that dir's state folder (StateDirName), where the
// CLI keeps resume records and fetched metadata, does not lead out of dir
// through a symbolic link, so a caller can refuse before any work. A
// missing dir or state folder is fine.
func CheckStateDir(dir string) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	return checkNoLinkOut(root, dir, StateDirName)
}

// overwrite rewrites an existing record in place, for a full disk where
// the atomic save cannot create its temporary file: the record's blocks
// are already allocated, so the verified pieces of a download stopped by
// the full disk are still remembered. A write torn by a crash is at worst
// a record that fails to decode or whose file stamps do not match, which
// costs a re-hash, never data.
func overwrite(open func() (*os.File, error), data []byte) error {
	f, err := open()
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// stamps returns every file's current stamp, looking again only at files
// written since they were last stamped: with 100k files, a save every few
// seconds must not cost 100k stat calls.
func (s *Storage) stamps() ([]FileStamp, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	out := make([]FileStamp, len(s.files))
	var look []int
	for i := range s.files {
		fs := &s.files[i]
		if s.info.Files[i].Pad {
			out[i] = FileStamp{Size: -1} // never on disk
			continue
		}
		if fs.stamped && !fs.stale {
			out[i] = fs.stamp
			continue
		}
		// Cleared before the look, and set by writers after their write,
		// so a write this look misses is looked at by the next save.
		fs.stale = false
		look = append(look, i)
	}
	s.mu.Unlock()
	for _, i := range look {
		out[i] = FileStamp{Size: -1}
		if st, err := s.root.Lstat(s.paths[i]); err == nil && st.Mode().IsRegular() {
			out[i] = FileStamp{Size: st.Size(), ModTime: st.ModTime().UnixNano()}
		}
	}
	s.mu.Lock()
	for _, i := range look {
		s.files[i].stamp, s.files[i].stamped = out[i], true
	}
	s.mu.Unlock()
	return out, nil
}

// LoadResume reads the resume record and checks that it is for this
// torrent. A missing record gives an error wrapping fs.ErrNotExist; one
// that is corrupt or for another torrent, version or piece count wraps
// ErrBadResume.
func (s *Storage) LoadResume() (*Record, error) {
	var f *os.File
	var err error
	if s.resumeRel != "" {
		f, err = s.root.Open(s.resumeRel)
	} else {
		f, err = os.Open(s.resumePath)
	}
	if err != nil {
		return nil, fmt.Errorf("load resume: %w", err)
	}
	defer f.Close()
	// Bounded by what a genuine record for this torrent can hold, so a
	// planted giant file cannot exhaust memory.
	limit := int64(1<<12 + (s.info.NumPieces+7)/8 + 64*len(s.info.Files))
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("load resume %s: %w", s.resumePath, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("load resume %s: %w: larger than %d bytes", s.resumePath, ErrBadResume, limit)
	}
	rec, err := decodeRecord(data, s.info)
	if err != nil {
		return nil, fmt.Errorf("load resume %s: %w: %v", s.resumePath, ErrBadResume, err)
	}
	return rec, nil
}

// recordHash is the hash a resume record names its torrent by: the v2
// info-hash (as records always did), or for a v1 torrent, which has none,
// its v1 info-hash.
func recordHash(info *piece.Info) []byte {
	if info.HasV2() {
		return info.Hash[:]
	}
	return info.V1Hash[:]
}

func decodeRecord(data []byte, info *piece.Info) (*Record, error) {
	var w wireRecord
	if err := bencode.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	switch {
	case w.Version != ResumeVersion:
		return nil, fmt.Errorf("version %d, want %d", w.Version, ResumeVersion)
	case !bytes.Equal(w.InfoHash, recordHash(info)):
		return nil, fmt.Errorf("info-hash %x is another torrent's", w.InfoHash)
	case w.Pieces != int64(info.NumPieces):
		return nil, fmt.Errorf("%d pieces, want %d", w.Pieces, info.NumPieces)
	case len(w.Files) != len(info.Files):
		return nil, fmt.Errorf("%d files, want %d", len(w.Files), len(info.Files))
	}
	have, err := bitfield.FromBytes(w.Have, info.NumPieces)
	if err != nil {
		return nil, err
	}
	rec := &Record{
		InfoHash:  info.Hash,
		V1Hash:    info.V1Hash,
		NumPieces: info.NumPieces,
		Have:      have.Bytes(),
		Files:     make([]FileStamp, len(w.Files)),
		have:      have,
	}
	for i, f := range w.Files {
		rec.Files[i] = FileStamp{Size: f.Size, ModTime: f.MTime}
	}
	return rec, nil
}
