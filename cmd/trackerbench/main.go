// Command trackerbench is a load benchmark (not a test) for `shoal tracker`,
// measured against opentracker in the same run.
//
// It starts each tracker on loopback, announces a spread of torrents and
// peers once to populate it (measuring the tracker's RSS before and after),
// then drives announces for a fixed time from concurrent workers in three
// modes: keep-alive (connections reused), close (`Connection: close`, a
// new TCP connection per announce, as most HTTP clients announce) and udp
// (BEP 15, the protocol most clients use first). Every mode sends the same
// announces: the same torrents, peers and numwant. It prints a Markdown
// table of announces/s, latency percentiles, the tracker's and the load
// generator's CPU per announce, errors, RSS and bytes per stored peer.
//
// Usage, from the module root:
//
//	go run ./cmd/trackerbench [-duration 10s] [-c 50] [-modes keepalive,close,udp] [-targets shoal,opentracker] [-pin]
//
// A target shoal=PATH measures the shoal binary at PATH, so that two
// builds can alternate in one run: -targets shoal=old,shoal=new,shoal=old,shoal=new.
//
// All traffic goes to 127.0.0.1. The load generator writes pre-built raw
// HTTP/1.1 requests on net.Conn and parses only the status line and
// Content-Length, because on a 2-core machine a net/http client would eat
// the CPU the trackers need; in udp mode it keeps -c announces in flight
// over -udp-sockets sockets, each with a window of them outstanding, and
// matches answers by transaction ID. -pin runs the load generator on CPU 0
// and each tracker on CPU 1.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	shoalBin    string
	otBin       string
	install     bool
	torrents    int
	peers       int
	conns       int
	duration    time.Duration
	targets     []string
	modes       []string
	numWant     int
	seed        uint64
	shoalArgs   string
	keepWorkdir bool
	udpSockets  int
	pin         bool
	redisBin    string
}

func main() {
	var o options
	var targets, modes string
	flag.StringVar(&o.shoalBin, "shoal", "", "shoal binary (default: build ./cmd/shoal into a temporary folder)")
	flag.StringVar(&o.otBin, "opentracker", "opentracker", "opentracker binary")
	flag.BoolVar(&o.install, "install", false, "run apt-get install -y opentracker if it is missing")
	flag.IntVar(&o.torrents, "torrents", 10_000, "distinct info-hashes")
	flag.IntVar(&o.peers, "peers", 100_000, "distinct peers, spread evenly over the torrents")
	flag.IntVar(&o.conns, "c", 50, "concurrent connections (workers)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measuring time per mode")
	flag.StringVar(&targets, "targets", "shoal,opentracker", "trackers to measure, comma-separated: shoal, shoal=PATH (that binary), shoal-redis, shoal-redis2, opentracker")
	flag.StringVar(&modes, "modes", "keepalive,close,udp", "modes to run, comma-separated")
	flag.IntVar(&o.numWant, "numwant", 50, "numwant sent with each announce")
	flag.Uint64Var(&o.seed, "seed", 1, "seed for info-hashes and peer ids")
	flag.StringVar(&o.shoalArgs, "shoal-args", "", "extra arguments for `shoal tracker`, space-separated")
	flag.BoolVar(&o.keepWorkdir, "keep", false, "keep the temporary folder")
	flag.IntVar(&o.udpSockets, "udp-sockets", 8, "client sockets in udp mode; -c announces in flight are spread over them")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "redis-server binary for the shoal-redis targets")
	flag.BoolVar(&o.pin, "pin", false, "run the load generator on CPU 0 and the trackers on CPU 1 (taskset)")
	flag.Parse()
	if o.pin && os.Getenv("TRACKERBENCH_PINNED") == "" {
		pinSelf()
	}
	o.targets = strings.Split(targets, ",")
	o.modes = strings.Split(modes, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "trackerbench:", err)
		os.Exit(1)
	}
}

