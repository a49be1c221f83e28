package storage

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/anacrolix/torrent/bencode"
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

// BenchmarkCheckV1 is BenchmarkCheck for a v1 torrent of the same 256 MiB
// in four files whose pieces cross file boundaries: every piece is read
// once through its spans and SHA-1 hashed, on all cores.
func BenchmarkCheckV1(b *testing.B) {
	const size, files, pieceLength = 256 << 20, 4, 1 << 20
	dir := b.TempDir()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	var space []byte
	var list []any
	for k := range files {
		n := size/files + 1000*(k-1) // not piece-aligned
		if k == files-1 {
			n = size - len(space)
		}
		data := make([]byte, n)
		for off := 0; off < n; off += len(chunk) {
			copy(data[off:], chunk)
		}
		name := fmt.Sprintf("f%d", k)
		if err := os.MkdirAll(filepath.Join(dir, "tor"), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tor", name), data, 0o644); err != nil {
			b.Fatal(err)
		}
		space = append(space, data...)
		list = append(list, map[string]any{"length": n, "path": []string{name}})
	}
	info, err := bencode.Marshal(map[string]any{
		"name": "tor", "piece length": pieceLength, "files": list,
		"pieces": string(v1Pieces(space, pieceLength)),
	})
	if err != nil {
		b.Fatal(err)
	}
	in, err := piece.ParseInfo(info)
	if err != nil {
		b.Fatal(err)
	}
	m := &piece.MetaInfo{Info: in}
	space, list = nil, nil // 256 MiB the check must not be timed collecting
	runtime.GC()
	s, err := OpenWith(dir, in, Options{ResumePath: filepath.Join(b.TempDir(), "r"), Logger: slog.New(slog.DiscardHandler)})
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
		if have[0] != 0xff || have[len(have)-1] == 0 {
			b.Fatal("check found pieces missing")
		}
	}
}

// BenchmarkV1BlockIO writes and reads back a 16 KiB block that crosses
// two files of a v1 torrent, as downloading and serving do.
func BenchmarkV1BlockIO(b *testing.B) {
	in, err := piece.ParseInfo(mustMarshal(b, map[string]any{
		"name": "tor", "piece length": 1 << 18,
		"files": []any{
			map[string]any{"length": 100000, "path": []string{"a"}},
			map[string]any{"length": 400000, "path": []string{"b"}},
		},
		"pieces": string(make([]byte, 20*2)),
	}))
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenWith(b.TempDir(), in, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	block := make([]byte, piece.BlockSize)
	const begin = 100000 - 5000 // 5000 bytes of a, the rest of b
	b.SetBytes(2 * piece.BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteBlock(0, begin, block); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ReadBlock(0, begin, block); err != nil {
			b.Fatal(err)
		}
	}
}

func mustMarshal(b *testing.B, v any) []byte {
	out, err := bencode.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
