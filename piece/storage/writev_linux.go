package storage

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pwritev writes bufs one after another to f at off, with as few system
// calls as the kernel allows (one, but for a short write).
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	fd := int(f.Fd())
	for len(bufs) > 0 {
		// The kernel takes at most IOV_MAX (1024) buffers a call.
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), 1024)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		// A short write: the rest goes with plain writes, leaving the
		// caller's slices as they were.
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			rest := bufs[0][n:]
			if _, err := f.WriteAt(rest, off); err != nil {
				return err
			}
			off += int64(len(rest))
			bufs = bufs[1:]
		}
	}
	return nil
}

// preadv fills bufs one after another from f at off, with as few system
// calls as the kernel allows. A file that ends first is
// io.ErrUnexpectedEOF: someone truncated it.
func preadv(f *os.File, bufs [][]byte, off int64) error {
	fd := int(f.Fd())
	for len(bufs) > 0 {
		n, err := unix.Preadv(fd, bufs[:min(len(bufs), 1024)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "preadv", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += int64(n)
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			// A short read: the rest of this buffer with a plain read.
			rest := bufs[0][n:]
			if m, err := f.ReadAt(rest, off); m < len(rest) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			off += int64(len(rest))
			bufs = bufs[1:]
		}
	}
	return nil
}
