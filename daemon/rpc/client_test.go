package rpc

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/v1test"
)

// v1Torrent makes a single-file v1 .torrent of data, which Transmission
// 3.00 reads, and returns it with its info-hash.
func v1Torrent(name string, data []byte) ([]byte, string) {
	const pieceLen = 16384
	var pieces []byte
	for off := 0; off < len(data); off += pieceLen {
		end := min(off+pieceLen, len(data))
		h := sha1.Sum(data[off:end])
		pieces = append(pieces, h[:]...)
	}
	info := fmt.Sprintf("d6:lengthi%de4:name%d:%s12:piece lengthi%de6:pieces%d:%se",
		len(data), len(name), name, pieceLen, len(pieces), pieces)
	sum := sha1.Sum([]byte(info))
	return []byte("d4:info" + info + "e"), hex.EncodeToString(sum[:])
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// waitStatus polls until torrent id has the status, or fails the test.
func waitStatus(t *testing.T, c *Client, id, status int) Torrent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts, err := c.Torrents(context.Background(), []any{id})
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].Status == status {
			return ts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("torrent %d: %+v, want status %d", id, ts, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The Client speaks real Transmission: transmission-daemon 3.00 with
// auth, driven through every helper shoal remote uses.
func TestClientAgainstTransmissionDaemon(t *testing.T) {
	dir := t.TempDir()
	data := testData(100000)
	if err := os.WriteFile(filepath.Join(dir, "seed.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := v1test.StartTransmissionDaemon(t, dir, "alice", "pw")
	ctx := context.Background()

	if _, err := (&Client{URL: d.RPC}).Session(ctx); err == nil || !strings.Contains(err.Error(), "wants a user name and password") {
		t.Fatalf("without credentials: %v", err)
	}
	if _, err := (&Client{URL: d.RPC, User: "alice", Password: "wrong"}).Session(ctx); err == nil || !strings.Contains(err.Error(), `refused user "alice"`) {
		t.Fatalf("wrong password: %v", err)
	}
	c := &Client{URL: d.RPC, User: "alice", Password: "pw"}
	s, err := c.Session(ctx)
	if err != nil || !strings.HasPrefix(s.Version, "3.00") || s.RPCVersion != 16 || s.DownloadDir != dir {
		t.Fatalf("session-get: %+v %v", s, err)
	}

	meta, hash := v1Torrent("seed.bin", data)
	a, err := c.Add(ctx, AddArgs{Metainfo: meta, Paused: true})
	if err != nil || a.HashString != hash || a.Name != "seed.bin" || a.Duplicate {
		t.Fatalf("add metainfo: %+v %v", a, err)
	}
	if dup, err := c.Add(ctx, AddArgs{Metainfo: meta}); err != nil || !dup.Duplicate || dup.ID != a.ID {
		t.Fatalf("add again: %+v %v", dup, err)
	}
	magnet := "magnet:?xt=urn:btih:" + strings.Repeat("5a", 20) + "&dn=elsewhere"
	m, err := c.Add(ctx, AddArgs{Filename: magnet, Paused: true})
	if err != nil || m.ID == a.ID || m.HashString != strings.Repeat("5a", 20) {
		t.Fatalf("add magnet: %+v %v", m, err)
	}
	waitStatus(t, c, a.ID, 0)
	ts, err := c.Torrents(ctx, nil)
	if err != nil || len(ts) != 2 || ts[0].Name != "seed.bin" || ts[0].TotalSize != int64(len(data)) || ts[1].Name != "elsewhere" {
		t.Fatalf("torrent-get: %+v %v", ts, err)
	}

	// By hash, as shoal remote passes a HASH argument.
	if err := c.Start(ctx, []any{hash}); err != nil {
		t.Fatal(err)
	}
	seeding := waitStatus(t, c, a.ID, 6)
	if seeding.PercentDone != 1 || seeding.LeftUntilDone != 0 || seeding.HaveValid != int64(len(data)) {
		t.Fatalf("seeding: %+v", seeding)
	}
	if err := c.Stop(ctx, []any{a.ID}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, a.ID, 0)
	if err := c.Verify(ctx, []any{a.ID}); err != nil {
		t.Fatal(err)
	}

	files, err := c.Torrents(ctx, []any{a.ID}, FileFields...)
	if err != nil || len(files) != 1 || len(files[0].Files) != 1 || files[0].Files[0].Name != "seed.bin" || !files[0].FileStats[0].Wanted {
		t.Fatalf("files: %+v %v", files, err)
	}
	if err := c.SetFiles(ctx, []any{a.ID}, nil, []int{0}); err != nil {
		t.Fatal(err)
	}
	if files, _ = c.Torrents(ctx, []any{a.ID}, FileFields...); files[0].FileStats[0].Wanted {
		t.Fatalf("files-unwanted ignored: %+v", files[0].FileStats)
	}

	if err := c.Remove(ctx, []any{m.ID}, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, []any{a.ID}, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, statErr := os.Stat(filepath.Join(dir, "seed.bin"))
		ts, err := c.Torrents(ctx, nil)
		if err == nil && len(ts) == 0 && os.IsNotExist(statErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after remove: %+v %v, data: %v", ts, err, statErr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var re *ResultError
	if err := c.Call(ctx, "torrent-frobnicate", nil, nil); !errors.As(err, &re) || re.Result != "method name not recognized" {
		t.Fatalf("unknown method: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + Path
	l.Close()
	_, err = (&Client{URL: url}).Torrents(context.Background(), nil)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), url) {
		t.Fatalf("closed port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Client{URL: url}).Session(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// The Client's typed helpers against shoal's own handler: every field of
// Torrent decodes from what the handler writes.
func TestClientAgainstHandler(t *testing.T) {
	ctrl, c, _ := setup(t)
	a := ctrl.addSample("alpha")
	ctx := context.Background()
	ts, err := c.Torrents(ctx, nil)
	if err != nil || len(ts) != 1 {
		t.Fatalf("torrent-get: %+v %v", ts, err)
	}
	got := ts[0]
	if got.ID != 1 || got.Name != "alpha" || got.HashString != a.Hash || got.Status != 4 || got.PercentDone != 0.5 ||
		got.SizeWhenDone != 200000 || got.LeftUntilDone != 100000 || got.HaveValid != 100000 || got.UploadRatio != 0.5 ||
		got.ETA != 20 || got.PeersConnected != 1 || got.DownloadDir != ctrl.dir || got.AddedDate != a.Added.Unix() ||
		got.PieceCount != 4 || got.PieceSize != 1<<16 || got.Comment != "a comment" || got.MagnetLink != a.Magnet {
		t.Fatalf("torrent-get decoded: %+v", got)
	}
	add, err := c.Add(ctx, AddArgs{Filename: "magnet:?xt=urn:btih:" + strings.Repeat("12", 20) + "&dn=m", Paused: true, DownloadDir: ctrl.dir, FilesUnwanted: []int{0}})
	if err != nil || add.ID != 2 || add.Name != "m" || add.Duplicate {
		t.Fatalf("add: %+v %v", add, err)
	}
	if req := ctrl.addRequests()[0]; !req.Paused || req.Dir != ctrl.dir || len(req.Unwanted) != 1 {
		t.Fatalf("add request: %+v", req)
	}
	if dup, err := c.Add(ctx, AddArgs{Filename: "magnet:?xt=urn:btih:" + strings.Repeat("12", 20) + "&dn=m"}); err != nil || !dup.Duplicate || dup.ID != 2 {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	if err := c.SetFiles(ctx, []any{a.Hash}, []int{0}, []int{1}); err != nil {
		t.Fatal(err)
	}
	fs, err := c.Torrents(ctx, []any{1}, FileFields...)
	if err != nil || len(fs) != 1 || len(fs[0].Files) != 2 || fs[0].Files[1].Name != "alpha/b.txt" || fs[0].FileStats[1].Wanted || fs[0].FileStats[1].Priority != 1 {
		t.Fatalf("files: %+v %v", fs, err)
	}
	for _, step := range []struct {
		do   func() error
		want string
	}{
		{func() error { return c.Stop(ctx, []any{1, 2}) }, "stop [1 2]"},
		{func() error { return c.Start(ctx, []any{2}) }, "start [2]"},
		{func() error { return c.Verify(ctx, []any{1}) }, "verify [1]"},
		{func() error { return c.Remove(ctx, []any{2}, true) }, "remove(delete=true) [2]"},
	} {
		if err := step.do(); err != nil || ctrl.lastCall() != step.want {
			t.Fatalf("%s: %v, last call %q", step.want, err, ctrl.lastCall())
		}
	}
}
