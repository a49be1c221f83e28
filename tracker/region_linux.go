package tracker

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// pageSize is what mappings are rounded to.
const pageSize = 4096

// regionMapped counts the bytes of regions mapped and not yet unmapped,
// for tests.
var regionMapped atomic.Int64

// mapAnon maps length bytes of zeroed private memory; a test replaces it
// to make mappings fail.
var mapAnon = func(length int) ([]byte, error) {
	return syscall.Mmap(-1, 0, length, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
}

// allocRegion returns n zeroed elements of T, which must hold no pointers,
// mapped straight from the kernel outside the Go heap: the collector
// neither scans them nor paces itself by them, so the store's records cost
// their size and not GOGC's headroom on top, and freeRegion gives them
// back at once instead of after a cycle and the scavenger. Small regions
// are mapped too, though each costs a page: from the Go heap, a shard's
// regions outgrown while it fills were garbage that ran collections
// during load, and each cycle made more of the heap and its metadata
// resident (measured: about 15 bytes of RSS per peer at 100,000 peers).
// The returned slice may be longer than n, up to the mapping's last whole
// element.
func allocRegion[T any](n int) []T {
	if n <= 0 {
		return nil
	}
	size := int(unsafe.Sizeof(*new(T)))
	length := (n*size + pageSize - 1) &^ (pageSize - 1)
	b, err := mapAnon(length)
	if err != nil {
		// Out of memory or address space, where the Go heap would
		// end the process too.
		panic(fmt.Sprintf("tracker: mapping %d bytes for the peer store: %v", length, err))
	}
	// Records are read at random; a huge page would charge 2 MiB of RSS
	// for a few of them where the kernel makes them by default.
	_ = syscall.Madvise(b, syscall.MADV_NOHUGEPAGE)
	regionMapped.Add(int64(length))
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), length/size)
}

// freeRegion releases a slice from allocRegion (with its capacity intact);
// nothing may use it afterwards.
func freeRegion[T any](s []T) {
	if cap(s) == 0 {
		return
	}
	size := int(unsafe.Sizeof(*new(T)))
	length := (cap(s)*size + pageSize - 1) &^ (pageSize - 1)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:cap(s)]))), length)
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("tracker: unmapping %d bytes of the peer store: %v", length, err))
	}
	regionMapped.Add(-int64(length))
}
