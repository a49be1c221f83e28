package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
	"github.com/shoal-p2p/shoal/tracker"
)

// udpURL is the udp:// announce URL of a running tracker.
func (rt *runningTracker) udpURL() string {
	return "udp://" + strings.TrimPrefix(rt.base, "http://") + "/announce"
}

// udpConnect does a BEP 15 connect exchange with addr and returns the
// connection ID, or false when no answer comes.
func udpConnect(t *testing.T, addr string) (uint64, bool) {
	t.Helper()
	b, ok := udpExchange(t, addr, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(
		binary.BigEndian.AppendUint64(nil, 0x41727101980), 0), 1))
	if !ok || len(b) != 16 || binary.BigEndian.Uint32(b) != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}

// udpAnnouncePacket builds a BEP 15 announce with connection ID id.
func udpAnnouncePacket(id uint64, h tracker.InfoHash, p tracker.PeerID, port uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, id)
	b = binary.BigEndian.AppendUint32(b, 1) // announce
	b = binary.BigEndian.AppendUint32(b, 2) // transaction
	b = append(append(b, h[:]...), p[:]...)
	b = append(b, make([]byte, 24)...)      // downloaded, left, uploaded
	b = binary.BigEndian.AppendUint32(b, 2) // started
	b = append(b, make([]byte, 8)...)       // ip, key
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	return binary.BigEndian.AppendUint16(b, port)
}

// udpExchange sends pkt to addr and returns the answer, or false after 2s.
func udpExchange(t *testing.T, addr string, pkt []byte) ([]byte, bool) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(pkt)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

// `shoal tracker` answers UDP on its HTTP port, both share one swarm, and
// /stats counts the UDP traffic, refusals by kind.
func TestTrackerServesUDPOnItsPort(t *testing.T) {
	rt := startTracker(t, "--interval", "10m")
	var c tracker.Client
	ctx := context.Background()
	h := hash(21)
	if _, err := c.Announce(ctx, rt.base+"/announce", tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(1), Port: 6881, Left: 0}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Announce(ctx, rt.udpURL(), tracker.AnnounceRequest{InfoHash: h, PeerID: peerID(2), Port: 6882, Left: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 10*time.Minute || len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 6881 {
		t.Fatalf("UDP announce %+v", r)
	}
	if sc, err := c.Scrape(ctx, rt.udpURL(), h); err != nil || sc[h].Complete != 1 || sc[h].Incomplete != 1 {
		t.Fatalf("UDP scrape %v %v", sc, err)
	}
	addr := strings.TrimPrefix(rt.base, "http://")
	if b, ok := udpExchange(t, addr, []byte("short")); ok {
		t.Fatalf("short datagram answered %x", b)
	}
	if b, ok := udpExchange(t, addr, udpAnnouncePacket(12345, h, peerID(3), 1)); !ok || len(b) > 98 || binary.BigEndian.Uint32(b) != 3 {
		t.Fatalf("announce with a wrong connection ID: %x", b)
	}
	st := trackerStats(t, rt.base+"/announce")
	if st.UDP.Connects != 1 || st.UDP.Announces != 1 || st.UDP.Scrapes != 1 || st.UDP.Short != 1 || st.UDP.BadConnectionID != 1 ||
		st.Announces != 2 || st.Peers != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTrackerNoUDP(t *testing.T) {
	rt := startTracker(t, "--no-udp")
	if _, ok := udpConnect(t, strings.TrimPrefix(rt.base, "http://")); ok {
		t.Fatal("--no-udp tracker answered a UDP connect")
	}
	for name, args := range map[string][]string{
		"short secret":        {"tracker", "--secret-file", writeTemp(t, "secret", "too short")},
		"missing secret file": {"tracker", "--secret-file", filepath.Join(t.TempDir(), "none")},
		"secret without UDP":  {"tracker", "--no-udp", "--secret-file", writeTemp(t, "secret", strings.Repeat("s", 32))},
	} {
		if r := shoal(t, t.TempDir(), nil, args...); r.code != 2 || !strings.HasPrefix(r.stderr, "shoal: ") {
			t.Errorf("%s: exit %d, stderr %q; want 2", name, r.code, r.stderr)
		}
	}
	// A UDP port in use is a failure, as a TCP one is.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if r := shoal(t, t.TempDir(), nil, "tracker", "--listen", pc.LocalAddr().String()); r.code != 1 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("UDP port in use: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two trackers given one --secret-file accept each other's connection
// IDs; a third with its own secret does not.
func TestTrackerSharedSecretFile(t *testing.T) {
	secret := writeTemp(t, "secret", "6kM1c1Kq0Yk4bX3u8n2rVw9sQz7tLp5e\n")
	a := startTracker(t, "--secret-file", secret)
	b := startTracker(t, "--secret-file", secret)
	other := startTracker(t)
	id, ok := udpConnect(t, strings.TrimPrefix(a.base, "http://"))
	if !ok {
		t.Fatal("no connect answer from tracker A")
	}
	pkt := udpAnnouncePacket(id, hash(22), peerID(1), 7000)
	if r, ok := udpExchange(t, strings.TrimPrefix(b.base, "http://"), pkt); !ok || binary.BigEndian.Uint32(r) != 1 {
		t.Fatalf("tracker B refused A's connection ID: %q", r)
	}
	if r, ok := udpExchange(t, strings.TrimPrefix(other.base, "http://"), pkt); !ok || binary.BigEndian.Uint32(r) != 3 {
		t.Fatalf("a tracker with another secret answered %x; want an error", r)
	}
}

// libtorrent announces to a udp:// shoal tracker and learns the shoal
// seeder's address from it.
func TestLibtorrentFindsShoalThroughUDPTracker(t *testing.T) {
	lttest.Require(t)
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 1_000_000})
	rt := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	u := rt.udpURL()
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", u, "--save-torrent", "share.torrent")
	seed.field(t, "magnet")
	lt := startCmd(t, dir, exec.Command(lttest.Python, lttest.Script("lt_peer.py"), "get", "share.torrent", "lt-out",
		"--tracker", u, "--timeout", "60"))
	if code := lt.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("libtorrent: exit %d: %s", code, lt.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "lt-out"))
	// Both spoke UDP: the shoal seeder and libtorrent, each at least a
	// connect and an announce.
	if st := trackerStats(t, rt.base+"/announce"); st.UDP.Connects < 2 || st.UDP.Announces < 2 || st.Announces != st.UDP.Announces {
		t.Fatalf("stats %+v; want every announce over UDP", st.UDP)
	}
}

// A seeder announcing over HTTP and a downloader announcing over UDP meet
// at one shoal tracker.
func TestHTTPAndUDPPeersMeet(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 700_000, "b.txt": 100})
	rt := startTracker(t, "--interval", "2s", "--rate-limit", "-1")
	seed := start(t, dir, "seed", "share", "--listen", "127.0.0.1:0", "--no-dht", "-t", rt.base+"/announce", "--save-torrent", "share.torrent")
	seed.field(t, "magnet")
	get := start(t, dir, "get", "share.torrent", "-o", "out", "--no-dht", "--listen", "127.0.0.1:0", "-t", rt.udpURL(), "--timeout", "60s")
	if code := get.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "out", "share"))
	if st := trackerStats(t, rt.base+"/announce"); st.UDP.Announces == 0 || st.Announces == st.UDP.Announces {
		t.Fatalf("stats %+v; want announces over both", st)
	}
}

