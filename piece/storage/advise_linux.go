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

// startWriteback has the kernel start writing [off, off+n) of f to disk
// now, without waiting for it: the download's dirty pages then drain as
// they are made, at the disk's pace, rather than piling up until the
// kernel throttles every writer at once or the next Sync writes them all.
// When the disk falls behind, submitting blocks for a moment: the steady
// back-pressure wanted.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// preallocate reserves disk space for f's first size bytes, so writes
// into it find their blocks allocated (and contiguous where the file
// system can) instead of allocating them at writeback. Advice too: a file
// system that cannot leaves the file sparse, and running out of space is
// the preflight's to report.
func preallocate(f *os.File, size int64) {
	if size > 0 {
		unix.Fallocate(int(f.Fd()), 0, 0, size)
	}
}
