package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/shoal-p2p/shoal/piece"
)

// torrentSet is the benchmark's data: N files in dir and a v1 torrent of
// each.
type torrentSet struct {
	dir      string
	torrents [][]byte // .torrent files' bytes, in file order
	// total, min and max are the files' sizes.
	total, min, max int64
}

// fileSize draws a file's size: seven in ten from 64 KiB to 256 KiB, the
// rest up to 1 MiB, as a seedbox's many small files might be; a whole
// number of KiB, and not of pieces, so most files end in a short piece.
func fileSize(r *rand.Rand) int64 {
	if r.IntN(10) < 7 {
		return int64(64+r.IntN(192+1)) << 10
	}
	return int64(256+r.IntN(768+1)) << 10
}

// makeTorrents writes n random files into dir and builds a v1 torrent of
// each, with the piece length shoal create would choose.
func makeTorrents(ctx context.Context, dir string, n int, seed uint64) (*torrentSet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sizes := rand.New(rand.NewPCG(seed, 1))
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	content := rand.NewChaCha8(key)
	set := &torrentSet{dir: dir, min: 1 << 62}
	buf := make([]byte, 1<<20)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		size := fileSize(sizes)
		set.total += size
		set.min, set.max = min(set.min, size), max(set.max, size)
		data := buf[:size]
		content.Read(data)
		path := filepath.Join(dir, fmt.Sprintf("f%05d.bin", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, fmt.Errorf("writing the data: %w", err)
		}
		m, err := piece.Build(ctx, path, piece.BuildOptions{Format: piece.FormatV1, CreatedBy: "daemonbench"})
		if err != nil {
			return nil, fmt.Errorf("torrent of %s: %w", path, err)
		}
		t, err := m.Marshal()
		if err != nil {
			return nil, fmt.Errorf("torrent of %s: %w", path, err)
		}
		set.torrents = append(set.torrents, t)
	}
	return set, nil
}
