//go:build !linux

package storage

import (
	"io"
	"os"
)

// pwritev writes bufs one after another to f at off: one positioned write
// each, where the platform's pwritev is not wired up.
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

// preadv fills bufs one after another from f at off: one positioned read
// each. A file that ends first is io.ErrUnexpectedEOF.
func preadv(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if n, err := f.ReadAt(b, off); n < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		off += int64(len(b))
	}
	return nil
}
