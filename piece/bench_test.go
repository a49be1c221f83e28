package piece

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// benchSize is large enough that per-file setup is noise, small enough to
// stay in the page cache of a small machine.
const benchSize = 256 << 20

// BenchmarkSHA256Raw is the single-core reference: crypto/sha256 over
// 16 KiB blocks from memory, no I/O. BenchmarkBuild on N cores should reach
// close to N times this.
func BenchmarkSHA256Raw(b *testing.B) {
	buf := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	for b.Loop() {
		_ = sha256.Sum256(buf)
	}
}

// BenchmarkBuild measures torrent creation from a file in the page cache,
// hashed on all cores.
func BenchmarkBuild(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "data")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	for range benchSize / len(chunk) {
		f.Write(chunk)
	}
	f.Close()
	// Warm the page cache so the figure is hashing, not disk.
	if _, err := Build(context.Background(), path, BuildOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Build(context.Background(), path, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
