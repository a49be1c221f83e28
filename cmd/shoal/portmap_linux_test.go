package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The network the port-mapping test builds, each side a namespace of its
// own joined by veth pairs:
//
//	LAN (shoal seed)  10.77.0.2 ── 10.77.0.1  router (miniupnpd)  5.77.0.1 ── 5.77.0.2  WAN (shoal get)
//
// The WAN side has no route to the LAN: it reaches the seed only through
// the router's external address, by the mapping shoal asked for. None of
// the namespaces has a link out of the machine, so the public-looking WAN
// addresses (miniupnpd refuses to serve on a private one) go nowhere.
const (
	pmLANAddr = "10.77.0.2"
	pmRtrLAN  = "10.77.0.1"
	pmRtrWAN  = "5.77.0.1"
	pmWANAddr = "5.77.0.2"
)

// pmNet is the test's namespaces.
type pmNet struct {
	lan, rtr, wan string
}

// newPMNet creates the namespaces, removed in t.Cleanup (which also ends
// any process left in them: deleting a namespace does not).
func newPMNet(t *testing.T) pmNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the port-mapping test needs root to create network namespaces (CI runs it as root)")
	}
	for _, bin := range []string{"ip", "nft", "miniupnpd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run scripts/test-deps.sh", bin)
		}
	}
	// Namespaces of an earlier run killed before its cleanup (a go test
	// timeout) would linger: remove those whose test process is gone.
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if rest, ok := strings.CutPrefix(f, "shoalpm-"); ok {
				pid, err := strconv.Atoi(rest[strings.LastIndexByte(rest, '-')+1:])
				if err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
					removeNetns(f)
				}
			}
		}
	}
	id := strconv.Itoa(os.Getpid())
	n := pmNet{lan: "shoalpm-lan-" + id, rtr: "shoalpm-rtr-" + id, wan: "shoalpm-wan-" + id}
	t.Cleanup(func() {
		for _, ns := range []string{n.lan, n.rtr, n.wan} {
			removeNetns(ns)
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{n.lan, n.rtr, n.wan} {
		run("ip", "netns", "add", ns)
		run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	run("ip", "link", "add", "lan0", "netns", n.lan, "type", "veth", "peer", "name", "rlan0", "netns", n.rtr)
	run("ip", "link", "add", "wan0", "netns", n.wan, "type", "veth", "peer", "name", "rwan0", "netns", n.rtr)
	for _, a := range [][3]string{{n.lan, "lan0", pmLANAddr}, {n.rtr, "rlan0", pmRtrLAN}, {n.rtr, "rwan0", pmRtrWAN}, {n.wan, "wan0", pmWANAddr}} {
		run("ip", "-n", a[0], "addr", "add", a[2]+"/24", "dev", a[1])
		run("ip", "-n", a[0], "link", "set", a[1], "up")
	}
	run("ip", "-n", n.lan, "route", "add", "default", "via", pmRtrLAN)
	run("ip", "netns", "exec", n.rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The chains Debian's miniupnpd (nftables build) fills: a forward
	// filter that lets in only what a mapping opens, and a NAT
	// prerouting/postrouting pair (table "nat", named in its config),
	// under the chain names it uses by default.
	rules := filepath.Join(t.TempDir(), "miniupnpd.nft")
	os.WriteFile(rules, []byte(`table inet filter {
	chain miniupnpd { }
	chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; jump miniupnpd; }
}
table inet nat {
	chain prerouting_miniupnpd { }
	chain postrouting_miniupnpd { }
	chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
	chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
}
`), 0o644)
	run("ip", "netns", "exec", n.rtr, "nft", "-f", rules)
	return n
}

// removeNetns ends the processes left in ns (a failed test's), which
// deleting it would not, then deletes it.
func removeNetns(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// cmd returns a command running name in namespace ns.
// Inside its own namespaces the test runs shoal with its true defaults, so
// the loopback listen address TestMain gives every other test is dropped.
func (n pmNet) cmd(ns, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_LISTEN=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// miniupnpd is a running router daemon and its lease file.
type miniupnpd struct {
	p      *proc
	leases string
}

// startMiniupnpd runs miniupnpd in the router namespace with the
// protocols asked for, its config and lease file in a folder of its own.
func (n pmNet) startMiniupnpd(t *testing.T, upnp, natpmp bool) *miniupnpd {
	t.Helper()
	dir := t.TempDir()
	yes := map[bool]string{true: "yes", false: "no"}
	m := &miniupnpd{leases: filepath.Join(dir, "leases")}
	conf := filepath.Join(dir, "miniupnpd.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ext_ifname=rwan0
listening_ip=rlan0
http_port=0
enable_upnp=%s
enable_natpmp=%s
lease_file=%s
secure_mode=yes
upnp_nat_table_name=nat
system_uptime=yes
uuid=6c2a7d1e-3b9f-4f0e-9a51-5a6b7c8d9e0f
deny 6885 10.77.0.0/24 6885
allow 1024-65535 10.77.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, yes[upnp], yes[natpmp], m.leases)), 0o644)
	// -d: in the foreground, logging to stderr, which the test reads to
	// see what reached the router.
	m.p = startCmd(t, dir, n.cmd(n.rtr, "miniupnpd", "-f", conf, "-d"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(m.p.errText(), "Listening for NAT-PMP") && !strings.Contains(m.p.errText(), "HTTP listening") {
		if time.Now().After(deadline) {
			t.Fatalf("miniupnpd did not start:\n%s", m.p.errText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		m.p.cmd.Process.Signal(syscall.SIGTERM)
		m.p.wait(t, 5*time.Second)
		if t.Failed() || os.Getenv("PMLOG") != "" {
			t.Logf("miniupnpd's log:\n%s", m.p.errText())
		}
	})
	return m
}

var doneSinceRE = regexp.MustCompile(`(?m)^done: .* \((\S+) since start\)$`)

var leaseRE = regexp.MustCompile(`(?m)^(TCP|UDP):(\d+):([0-9.]+):(\d+):(\d+):(.*)$`)

// lease returns the expiry and description of miniupnpd's lease of
// proto's external port, or 0 if there is none.
func (m *miniupnpd) lease(t *testing.T, proto string, port int) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(m.leases)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, l := range leaseRE.FindAllStringSubmatch(string(b), -1) {
		if l[1] == proto && l[2] == strconv.Itoa(port) {
			if l[3] != pmLANAddr || l[4] != strconv.Itoa(port) {
				t.Fatalf("%s port %d mapped to %s:%s, want %s:%d", proto, port, l[3], l[4], pmLANAddr, port)
			}
			exp, _ := strconv.ParseInt(l[5], 10, 64)
			return exp, l[6]
		}
	}
	return 0, ""
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A shoal seed behind a real router (Debian's miniupnpd) maps its port
// through NAT-PMP and through UPnP IGD, prints the external address,
// renews the lease, is reached by a peer on the WAN side through it, and
// removes the mapping on exit; one on loopback talks to no router.
func TestPortMapMiniupnpd(t *testing.T) {
	n := newPMNet(t)
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	const port = 6881 // seed's default: the test runs it with default flags
	for _, tc := range []struct {
		name         string
		upnp, natpmp bool
		desc         string // what miniupnpd records for the mapping
	}{
		{"NAT-PMP", false, true, "NAT-PMP 6881 tcp"},
		{"UPnP IGD", true, false, "shoal " + version},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtr := n.startMiniupnpd(t, tc.upnp, tc.natpmp)
			// A lease of 4s, renewed every 2s, to see a renewal soon.
			seed := startCmd(t, dir, n.cmd(n.lan, shoalBin, "seed", "data", "--torrent", "data.torrent", "--no-dht", "--port-map-lease", "4s"))
			// Discovery takes up to 3s.
			waitFor(t, 5*time.Second, "no external: line from the seed", func() bool {
				seed.mu.Lock()
				defer seed.mu.Unlock()
				return slices.ContainsFunc(seed.lines, func(l string) bool { return strings.HasPrefix(l, "external:") })
			})
			if ext := seed.field(t, "external"); ext != pmRtrWAN+":"+strconv.Itoa(port) {
				t.Fatalf("external: %q, want %s:%d\n%s", ext, pmRtrWAN, port, seed.errText())
			}
			for _, proto := range []string{"TCP", "UDP"} {
				if exp, desc := rtr.lease(t, proto, port); exp == 0 || !strings.HasPrefix(desc, strings.Split(tc.desc, " ")[0]) {
					t.Fatalf("no %s lease for port %d in miniupnpd's lease file (desc %q):\n%s", proto, port, desc, rtr.p.errText())
				}
			}
			first, _ := rtr.lease(t, "TCP", port)
			waitFor(t, 5*time.Second, "the lease was not renewed", func() bool {
				exp, _ := rtr.lease(t, "TCP", port)
				return exp > first
			})
			// The rule miniupnpd put in the kernel, not only its file.
			out, err := n.cmd(n.rtr, "nft", "list", "chain", "inet", "nat", "prerouting_miniupnpd").CombinedOutput()
			if err != nil || !strings.Contains(string(out), fmt.Sprintf("dnat ip to %s:%d", pmLANAddr, port)) {
				t.Fatalf("no DNAT rule to the seed in the router (%v):\n%s", err, out)
			}

			// A peer on the WAN side, which has no route to the LAN,
			// downloads through the external address. Its own search for
			// a router (there is none on its side) runs its full 3s
			// meanwhile: the download must not wait for it.
			get := startCmd(t, dir, n.cmd(n.wan, shoalBin, "get", "data.torrent", "-o", "wan-"+tc.name, "--peer", pmRtrWAN+":"+strconv.Itoa(port),
				"--no-dht", "--listen", pmWANAddr+":0", "--timeout", "10s"))
			if code := get.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("WAN peer through %s:%d: exit %d\n%s", pmRtrWAN, port, code, get.errText())
			}
			sameFiles(t, filepath.Join(dir, "data"), filepath.Join(dir, "wan-"+tc.name, "data"))
			m := doneSinceRE.FindStringSubmatch(get.errText())
			if m == nil {
				t.Fatalf("no done: line from the WAN peer:\n%s", get.errText())
			}
			t.Logf("WAN peer: %s", m[0])
			if took, err := time.ParseDuration(m[1]); err != nil || took >= 3*time.Second {
				t.Errorf("the WAN peer took %s to download 300 kB: it waited for its router search", m[1])
			}

			began := time.Now()
			if code := seed.stop(t, syscall.SIGINT); code != 0 {
				t.Fatalf("seed after SIGINT: exit %d\n%s", code, seed.errText())
			}
			if d := time.Since(began); d > 3*time.Second {
				t.Errorf("seed took %v to exit", d)
			}
			for _, proto := range []string{"TCP", "UDP"} {
				if exp, _ := rtr.lease(t, proto, port); exp != 0 {
					t.Errorf("%s lease of port %d left behind after exit:\n%s", proto, port, rtr.p.errText())
				}
			}
			out, _ = n.cmd(n.rtr, "nft", "list", "chain", "inet", "nat", "prerouting_miniupnpd").CombinedOutput()
			if strings.Contains(string(out), "dnat") {
				t.Errorf("DNAT rule left behind after exit:\n%s", out)
			}
		})
	}

	t.Run("scope", func(t *testing.T) {
		rtr := n.startMiniupnpd(t, true, true)
		asked := func() bool {
			log := rtr.p.errText()
			return strings.Contains(log, "SSDP M-SEARCH from") || strings.Contains(log, "NAT-PMP request received")
		}
		// On loopback, and with --no-port-map on the LAN address: both
		// must stay silent.
		quiet := []*proc{
			startCmd(t, dir, n.cmd(n.lan, shoalBin, "seed", "data", "--torrent", "data.torrent", "--no-dht", "--listen", "127.0.0.1:6882")),
			startCmd(t, dir, n.cmd(n.lan, shoalBin, "seed", "data", "--torrent", "data.torrent", "--no-dht", "--listen", pmLANAddr+":6884", "--no-port-map")),
		}
		for _, p := range quiet {
			p.field(t, "listening")
		}
		// Longer than a discovery (3s): a search would have reached the
		// router by now.
		time.Sleep(3500 * time.Millisecond)
		if asked() {
			t.Fatalf("a seed on loopback or with --no-port-map talked to the router:\n%s", rtr.p.errText())
		}
		for _, p := range quiet {
			p.stop(t, syscall.SIGINT)
			for _, l := range p.lines {
				if strings.HasPrefix(l, "external:") {
					t.Fatalf("%v printed %q", p.cmd.Args, l)
				}
			}
		}
		if b, _ := os.ReadFile(rtr.leases); len(b) != 0 {
			t.Fatalf("mappings made by a seed that was to make none:\n%s", b)
		}

		// The same router is found from the LAN address itself, through
		// both protocols, and maps the port given.
		seed := startCmd(t, dir, n.cmd(n.lan, shoalBin, "seed", "data", "--torrent", "data.torrent", "--no-dht", "--listen", pmLANAddr+":6883"))
		if ext := seed.field(t, "external"); ext != pmRtrWAN+":6883" {
			t.Fatalf("external: %q, want %s:6883\n%s", ext, pmRtrWAN, seed.errText())
		}
		waitFor(t, 4*time.Second, "the seed on the LAN address did not search by SSDP and ask NAT-PMP", func() bool {
			log := rtr.p.errText()
			return strings.Contains(log, "SSDP M-SEARCH from "+pmLANAddr) && strings.Contains(log, "NAT-PMP request received from "+pmLANAddr)
		})
		seed.stop(t, syscall.SIGINT)

		// A router that will not map the port asked for: miniupnpd's
		// config denies external port 6885, and its NAT-PMP then maps
		// another one. A warning saying so, the stray mapping given back,
		// no external: line, and the seed serves a LAN peer on its local
		// port all the same.
		seed = startCmd(t, dir, n.cmd(n.lan, shoalBin, "seed", "data", "--torrent", "data.torrent", "--no-dht", "--listen", pmLANAddr+":6885"))
		seed.field(t, "listening")
		waitFor(t, 5*time.Second, "no warning of the router's other port", func() bool {
			return strings.Contains(seed.errText(), "port mapping: TCP port 6885") && strings.Contains(seed.errText(), "port mapping: UDP port 6885") && strings.Contains(seed.errText(), "instead of 6885")
		})
		if b, _ := os.ReadFile(rtr.leases); strings.Contains(string(b), ":10.77.0.2:6885:") {
			t.Errorf("the mapping on another port was left on the router:\n%s", b)
		}
		get := startCmd(t, dir, n.cmd(n.lan, shoalBin, "get", "data.torrent", "-o", "refused", "--peer", pmLANAddr+":6885",
			"--no-dht", "--no-port-map", "--listen", pmLANAddr+":0", "--timeout", "10s"))
		if code := get.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("LAN peer of a seed the router refused: exit %d\n%s", code, get.errText())
		}
		sameFiles(t, filepath.Join(dir, "data"), filepath.Join(dir, "refused", "data"))
		seed.stop(t, syscall.SIGINT)
		for _, l := range seed.lines {
			if strings.HasPrefix(l, "external:") {
				t.Fatalf("a seed the router refused printed %q", l)
			}
		}
		t.Logf("seed given another port by the router: %s", strings.SplitN(strings.TrimSpace(seed.errText()), "\n", 2)[0])
	})
}
