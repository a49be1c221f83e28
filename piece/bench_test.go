package piece

import (
	"context"
	"crypto/sha1"
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

// BenchmarkSHA1Raw is the single-core reference for v1 pieces:
// crypto/sha1 over 16 KiB writes from memory, no I/O, as the engine feeds
// it. BenchmarkBuildV1 on N cores should reach close to N times this.
func BenchmarkSHA1Raw(b *testing.B) {
	buf := make([]byte, BlockSize)
	h := sha1.New()
	var sum [sha1.Size]byte
	b.SetBytes(BlockSize)
	for b.Loop() {
		h.Write(buf)
	}
	h.Sum(sum[:0])
}

// BenchmarkBuild measures v2 torrent creation (the default) from a file in
// the page cache, hashed on all cores.
func BenchmarkBuild(b *testing.B) { benchBuild(b, FormatV2) }

// BenchmarkBuildV1 measures v1 torrent creation: SHA-1 over the piece
// space.
func BenchmarkBuildV1(b *testing.B) { benchBuild(b, FormatV1) }

// BenchmarkBuildHybrid measures hybrid torrent creation: SHA-256 leaves and
// SHA-1 pieces from one read of the data, so it should cost about the sum
// of the two hashes' CPU, not two reads.
func BenchmarkBuildHybrid(b *testing.B) { benchBuild(b, FormatHybrid) }

func benchBuild(b *testing.B, format Format) {
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
	opts := BuildOptions{Format: format}
	// Warm the page cache so the figure is hashing, not disk.
	if _, err := Build(context.Background(), path, opts); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
	b.SetBytes(benchSize)
	cpu := cpuTime()
	for b.Loop() {
		if _, err := Build(context.Background(), path, opts); err != nil {
			b.Fatal(err)
		}
	}
	// Bytes hashed per second of CPU: what the hashing costs, whatever
	// else shares the machine.
	if cpu := cpuTime() - cpu; cpu > 0 {
		b.ReportMetric(float64(benchSize)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}
