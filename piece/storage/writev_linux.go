package storage

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pwritev writes bufs one after another to f at off, with as few system
// calls as the kernel allows (one, but for a short write).
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	return vectorIO(f, bufs, off, "pwritev", unix.Pwritev, writeRest, io.ErrShortWrite)
}

// preadv fills bufs one after another from f at off, with as few system
// calls as the kernel allows. A file that ends first is
// io.ErrUnexpectedEOF: someone truncated it.
func preadv(f *os.File, bufs [][]byte, off int64) error {
	return vectorIO(f, bufs, off, "preadv", unix.Preadv, readRest, io.ErrUnexpectedEOF)
}

// vectorIO runs call (unix.Pwritev or unix.Preadv, named op in errors)
// over bufs from off until every buffer is done. A short call leaves the
// buffer it stopped in to rest, a plain positioned write or read, so the
// caller's slices stay as they were; a call that moves nothing is atEnd.
// rest takes f rather than closing over it, so a call allocates nothing.
func vectorIO(f *os.File, bufs [][]byte, off int64, op string,
	call func(int, [][]byte, int64) (int, error),
	rest func(*os.File, []byte, int64) error, atEnd error) error {
	fd := int(f.Fd())
	for len(bufs) > 0 {
		// The kernel takes at most IOV_MAX (1024) buffers a call.
		n, err := call(fd, bufs[:min(len(bufs), 1024)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: op, Path: f.Name(), Err: err}
		}
		if n == 0 {
			return atEnd
		}
		off += int64(n)
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			b := bufs[0][n:]
			if err := rest(f, b, off); err != nil {
				return err
			}
			off += int64(len(b))
			bufs = bufs[1:]
		}
	}
	return nil
}

// writeRest writes what a short pwritev left of a buffer.
func writeRest(f *os.File, b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	return err
}

// readRest reads what a short preadv left of a buffer; a file that ends
// first was truncated.
func readRest(f *os.File, b []byte, off int64) error {
	if m, err := f.ReadAt(b, off); m < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}
