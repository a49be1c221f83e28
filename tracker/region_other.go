//go:build !linux

package tracker

import "sync/atomic"

// pageSize is the dead space arenas tolerate whatever their size.
const pageSize = 4096

// regionMapped is always 0 where regions come from the Go heap.
var regionMapped atomic.Int64

// allocRegion returns n zeroed elements of T. Elsewhere than Linux they
// come from the Go heap (see region_linux.go).
func allocRegion[T any](n int) []T {
	if n <= 0 {
		return nil
	}
	return make([]T, n)
}

// freeRegion leaves s to the collector.
func freeRegion[T any](s []T) {}
