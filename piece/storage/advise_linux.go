package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// adviseSequential tells the kernel f is read front to back, which doubles
// its read-ahead window: pieces are served and checked in order far more
// often than not. Advice only; a failure changes nothing.
func adviseSequential(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
}

// adviseWillNeed starts reading [off, off+n) of f into the page cache in
// the background.
func adviseWillNeed(f *os.File, off, n int64) {
	unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED)
}