// load is the generated workload: one announce per peer, pre-encoded.
type load struct {
	hashes [][20]byte
	// started and regular hold per-peer request bytes for the populating
	// (event=started) and measured (periodic) announces, keep-alive form.
	started, regular [][]byte
	// closeRegular is regular with a Connection: close header.
	closeRegular [][]byte
	// udp holds the same periodic announces as BEP 15 packets, with the
	// connection and transaction IDs left for the sender to fill in.
	udp [][]byte
}

func makeLoad(o options) load {
	r := rand.New(rand.NewPCG(o.seed, 0x7ac4e7))
	l := load{hashes: make([][20]byte, o.torrents)}
	for i := range l.hashes {
		for j := range l.hashes[i] {
			l.hashes[i][j] = byte(r.Uint32())
		}
	}
	for i := range o.peers {
		var id [20]byte
		copy(id[:], "-BN0001-")
		for j := 8; j < 20; j++ {
			id[j] = byte(r.Uint32())
		}
		t := i % o.torrents
		// Every load comes from 127.0.0.1, and opentracker keys a peer by
		// address and port, so peers of one torrent get distinct ports;
		// shoal keys by peer_id, which is distinct too.
		port := 1024 + i/o.torrents
		left := 1000
		if i%4 == 0 {
			left = 0
		}
		key := r.Uint32()
		q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&compact=1&numwant=%d&key=%08x",
			pctEncode(l.hashes[t][:]), pctEncode(id[:]), port, left, o.numWant, key)
		req := func(extra, hdr string) []byte {
			return []byte("GET /announce?" + q + extra + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trackerbench\r\n" + hdr + "\r\n")
		}
		l.started = append(l.started, req("&event=started", ""))
		l.regular = append(l.regular, req("", ""))
		l.closeRegular = append(l.closeRegular, req("", "Connection: close\r\n"))
		l.udp = append(l.udp, udpAnnounce(l.hashes[t], id, uint16(port), uint64(left), uint32(o.numWant), key))
	}
	return l
}

