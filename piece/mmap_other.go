//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package piece

import (
	"errors"
	"os"
)

func mapRange(f *os.File, off, length int64) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

func unmap([]byte) {}
