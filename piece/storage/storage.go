// Package storage keeps a torrent's pieces on disk and remembers, across
// restarts, which of them were verified.
//
// Every file access goes through an os.Root opened on the download folder,
// and every path component is checked again here, so neither a hostile
// torrent (.., separators) nor a symbolic link planted in the folder can make
// shoal read or write outside it. Data files are created lazily, on the first
// write of one of their pieces, and sized at once to their full length
// (sparse) so any piece can be written at its offset in any order; empty
// files, which have no pieces to write, are created by Open.
//
// Bytes are mapped to files through the torrent's piece space
// (piece.Info.AppendSpans), the same for v2, v1 and hybrid torrents: a v1
// block may span several files, and padding (a v1 torrent's BEP 47 pad
// files, a hybrid's implied ones) is never on disk: it reads as zeros,
// and must be written as zeros.
//
// A folder may already hold files at the torrent's paths. Check, which
// callers run before writing, tells the torrent's own partial data from a
// user's file that merely shares a name (see Foreign); the latter is never
// written, resized or truncated unless the caller adopts it.
package storage

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/bitfield"
)

// DefaultMaxOpenFiles bounds the file handles a Storage keeps open: enough
// that a torrent of a few large files never reopens anything, few enough
// that a torrent of 100k small files cannot exhaust descriptors.
const DefaultMaxOpenFiles = 64

// StateDirName is the folder, inside the download folder, where the default
// resume path keeps its records.
const StateDirName = ".shoal"

// ErrClosed is returned by every operation on a closed Storage.
var ErrClosed = errors.New("storage closed")

// ErrForeign is wrapped by the error of a write to a file that Check found
// holding someone else's data (see Foreign); Adopt lifts it.
var ErrForeign = errors.New("holds data that is not this torrent's; not writing to it")

// ErrRange is wrapped by errors for a piece index or byte range that is not
// in the torrent; such requests come from peers, so they are errors, never
// panics.
var ErrRange = errors.New("out of range")

// ErrPadData is wrapped by WriteBlock's error for a block whose bytes
// that fall in a pad file (BEP 47 padding, which is all zeros and never
// on disk) are not zeros: only a peer sending bad data does that, so the
// caller can blame it.
var ErrPadData = errors.New("data in padding, which must be zeros")

// ErrChanged is wrapped by ReadBlock's error for a file that changed on
// disk behind our back since it was last looked at: its data may no longer
// be what the torrent says, so it is not served until the caller, told by
// ChangedFiles, has dealt with it and called ClearChanged.
var ErrChanged = errors.New("changed on disk")

// Options tunes OpenWith. The zero value gives what Open does.
type Options struct {
	// ResumePath is the resume record's file; "" means DefaultResumePath.
	ResumePath string
	// MaxOpenFiles bounds open file handles; 0 means DefaultMaxOpenFiles.
	MaxOpenFiles int
	// Logger receives warnings (an unusable resume record); nil uses slog's
	// default.
	Logger *slog.Logger
	// TopName, when set, is the name in the folder of the torrent's
	// top-level entry (the file of a single-file torrent, the folder of a
	// multi-file one) in place of the torrent's own: it lets a seeder serve
	// data that was saved under another name. It must be one path
	// component.
	TopName string
}

// DefaultResumePath is where the CLI keeps a torrent's resume record:
// DIR/.shoal/<info.ID()>.resume (the v2 info-hash in hex, the v1 one for a
// v1 torrent), next to the data it describes so the folder can be moved as
// a whole.
func DefaultResumePath(dir string, info *piece.Info) string {
	return filepath.Join(dir, StateDirName, info.ID()+".resume")
}

