package piece

import (
	"os"
	"path/filepath"
	"testing"
)

// A file truncated after it was mapped must give an error, not kill the
// process with SIGBUS.
func TestMappedPieceSurvivesTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 8*BlockSize), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newHashWorker(8*BlockSize, nil)
	m := w.mapJob(source{r: f, size: 8 * BlockSize}, 0, 8*BlockSize)
	if m == nil {
		t.Fatal("mapping failed on a platform that supports it")
	}
	defer unmap(m)
	if _, err := w.mappedPiece(m, 8); err != nil {
		t.Fatalf("intact mapping: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.mappedPiece(m, 8); err == nil {
		t.Fatal("hashing a truncated mapping succeeded")
	}
}
