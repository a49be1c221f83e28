package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

// A hybrid .torrent whose pieces has one wrong SHA-1 cannot be completed:
// the piece's data matches the v2 merkle tree, proven block by block, so
// `get` stops with one line naming the piece and saying the torrent's two
// halves disagree, exit 1, and bans nobody. The seeder, which made the
// torrent and claims every piece as its creator would, uses the same
// lying torrent.
func TestGetInconsistentHybrid(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "share")
	randomFiles(t, src, map[string]int{"a.bin": 300_000, "b.bin": 70_000})
	m, err := piece.Build(context.Background(), src, piece.BuildOptions{PieceLength: 64 << 10, Format: piece.FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := bencode.Unmarshal(m.Info.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	const wrong = 3
	pieces := []byte(info["pieces"].(string))
	pieces[wrong*20+7] ^= 0x40
	info["pieces"] = string(pieces)
	b, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	in, err := piece.ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	lying := &piece.MetaInfo{Info: in, Layers: m.Layers}
	data, err := lying.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lying.torrent"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	st, err := storage.OpenWith(dir, in, storage.Options{ResumePath: filepath.Join(dir, "seed.resume")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl, err := swarm.Listen(context.Background(), swarm.Config{ListenAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	all := make([]byte, (in.NumPieces+7)/8)
	for p := range in.NumPieces {
		all[p/8] |= 0x80 >> (p % 8)
	}
	tor, err := cl.Add(lying, st, all)
	if err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	addr := netip.MustParseAddrPort(cl.Addr().String()).String()

	get := start(t, dir, "get", "lying.torrent", "-o", "dl", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	if code := get.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, get.errText())
	}
	// One line says why, after the progress lines a download prints.
	var failures []string
	for _, line := range strings.Split(strings.TrimSpace(get.errText()), "\n") {
		if !strings.HasPrefix(line, "first piece: ") && !strings.HasPrefix(line, "progress: ") {
			failures = append(failures, line)
		}
	}
	want := regexp.MustCompile(`^shoal: get: piece 3 matches the torrent's v2 hash but not its v1 hash: the torrent's v1 and v2 hashes disagree, so it cannot be completed: share: .* verified; downloaded \d+ bytes \(\d+ wasted\) in `)
	if len(failures) != 1 || !want.MatchString(failures[0]) || strings.Contains(failures[0], "banned") {
		t.Fatalf("stderr:\n%s", get.errText())
	}
	if _, err := os.Stat(filepath.Join(dir, "dl", "share", "a.bin")); err != nil {
		t.Fatalf("the pieces that verified are not kept: %v", err)
	}
}

// v1OnlySeeder serves m from dir (the folder holding m's top folder) as a
// v1-only client would: by the v1 hash alone, never a hash message. No
// `shoal seed` flag does that; the test plays the client in-process.
func v1OnlySeeder(t *testing.T, m *piece.MetaInfo, dir string) string {
	t.Helper()
	st, err := storage.OpenWith(dir, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "seed.resume")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	have, err := st.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := swarm.Listen(context.Background(), swarm.Config{ListenAddr: "127.0.0.1:0", TestV1Only: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tor, err := cl.Add(m, st, have)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	if s := tor.Stats(); s.BytesDone != m.Info.TotalLength {
		t.Fatalf("seeder has %d of %d bytes", s.BytesDone, m.Info.TotalLength)
	}
	return cl.Addr().String()
}

// A hybrid .torrent that left out its piece layers, among peers that are
// all v1-only (none can send the layers): `get` does not wait for layers
// that never come but downloads by SHA-1, byte for byte.
func TestGetHybridWithoutLayersFromV1OnlyPeer(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "share")
	randomFiles(t, src, map[string]int{"a.bin": 300_000, "sub/b.bin": 70_000, "c.bin": 1000})
	m, err := piece.Build(context.Background(), src, piece.BuildOptions{PieceLength: 32 << 10, Format: piece.FormatHybrid})
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&piece.MetaInfo{Info: m.Info}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nolayers.torrent"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := v1OnlySeeder(t, m, dir)
	r := shoal(t, dir, nil, "get", "nolayers.torrent", "-o", "dl", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	if r.code != 0 || !strings.Contains(r.stderr, "done: ") {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for _, f := range []string{"a.bin", "sub/b.bin", "c.bin"} {
		want, _ := os.ReadFile(filepath.Join(src, f))
		got, err := os.ReadFile(filepath.Join(dir, "dl", "share", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, want %d identical (%v)", f, len(got), len(want), err)
		}
	}
}
