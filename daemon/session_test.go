package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// makeContent writes files (path under name → size) of random bytes in
// dir/name and builds their torrent.
func makeContent(t testing.TB, dir, name string, files map[string]int, pl int64, format piece.Format) *piece.MetaInfo {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(name)), uint64(len(files))))
	for p, n := range files {
		full := filepath.Join(dir, name, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := piece.Build(context.Background(), filepath.Join(dir, name), piece.BuildOptions{PieceLength: pl, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seeder is an in-process swarm client seeding one torrent on loopback.
type seeder struct {
	c    *swarm.Client
	t    *swarm.Torrent
	hash piece.Hash
}

func (s *seeder) addr() netip.AddrPort { return netip.MustParseAddrPort(s.c.Addr().String()) }

// startSeeder seeds m from dir, its upload capped at up bytes/s (0: none).
func startSeeder(t testing.TB, m *piece.MetaInfo, dir string, up int64) *seeder {
	t.Helper()
	if m.Info.SingleFile() {
		t.Fatal("startSeeder takes multi-file torrents")
	}
	st, err := storage.OpenWith(dir, m.Info, storage.Options{ResumePath: filepath.Join(t.TempDir(), "resume")})
	if err != nil {
		t.Fatal(err)
	}
	have, err := st.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := swarm.Listen(context.Background(), swarm.Config{ListenAddr: "127.0.0.1:0", Logger: testLogger(), Encryption: swarm.EncryptionOff})
	if err != nil {
		t.Fatal(err)
	}
	tor, err := c.Add(m, st, have)
	if err != nil {
		t.Fatal(err)
	}
	tor.SetRateLimits(0, up)
	t.Cleanup(func() {
		tor.Close()
		c.Close()
		st.Close()
	})
	return &seeder{c: c, t: tor, hash: m.Info.Hash}
}

// dial connects the session's torrent of the seeder's swarm to it, as a
// torrent added by .torrent has no tracker or DHT here to find it by:
// once the torrent is past its check, its swarm dials the seeder.
func (sd *seeder) dial(s *Session) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		var sw *swarm.Torrent
		for _, t := range s.torrents {
			if t.meta != nil && t.meta.Info.Hash == sd.hash {
				sw = t.sw
			}
		}
		s.mu.Unlock()
		if sw != nil {
			sw.AddPeers(sd.addr())
			return
		}
	}
}

func testConfig(_ testing.TB, sessionDir string) Config {
	return Config{
		SessionDir:   sessionDir,
		DownloadDir:  filepath.Join(sessionDir, "dl"),
		ListenAddr:   "127.0.0.1:0",
		NoDHT:        true,
		NoLSD:        true,
		NoPortMap:    true,
		Logger:       testLogger(),
		Encryption:   swarm.EncryptionOff,
		housekeeping: 50 * time.Millisecond,
	}
}

func openSession(t testing.TB, cfg Config) *Session {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func status(t testing.TB, s *Session, id ID, want Want) Status {
	t.Helper()
	sts := s.Torrents([]ID{id}, want)
	if len(sts) != 1 {
		t.Fatalf("torrent %d: not in the session", id)
	}
	return sts[0]
}

// waitFor polls the torrent's status until ok or the time is up.
func waitFor(t testing.TB, s *Session, id ID, d time.Duration, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := status(t, s, id, 0)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("torrent %d: not %s after %v: %+v", id, what, d, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seeding(st Status) bool { return st.State == Seeding }

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s differs from %s (%v)", b, a, err)
	}
}

func marshal(t testing.TB, m *piece.MetaInfo) []byte {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var twoFiles = map[string]int{"a.bin": 300_000, "sub/b.bin": 200_000}

func TestAddTorrentDownloads(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "data", twoFiles, 32<<10, piece.FormatHybrid)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	st, dup, err := s.Add(AddRequest{Metainfo: marshal(t, m)})
	if err != nil || dup {
		t.Fatalf("Add: %v dup=%v", err, dup)
	}
	if st.ID != 1 || !st.HasMetadata || st.Name != "data" || st.Hash != m.Info.V1Hash.String() {
		t.Fatalf("status after Add: %+v", st)
	}
	sd.dial(s)
	st = waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	if ps := status(t, s, st.ID, WantPeers).Peers; len(ps) != 1 || ps[0].Addr != sd.addr() || ps[0].Progress != 1 || ps[0].Incoming {
		t.Fatalf("peers: %+v, want the seeder, dialed", ps)
	}
	for p := range twoFiles {
		sameFile(t, filepath.Join(src, "data", p), filepath.Join(s.Settings().DownloadDir, "data", p))
	}
	if st.Left != 0 || st.Verified != m.Info.TotalLength || st.Done.IsZero() {
		t.Fatalf("complete torrent's status: %+v", st)
	}
	// The same torrent again, by metainfo or by magnet: the first one.
	st2, dup, err := s.Add(AddRequest{Link: m.Magnet().String()})
	if err != nil || !dup || st2.ID != st.ID {
		t.Fatalf("adding it again by magnet: %v dup=%v id=%d", err, dup, st2.ID)
	}
	v1only := piece.Magnet{V1Hash: m.Info.V1Hash}
	if _, dup, err := s.Add(AddRequest{Link: v1only.V1Hash.String()}); err != nil || !dup {
		t.Fatalf("adding it again by its bare v1 hash: %v dup=%v", err, dup)
	}
	if _, dup, _ := s.Add(AddRequest{Metainfo: marshal(t, m)}); !dup {
		t.Fatal("adding it again by metainfo: not a duplicate")
	}
}

func TestAddMagnetFetchesMetadata(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "mag", map[string]int{"one.bin": 250_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	mg := m.Magnet()
	mg.Peers = []string{sd.addr().String()}
	st, dup, err := s.Add(AddRequest{Link: mg.String()})
	if err != nil || dup {
		t.Fatalf("Add: %v dup=%v", err, dup)
	}
	if st.State != Downloading || st.HasMetadata && st.State == Downloading && st.Verified == m.Info.TotalLength {
		t.Fatalf("status right after adding a magnet: %+v", st)
	}
	st = waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	if !st.HasMetadata || st.Name != "mag" || st.TotalSize != m.Info.TotalLength {
		t.Fatalf("status: %+v", st)
	}
	sameFile(t, filepath.Join(src, "mag", "one.bin"), filepath.Join(st.Dir, "mag", "one.bin"))
	if _, err := os.Stat(s.metaPath(st.ID)); err != nil {
		t.Fatalf("fetched metainfo not kept: %v", err)
	}
}

// TestPauseResumeWithLimit downloads under a per-torrent cap, pauses
// half way, and resumes: the pieces verified before the pause are kept
// and not fetched again, and the cap holds the rate.
func TestPauseResumeWithLimit(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "slow", map[string]int{"x.bin": 600_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	const limit = 300_000
	began := time.Now()
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), DownLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	waitFor(t, s, st.ID, 10*time.Second, "half done", func(st Status) bool { return st.Verified >= m.Info.TotalLength/3 })
	if err := s.Stop([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	paused := status(t, s, st.ID, 0)
	if paused.State != Stopped || paused.Verified == 0 || paused.Verified == m.Info.TotalLength {
		t.Fatalf("paused status: %+v", paused)
	}
	downBefore := paused.Downloaded
	if err := s.Start([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	done := waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	elapsed := time.Since(began)
	sameFile(t, filepath.Join(src, "slow", "x.bin"), filepath.Join(done.Dir, "slow", "x.bin"))
	// After the pause only what was missing came: a verified piece
	// fetched again would show here.
	if again := done.Downloaded - downBefore; again > m.Info.TotalLength-paused.Verified {
		t.Fatalf("downloaded %d bytes after resuming with %d of %d verified", again, paused.Verified, m.Info.TotalLength)
	}
	if min := time.Duration(float64(m.Info.TotalLength-2*limit/8) / limit * float64(time.Second)); elapsed < min*9/10 {
		t.Fatalf("%d bytes in %v under a %d B/s cap of the torrent's own", m.Info.TotalLength, elapsed, limit)
	}
}

// TestSelectFilesAtRuntime adds a torrent with a file unwanted, which
// is then never created, and wants it once the rest is done: it arrives.
func TestSelectFilesAtRuntime(t *testing.T) {
	src := t.TempDir()
	files := map[string]int{"a.bin": 100_000, "b.bin": 120_000, "c.bin": 90_000}
	m := makeContent(t, src, "sel", files, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	idx := map[string]int{}
	for i, f := range m.Info.Files {
		idx[f.Path[len(f.Path)-1]] = i
	}
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), Unwanted: []int{idx["b.bin"], idx["c.bin"]}})
	if err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	done := waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	dir := filepath.Join(done.Dir, "sel")
	sameFile(t, filepath.Join(src, "sel", "a.bin"), filepath.Join(dir, "a.bin"))
	for _, f := range []string{"b.bin", "c.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("unwanted %s exists (%v)", f, err)
		}
	}
	if done.WantedSize != 100_000 || done.Left != 0 {
		t.Fatalf("status of the selection: %+v", done)
	}
	// Want b.bin now: the torrent downloads again, b.bin only.
	if err := s.Set([]ID{st.ID}, Change{Wanted: []int{idx["b.bin"]}}); err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	done = waitFor(t, s, st.ID, 10*time.Second, "seeding b.bin too", func(st Status) bool { return st.State == Seeding && st.WantedSize == 220_000 })
	sameFile(t, filepath.Join(src, "sel", "b.bin"), filepath.Join(dir, "b.bin"))
	if _, err := os.Stat(filepath.Join(dir, "c.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unwanted c.bin exists (%v)", err)
	}
	fs := status(t, s, st.ID, WantFiles).Files
	if len(fs) != 3 || !fs[idx["b.bin"]].Wanted || fs[idx["c.bin"]].Wanted || fs[idx["b.bin"]].Completed != 120_000 {
		t.Fatalf("files: %+v", fs)
	}
}

// TestUnselectWhileDownloading unwants a file of a running, capped
// download: the torrent completes without it.
func TestUnselectWhileDownloading(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "un", map[string]int{"keep.bin": 64 << 10, "drop.bin": 2 << 20}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	idx := map[string]int{}
	for i, f := range m.Info.Files {
		idx[f.Path[len(f.Path)-1]] = i
	}
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), DownLimit: 256 << 10, PriorityHigh: []int{idx["keep.bin"]}})
	if err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	waitFor(t, s, st.ID, 10*time.Second, "started", func(st Status) bool { return st.Verified > 0 })
	if err := s.Set([]ID{st.ID}, Change{Unwanted: []int{idx["drop.bin"]}}); err != nil {
		t.Fatal(err)
	}
	done := waitFor(t, s, st.ID, 5*time.Second, "seeding its selection", seeding)
	if done.Verified >= m.Info.TotalLength || done.WantedSize != 64<<10 {
		t.Fatalf("status: %+v", done)
	}
	sameFile(t, filepath.Join(src, "un", "keep.bin"), filepath.Join(done.Dir, "un", "keep.bin"))
}

func TestRemoveWithData(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "rm", map[string]int{"a.bin": 50_000, "deep/er/b.bin": 40_000}, 16<<10, piece.FormatV2)
	other := makeContent(t, src, "keep", map[string]int{"k.bin": 30_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	sd2 := startSeeder(t, other, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	st, _, _ := s.Add(AddRequest{Metainfo: marshal(t, m)})
	st2, _, _ := s.Add(AddRequest{Metainfo: marshal(t, other)})
	sd.dial(s)
	sd2.dial(s)
	waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	waitFor(t, s, st2.ID, 10*time.Second, "seeding", seeding)
	dl := s.Settings().DownloadDir
	// A file of the user's in the torrent's folder, and one beside it.
	mine := filepath.Join(dl, "rm", "deep", "mine.txt")
	os.WriteFile(mine, []byte("mine"), 0o644)
	beside := filepath.Join(dl, "beside.txt")
	os.WriteFile(beside, []byte("beside"), 0o644)
	if err := s.Remove([]ID{st.ID}, true); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"rm/a.bin", "rm/deep/er/b.bin", "rm/deep/er"} {
		if _, err := os.Lstat(filepath.Join(dl, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{mine, beside, filepath.Join(dl, "keep", "k.bin"), dl} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("%s removed: %v", kept, err)
		}
	}
	if len(s.Torrents([]ID{st.ID}, 0)) != 0 || len(s.Removed(time.Now().Add(-time.Minute))) != 1 {
		t.Fatal("removed torrent still listed, or not in Removed")
	}
	if _, err := os.Stat(s.recordPath(st.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("record of the removed torrent kept: %v", err)
	}
	if err := s.Stop([]ID{st.ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stop of a removed torrent: %v", err)
	}
	// Without data: the files stay.
	if err := s.Remove([]ID{st2.ID}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dl, "keep", "k.bin")); err != nil {
		t.Fatal(err)
	}
	// The IDs are not given again.
	st3, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), Paused: true})
	if err != nil || st3.ID != 3 {
		t.Fatalf("next ID after removals: %d (%v), want 3", st3.ID, err)
	}
}

func TestAddPathOutside(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "p", map[string]int{"f": 1000}, 16<<10, piece.FormatV2)
	data := marshal(t, m)
	s := openSession(t, testConfig(t, t.TempDir()))
	outside := filepath.Join(src, "x.torrent")
	os.WriteFile(outside, data, 0o644)
	dl := s.Settings().DownloadDir
	for _, p := range []string{outside, filepath.Join(dl, "..", "..", filepath.Base(src), "x.torrent"), "/etc/passwd"} {
		if _, _, err := s.Add(AddRequest{Path: p}); !errors.Is(err, ErrOutside) {
			t.Errorf("Add(%s): %v, want ErrOutside", p, err)
		}
	}
	// A link inside pointing out is refused too.
	link := filepath.Join(dl, "link.torrent")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Add(AddRequest{Path: link}); !errors.Is(err, ErrOutside) {
		t.Errorf("Add(link out): %v, want ErrOutside", err)
	}
	if _, _, err := s.Add(AddRequest{Metainfo: data, Dir: src}); !errors.Is(err, ErrOutside) {
		t.Errorf("Add into %s: %v, want ErrOutside", src, err)
	}
	if _, err := s.FreeSpace(src); !errors.Is(err, ErrOutside) {
		t.Errorf("FreeSpace(%s): %v, want ErrOutside", src, err)
	}
	if n, err := s.FreeSpace(dl); err != nil || n <= 0 {
		t.Errorf("FreeSpace(download folder) = %d, %v", n, err)
	}
	inside := filepath.Join(dl, "in.torrent")
	os.WriteFile(inside, data, 0o644)
	st, _, err := s.Add(AddRequest{Path: inside, Paused: true})
	if err != nil || st.Name != "p" || st.State != Stopped {
		t.Fatalf("Add(path inside): %+v %v", st, err)
	}
}

// TestRestart closes a session with torrents in every state and opens it
// again: each comes back as it was, under its ID, without hashing data
// its resume record vouches for.
func TestRestart(t *testing.T) {
	src := t.TempDir()
	seeded := makeContent(t, src, "seeded", map[string]int{"s.bin": 200_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	paused := makeContent(t, src, "paused", map[string]int{"p.bin": 50_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	part := makeContent(t, src, "part", map[string]int{"in.bin": 40_000, "out.bin": 60_000}, 16<<10, piece.FormatV2)
	sds := []*seeder{startSeeder(t, seeded, src, 0), startSeeder(t, part, src, 0)}
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.Add(AddRequest{Metainfo: marshal(t, seeded)})
	b, _, _ := s.Add(AddRequest{Metainfo: marshal(t, paused), Paused: true})
	outIdx := 0
	if part.Info.Files[0].Path[0] != "out.bin" {
		outIdx = 1
	}
	c, _, _ := s.Add(AddRequest{Metainfo: marshal(t, part), Unwanted: []int{outIdx}, UpLimit: 12345})
	// A magnet nobody serves: still fetching when the session stops.
	var nobody piece.Magnet
	nobody.V1Hash[0] = 1
	d, _, _ := s.Add(AddRequest{Link: nobody.V1Hash.String()})
	for _, sd := range sds {
		sd.dial(s)
	}
	waitFor(t, s, a.ID, 10*time.Second, "seeding", seeding)
	waitFor(t, s, c.ID, 10*time.Second, "seeding", seeding)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSession(t, cfg)
	if errs := s.LoadErrors(); len(errs) > 0 {
		t.Fatalf("load errors: %v", errs)
	}
	waitFor(t, s, a.ID, 5*time.Second, "seeding again", seeding)
	pc := waitFor(t, s, c.ID, 5*time.Second, "seeding again", seeding)
	if pc.UpLimit != 12345 || pc.WantedSize != 40_000 {
		t.Fatalf("partly selected torrent after restart: %+v", pc)
	}
	if st := status(t, s, b.ID, 0); st.State != Stopped || st.Name != "paused" {
		t.Fatalf("paused torrent after restart: %+v", st)
	}
	if st := status(t, s, d.ID, 0); st.State != Downloading || st.HasMetadata {
		t.Fatalf("magnet after restart: %+v", st)
	}
	s.mu.Lock()
	for _, id := range []ID{a.ID, c.ID} {
		if h := s.torrents[id].hashed.Load(); h != 0 {
			t.Errorf("torrent %d: hashed %d bytes at restart, though its resume record vouches for them", id, h)
		}
	}
	s.mu.Unlock()
	if e, _, err := s.Add(AddRequest{Link: "urn:btih:" + piece.V1Hash{2}.String(), Paused: true}); err != nil || e.ID != d.ID+1 {
		t.Fatalf("ID after restart: %d (%v), want %d", e.ID, err, d.ID+1)
	}
}

// TestIDsNotReusedAfterCrash: an add no longer writes session.json, so
// the session folder as a kill -9 leaves it (copied while the session
// runs) must still never give an ID twice: after adds, the records name
// theirs; after the newest torrent is removed, the counter saved by the
// removal does.
func TestIDsNotReusedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := openSession(t, testConfig(t, dir))
	link := func(b byte) string { return "urn:btih:" + piece.V1Hash{b}.String() }
	var ids []ID
	for i := range 3 {
		st, _, err := s.Add(AddRequest{Link: link(byte(i + 1)), Paused: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	crashed := func() *Session {
		t.Helper()
		cp := t.TempDir()
		if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		return openSession(t, testConfig(t, cp))
	}
	after := crashed()
	if got := len(after.Torrents(nil, 0)); got != 3 {
		t.Fatalf("%d torrents after the crash, want 3", got)
	}
	if st, _, err := after.Add(AddRequest{Link: link(9), Paused: true}); err != nil || st.ID != ids[2]+1 {
		t.Fatalf("ID after adds and a crash: %d (%v), want %d", st.ID, err, ids[2]+1)
	}
	if err := s.Remove([]ID{ids[2]}, false); err != nil {
		t.Fatal(err)
	}
	after = crashed()
	if got := len(after.Torrents(nil, 0)); got != 2 {
		t.Fatalf("%d torrents after a removal and a crash, want 2", got)
	}
	if st, _, err := after.Add(AddRequest{Link: link(9), Paused: true}); err != nil || st.ID != ids[2]+1 {
		t.Fatalf("ID after the newest torrent's removal and a crash: %d (%v), want %d", st.ID, err, ids[2]+1)
	}
}

// TestCorruptRecordSkipped damages one torrent's record: the session
// opens with the others and reports it.
func TestCorruptRecordSkipped(t *testing.T) {
	src := t.TempDir()
	m1 := makeContent(t, src, "one", map[string]int{"1": 1000}, 16<<10, piece.FormatV2)
	m2 := makeContent(t, src, "two", map[string]int{"2": 1000}, 16<<10, piece.FormatV2)
	cfg := testConfig(t, t.TempDir())
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.Add(AddRequest{Metainfo: marshal(t, m1), Paused: true})
	b, _, _ := s.Add(AddRequest{Metainfo: marshal(t, m2), Paused: true})
	s.Close()
	os.WriteFile(s.recordPath(a.ID), []byte("{not json"), 0o600)
	s = openSession(t, cfg)
	if len(s.LoadErrors()) != 1 {
		t.Fatalf("load errors: %v", s.LoadErrors())
	}
	if sts := s.Torrents(nil, 0); len(sts) != 1 || sts[0].ID != b.ID {
		t.Fatalf("torrents after a corrupt record: %+v", sts)
	}
	// Its ID is still never given again.
	if c, _, _ := s.Add(AddRequest{Metainfo: marshal(t, m1), Paused: true}); c.ID != 3 {
		t.Fatalf("new ID %d, want 3", c.ID)
	}
}

func TestVerifyRehashes(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "v", map[string]int{"v.bin": 300_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	s := openSession(t, testConfig(t, t.TempDir()))
	st, _, _ := s.Add(AddRequest{Metainfo: marshal(t, m)})
	sd.dial(s)
	waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	if err := s.Stop([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	// Damage a piece behind the session's back, keeping size and mtime.
	path := filepath.Join(st.Dir, "v", "v.bin")
	fi, _ := os.Stat(path)
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte("garbage"), 100)
	f.Close()
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if err := s.Verify([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	after := waitFor(t, s, st.ID, 5*time.Second, "checked", func(st Status) bool { return st.State == Stopped })
	if after.Verified != m.Info.TotalLength-16<<10 || after.State != Stopped {
		t.Fatalf("verified %d after damaging one piece of %d bytes", after.Verified, m.Info.TotalLength)
	}
	if err := s.Start([]ID{st.ID}); err != nil {
		t.Fatal(err)
	}
	sd.dial(s)
	waitFor(t, s, st.ID, 10*time.Second, "seeding", seeding)
	sameFile(t, filepath.Join(src, "v", "v.bin"), path)
}

// TestDHTOnOneNodePerFamily runs a session with its DHT on (and no
// bootstrap node: nothing leaves the machine): one node for its one
// listen family.
func TestDHTOnOneNodePerFamily(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NoDHT, cfg.Bootstrap = false, []string{}
	s := openSession(t, cfg)
	if !s.Settings().DHT || len(s.nodes) != 1 {
		t.Fatalf("DHT %v with %d nodes, want one (IPv4 listener)", s.Settings().DHT, len(s.nodes))
	}
}

// TestIdleSeedsAreCheap adds 100 small seeds to a session with no peers:
// at rest they keep no goroutine at all (the client's one ticker starts a
// tick's goroutine only for a torrent that needs one), where a seed once
// had a disk writer and then a parked housekeeping loop.
func TestIdleSeedsAreCheap(t *testing.T) {
	const n = 100
	cfg := testConfig(t, t.TempDir())
	s := openSession(t, cfg)
	dl := s.Settings().DownloadDir
	before := runtime.NumGoroutine()
	for i := range n {
		p := filepath.Join(dl, fmt.Sprintf("f%03d.bin", i))
		data := make([]byte, 20_000)
		data[0] = byte(i)
		data[1] = byte(i >> 8)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := piece.Build(context.Background(), p, piece.BuildOptions{PieceLength: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Add(AddRequest{Metainfo: marshal(t, m)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range s.Torrents(nil, 0) {
		waitFor(t, s, st.ID, 5*time.Second, "seeding", seeding)
	}
	time.Sleep(100 * time.Millisecond) // the activations' goroutines end
	if extra := runtime.NumGoroutine() - before; extra > 5 {
		t.Fatalf("%d idle seeds keep %d goroutines", n, extra)
	}
}

func TestSeedRatioStopsSeeding(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "data", twoFiles, 32<<10, piece.FormatHybrid)
	sd := startSeeder(t, m, src, 0)
	a := openSession(t, testConfig(t, t.TempDir()))
	st, _, err := a.Add(AddRequest{Metainfo: marshal(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	sd.dial(a)
	waitFor(t, a, st.ID, 10*time.Second, "seeding", seeding)
	sd.t.Close() // b must fetch everything from a
	on, limit := true, 1.0
	if err := a.SetSettings(SettingsChange{SeedRatioOn: &on, SeedRatioLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := status(t, a, st.ID, 0).State; got != Seeding {
		t.Fatalf("before anyone downloaded from it: state %d, want seeding", got)
	}

	b := openSession(t, testConfig(t, t.TempDir()))
	bst, _, err := b.Add(AddRequest{Metainfo: marshal(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	(&seeder{c: a.cl, hash: m.Info.Hash}).dial(b)
	waitFor(t, b, bst.ID, 10*time.Second, "seeding", seeding)
	got := waitFor(t, a, st.ID, 5*time.Second, "stopped at its seed ratio", func(s Status) bool { return s.State == Stopped })
	if got.Uploaded < m.Info.TotalLength || got.Error != "" {
		t.Fatalf("stopped after uploading %d of %d, error %q", got.Uploaded, m.Info.TotalLength, got.Error)
	}
}

// TestStrayMetainfoNotPairedWithMagnet: a crash between the two renames of
// an add leaves a .torrent with no record, and its ID is handed out again;
// a magnet given that ID must not be paired with the stray metainfo when
// the session next opens.
func TestStrayMetainfoNotPairedWithMagnet(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "one", map[string]int{"1": 1000}, 16<<10, piece.FormatV2)
	dir := t.TempDir()
	s := openSession(t, testConfig(t, dir))
	st, _, err := s.Add(AddRequest{Metainfo: marshal(t, m), Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	// As a crash between the renames leaves it: the record never made it.
	stray, err := os.ReadFile(s.metaPath(st.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove([]ID{st.ID}, false); err != nil {
		t.Fatal(err)
	}
	s.rec.NextID = st.ID // as Open counts it from the records left
	if err := os.WriteFile(s.metaPath(st.ID), stray, 0o600); err != nil {
		t.Fatal(err)
	}
	other := "magnet:?xt=urn:btih:" + piece.V1Hash{7}.String()
	mst, _, err := s.Add(AddRequest{Link: other, Paused: true})
	if err != nil || mst.ID != st.ID {
		t.Fatalf("magnet added as %d (%v), want the reused ID %d", mst.ID, err, st.ID)
	}
	if _, err := os.Stat(s.metaPath(st.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the stray metainfo is still there (%v)", err)
	}
	s.Close()
	again := openSession(t, testConfig(t, dir))
	if errs := again.LoadErrors(); len(errs) != 0 {
		t.Fatalf("load errors after the magnet took the stray's ID: %v", errs)
	}
	if sts := again.Torrents(nil, 0); len(sts) != 1 || sts[0].ID != st.ID {
		t.Fatalf("torrents after reopening: %+v", sts)
	}
}