// startOpentracker runs Debian's opentracker on loopback with UDP on its
// own port, tracking only hashes (its Debian build is allow-list only),
// and returns its UDP address once it answers.
func startOpentracker(t *testing.T, hashes ...tracker.InfoHash) string {
	t.Helper()
	if os.Getenv("SHOAL_NO_INTEROP") == "1" {
		t.Skip("SHOAL_NO_INTEROP=1: interop with opentracker not tested")
	}
	bin, err := exec.LookPath("opentracker")
	if err != nil {
		t.Fatalf("opentracker not found (apt-get install opentracker, or run make test): %v", err)
	}
	dir := t.TempDir()
	var wl bytes.Buffer
	for _, h := range hashes {
		fmt.Fprintf(&wl, "%x\n", h[:])
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist.txt"), wl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// opentracker takes ports, not a port 0: find free ones, and try
	// again if one was taken in between.
	var errs string
	for range 3 {
		tcp, udp := freeTCPPort(t), freeUDPPort(t)
		p := startCmd(t, dir, exec.Command(bin, "-i", "127.0.0.1", "-p", strconv.Itoa(tcp), "-P", strconv.Itoa(udp), "-d", dir, "-w", "whitelist.txt"))
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(udp))
		if opentrackerReady(p, addr, hashes[0]) {
			return addr
		}
		p.cmd.Process.Kill()
		errs += p.errText()
	}
	t.Fatalf("opentracker did not start: %s", errs)
	return ""
}

// opentrackerReady waits until opentracker answers a scrape of a listed
// hash: it reads its allow-list on a thread after start-up.
func opentrackerReady(p *proc, addr string, h tracker.InfoHash) bool {
	c := tracker.Client{Timeout: 500 * time.Millisecond, UDPRetransmit: 100 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return false
		default:
		}
		if _, err := c.Scrape(context.Background(), "udp://"+addr, h); err == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// shoal downloads a magnet whose only peer source is a udp:// tracker:
// Debian's opentracker, to which a shoal seeder announced over UDP.
func TestShoalMagnetThroughOpentrackerUDP(t *testing.T) {
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"a.bin": 800_000, "b.txt": 1000})
	// The info-hash is needed before opentracker starts (for its
	// allow-list), so the torrent is made first.
	r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	v2 := field(r.stdout, "info-hash")
	var h tracker.InfoHash
	if n, err := hex.Decode(h[:], []byte(v2[:min(len(v2), 40)])); err != nil || n != 20 {
		t.Fatalf("info-hash %q: %v", v2, err)
	}
	ot := startOpentracker(t, h)
	u := "udp://" + ot + "/announce"
	seed := start(t, dir, "seed", "share", "--torrent", "share.torrent", "--listen", "127.0.0.1:0", "--no-dht", "-t", u)
	seed.field(t, "magnet")
	// The seeder's announce must have reached opentracker: the magnet's
	// download asks the tracker once for the metadata's peers.
	c := tracker.Client{Timeout: time.Second, UDPRetransmit: 200 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for {
		sc, err := c.Scrape(context.Background(), u, h)
		if err == nil && sc[h].Complete == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("opentracker never listed the seeder: %v %v\n%s", sc, err, seed.errText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	magnet := "magnet:?xt=urn:btmh:1220" + v2 + "&tr=" + url.QueryEscape(u)
	get := start(t, dir, "get", magnet, "-o", "out", "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "60s")
	if code := get.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("get: exit %d: %s", code, get.errText())
	}
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dir, "out", "share"))
}