// Storage is one torrent's data in one download folder. Its methods are safe
// for concurrent use; concurrent writes to the same bytes are the caller's
// business, as with any file.
type Storage struct {
	info       *piece.Info
	dir        string
	root       *os.Root
	resumePath string
	resumeRel  string // resumePath relative to dir when inside it, else ""
	log        *slog.Logger
	maxOpen    int
	paths      []string   // per file, relative to dir; "" for a pad file
	comps      [][]string // per file, the components of paths; nil for a pad file

	mu     sync.Mutex
	closed bool
	open   map[int]*handle
	peak   int       // most handles ever cached at once, for tests of the bound
	lru    list.List // of *handle, most recently used first
	files  []fileState
	// changed lists the files flagged changed (fileState.changed), so
	// ChangedFiles need not scan every file of a 100k-file torrent.
	changed []int

	haveMu  sync.Mutex
	have    *bitfield.Bitfield
	changes uint64     // bumped whenever have changes
	saved   uint64     // changes as of the last Save
	saveMu  sync.Mutex // orders whole saves so an older record never lands last
}

// fileState is what Storage remembers about a file between saves.
type fileState struct {
	dirty   bool      // written since the last fsync
	stale   bool      // written since stamp was taken
	stamped bool      // stamp is valid
	stamp   FileStamp // size and mtime at the last look
	foreign bool      // holds data that is not ours; never written (see Check)

	// What serving needs: seen is the file as last looked at for changes
	// (seenOK once it was); wrote (we wrote to it since) and writing
	// explain a new size or mtime; changed says a look found it altered
	// behind our back and nobody has dealt with that yet (ClearChanged).
	seen    FileStamp
	seenOK  bool
	wrote   bool
	writing int // WriteBlocks between acquire and their write's end
	changed bool

	// sparse keeps the file from being preallocated when it is sized: a
	// file not selected that a v1 boundary piece still writes a few
	// bytes of must not take its whole length of disk (KeepSparse).
	sparse bool
}

// handle is an open file shared by concurrent readers and writers. It is
// closed when evicted and no longer in use.
type handle struct {
	f        *os.File
	fi       int
	writable bool
	stamp    FileStamp // the file when opened
	refs     int
	evicted  bool
	elem     *list.Element
}

// Open opens the download folder dir for info with default options: the
// resume record at DefaultResumePath and DefaultMaxOpenFiles handles.
func Open(dir string, info *piece.Info) (*Storage, error) {
	return OpenWith(dir, info, Options{})
}

