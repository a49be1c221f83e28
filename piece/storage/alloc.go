package storage

// KeepSparse marks the files for which sparse reports true to be sized
// without preallocating their space when first written: files left out of
// a selective download, of which a v1 piece shared with a wanted file
// writes only a few bytes. Every other file is preallocated (fallocate)
// when its first block is written. Call it before the first write.
func (s *Storage) KeepSparse(sparse func(fi int) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fi := range s.files {
		s.files[fi].sparse = sparse(fi)
	}
}