// pctEncode escapes every byte: url.QueryEscape would send spaces as '+',
// which opentracker does not decode.
func pctEncode(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

type tracker struct {
	name    string
	addr    string
	udpAddr string
	cmd     *exec.Cmd
	// more are further instances sharing the store (shoal-redis2), which
	// the load is spread over; redis is the store's server, when the
	// benchmark runs one.
	more  []*tracker
	redis *redisServer
}

func (t *tracker) pid() int { return t.cmd.Process.Pid }

func (t *tracker) addrs() []string {
	a := []string{t.addr}
	for _, m := range t.more {
		a = append(a, m.addr)
	}
	return a
}

func (t *tracker) udpAddrs() []string {
	a := []string{t.udpAddr}
	for _, m := range t.more {
		a = append(a, m.udpAddr)
	}
	return a
}

// cpuTime is the CPU time of every process serving the load: the
// instances and Redis.
func (t *tracker) cpuTime() time.Duration {
	d := cpuTime(t.pid())
	for _, m := range t.more {
		d += cpuTime(m.pid())
	}
	if t.redis != nil {
		d += cpuTime(t.redis.cmd.Process.Pid)
	}
	return d
}

// redisMemory is Redis's used_memory, 0 without Redis.
func (t *tracker) redisMemory() int64 {
	if t.redis == nil {
		return 0
	}
	return t.redis.usedMemory()
}

func (t *tracker) stop() {
	for _, m := range t.more {
		m.stop()
	}
	if t.redis != nil {
		defer t.redis.stop()
	}
	t.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { t.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.cmd.Process.Kill()
		<-done
	}
}

type row struct {
	target, mode      string
	rate              float64
	p50, p99          time.Duration
	requests, errs    uint64
	reconnects        uint64
	rssBefore, rssPop int64 // KiB
	anonGrowth        int64 // KiB of RssAnon added by populating
	rssAfter, hwm     int64 // KiB
	stored            int
	cpuPer            time.Duration // tracker CPU time per answered announce
	genPer            time.Duration // the load generator's CPU time per answered announce
	redisBytes        int64         // Redis used_memory added by populating
}

func run(o options) error {
	work, err := os.MkdirTemp("", "trackerbench")
	if err != nil {
		return err
	}
	if !o.keepWorkdir {
		defer os.RemoveAll(work)
	}
	l := makeLoad(o)
	var rows []row
	for _, target := range o.targets {
		var t *tracker
		switch target, bin, _ := strings.Cut(target, "="); target {
		case "shoal":
			if bin != "" {
				// shoal=PATH measures that binary, so an old and a
				// new build can alternate under the same load.
				ob := o
				ob.shoalBin = bin
				t, err = startShoal(ob, work)
				if t != nil {
					t.name = "shoal=" + filepath.Base(bin)
				}
				break
			}
			t, err = startShoal(o, work)
		case "opentracker":
			t, err = startOpentracker(o, work, l)
		case "shoal-redis", "shoal-redis2":
			t, err = startShoalRedis(o, work, target)
		default:
			err = fmt.Errorf("unknown target %q", target)
		}
		if err != nil {
			return err
		}
		rs, err := measure(o, t, l)
		t.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		rows = append(rows, rs...)
	}
	printTable(o, rows)
	return nil
}

func startShoal(o options, work string) (*tracker, error) {
	bin := o.shoalBin
	if bin == "" {
		bin = filepath.Join(work, "shoal")
		fmt.Fprintln(os.Stderr, "building ./cmd/shoal")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/shoal").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/shoal (run from the module root or pass -shoal): %v\n%s", err, out)
		}
	}
	// The per-address rate limit must be off: all load comes from one
	// address.
	args := []string{"tracker", "--listen", "127.0.0.1:0", "--rate-limit", "-1"}
	args = append(args, strings.Fields(o.shoalArgs)...)
	cmd := trackerCommand(o, bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening: ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("shoal tracker did not print its address: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	// shoal serves UDP on its HTTP port.
	return &tracker{name: "shoal", addr: addr, udpAddr: addr, cmd: cmd}, nil
}

func startOpentracker(o options, work string, l load) (*tracker, error) {
	bin, err := exec.LookPath(o.otBin)
	if err != nil && o.install {
		fmt.Fprintln(os.Stderr, "installing opentracker")
		cmd := exec.Command("apt-get", "install", "-y", "opentracker")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("apt-get install opentracker: %v", err)
		}
		bin, err = exec.LookPath(o.otBin)
	}
	if err != nil {
		return nil, fmt.Errorf("%s not found: install it (apt-get install opentracker), rerun with -install, or leave it out with -targets shoal", o.otBin)
	}
	// Debian builds opentracker in allow-list mode: every hash of the load
	// must be listed or it refuses them all.
	dir := filepath.Join(work, "opentracker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var wl bytes.Buffer
	for _, h := range l.hashes {
		fmt.Fprintf(&wl, "%x\n", h)
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist.txt"), wl.Bytes(), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	udp, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// -d chroots into dir (opentracker does when run as root), so the
	// allow-list path is given relative to it.
	cmd := trackerCommand(o, bin, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(udp), "-d", dir, "-w", "whitelist.txt")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &tracker{name: "opentracker", addr: addr, udpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(udp)), cmd: cmd}
	// The allow-list is loaded by a thread after start-up; wait until a
	// listed hash is accepted.
	probe := l.started[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			var rd responseReader
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, werr := c.Write(probe)
			ok, _, rerr := rd.read(c)
			c.Close()
			if werr == nil && rerr == nil && ok {
				return t, nil
			}
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("opentracker on %s did not accept announces within 10s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeUDPPort() (int, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func measure(o options, t *tracker, l load) ([]row, error) {
	time.Sleep(200 * time.Millisecond)
	before, _ := procStatus(t.pid())
	redisBefore := t.redisMemory()
	fmt.Fprintf(os.Stderr, "%s: populating %d peers on %d torrents\n", t.name, o.peers, o.torrents)
	pop := drive(t.addrs(), o.conns, 0, func(w, i int) []byte { return l.started[i] }, o.peers, true)
	if pop.errs > 0 {
		return nil, fmt.Errorf("populating: %d of %d announces failed (%v)", pop.errs, pop.requests, pop.firstErr)
	}
	time.Sleep(500 * time.Millisecond)
	popRSS, _ := procStatus(t.pid())
	if stored := o.peers; stored > 0 {
		fmt.Fprintf(os.Stderr, "%s: populated: RSS +%d KiB, of it anonymous +%d KiB (%d bytes/peer)\n",
			t.name, popRSS.rss-before.rss, popRSS.anon-before.anon, (popRSS.anon-before.anon)*1024/int64(stored))
	}
	redisPop := t.redisMemory()
	stored, err := storedPeers(t.addr, l)
	if err != nil {
		return nil, fmt.Errorf("counting stored peers: %w", err)
	}
	var rows []row
	for _, mode := range o.modes {
		reqs := l.regular
		keep := true
		switch mode {
		case "keepalive", "udp":
		case "close":
			reqs, keep = l.closeRegular, false
		default:
			return nil, fmt.Errorf("unknown mode %q", mode)
		}
		seeds := make([]*rand.Rand, max(o.conns, o.udpSockets))
		for i := range seeds {
			seeds[i] = rand.New(rand.NewPCG(o.seed, uint64(i)))
		}
		var res result
		cpu0, gen0 := t.cpuTime(), cpuTime(os.Getpid())
		if mode == "udp" {
			fmt.Fprintf(os.Stderr, "%s: %s for %v with %d announces in flight on %d sockets\n", t.name, mode, o.duration, o.conns, o.udpSockets)
			res = driveUDP(t.udpAddrs(), o.udpSockets, o.conns, o.duration, func(w int) []byte { return l.udp[seeds[w].IntN(len(l.udp))] })
		} else {
			fmt.Fprintf(os.Stderr, "%s: %s for %v with %d connections\n", t.name, mode, o.duration, o.conns)
			res = drive(t.addrs(), o.conns, o.duration, func(w, _ int) []byte { return reqs[seeds[w].IntN(len(reqs))] }, 0, keep)
		}
		cpu, gen := t.cpuTime()-cpu0, cpuTime(os.Getpid())-gen0
		after, _ := procStatus(t.pid())
		r := row{
			target: t.name, mode: mode,
			rate:     float64(res.requests-res.errs) / res.elapsed.Seconds(),
			requests: res.requests, errs: res.errs, reconnects: res.dials,
			rssBefore: before.rss, rssPop: popRSS.rss, rssAfter: after.rss, hwm: after.hwm,
			anonGrowth: popRSS.anon - before.anon,
			stored:     stored, redisBytes: redisPop - redisBefore,
		}
		r.p50, r.p99 = percentile(res.lat, 0.50), percentile(res.lat, 0.99)
		if ok := res.requests - res.errs; ok > 0 {
			r.cpuPer = cpu / time.Duration(ok)
			r.genPer = gen / time.Duration(ok)
		}
		if res.errs > 0 {
			fmt.Fprintf(os.Stderr, "%s %s: %d errors, first: %v\n", t.name, mode, res.errs, res.firstErr)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// status is a process's memory, in KiB. anon is RssAnon: heap and stacks
// without the file-backed pages (mostly the binary's code) that VmRSS also
// counts, which grow as a tracker first runs its announce path.
type status struct{ rss, hwm, anon int64 }

// cpuTime is the user+system CPU time pid has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the whole line, in clock ticks.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procStatus reads VmRSS, VmHWM and RssAnon (KiB) of pid.
func procStatus(pid int) (status, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return status{}, err
	}
	var s status
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.rss = n
		case "VmHWM:":
			s.hwm = n
		case "RssAnon:":
			s.anon = n
		}
	}
	return s, nil
}

// storedPeers sums seeders and leechers over every torrent of the load by
// scrape, so that a tracker merging peers it should keep apart shows up.
func storedPeers(addr string, l load) (int, error) {
	var rd responseReader
	total := 0
	const batch = 32
	for i := 0; i < len(l.hashes); i += batch {
		var q strings.Builder
		for _, h := range l.hashes[i:min(i+batch, len(l.hashes))] {
			q.WriteString("&info_hash=" + pctEncode(h[:]))
		}
		// A connection per scrape: opentracker closes each one anyway.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c, "GET /scrape?"+q.String()[1:]+" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		ok, body, err := rd.readAfter(c, err)
		c.Close()
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("scrape refused: %q", body)
		}
		total += sumCounts(body, "8:completei") + sumCounts(body, "10:incompletei")
	}
	return total, nil
}

// sumCounts adds the integers following every occurrence of key in a
// bencoded body: enough to read scrape answers without a decoder.
func sumCounts(b []byte, key string) int {
	n := 0
	for {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return n
		}
		b = b[i+len(key):]
		j := bytes.IndexByte(b, 'e')
		v, _ := strconv.Atoi(string(b[:j]))
		n += v
	}
}

type result struct {
	requests, errs, dials uint64
	elapsed               time.Duration
	lat                   []time.Duration
	firstErr              error
}

// drive runs conns workers. With d > 0 they run for d, each picking its
// request with next; otherwise they share the n requests 0..n-1 once.
// keep reuses a connection until the server closes it.
func drive(addrs []string, conns int, d time.Duration, next func(w, i int) []byte, n int, keep bool) result {
	var (
		mu      sync.Mutex
		total   result
		counter atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := range conns {
		addr := addrs[w%len(addrs)] // workers spread over the instances
		wg.Go(func() {
			var (
				c    net.Conn
				rd   responseReader
				res  result
				keep = keep
			)
			lat := make([]time.Duration, 0, 1<<16)
			fail := func(err error) {
				res.errs++
				if res.firstErr == nil {
					res.firstErr = err
				}
				if c != nil {
					c.Close()
					c = nil
				}
			}
			for !stop.Load() {
				i := 0
				if d == 0 {
					i = int(counter.Add(1) - 1)
					if i >= n {
						break
					}
				}
				req := next(w, i)
				t0 := time.Now()
				res.requests++
				reused := c != nil
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						fail(err)
						continue
					}
					res.dials++
				}
				c.SetDeadline(t0.Add(10 * time.Second))
				_, err := c.Write(req)
				ok, body, err := rd.readAfter(c, err)
				if err != nil && reused && rd.n == 0 {
					// The server closed a connection it had answered on
					// without saying so (opentracker never keeps one
					// alive). Retry once on a new connection, as HTTP
					// clients do, and stop reusing connections to it.
					keep = false
					c.Close()
					if c, err = net.Dial("tcp", addr); err == nil {
						res.dials++
						c.SetDeadline(t0.Add(10 * time.Second))
						_, err = c.Write(req)
						ok, body, err = rd.readAfter(c, err)
					}
				}
				if err != nil {
					fail(err)
					continue
				}
				lat = append(lat, time.Since(t0))
				if !ok {
					fail(fmt.Errorf("refused: %q", body))
					continue
				}
				if rd.closed || !keep {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			total.requests += res.requests
			total.errs += res.errs
			total.dials += res.dials
			total.lat = append(total.lat, lat...)
			if total.firstErr == nil {
				total.firstErr = res.firstErr
			}
			mu.Unlock()
		})
	}
	if d > 0 {
		time.Sleep(d)
		stop.Store(true)
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

// responseReader reads one HTTP/1.1 response with as little work as
// possible: the status code, Content-Length and Connection: close.
type responseReader struct {
	buf    []byte
	n      int  // bytes read for the last response
	closed bool // the server will close the connection after this response
}

var errMalformed = errors.New("malformed response")

// readAfter is read after a write that returned werr.
func (r *responseReader) readAfter(c net.Conn, werr error) (bool, []byte, error) {
	if werr != nil {
		r.n = 0
		return false, nil, werr
	}
	return r.read(c)
}

// read returns whether the status was 200 with a body that is not a
// bencoded failure, and the body.
func (r *responseReader) read(c net.Conn) (bool, []byte, error) {
	if r.buf == nil {
		r.buf = make([]byte, 16<<10)
	}
	n := 0
	defer func() { r.n = n }()
	hdrEnd := -1
	for hdrEnd < 0 {
		if n == len(r.buf) {
			return false, nil, errMalformed
		}
		m, err := c.Read(r.buf[n:])
		n += m
		hdrEnd = bytes.Index(r.buf[:n], []byte("\r\n\r\n"))
		if err != nil && hdrEnd < 0 {
			return false, nil, err
		}
	}
	head := r.buf[:hdrEnd]
	if len(head) < 12 || !bytes.HasPrefix(head, []byte("HTTP/1.")) {
		return false, nil, errMalformed
	}
	code := string(head[9:12])
	r.closed = bytes.HasPrefix(head, []byte("HTTP/1.0"))
	cl := -1
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			cl, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Connection")):
			r.closed = bytes.EqualFold(v, []byte("close"))
		}
	}
	bodyStart := hdrEnd + 4
	if cl < 0 {
		// No length: the body runs to the end of the connection.
		r.closed = true
		for {
			if n == len(r.buf) {
				r.buf = append(r.buf, make([]byte, len(r.buf))...)
			}
			m, err := c.Read(r.buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				return false, nil, err
			}
		}
		cl = n - bodyStart
	}
	if bodyStart+cl > len(r.buf) {
		r.buf = append(r.buf, make([]byte, bodyStart+cl-len(r.buf))...)
	}
	for n < bodyStart+cl {
		m, err := c.Read(r.buf[n:])
		n += m
		if err != nil && n < bodyStart+cl {
			return false, nil, err
		}
	}
	body := r.buf[bodyStart : bodyStart+cl]
	ok := code == "200" && !bytes.HasPrefix(body, []byte("d14:failure reason"))
	return ok, body, nil
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func printTable(o options, rows []row) {
	pinned := ""
	if o.pin {
		pinned = ", load generator on CPU 0 and trackers on CPU 1"
	}
	fmt.Printf("%d torrents, %d peers, numwant %d, %d connections (udp: %d in flight on %d sockets), %v per mode, GOMAXPROCS %d, %d CPUs%s\n\n",
		o.torrents, o.peers, o.numWant, o.conns, o.conns, o.udpSockets, o.duration, runtime.GOMAXPROCS(0), runtime.NumCPU(), pinned)
	// bytes/peer is the RSS growth from populating over the peers stored
	// (Redis's used_memory growth for the Redis targets); anon/peer is
	// the same for RssAnon, which leaves out the file-backed pages of the
	// binary's code that the announce path touches for the first time.
	fmt.Println("| tracker | mode | announces/s | p50 | p99 | tracker CPU/announce | load generator CPU/announce | errors | connections | RSS idle | RSS populated | RSS after | peak RSS | stored peers | bytes/peer | anon/peer |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		perPeer, anonPer := "-", "-"
		switch {
		case r.stored > 0 && r.redisBytes > 0:
			perPeer = strconv.FormatInt(r.redisBytes/int64(r.stored), 10) + " in Redis"
		case r.stored > 0:
			perPeer = strconv.FormatInt((r.rssPop-r.rssBefore)*1024/int64(r.stored), 10)
			anonPer = strconv.FormatInt(r.anonGrowth*1024/int64(r.stored), 10)
		}
		fmt.Printf("| %s | %s | %.0f | %s | %s | %.1f µs | %.1f µs | %d | %d | %s | %s | %s | %s | %d | %s | %s |\n",
			r.target, r.mode, r.rate, fmtDur(r.p50), fmtDur(r.p99), float64(r.cpuPer)/float64(time.Microsecond), float64(r.genPer)/float64(time.Microsecond), r.errs, r.reconnects,
			mib(r.rssBefore), mib(r.rssPop), mib(r.rssAfter), mib(r.hwm), r.stored, perPeer, anonPer)
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
