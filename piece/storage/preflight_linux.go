package storage

import (
	"io/fs"
	"syscall"
)

// allocatedBytes is how much of the file's length already has disk space:
// a sparse file's holes need space when written, its written parts (and a
// preallocated file's whole length) do not.
func allocatedBytes(st fs.FileInfo) int64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512 // st_blocks counts 512-byte units whatever the block size
	}
	return 0
}

// devOf names the file system folder dir (relative to the download folder)
// is on, so files on different mounts are counted against their own.
func (s *Storage) devOf(dir string) (uint64, bool) {
	st, err := s.root.Stat(dir)
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return sys.Dev, true
}

// freeSpace returns the bytes an unprivileged user may still write on the
// file system of folder dir. Root may also use the blocks reserved for it,
// but a download that needs them would leave the system without its
// reserve: counting only what is available to everyone errs on the safe
// side.
func (s *Storage) freeSpace(dir string) (int64, bool) {
	f, err := s.root.Open(dir)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
