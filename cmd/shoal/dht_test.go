package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/dht"
)

// Every `shoal dht` here listens on 127.0.0.1 and is given --bootstrap, so
// none of them contacts the public routers.

// runningDHT is a `shoal dht` process and its UDP address.
type runningDHT struct {
	*proc
	addr string
}

// startDHT runs `shoal dht --listen 127.0.0.1:0 args...` with the user cache
// folder in cache, and waits for its listening line.
func startDHT(t *testing.T, cache string, args ...string) *runningDHT {
	t.Helper()
	cmd := exec.Command(shoalBin, append([]string{"dht", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "HOME="+cache)
	p := startCmd(t, t.TempDir(), cmd)
	addr := p.field(t, "listening")
	if host, port, err := net.SplitHostPort(addr); err != nil || port == "0" || host != "127.0.0.1" {
		t.Fatalf("listening on %q: want 127.0.0.1 and the bound port", addr)
	}
	return &runningDHT{proc: p, addr: addr}
}

func TestDHTCommandBootstrapSaveAndStop(t *testing.T) {
	cache := t.TempDir()
	dir := t.TempDir()
	first := startDHT(t, cache, "--bootstrap", "none", "--state", filepath.Join(dir, "first.state"))
	second := startDHT(t, cache, "--bootstrap", first.addr, "--state", filepath.Join(dir, "second.state"))

	// A node joining through the first one must be told about the second:
	// proof that the second joined and the first hands it out.
	probe, err := dht.New(context.Background(), dht.Config{
		ListenAddr:      "127.0.0.1:0",
		Bootstrap:       []string{first.addr},
		RefreshInterval: 300 * time.Millisecond,
		LookupTimeout:   3 * time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(15 * time.Second)
	for probe.Stats().GoodNodes < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("probe knows %+v; want both shoal dht nodes\nfirst: %s\nsecond: %s", probe.Stats(), first.errText(), second.errText())
		}
		time.Sleep(50 * time.Millisecond)
	}

	if code := second.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d; want 0 (stderr %s)", code, second.errText())
	}
	if code := first.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("SIGINT: exit %d; want 0 (stderr %s)", code, first.errText())
	}

	// The saved table makes a restart warm without any bootstrap node.
	warm, err := dht.New(context.Background(), dht.Config{
		ListenAddr: "127.0.0.1:0",
		Bootstrap:  []string{},
		StateFile:  filepath.Join(dir, "second.state"),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	if s := warm.Stats(); s.Nodes < 1 {
		t.Fatalf("table saved by shoal dht has %d nodes", s.Nodes)
	}
}

func TestDHTCommandDefaultStateFile(t *testing.T) {
	cache := t.TempDir()
	rd := startDHT(t, cache, "--bootstrap", "none")
	if code := rd.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, rd.errText())
	}
	_, port, _ := net.SplitHostPort(rd.addr)
	if _, err := os.Stat(filepath.Join(cache, "shoal", fmt.Sprintf("dht-%s.state", port))); err != nil {
		t.Fatalf("default state file: %v", err)
	}
}

func TestDHTCommandBadUsage(t *testing.T) {
	dir := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + dir, "HOME=" + dir}
	for _, args := range [][]string{
		{"dht", "--listen", "nonsense"},
		{"dht", "--listen", "127.0.0.1:70000"},
		{"dht", "--listen", "127.0.0.1:0", "--bootstrap", "no-port"},
		{"dht", "--listen", "127.0.0.1:0", "--bootstrap", "127.0.0.1:0"},
		{"dht", "--listen", "127.0.0.1:0", "--bootstrap", "none", "--bootstrap", "127.0.0.1:1"},
		{"dht", "--listen", "127.0.0.1:0", "--bootstrap", "none", "extra"},
		{"dht", "--no-such-flag"},
	} {
		r := shoal(t, dir, env, args...)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("shoal %v: exit %d, stdout %q; want 2 and nothing (stderr %s)", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestDHTCommandPortInUse(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	r := shoal(t, dir, []string{"XDG_CACHE_HOME=" + dir, "HOME=" + dir}, "dht", "--listen", c.LocalAddr().String(), "--bootstrap", "none")
	if r.code != 1 || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("exit %d, stderr %q; want 1 and the bind error", r.code, r.stderr)
	}
}
