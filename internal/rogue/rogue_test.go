package rogue

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

// writeFiles writes files (relative path → size) of random bytes under root.
func writeFiles(t *testing.T, root string, files map[string]int) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(files)), 1))
	for rel, n := range files {
		full := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func build(t *testing.T, path string, pieceLength int64) *piece.MetaInfo {
	t.Helper()
	m, err := piece.Build(context.Background(), path, piece.BuildOptions{PieceLength: pieceLength, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testOptions(t *testing.T) Options {
	if testing.Verbose() {
		return Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	}
	return Options{}
}

// honest is a plain swarm node on loopback serving or fetching m in dir.
type honest struct {
	c  *swarm.Client
	t  *swarm.Torrent
	st *storage.Storage
}

func (h *honest) addr() netip.AddrPort { return netip.MustParseAddrPort(h.c.Addr().String()) }

func startHonest(t *testing.T, m *piece.MetaInfo, dir string, cfg swarm.Config) *honest {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Logger = testOptions(t).Logger
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := storage.OpenWith(dir, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	have, err := st.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := swarm.Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.Add(m, st, have)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tor.Close()
		c.Close()
		st.Close()
	})
	return &honest{c: c, t: tor, st: st}
}

// The poisoned copy lies where the storage expects each file, whichever
// way the content was laid out, and differs from the original in exactly
// one byte of every block.
func TestPoisonedCopyLayout(t *testing.T) {
	cases := map[string]struct {
		files map[string]int
		src   string // relative to the content root
	}{
		"single file":           {map[string]int{"a.bin": 100_000}, "a.bin"},
		"folder of one file":    {map[string]int{"share/a.bin": 3*piece.BlockSize + 5}, "share"},
		"folder of many files":  {map[string]int{"share/a.bin": 70_000, "share/sub/b.bin": 1, "share/empty": 0}, "share"},
		"file of exact 2 block": {map[string]int{"x.dat": 2 * piece.BlockSize}, "x.dat"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			src := filepath.Join(root, tc.src)
			m := build(t, src, 32<<10)
			work := t.TempDir()
			p, err := StartPoisoner(context.Background(), m, src, work, testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			<-p.Done() // claims everything from the start
			if s := p.Stats(); s.PiecesDone != s.Pieces || !s.Seeding {
				t.Fatalf("poisoner does not claim every piece: %+v", s)
			}
			from := dataDir(src, m.Info)
			for i, f := range m.Info.Files {
				rel := filepath.Join(m.Info.DiskPath(i)...)
				want, err := os.ReadFile(filepath.Join(from, rel))
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(work, rel))
				if err != nil {
					t.Fatalf("file %d: %v", i, err)
				}
				if int64(len(got)) != f.Length || len(got) != len(want) {
					t.Fatalf("%s: %d bytes, want %d", rel, len(got), f.Length)
				}
				for b := 0; b < len(want); b += piece.BlockSize {
					end := min(b+piece.BlockSize, len(want))
					diff := 0
					for k := b; k < end; k++ {
						if got[k] != want[k] {
							diff++
						}
					}
					if diff != 1 {
						t.Fatalf("%s block at %d: %d bytes differ, want 1", rel, b, diff)
					}
				}
			}
		})
	}
}

func TestPoisonerErrorsSayWhere(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]int{"share/a.bin": 1000, "share/b.bin": 2000})
	m := build(t, filepath.Join(root, "share"), 16<<10)
	os.Remove(filepath.Join(root, "share", "b.bin"))
	_, err := StartPoisoner(context.Background(), m, filepath.Join(root, "share"), t.TempDir(), Options{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("b.bin")) {
		t.Fatalf("missing source file: got %v, want an error naming b.bin", err)
	}
}

// A poisoner that dials an honest downloader is caught through the merkle
// tree and banned; the download completes from the honest seeder.
func TestPoisonerGetsBanned(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]int{"share/a.bin": 2 << 20, "share/b.bin": 300_000})
	src := filepath.Join(root, "share")
	m := build(t, src, 64<<10)
	seeder := startHonest(t, m, root, swarm.Config{MaxUploadRate: 1 << 20})
	dst := t.TempDir()
	leech := startHonest(t, m, dst, swarm.Config{})

	opts := testOptions(t)
	opts.Peers = []netip.AddrPort{leech.addr()}
	p, err := StartPoisoner(context.Background(), m, src, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Let the poisoner in first, so it serves before the seeder does.
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Peers == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	leech.t.AddPeers(seeder.addr())

	select {
	case <-leech.t.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("download incomplete after 30s: %+v", leech.t.Stats())
	}
	for _, name := range []string{"a.bin", "b.bin"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, _ := os.ReadFile(filepath.Join(dst, "share", name))
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from the original", name)
		}
	}
	s := leech.t.Stats()
	if s.Banned == 0 || s.Wasted == 0 {
		t.Fatalf("poisoner not banned, or no waste counted: %+v", s)
	}
	if up := p.Stats().Uploaded; up == 0 {
		t.Fatal("poisoner served nothing: the test proved nothing")
	}
	// Banned means gone, and not let back in.
	deadline = time.Now().Add(5 * time.Second)
	for p.Stats().Peers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("poisoner still connected after its ban: %+v", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A free-rider downloads everything and gives nothing back, even to a peer
// that wants what it has.
func TestFreeRiderNeverUploads(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]int{"a.bin": 1 << 20})
	src := filepath.Join(root, "a.bin")
	m := build(t, src, 32<<10)
	seeder := startHonest(t, m, root, swarm.Config{})
	opts := testOptions(t)
	opts.Peers = []netip.AddrPort{seeder.addr()}
	dst := t.TempDir()
	fr, err := StartFreeRider(context.Background(), m, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	select {
	case <-fr.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("free-rider incomplete after 20s: %+v", fr.Stats())
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(filepath.Join(dst, "a.bin"))
	if !bytes.Equal(want, got) {
		t.Fatal("free-rider's copy differs from the original")
	}

	// A downloader told only of the free-rider (it may learn of the seeder
	// through PEX) finishes without a byte from it.
	leech := startHonest(t, m, t.TempDir(), swarm.Config{})
	leech.t.AddPeers(fr.Addr())
	deadline := time.Now().Add(5 * time.Second)
	for fr.Stats().Peers < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("downloader never connected to the free-rider: %+v", fr.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-leech.t.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("downloader next to the free-rider incomplete after 20s: %+v", leech.t.Stats())
	}
	if s := fr.Stats(); s.Uploaded != 0 {
		t.Fatalf("free-rider uploaded %d bytes", s.Uploaded)
	}
}
