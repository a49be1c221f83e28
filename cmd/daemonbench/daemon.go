package main

import (
	"maps"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/shoal-p2p/shoal/internal/trsettings"

	"github.com/shoal-p2p/shoal/daemon/rpc"
	"github.com/shoal-p2p/shoal/internal/benchproc"
)

// daemon is one of the daemons measured: how to start it on its folders.
type daemon struct {
	name    string // "shoal" or "transmission"
	dir     string // its own folder: session/config folder, logs
	argv    []string
	rpcURL  string
	timeout time.Duration
	// setup prepares dir before the first start (Transmission's
	// settings.json).
	setup func() error

	proc   *benchproc.Proc
	starts int
}

// newDaemon describes target name: its folders under dir, the data folder
// as its download folder, peers on 127.0.0.1:peerPort, its RPC on a free
// loopback port.
func newDaemon(name string, cfg *config, dir, data string, peerPort int) (*daemon, error) {
	d := &daemon{name: name, dir: dir, timeout: cfg.timeout}
	d.setup = func() error { return os.MkdirAll(dir, 0o755) }
	rpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	rpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rpcPort))
	d.rpcURL = "http://" + rpcAddr + rpc.Path
	switch name {
	case "shoal":
		d.argv = []string{cfg.shoal, "daemon", "--session", filepath.Join(dir, "session"), "-o", data,
			"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort)),
			"--no-dht", "--no-lsd", "--no-port-map", "--rpc", rpcAddr}
	case "transmission":
		cfgDir := filepath.Join(dir, "config")
		// -f: in the foreground, so the process we watch is the daemon.
		d.argv = []string{cfg.transmission, "-f", "-g", cfgDir, "-w", data, "--no-portmap", "--no-dht", "--log-error"}
		d.setup = func() error {
			if err := os.MkdirAll(cfgDir, 0o755); err != nil {
				return err
			}
			js, err := json.MarshalIndent(transmissionSettings(peerPort, rpcPort, data), "", "  ")
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(cfgDir, "settings.json"), js, 0o600)
		}
	}
	return d, nil
}

// transmissionSettings is transmission-daemon 3.00's settings.json for the
// benchmark: talking to no one (no DHT, LPD, PEX, uTP, port mapping or
// blocklist), its RPC on loopback without auth, every added torrent
// started and, its data being there, seeding with no ratio or idle limit
// and no seed queue holding any back.
func transmissionSettings(peerPort, rpcPort int, data string) map[string]any {
	s := trsettings.Quiet(peerPort)
	maps.Copy(s, map[string]any{
		"idle-seeding-limit-enabled": false,
		"ratio-limit-enabled":        false,
		"seed-queue-enabled":         false,
		"download-dir":               data,
		"message-level":              1,
	})
	maps.Copy(s, trsettings.LoopbackRPC(rpcPort))
	return s
}

// start runs the daemon (again); its output goes to a log in its folder.
func (d *daemon) start(ctx context.Context) error {
	d.starts++
	p, err := benchproc.Start(ctx, benchproc.Spec{
		Name:      d.name,
		LogPath:   filepath.Join(d.dir, fmt.Sprintf("%s-%d.log", d.name, d.starts)),
		Argv:      d.argv,
		Pdeathsig: true,
	})
	if err != nil {
		return err
	}
	d.proc = p
	return nil
}

func (d *daemon) pid() int { return d.proc.Cmd.Process.Pid }

// stop sends SIGTERM and waits for the daemon to exit on its own, as a
// user's `systemctl stop` would; it reports how long that took and
// whether it exited cleanly. Past the timeout it is killed, and that is
// an error: the restart that follows would not measure a clean one.
func (d *daemon) stop() (time.Duration, error) {
	began := time.Now()
	if err := syscall.Kill(d.pid(), syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-d.proc.Done:
	case <-time.After(d.timeout):
		d.proc.Stop()
		return 0, fmt.Errorf("still running %v after SIGTERM; killed%s", d.timeout, d.proc.LogTail(2000))
	}
	took := time.Since(began)
	if d.proc.Err != nil {
		return took, fmt.Errorf("exit after SIGTERM: %v%s", d.proc.Err, d.proc.LogTail(2000))
	}
	return took, nil
}

// client is the RPC client both daemons are driven with.
func (d *daemon) client() *rpc.Client {
	return &rpc.Client{URL: d.rpcURL, HTTP: &http.Client{Timeout: time.Minute}}
}

// waitRPC polls until the RPC answers session-get, and returns the
// version it reports.
func (d *daemon) waitRPC(ctx context.Context, c *rpc.Client) (string, error) {
	deadline := time.Now().Add(d.timeout)
	for {
		s, err := c.Session(ctx)
		if err == nil {
			return s.Version, nil
		}
		if !errors.Is(err, rpc.ErrUnreachable) {
			return "", err
		}
		select {
		case <-d.proc.Done:
			return "", fmt.Errorf("exited before its RPC answered: %v%s", d.proc.Err, d.proc.LogTail(2000))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("RPC not answering at %s after %v: %v", d.rpcURL, d.timeout, err)
		}
	}
}

// progress is what waitSeeding saw.
type progress struct {
	listed, seeding int
	// checked counts the torrents seen queued for or checking their data.
	checked int
	// errs is the first error a torrent reported, if any.
	errs string
}

// waitSeeding polls torrent-get until it lists n torrents, all seeding.
// It returns what it last saw, with an error if the timeout passed first.
func (d *daemon) waitSeeding(ctx context.Context, c *rpc.Client, n int) (progress, error) {
	deadline := time.Now().Add(d.timeout)
	checking := map[int]bool{}
	var p progress
	for {
		ts, err := c.Torrents(ctx, nil, "id", "status", "error", "errorString")
		if err != nil {
			return p, err
		}
		p = progress{listed: len(ts)}
		for _, t := range ts {
			switch t.Status {
			case 1, 2: // queued to check, checking
				checking[t.ID] = true
			case 6:
				p.seeding++
			}
			if t.Error != 0 && p.errs == "" {
				p.errs = fmt.Sprintf("torrent %d: %s", t.ID, t.ErrorString)
			}
		}
		p.checked = len(checking)
		if p.listed == n && p.seeding == n {
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("after %v: %d torrents listed, %d seeding, of %d (%s)", d.timeout, p.listed, p.seeding, n, p.errs)
		}
		select {
		case <-d.proc.Done:
			return p, fmt.Errorf("exited: %v%s", d.proc.Err, d.proc.LogTail(2000))
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
