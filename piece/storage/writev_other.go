//go:build !linux

package storage

import "os"

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
