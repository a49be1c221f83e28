package v1test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/trsettings"
)

// Daemon is a running transmission-daemon 3.00, for tests of Transmission
// RPC clients: the real server they must speak to.
type Daemon struct {
	*Client
	// RPC is the URL of its RPC, http://127.0.0.1:PORT/transmission/rpc.
	RPC string
}

// StartTransmissionDaemon runs transmission-daemon in the foreground with
// a settings.json of the test's own (talking to no one, as
// transmission-cli in StartTransmission) and its RPC on a loopback port,
// download folder dir. With user set, the RPC requires that user and
// password. It returns once the RPC answers.
func StartTransmissionDaemon(t testing.TB, dir, user, password string) *Daemon {
	t.Helper()
	Require(t, "transmission-daemon")
	cfg := t.TempDir()
	peer, rpcPort := freePort(t), freePort(t)
	settings := transmissionSettings(peer, true)
	maps.Copy(settings, trsettings.LoopbackRPC(int(rpcPort)))
	for k, v := range map[string]any{
		"rpc-authentication-required": user != "", "rpc-username": user, "rpc-password": password,
		"download-dir": dir, "ratio-limit-enabled": false,
		// Nothing of its own added by the daemon: only what the test adds.
		"watch-dir-enabled": false, "start-added-torrents": true,
	} {
		settings[k] = v
	}
	js, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), js, 0o600); err != nil {
		t.Fatalf("transmission-daemon settings: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Client: &Client{Name: "transmission-daemon", Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peer), Dir: abs},
		RPC:    fmt.Sprintf("http://127.0.0.1:%d/transmission/rpc", rpcPort),
	}
	// -f: in the foreground, so that it dies with its process group; -T
	// (no auth) is left to settings.json, which may ask for it.
	d.start(t, exec.Command("transmission-daemon", "-f", "-g", cfg, "-w", abs, "--no-portmap", "--no-dht", "--log-error"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(d.RPC)
		if err == nil {
			resp.Body.Close()
			// 409 (the session-id handshake) or 401 (auth) once it serves.
			if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusUnauthorized {
				return d
			}
		}
		if code, ok := d.exited(); ok {
			t.Fatalf("transmission-daemon exited (%d):\n%s", code, d.logTail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission-daemon RPC not answering at %s: %v\n%s", d.RPC, err, d.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
