package storage

import (
	"os"

	"github.com/shoal-p2p/shoal/piece"
)

// Lent is a stretch of one open file holding a block, lent by LendBlock so
// that it can be sent from the page cache to a socket (sendfile) without
// passing through user space. The file stays open until Return.
type Lent struct {
	// File holds the block's bytes at [Off, Off+Len).
	File *os.File
	Off  int64
	Len  int64
	// FileIndex is the torrent's file the block lies in.
	FileIndex int
	h         *handle
}

// LendBlock lends the open file holding bytes [begin, begin+n) of piece p,
// for an upload to send without copying it through user space; the caller
// must Return it. It checks what ReadBlock checks (the range, a file found
// changed) and fails the same way. ok is false, with no error, when the
// bytes are not one stretch of one file: a v1 piece crossing files, or
// padding, which ReadBlock serves instead.
//
// The bytes are not read here, so a file truncated behind our back shows
// only as a short send: the caller must treat that as a failed read.
func (s *Storage) LendBlock(p, begin, n int) (l Lent, ok bool, err error) {
	if err := s.checkRange(p, begin, n, true); err != nil {
		return Lent{}, false, err
	}
	off, fi, ok := s.oneSpan(p, int64(begin), int64(n))
	if !ok {
		return Lent{}, false, nil
	}
	h, err := s.acquireFor(fi, false, true)
	if err != nil {
		return Lent{}, false, err
	}
	if begin == 0 {
		// The peer is starting a piece: have the kernel read all of it
		// ahead while the first blocks go out (no-op when it is cached).
		adviseWillNeed(h.f, off, s.info.PieceSize(p))
	}
	return Lent{File: h.f, Off: off, Len: int64(n), FileIndex: fi, h: h}, true, nil
}

// Return gives back a file lent by LendBlock.
func (s *Storage) Return(l Lent) {
	if l.h != nil {
		s.release(l.h)
	}
}

// oneSpan maps bytes [begin, begin+n) of piece p to an offset in one file,
// or reports false if they span files or padding.
func (s *Storage) oneSpan(p int, begin, n int64) (off int64, fi int, ok bool) {
	sp := spanPool.Get().(*[]piece.Span)
	defer spanPool.Put(sp)
	*sp = s.info.AppendSpans((*sp)[:0], p, begin, n)
	if len(*sp) != 1 || (*sp)[0].File < 0 || (*sp)[0].Len != n {
		return 0, -1, false
	}
	return (*sp)[0].Off, (*sp)[0].File, true
}
