package v1test

import (
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// StartTransmissionWith is StartTransmission with extra settings.json
// entries over the harness's own, such as "encryption": 2, which makes
// Transmission refuse any peer that does not speak MSE.
func StartTransmissionWith(t testing.TB, torrent, dir string, seed bool, extra map[string]any) *Client {
	t.Helper()
	Require(t, "transmission-cli")
	cfg := t.TempDir()
	port := freePort(t)
	settings := transmissionSettings(port, seed)
	maps.Copy(settings, extra)
	js, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), js, 0o644); err != nil {
		t.Fatalf("transmission settings: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{
		Name:     "transmission",
		Addr:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		Dir:      abs,
		ready:    "Verification is done",
		complete: `State changed from "Incomplete" to "Complete"`,
	}
	// -M -D -U: no port mapping and no speed limits, whatever settings.json
	// says; the rest is in settings.json.
	c.start(t, exec.Command("transmission-cli", "-g", cfg, "-w", abs, "-M", "-D", "-U", torrent))
	return c
}