// OpenWith opens the download folder dir for info. It creates dir if
// missing, checks every path of the torrent, and creates its empty files
// (nothing else would, as they have no pieces).
func OpenWith(dir string, info *piece.Info, opts Options) (*Storage, error) {
	if info == nil || len(info.Files) == 0 {
		return nil, errors.New("open storage: no files in torrent")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	s := &Storage{
		info:       info,
		dir:        dir,
		resumePath: opts.ResumePath,
		log:        opts.Logger,
		maxOpen:    opts.MaxOpenFiles,
		paths:      make([]string, len(info.Files)),
		comps:      make([][]string, len(info.Files)),
		open:       map[int]*handle{},
		files:      make([]fileState, len(info.Files)),
		have:       bitfield.New(info.NumPieces),
	}
	if s.resumePath == "" {
		s.resumePath = DefaultResumePath(dir, info)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxOpen <= 0 {
		s.maxOpen = DefaultMaxOpenFiles
	}
	data := false
	for i := range info.Files {
		if info.Files[i].Pad {
			// Never on disk, so its path (which the parser does not check
			// either) never reaches the file system.
			continue
		}
		data = true
		comps := info.DiskPath(i)
		if opts.TopName != "" {
			// A copy: DiskPath may return the Info's own slice.
			comps = append([]string{opts.TopName}, comps[1:]...)
		}
		for _, c := range comps {
			if err := piece.CheckPathComponent(c); err != nil {
				return nil, fmt.Errorf("open storage: file %d %q: %w", i, strings.Join(comps, "/"), err)
			}
		}
		s.comps[i] = comps
		s.paths[i] = filepath.Join(comps...)
	}
	if !data {
		return nil, errors.New("open storage: only pad files in torrent")
	}
	if err := s.checkResumePath(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	s.root = root
	if s.resumeRel = relInside(dir, s.resumePath); s.resumeRel != "" {
		if err := checkNoLinkOut(root, dir, filepath.Dir(s.resumeRel)); err != nil {
			root.Close()
			return nil, fmt.Errorf("open storage: %w", err)
		}
	}
	for i, f := range info.Files {
		if f.Length != 0 || f.Pad {
			continue
		}
		// An existing file is left alone: truncating it to its declared
		// zero length would destroy whatever the user keeps there.
		_, err := root.Lstat(s.paths[i])
		if err == nil {
			continue
		}
		var h *handle
		if errors.Is(err, fs.ErrNotExist) {
			h, err = s.openFile(i, true)
		}
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("open storage: create empty file %s: %w", s.paths[i], err)
		}
		h.f.Close()
	}
	return s, nil
}

// checkResumePath refuses a resume record inside the torrent's own data
// (a torrent named .shoal under the default path): saving it would write
// into, or replace, a torrent file.
func (s *Storage) checkResumePath() error {
	var top0 string
	for _, c := range s.comps {
		if c != nil {
			top0 = c[0] // every data file's path starts with the same top entry
			break
		}
	}
	top, err1 := filepath.Abs(filepath.Join(s.dir, top0))
	rp, err2 := filepath.Abs(s.resumePath)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	rel, err := filepath.Rel(top, rp)
	if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("open storage: resume record %s lies inside the torrent's data %s; choose another state folder", s.resumePath, top)
	}
	return nil
}

// Info returns the torrent the storage holds.
func (s *Storage) Info() *piece.Info { return s.info }

// Dir returns the download folder.
func (s *Storage) Dir() string { return s.dir }

// ResumePath returns where SaveResume writes the resume record.
func (s *Storage) ResumePath() string { return s.resumePath }

// spanPool holds the span slices that block reads and writes map their
// bytes with, so that a block costs no allocation however many files (a
// v1 piece may span several) it lies in.
var spanPool = sync.Pool{New: func() any { sp := make([]piece.Span, 0, 8); return &sp }}

// checkRange checks that bytes [begin, begin+n) lie in piece p: in its
// PieceSize, or with v1 in its V1PieceSize (a hybrid's v1 peers may ask
// for the padding after a file's last piece). All arithmetic is in int64
// so hostile values cannot overflow past the checks.
func (s *Storage) checkRange(p, begin, n int, v1 bool) error {
	if p < 0 || p >= s.info.NumPieces {
		return fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	size := s.info.PieceSize(p)
	if v1 {
		size = s.info.V1PieceSize(p)
	}
	if begin < 0 || n < 0 || int64(begin) > size || int64(n) > size-int64(begin) {
		return fmt.Errorf("piece %d: bytes %d+%d: %w (piece has %d bytes)", p, begin, n, ErrRange, size)
	}
	return nil
}

// WriteBlock writes data at byte begin of piece p, straight to the files
// it lies in, so memory use does not grow with what is downloaded. Bytes
// that fall in padding are not written anywhere, but must be zeros: if not,
// nothing of the block is written and the error wraps ErrPadData.
func (s *Storage) WriteBlock(p, begin int, data []byte) error {
	if err := s.checkRange(p, begin, len(data), false); err != nil {
		return err
	}
	sp := spanPool.Get().(*[]piece.Span)
	defer spanPool.Put(sp)
	*sp = s.info.AppendSpans((*sp)[:0], p, int64(begin), int64(len(data)))
	var at int64
	for _, x := range *sp {
		if x.File < 0 && !allZero(data[at:at+x.Len]) {
			return fmt.Errorf("piece %d: bytes %d-%d: %w", p, int64(begin)+at, int64(begin)+at+x.Len-1, ErrPadData)
		}
		at += x.Len
	}
	at = 0
	for _, x := range *sp {
		if x.File >= 0 {
			if err := s.writeAt(p, x.File, data[at:at+x.Len], x.Off); err != nil {
				return err
			}
		}
		at += x.Len
	}
	return nil
}

// writeAt writes data to file fi at off, for piece p.
func (s *Storage) writeAt(p, fi int, data []byte, off int64) error {
	h, err := s.acquire(fi, true)
	if err != nil {
		return fmt.Errorf("piece %d: %w", p, err)
	}
	_, err = h.f.WriteAt(data, off)
	if err == nil {
		writebackDone(h.f, off, int64(len(data)))
	}
	s.release(h)
	s.wrote(fi)
	if err != nil {
		return fmt.Errorf("piece %d: write %s at %d: %w", p, s.paths[fi], off, err)
	}
	return nil
}

// WriteBlocks writes bufs one after another from byte begin of piece p,
// as WriteBlock would write each at its offset, but with one positioned
// write (pwritev where the platform has it) when they lie in one file:
// a downloader's run of contiguous blocks, still in its read buffer, goes
// to disk in one system call and no copy. A run across files or padding
// is written block by block, each checked as WriteBlock checks it.
func (s *Storage) WriteBlocks(p, begin int, bufs [][]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if err := s.checkRange(p, begin, n, false); err != nil {
		return err
	}
	sp := spanPool.Get().(*[]piece.Span)
	defer spanPool.Put(sp)
	*sp = s.info.AppendSpans((*sp)[:0], p, int64(begin), int64(n))
	if len(*sp) != 1 || (*sp)[0].File < 0 {
		off := begin
		for _, b := range bufs {
			if err := s.WriteBlock(p, off, b); err != nil {
				return err
			}
			off += len(b)
		}
		return nil
	}
	x := (*sp)[0]
	h, err := s.acquire(x.File, true)
	if err != nil {
		return fmt.Errorf("piece %d: %w", p, err)
	}
	err = pwritev(h.f, bufs, x.Off)
	if err == nil {
		writebackDone(h.f, x.Off, int64(n))
	}
	s.release(h)
	s.wrote(x.File)
	if err != nil {
		return fmt.Errorf("piece %d: write %s at %d: %w", p, s.paths[x.File], x.Off, err)
	}
	return nil
}

// wrote marks file fi written, after a write acquire counted (writing).
// Marked after the write, never before, so a Sync that clears the mark
// has necessarily seen the data.
func (s *Storage) wrote(fi int) {
	s.mu.Lock()
	s.files[fi].dirty = true
	s.files[fi].stale = true
	s.files[fi].wrote = true
	s.files[fi].writing--
	s.mu.Unlock()
}

// writebackChunk is the stretch of a file whose writeback starts at once
// when a write reaches its end (writebackDone).
const writebackChunk = 1 << 20

// writebackDone starts the writeback (startWriteback) of every whole
// writebackChunk of f that a write at [off, off+n) ended in or passed:
// a download in order, whatever the size of its writes (a reader's runs
// are up to its read buffer, 256 KiB), has its dirty data drain a chunk
// at a time, one call per MiB, instead of piling up until the kernel
// throttles every writer. Scattered blocks start a chunk now and then;
// only its dirty pages are written, and what is missing is left alone.
func writebackDone(f *os.File, off, n int64) {
	lo := off &^ (writebackChunk - 1)
	hi := (off + n) &^ (writebackChunk - 1)
	if hi > lo {
		startWriteback(f, lo, hi-lo)
	}
}

// zeros is compared against, a block at a time, to tell padding is zeros.
var zeros [piece.BlockSize]byte

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if string(b[:n]) != string(zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// ReadBlock fills buf from byte begin of piece p, for uploads; padding
// reads as zeros. The range comes from a peer, so anything outside the
// piece's V1PieceSize is an error: in a hybrid torrent a v1 peer may ask
// for the padding past a file's data. A file found changed on disk behind
// our back (see ChangedFiles) is refused with ErrChanged until
// ClearChanged, so none of it is served unchecked.
func (s *Storage) ReadBlock(p, begin int, buf []byte) (int, error) {
	if err := s.checkRange(p, begin, len(buf), true); err != nil {
		return 0, err
	}
	return s.readSpans(p, int64(begin), buf, true)
}

// ReadBlocks fills bufs one after another from byte begin of piece p, as
// ReadBlock would fill each at its offset, with the same checks, but with
// one positioned read (preadv where the platform has it) when they lie
// in one file: an uploader's run of contiguous blocks comes in one system
// call. A run across files or padding is read block by block.
func (s *Storage) ReadBlocks(p, begin int, bufs [][]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if err := s.checkRange(p, begin, n, true); err != nil {
		return err
	}
	off, fi, one := s.oneSpan(p, int64(begin), int64(n))
	if !one {
		at := begin
		for _, b := range bufs {
			if _, err := s.readSpans(p, int64(at), b, true); err != nil {
				return err
			}
			at += len(b)
		}
		return nil
	}
	h, err := s.acquireFor(fi, false, true)
	if err != nil {
		return fmt.Errorf("piece %d: %w", p, err)
	}
	err = preadv(h.f, bufs, off)
	s.release(h)
	if err != nil {
		return fmt.Errorf("piece %d: read %s at %d: %w", p, s.paths[fi], off, err)
	}
	return nil
}

// readSpans fills buf with bytes [begin, begin+len(buf)) of piece p, which
// the caller checked lie in it; serving refuses a changed file.
func (s *Storage) readSpans(p int, begin int64, buf []byte, serving bool) (int, error) {
	sp := spanPool.Get().(*[]piece.Span)
	defer spanPool.Put(sp)
	*sp = s.info.AppendSpans((*sp)[:0], p, begin, int64(len(buf)))
	var at int64
	for _, x := range *sp {
		part := buf[at : at+x.Len]
		if x.File < 0 {
			clear(part)
		} else if n, err := s.readAt(p, x.File, part, x.Off, serving); err != nil {
			return int(at) + n, err
		}
		at += x.Len
	}
	return int(at), nil
}

// readAt reads file fi at off for piece p; serving refuses a changed file.
func (s *Storage) readAt(p, fi int, buf []byte, off int64, serving bool) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	h, err := s.acquireFor(fi, false, serving)
	if err != nil {
		return 0, fmt.Errorf("piece %d: %w", p, err)
	}
	n, err := h.f.ReadAt(buf, off)
	s.release(h)
	if n == len(buf) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		// The file is shorter than the torrent says: someone truncated it.
		err = io.ErrUnexpectedEOF
	}
	return n, fmt.Errorf("piece %d: read %s at %d: %w", p, s.paths[fi], off, err)
}

// ReadPiece reads all of piece p (its PieceSize bytes, padding as zeros)
// into buf, growing it if it is too small, and returns the piece's bytes.
// A hybrid's SHA-1 covers V1PieceSize: the zeros past these bytes.
// Unlike ReadBlock it reads a changed file: whoever reads a whole piece is
// expected to check it against its hash.
func (s *Storage) ReadPiece(p int, buf []byte) ([]byte, error) {
	if p < 0 || p >= s.info.NumPieces {
		return nil, fmt.Errorf("piece %d: %w (torrent has %d pieces)", p, ErrRange, s.info.NumPieces)
	}
	size := int(s.info.PieceSize(p))
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	// Not refused when changed: a caller reading a whole piece hashes it.
	if _, err := s.readSpans(p, 0, buf, false); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadRange fills buf from byte begin of piece p (within its PieceSize),
// padding as zeros. Like ReadPiece, and unlike ReadBlock, it reads a
// changed file: it is for a caller that hashes what it reads, a part of a
// piece at a time so that its buffer need not hold the whole piece.
func (s *Storage) ReadRange(p, begin int, buf []byte) error {
	if err := s.checkRange(p, begin, len(buf), false); err != nil {
		return err
	}
	_, err := s.readSpans(p, int64(begin), buf, false)
	return err
}

// acquire returns an open handle on file fi, writable if asked, opening the
// file (and for writing creating and sizing it) when it is not open yet.
// Files are opened outside the lock so that one slow open does not stall
// I/O on the files already open.
func (s *Storage) acquire(fi int, write bool) (*handle, error) {
	return s.acquireFor(fi, write, false)
}

// acquireFor is acquire; serving refuses a file flagged changed, checked
// under the lock acquire takes anyway, so the hot path pays no syscall.
func (s *Storage) acquireFor(fi int, write, serving bool) (*handle, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	// Before the cache: a handle opened for reading is writable too.
	if write && s.files[fi].foreign {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", s.paths[fi], ErrForeign)
	}
	if serving && s.files[fi].changed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", s.paths[fi], ErrChanged)
	}
	if write {
		// Counted from here, before we create or size the file and before
		// the caller's write, so that a look for changes meanwhile knows
		// the new size or mtime is ours; WriteBlock counts it down.
		s.files[fi].writing++
	}
	if h, ok := s.open[fi]; ok && (h.writable || !write) {
		h.refs++
		s.lru.MoveToFront(h.elem)
		s.mu.Unlock()
		return h, nil
	}
	s.mu.Unlock()

	h, err := s.openFile(fi, write)
	s.mu.Lock()
	if err == nil && s.closed {
		h.f.Close()
		err = ErrClosed
	}
	if err != nil {
		if write {
			s.files[fi].writing--
			s.files[fi].wrote = true // it may have been created all the same
		}
		s.mu.Unlock()
		return nil, err
	}
	if write {
		s.files[fi].wrote = true // sizing it is our change too
	}
	s.lookedLocked(fi, h.stamp, false)
	if serving && s.files[fi].changed {
		s.mu.Unlock()
		h.f.Close()
		return nil, fmt.Errorf("%s: %w", s.paths[fi], ErrChanged)
	}
	var toClose []*os.File
	if old, ok := s.open[fi]; ok {
		if old.writable || !h.writable {
			// Another goroutine opened it meanwhile; share theirs.
			old.refs++
			s.lru.MoveToFront(old.elem)
			s.mu.Unlock()
			h.f.Close()
			return old, nil
		}
		toClose = s.evictLocked(old, toClose) // a read-only handle being upgraded
	}
	h.refs = 1
	h.elem = s.lru.PushFront(h)
	s.open[fi] = h
	for len(s.open) > s.maxOpen {
		toClose = s.evictLocked(s.lru.Back().Value.(*handle), toClose)
	}
	s.peak = max(s.peak, len(s.open))
	s.mu.Unlock()
	for _, f := range toClose {
		f.Close()
	}
	return h, nil
}

// evictLocked drops h from the cache. A handle still in use is closed by
// its last release rather than under a concurrent ReadAt or WriteAt.
func (s *Storage) evictLocked(h *handle, toClose []*os.File) []*os.File {
	delete(s.open, h.fi)
	s.lru.Remove(h.elem)
	h.evicted = true
	if h.refs == 0 {
		toClose = append(toClose, h.f)
	}
	return toClose
}

func (s *Storage) release(h *handle) {
	s.mu.Lock()
	h.refs--
	closeNow := h.evicted && h.refs == 0
	s.mu.Unlock()
	if closeNow {
		h.f.Close()
	}
}

// openFile opens file fi inside the root. For writing it creates the file
// and its folders and sizes it to its length; for reading it falls back to
// read-only so a complete download on read-only media can still be seeded.
// Each component is looked at without following links: os.Root already
// keeps links inside the folder, and refusing them outright means a link
// planted in the folder cannot even redirect us within it.
func (s *Storage) openFile(fi int, write bool) (*handle, error) {
	if s.info.Files[fi].Pad {
		// Callers map bytes through spans, which never name a pad file;
		// this keeps a slip from creating a .pad folder.
		return nil, fmt.Errorf("file %d: a pad file, never on disk", fi)
	}
	rel := s.paths[fi]
	comps := s.comps[fi]
	for j := 1; j < len(comps); j++ {
		prefix := filepath.Join(comps[:j]...)
		st, err := s.root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) && write {
			if err = s.root.Mkdir(prefix, 0o755); errors.Is(err, fs.ErrExist) {
				st, err = s.root.Lstat(prefix) // made by a concurrent opener
			} else if err == nil {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, inTheWay(filepath.Join(s.dir, prefix), st.Mode(), true)
		}
	}
	st, err := s.root.Lstat(rel)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return nil, inTheWay(filepath.Join(s.dir, rel), st.Mode(), false)
	case err != nil && !(write && errors.Is(err, fs.ErrNotExist)):
		return nil, err
	}
	flag, writable := os.O_RDWR, true
	if write {
		flag |= os.O_CREATE
	}
	f, err := s.root.OpenFile(rel, flag, 0o644)
	if err != nil && !write && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
		f, err = s.root.OpenFile(rel, os.O_RDONLY, 0)
		writable = false
	}
	if err != nil {
		return nil, err
	}
	// Checked again on the open file: the path may have been swapped for a
	// device or FIFO since the Lstat.
	fst, err := f.Stat()
	if err == nil && !fst.Mode().IsRegular() {
		err = inTheWay(filepath.Join(s.dir, rel), fst.Mode(), false)
	}
	if err == nil && write && fst.Size() != s.info.Files[fi].Length {
		if err = f.Truncate(s.info.Files[fi].Length); err != nil {
			err = fmt.Errorf("size %s to %d: %w", rel, s.info.Files[fi].Length, err)
		} else {
			// Only a file we are about to write is sized, so files not
			// selected are never created; the few an unselected
			// neighbour's boundary piece writes to stay sparse.
			s.mu.Lock()
			sparse := s.files[fi].sparse
			s.mu.Unlock()
			if !sparse {
				preallocate(f, s.info.Files[fi].Length)
			}
			fst, err = f.Stat() // the stamp must say what the file is now
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	adviseSequential(f)
	return &handle{f: f, fi: fi, writable: writable, stamp: stampOf(fst)}, nil
}

// Sync flushes every file written since the last Sync to stable storage, so
// that pieces recorded as verified survive a crash.
func (s *Storage) Sync() error {
	_, err := s.sync()
	return err
}

// sync is Sync, also reporting which files failed to flush: their pieces
// cannot be recorded as verified, but the other files' still can.
func (s *Storage) sync() (failed []int, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	var dirty []int
	for i := range s.files {
		if s.files[i].dirty {
			s.files[i].dirty = false
			dirty = append(dirty, i)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, fi := range dirty {
		// fsync flushes the file, not the descriptor, so a file whose
		// writing handle was evicted is flushed through a new one.
		h, err := s.acquire(fi, false)
		if err == nil {
			err = h.f.Sync()
			s.release(h)
		}
		if err != nil {
			// A file deleted behind our back has nothing left to flush;
			// keeping it marked would fail every later save.
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrClosed) {
				s.mu.Lock()
				s.files[fi].dirty = true
				s.mu.Unlock()
			}
			errs = append(errs, fmt.Errorf("sync %s: %w", s.paths[fi], err))
			failed = append(failed, fi)
		}
	}
	return failed, errors.Join(errs...)
}

// Close closes every file. It does not sync: call SaveResume (which does)
// or Sync first when what was written must survive a crash.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var toClose []*os.File
	for s.lru.Len() > 0 {
		toClose = s.evictLocked(s.lru.Front().Value.(*handle), toClose)
	}
	s.mu.Unlock()
	var errs []error
	for _, f := range toClose {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.root.Close())
	return errors.Join(errs...)
}

// openCounts reports how many handles are cached now and at most, for
// tests of the bound.
func (s *Storage) openCounts() (now, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open), s.peak
}
