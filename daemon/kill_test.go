package daemon

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm"
)

// TestMain runs the children of TestKilledMidDownload (a session
// downloading until it is killed) and of BenchmarkIdleSession (a session
// at rest, measured) when asked to.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SHOAL_DAEMON_CHILD"); dir != "" {
		flag.Parse()
		os.Exit(child(dir, os.Getenv("SHOAL_DAEMON_SEEDER")))
	}
	if dir := os.Getenv("SHOAL_DAEMON_IDLE_CHILD"); dir != "" {
		flag.Parse()
		n, _ := strconv.Atoi(os.Getenv("SHOAL_IDLE_N"))
		watch, _ := time.ParseDuration(os.Getenv("SHOAL_IDLE_WATCH"))
		os.Exit(idleChild(dir, n, watch))
	}
	os.Exit(m.Run())
}

// child opens a session in dir, adds dir/t.torrent at a capped rate,
// has it dial the seeder, and prints its verified bytes until killed.
func child(dir, seederAddr string) int {
	cfg := testConfig(nil, dir)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, _, err := s.Add(AddRequest{Path: filepath.Join(dir, "t.torrent"), DownLimit: 400_000})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dialed := false
	for {
		s.mu.Lock()
		sw := s.torrents[st.ID].sw
		s.mu.Unlock()
		if sw != nil && !dialed {
			sw.AddPeers(netip.MustParseAddrPort(seederAddr))
			dialed = true
		}
		fmt.Printf("verified %d\n", s.Torrents([]ID{st.ID}, 0)[0].Verified)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKilledMidDownload kills a session with SIGKILL half way through a
// download and opens its folder again: the torrent comes back
// downloading, and no piece verified before the kill is fetched again.
func TestKilledMidDownload(t *testing.T) {
	src := t.TempDir()
	m := makeContent(t, src, "k", map[string]int{"big.bin": 1_200_000, "z.txt": 10}, 16<<10, piece.FormatV2)
	sd := startSeeder(t, m, src, 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.torrent"), marshal(t, m), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_DAEMON_CHILD="+dir, "SHOAL_DAEMON_SEEDER="+sd.addr().String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var atKill int64
	for sc.Scan() {
		n, _ := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "verified "), 10, 64)
		if n >= m.Info.TotalLength*2/5 {
			atKill = n
			break
		}
	}
	if atKill == 0 {
		t.Fatalf("child ended before it downloaded much: %v", sc.Err())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s := openSession(t, testConfig(t, dir))
	var sw *swarm.Torrent
	var id ID
	for deadline := time.Now().Add(5 * time.Second); sw == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("torrent not running after the restart: %+v", s.Torrents(nil, 0))
		}
		s.mu.Lock()
		for _, tt := range s.torrents {
			sw, id = tt.sw, tt.id
		}
		s.mu.Unlock()
	}
	if st := status(t, s, id, 0); st.State != Downloading {
		t.Fatalf("state after the restart: %+v", st)
	}
	verified := sw.Stats().BytesDone
	// The pieces verified before the kill, but for those its last
	// moments left unwritten or unsynced: at most one rate-capped
	// second's worth.
	if verified < atKill-400_000 {
		t.Fatalf("%d bytes verified after the restart, %d before the kill", verified, atKill)
	}
	sw.AddPeers(sd.addr())
	waitFor(t, s, id, 10*time.Second, "seeding", seeding)
	sameFile(t, filepath.Join(src, "k", "big.bin"), filepath.Join(s.Settings().DownloadDir, "k", "big.bin"))
	if got := sw.Stats().Downloaded; got > m.Info.TotalLength-verified {
		t.Fatalf("downloaded %d bytes after the restart, with %d of %d verified: verified pieces fetched again", got, verified, m.Info.TotalLength)
	}
}
