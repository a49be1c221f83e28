package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/daemon/rpc"
	"github.com/shoal-p2p/shoal/piece"
)

// A v2 .torrent without its piece layers, added to a real `shoal daemon`,
// waits as a magnet does (downloading, 0 %, no error) until a seeder turns
// up through the torrent's tracker, fetches the layers from it, and then
// downloads the data byte for byte. The completed .torrent is kept in the
// session folder: after a restart, with the seeder gone, the torrent is
// back seeding without asking anyone for its layers again.
func TestDaemonFetchesMissingPieceLayers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	randomFiles(t, filepath.Join(dir, "share"), map[string]int{"big.bin": 600_000, "sub/odd.dat": 200_001, "small": 10})
	url := announceURL(t)
	if r := shoal(t, dir, nil, "create", "share", "-o", "share.torrent", "-t", url, "--piece-length", "64k"); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	stripped := stripLayers(t, filepath.Join(dir, "share.torrent"))
	if m, err := piece.Parse(stripped); err != nil || m.Info.HasV1() || len(m.MissingLayers()) != 2 {
		t.Fatalf("stripped torrent: err %v, want v2-only lacking 2 layers", err)
	}

	// The daemon's info log says when it fetches layers.
	infoLogs := []string{"SHOAL_LOG_LEVEL=info"}
	session, dl := t.TempDir(), filepath.Join(t.TempDir(), "dl")
	d := startDaemonEnv(t, infoLogs, session, dl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	added, err := d.client.Add(ctx, rpc.AddArgs{Metainfo: stripped})
	if err != nil {
		t.Fatalf("torrent-add: %v: %s", err, d.errText())
	}
	if added.Name != "share" {
		t.Fatalf("added %+v", added)
	}
	// No seeder yet: the torrent waits for its layers the way a magnet
	// waits for its metadata, not stopped on an error.
	const downloading, seeding = 4, 6
	for range 5 {
		tr := d.torrent(t, added.HashString)
		if tr == nil || tr.Status != downloading || tr.Error != 0 || tr.ErrorString != "" || tr.PercentDone != 0 {
			t.Fatalf("while the layers are missing: %+v\n%s", tr, d.errText())
		}
		time.Sleep(200 * time.Millisecond)
	}

	seed := start(t, dir, "seed", "share", "--torrent", "share.torrent", "--listen", "127.0.0.1:0",
		"--no-dht", "--no-lsd", "--no-port-map", "--super-seed=false")
	seed.field(t, "magnet")
	eventually(t, 12*time.Second, func() bool {
		tr := d.torrent(t, added.HashString)
		return tr != nil && tr.PercentDone == 1
	}, func() string { return d.errText() })
	sameFiles(t, filepath.Join(dir, "share"), filepath.Join(dl, "share"))
	if !strings.Contains(d.errText(), "piece layers fetched") {
		t.Errorf("the daemon did not say it fetched the layers:\n%s", d.errText())
	}

	// The completed .torrent is in the session folder.
	saved, err := filepath.Glob(filepath.Join(session, "torrents", "*.torrent"))
	if err != nil || len(saved) != 1 {
		t.Fatalf("session torrents: %v %v", saved, err)
	}
	sd, err := os.ReadFile(saved[0])
	if err != nil {
		t.Fatal(err)
	}
	if m, err := piece.Parse(sd); err != nil || len(m.MissingLayers()) != 0 {
		t.Fatalf("saved %s: err %v, still lacking layers", saved[0], err)
	}

	// Restarted with the seeder gone: no peer could send the layers, so
	// seeding again shows they came from the session folder.
	seed.stop(t, syscall.SIGTERM)
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("daemon exit %d: %s", code, d.errText())
	}
	d2 := startDaemonEnv(t, infoLogs, session, dl)
	eventually(t, 5*time.Second, func() bool {
		tr := d2.torrent(t, added.HashString)
		return tr != nil && tr.Status == seeding && tr.PercentDone == 1
	}, func() string { return d2.errText() })
	if strings.Contains(d2.errText(), "lacks piece layers") {
		t.Errorf("layers fetched again after the restart:\n%s", d2.errText())
	}
}
