package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece/storage"
)

// mountTmpfs mounts a tmpfs of the given size on dir for the rest of the
// test: a small disk that really fills up.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillDisk writes zeros to path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{1 << 20, 4096} {
		chunk := make([]byte, n)
		for {
			if _, err = f.Write(chunk); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling the disk: %v", err)
		}
	}
}

// treeOf lists what is under dir, with sizes, so a test can tell nothing
// was written there.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b.WriteString(rel + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + "\n")
		return nil
	})
	return b.String()
}

// seedOne seeds one file of size random bytes, named name, from dir and
// returns its address and the torrent's path.
func seedOne(t *testing.T, dir, name string, size int, args ...string) (addr, torrent string) {
	t.Helper()
	randomFiles(t, filepath.Join(dir, "src"), map[string]int{name: size})
	torrent = filepath.Join(dir, name+".torrent")
	seed := start(t, filepath.Join(dir, "src"), append([]string{"seed", name, "--listen", "127.0.0.1:0", "--no-dht",
		"--save-torrent", torrent, "--piece-length", "256k"}, args...)...)
	return seed.field(t, "listening"), torrent
}

// What is in the way of a download (a folder or link at the file's name,
// a folder nobody may write to) is refused before any peer is asked for
// anything: one line naming the path, exit 1, nothing written, the link's
// target untouched, and a partial download's data and resume record kept.
func TestGetRefusesUnwritableTarget(t *testing.T) {
	dir := t.TempDir()
	addr, torrent := seedOne(t, dir, "big", 4<<20)
	get := func(out string) result {
		return shoal(t, dir, nil, "get", torrent, "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	}
	refused := func(name, out string, r result, want string) {
		t.Helper()
		if r.code != 1 || strings.TrimSpace(r.stderr) != "shoal: get: "+want {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", name, r.code, r.stderr, "shoal: get: "+want)
		}
	}

	folder := filepath.Join(dir, "folder")
	os.MkdirAll(filepath.Join(folder, "big", "inside"), 0o755)
	before := treeOf(t, folder)
	refused("folder at the name", folder, get(folder), filepath.Join(folder, "big")+": a folder stands where the torrent's file goes")
	if after := treeOf(t, folder); after != before {
		t.Errorf("refused download changed the folder:\n%s\nwas:\n%s", after, before)
	}

	link := filepath.Join(dir, "link")
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o644)
	os.MkdirAll(link, 0o755)
	os.Symlink(victim, filepath.Join(link, "big"))
	before = treeOf(t, link)
	refused("link at the name", link, get(link), filepath.Join(link, "big")+": a symbolic link stands where the torrent's file goes")
	if after := treeOf(t, link); after != before {
		t.Errorf("refused download changed the folder:\n%s\nwas:\n%s", after, before)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep me" {
		t.Errorf("the link's target now holds %q", data)
	}

	if os.Geteuid() != 0 {
		t.Skip("a read-only mount, and running as another user, need root")
	}
	// A partial download first, then its folder becomes read-only: the
	// next run is refused and leaves data and record as they were.
	ro := filepath.Join(dir, "ro")
	mountTmpfs(t, ro, "16m")
	partial := start(t, dir, "get", torrent, "-o", ro, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0",
		"--max-download-rate", "2M", "--timeout", "1s")
	if code := partial.wait(t, 10*time.Second); code != 1 || !strings.Contains(partial.errText(), "timed out") {
		t.Fatalf("partial download: exit %d: %s", code, partial.errText())
	}
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	before = treeOf(t, ro)
	record, _ := os.ReadFile(filepath.Join(ro, ".shoal", mustHash(t, torrent)+".resume"))
	if len(record) == 0 {
		t.Fatalf("no resume record after the partial download:\n%s", before)
	}
	refused("read-only mount", ro, get(ro), "cannot write "+filepath.Join(ro, "big")+": read-only file system")
	if after := treeOf(t, ro); after != before {
		t.Errorf("refused download changed the folder:\n%s\nwas:\n%s", after, before)
	}
	if again, _ := os.ReadFile(filepath.Join(ro, ".shoal", mustHash(t, torrent)+".resume")); !bytes.Equal(again, record) {
		t.Error("the resume record changed")
	}

	// A folder the user may not write to, as the user: uid 65534 in a
	// folder of root's.
	shared, err := os.MkdirTemp("", "shoal-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.MkdirAll(filepath.Join(shared, "dl"), 0o755)
	os.Chmod(shared, 0o755)
	os.Chmod(filepath.Dir(shoalBin), 0o755)
	tf, _ := os.ReadFile(torrent)
	os.WriteFile(filepath.Join(shared, "big.torrent"), tf, 0o644)
	cmd := exec.Command(shoalBin, "get", "big.torrent", "-o", "dl", "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	cmd.Dir = shared
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || strings.TrimSpace(string(out)) != "shoal: get: cannot write in dl: permission denied" {
		t.Errorf("as uid 65534: exit %d: %q", cmd.ProcessState.ExitCode(), out)
	}
	if ents, _ := os.ReadDir(filepath.Join(shared, "dl")); len(ents) != 0 {
		t.Errorf("refused download left %d entries", len(ents))
	}
}

// mustHash returns the hex info-hash of a .torrent file.
func mustHash(t *testing.T, torrent string) string {
	t.Helper()
	r := shoal(t, t.TempDir(), nil, "info", "--json", torrent)
	m := regexp.MustCompile(`"info_hash": "([0-9a-f]{64})"`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("info: %s", r.stdout)
	}
	return m[1]
}

var stoppedRE = regexp.MustCompile(`(?m)^shoal: get: writing (\S+): no space left on device; the verified pieces are kept: run again with the same -o to resume: .*downloaded (\d+) bytes \((\d+) wasted\)`)

// A full disk. Too small from the start: refused before downloading, with
// what is free and what is needed. Filling up once the download has
// passed that check but before its file is preallocated (after that, the
// space is its own): the first failed write ends it within moments, not at --timeout, having
// fetched little more than fitted, with one error logged (with --seed it
// is paused instead, serving what it verified until interrupted); the verified pieces and the resume record are kept, and once
// there is room again the next run fetches only the rest.
func TestGetDiskFull(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	mountTmpfs(t, disk, "20m")

	addr32, torrent32 := seedOne(t, filepath.Join(dir, "s32"), "big32", 32<<20)
	began := time.Now()
	r := shoal(t, dir, nil, "get", torrent32, "-o", filepath.Join(disk, "dl"), "--peer", addr32, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	want := "shoal: get: not enough space in " + filepath.Join(disk, "dl") + ": 20.0 MiB free, 32.0 MiB still to download"
	if r.code != 1 || strings.TrimSpace(r.stderr) != want {
		t.Fatalf("32 MiB into 20 MiB: exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("refusal took %v", d)
	}
	if ents, err := os.ReadDir(filepath.Join(disk, "dl")); err != nil || len(ents) != 0 {
		t.Errorf("refused download wrote:\n%s", treeOf(t, filepath.Join(disk, "dl")))
	}

	const size = 16 << 20
	addr, torrent := seedOne(t, filepath.Join(dir, "s16"), "big", size, "--max-upload-rate", "4M")
	out := filepath.Join(disk, "dl")
	// fillDuring starts get with args, towards a peer that is not up yet,
	// and once get has checked the disk and waits for it, fills the disk
	// but for 4 MiB; then the peer comes up. A download preallocates its
	// file at the first write (fallocate), so a disk that fills up after
	// that has no effect on it: here the space goes before, the
	// preallocation fails, and the writes run out of room part way. It
	// returns get, the seeder, and when the seeder came up.
	fillDuring := func(args ...string) (*proc, *proc, time.Time) {
		t.Helper()
		peer := deadAddr(t)
		get := start(t, dir, append([]string{"get", torrent, "-o", out, "--peer", peer, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s"}, args...)...)
		for !strings.Contains(get.errText(), "waiting for peers:") {
			select {
			case <-get.done:
				t.Fatalf("get ended before it waited for its peer: %s", get.errText())
			case <-time.After(5 * time.Millisecond):
			}
		}
		filler := filepath.Join(disk, "filler")
		fillDisk(t, filler)
		fi, err := os.Stat(filler)
		if err != nil || fi.Size() < 4<<20 {
			t.Fatalf("filler: %v, %d bytes", err, fi.Size())
		}
		if err := os.Truncate(filler, fi.Size()-4<<20); err != nil {
			t.Fatal(err)
		}
		sd := start(t, filepath.Join(dir, "s16", "src"), "seed", "big", "--torrent", torrent, "--listen", peer, "--no-dht", "--no-lsd", "--max-upload-rate", "4M")
		sd.field(t, "listening")
		return get, sd, time.Now()
	}
	// checkLog checks get's log for the line saying what failed and
	// where, and for one logged error, and returns what it downloaded.
	checkLog := func(what, log string) int64 {
		t.Helper()
		m := stoppedRE.FindStringSubmatch(log)
		if m == nil || m[1] != filepath.Join(out, "big") {
			t.Fatalf("%s: no clear line on what failed and where:\n%s", what, log)
		}
		if n := strings.Count(log, "level=ERROR"); n < 1 || n > 2 {
			t.Errorf("%s: %d ERROR lines; want the failure once:\n%s", what, n, log)
		}
		downloaded, _ := strconv.ParseInt(m[2], 10, 64)
		return downloaded
	}

	get, sd, filled := fillDuring()
	if code := get.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("get on a full disk: exit %d: %s", code, get.errText())
	}
	if d := time.Since(filled); d > 5*time.Second {
		t.Errorf("get took %v to give up after the disk filled", d)
	}
	log := get.errText()
	downloaded := checkLog("get", log)
	if downloaded >= size {
		t.Errorf("downloaded %d bytes of a %d-byte file onto a 20 MiB disk filled by another", downloaded, size)
	}

	// With --seed the download is paused with its error, said at once,
	// and what is verified is served until the user stops get, which
	// then fails as above.
	sd.stop(t, os.Interrupt)
	os.Remove(filepath.Join(disk, "filler"))
	get, sd, filled = fillDuring("--seed")
	waitErr(t, get, `(?m)^shoal: get: writing \S+: no space left on device; download paused, seeding what is verified until interrupted \(--seed\)`, 5*time.Second)
	if d := time.Since(filled); d > 5*time.Second {
		t.Errorf("get --seed took %v to say the disk filled", d)
	}
	select {
	case <-get.done:
		t.Fatalf("get --seed ended rather than seed what it verified: %s", get.errText())
	case <-time.After(time.Second):
	}
	if code := get.stop(t, os.Interrupt); code != 1 {
		t.Fatalf("get --seed, paused, interrupted: exit %d: %s", code, get.errText())
	}
	log = get.errText()
	if last := lastLine(log); !stoppedRE.MatchString(last) {
		t.Errorf("get --seed: last line %q does not say what failed and where", last)
	}
	checkLog("get --seed", log)
	sd.stop(t, os.Interrupt)

	// The record on the full disk holds what was verified.
	tf := readMeta(t, torrent)
	st, err := storage.Open(out, tf.Info)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.LoadResume()
	st.Close()
	if err != nil {
		t.Fatalf("resume record: %v", err)
	}
	kept := int64(0)
	for p := range tf.Info.NumPieces {
		if rec.Have[p/8]&(0x80>>(p%8)) != 0 {
			kept += tf.Info.PieceSize(p)
		}
	}
	if kept == 0 {
		t.Fatalf("nothing verified before the disk filled up:\n%s", log)
	}

	os.Remove(filepath.Join(disk, "filler"))
	again := start(t, dir, "get", torrent, "-o", out, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "30s")
	if code := again.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("rerun after freeing space: exit %d: %s", code, again.errText())
	}
	sameFiles(t, filepath.Join(dir, "s16", "src"), out)
	rm := resumeRE.FindStringSubmatch(again.errText())
	if rm == nil {
		t.Fatalf("rerun does not resume:\n%s", again.errText())
	}
	if had, _ := strconv.ParseInt(rm[1], 10, 64); had != kept {
		t.Errorf("rerun resumed with %d bytes, the record kept %d", had, kept)
	}
	fetched, _ := doneFigures(t, "rerun", again)
	if fetched > size-kept+256<<10 {
		t.Errorf("rerun fetched %d bytes; %d were missing", fetched, size-kept)
	}
	t.Logf("first run: %d bytes fetched, %d kept; rerun fetched %d", downloaded, kept, fetched)
}

// A complete copy on read-only media is checked, found whole, and reported
// done with exit 0: the resume record it cannot save is a warning, since
// it would only spare the next run a re-hash.
func TestGetCompleteOnReadOnlyMedia(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a read-only mount needs root")
	}
	dir := t.TempDir()
	addr, torrent := seedOne(t, dir, "big", 1<<20)
	ro := filepath.Join(dir, "ro")
	mountTmpfs(t, ro, "4m")
	data, err := os.ReadFile(filepath.Join(dir, "src", "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	r := shoal(t, dir, nil, "get", torrent, "-o", ro, "--peer", addr, "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "20s")
	if r.code != 0 || !strings.Contains(r.stderr, "done: ") || !strings.Contains(r.stderr, "warning: saving the resume record") {
		t.Fatalf("get of a complete copy on read-only media: exit %d:\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(ro, "big")); !bytes.Equal(got, data) {
		t.Error("the copy changed")
	}
}
