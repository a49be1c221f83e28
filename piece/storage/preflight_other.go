//go:build !linux

package storage

import "io/fs"

// allocatedBytes is 0 where shoal cannot ask: the space check then counts
// every missing byte as needing room.
func allocatedBytes(fs.FileInfo) int64 { return 0 }

// devOf reports no file system where shoal cannot ask: Preflight then
// skips the space check rather than guess.
func (s *Storage) devOf(string) (uint64, bool) { return 0, false }

// freeSpace is unknown where shoal cannot ask.
func (s *Storage) freeSpace(string) (int64, bool) { return 0, false }
