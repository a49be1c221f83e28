package storage

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
)

// BenchmarkCheck measures the resume check of a 256 MiB file in the page
// cache with no resume record, so every piece is hashed on all cores: the
// work `shoal get` does before it resumes a download.
func BenchmarkCheck(b *testing.B) {
	const size = 256 << 20
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
	for range size / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	// Building the torrent also warms the page cache.
	m, err := piece.Build(context.Background(), path, piece.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenWith(dir, m.Info, Options{ResumePath: filepath.Join(b.TempDir(), "r"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		have, err := s.Check(context.Background(), m, nil)
		if err != nil {
			b.Fatal(err)
		}
		if have[0] == 0 {
			b.Fatal("check found the first piece missing")
		}
	}
}
