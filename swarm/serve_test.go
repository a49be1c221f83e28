package swarm

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// logBuf keeps a node's log lines for the test to count; with -v they are
// echoed too.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns the lines holding every one of parts.
func (l *logBuf) count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// alarms counts WARN and ERROR lines.
func (l *logBuf) alarms() int { return l.count("level=WARN") + l.count("level=ERROR") }

func newLogBuf() (*logBuf, *slog.Logger) {
	l := &logBuf{}
	return l, slog.New(slog.NewTextHandler(l, nil))
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fileIndex finds a file of m by its last path component.
func fileIndex(t *testing.T, m *piece.MetaInfo, name string) int {
	t.Helper()
	for i, f := range m.Info.Files {
		if f.Path[len(f.Path)-1] == name {
			return i
		}
	}
	t.Fatalf("no file %s", name)
	return -1
}

// faultOf returns a copy of what n's torrent records about file fi.
func faultOf(n *node, fi int) (fileFault, bool) {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	if f := n.t.srv.files[fi]; f != nil {
		return *f, true
	}
	return fileFault{}, false
}

// A seeder whose file becomes unreadable mid-transfer says so once, tells
// the downloader (rejects, which it heeds rather than asking again), goes
// on serving its other file, and serves the file again once it is back:
// the download completes, with nothing wasted and nobody banned.
func TestSeederFileUnreadableMidTransfer(t *testing.T) {
	cases := []struct {
		name        string
		break_, fix func(path string, data []byte) error
	}{
		{"truncated",
			func(path string, _ []byte) error { return os.Truncate(path, 1000) },
			func(path string, data []byte) error { return os.WriteFile(path, data, 0o644) }},
		{"replaced by a folder",
			func(path string, _ []byte) error {
				return errors.Join(os.Rename(path, path+".away"), os.Mkdir(path, 0o755))
			},
			func(path string, _ []byte) error {
				return errors.Join(os.Remove(path), os.Rename(path+".away", path))
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			const big = 3 << 20
			m := content(t, src, "data", map[string]int{"a.bin": big, "b.bin": 1 << 20}, 64<<10)
			logs, lg := newLogBuf()
			seeder := startNode(t, m, src, Config{MaxUploadRate: 1 << 20, Logger: lg}, nil)
			leech := startNode(t, m, t.TempDir(), Config{}, nil)
			leech.t.AddPeers(seeder.addr())
			waitFor(t, 10*time.Second, "no transfer", func() bool { return leech.t.Stats().Downloaded > 256<<10 })

			fi := fileIndex(t, m, "a.bin")
			path := filepath.Join(src, "data", "a.bin")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.break_(path, data); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the seeder did not notice", func() bool {
				f, _ := faultOf(seeder, fi)
				return f.unreadable
			})
			before := seeder.t.Stats().Uploaded
			time.Sleep(2 * time.Second)

			if n := logs.alarms(); n != 1 || logs.count("level=ERROR", "cannot read file", "a.bin") != 1 {
				t.Errorf("want one ERROR line naming the file, got %d alarms:\n%s", n, logs)
			}
			f, _ := faultOf(seeder, fi)
			// Each block of the file refused at most about once: the
			// downloader does not ask again for what was refused.
			if blocks := big / piece.BlockSize; f.refused > 2*blocks {
				t.Errorf("%d requests refused in 2s for a file of %d blocks: request/reject ping-pong", f.refused, blocks)
			}
			if f.refused == 0 {
				t.Error("no request was refused: the downloader was not told")
			}
			withheld := 0
			leech.t.mu.Lock()
			for p := range leech.t.peers {
				withheld += len(p.withheld)
			}
			leech.t.mu.Unlock()
			// The other file is still served; the broken one is not (a
			// megabyte a second upload cap, so 2s could carry 2 MiB).
			if up := seeder.t.Stats().Uploaded - before; up > 1<<20+256<<10 {
				t.Errorf("%d bytes uploaded in 2s while a.bin was unreadable: more than b.bin holds", up)
			}
			t.Logf("while broken: %d requests refused, %d pieces withheld by the downloader", f.refused, withheld)

			if err := c.fix(path, data); err != nil {
				t.Fatal(err)
			}
			waitDone(t, leech, 20*time.Second)
			sameTree(t, filepath.Join(src, "data"), filepath.Join(leech.st.Dir(), "data"))
			if s := leech.t.Stats(); s.Wasted != 0 || s.Banned != 0 || s.Peers != 1 {
				t.Errorf("downloader: %+v; want nothing wasted, nobody banned, the seeder still connected", s)
			}
			if logs.count("level=INFO", "can be read again", "a.bin") != 1 {
				t.Errorf("no line saying the file is served again:\n%s", logs)
			}
		})
	}
}

// A seeder whose file was edited after hashing (same size, some bytes
// changed) notices, checks each piece before serving it, and refuses the
// two that no longer match: the downloader gets every other piece, is fed
// no bad data, bans nobody. Put back, the pieces are served again.
func TestSeederChangedDataNotServed(t *testing.T) {
	src := t.TempDir()
	const pl = 64 << 10
	m := content(t, src, "data", map[string]int{"a.bin": 1 << 20, "b.bin": 512 << 10}, pl)
	logs, lg := newLogBuf()
	seeder := startNode(t, m, src, Config{Logger: lg}, nil)
	fi := fileIndex(t, m, "a.bin")
	f0 := m.Info.Files[fi].FirstPiece
	bad := []int{f0 + 2, f0 + 5}
	path := filepath.Join(src, "data", "a.bin")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Clone(orig)
	for _, pc := range bad {
		edited[(pc-f0)*pl+100] ^= 0xff
	}
	st, _ := os.Stat(path)
	os.WriteFile(path, edited, 0o644)
	later := st.ModTime().Add(2 * time.Second)
	os.Chtimes(path, later, later)
	waitFor(t, 3*time.Second, "the seeder did not notice the change", func() bool {
		return logs.count("file changed on disk", "a.bin") > 0
	})

	leech := startNode(t, m, t.TempDir(), Config{}, nil)
	leech.t.AddPeers(seeder.addr())
	waitFor(t, 15*time.Second, "the unchanged pieces did not arrive", func() bool {
		return leech.t.Stats().PiecesDone == m.Info.NumPieces-len(bad)
	})
	time.Sleep(time.Second)
	s := leech.t.Stats()
	if s.PiecesDone != m.Info.NumPieces-len(bad) || s.Wasted != 0 || s.Banned != 0 || s.Peers != 1 {
		t.Fatalf("downloader: %+v; want all but %d pieces, nothing wasted, nobody banned", s, len(bad))
	}
	seeder.t.mu.Lock()
	for _, pc := range bad {
		if seeder.t.srv.bad == nil || !seeder.t.srv.bad.Has(pc) {
			t.Errorf("piece %d not marked bad", pc)
		}
	}
	seeder.t.mu.Unlock()
	if n := logs.count("level=WARN", "no longer match", "a.bin"); n != 1 || logs.alarms() != 1 {
		t.Errorf("want one WARN about the changed pieces, got %d (%d alarms):\n%s", n, logs.alarms(), logs)
	}
	if f, _ := faultOf(seeder, fi); f.refused > 4*len(bad)*pl/piece.BlockSize {
		t.Errorf("%d requests refused for %d bad pieces: request/reject ping-pong", f.refused, len(bad))
	}

	os.WriteFile(path, orig, 0o644)
	later = later.Add(2 * time.Second)
	os.Chtimes(path, later, later)
	waitDone(t, leech, 10*time.Second)
	sameTree(t, filepath.Join(src, "data"), filepath.Join(leech.st.Dir(), "data"))
	if s := leech.t.Stats(); s.Wasted != 0 || s.Banned != 0 {
		t.Errorf("downloader: %+v", s)
	}
}

// A change storage cannot see (same size, mtime put back) is caught when
// a peer asks for the piece's leaf hashes, which a downloader does when
// the piece failed for it: the seeder checks its copy first, refuses the
// hashes, and stops serving and announcing the piece.
func TestHashRequestRechecksPiece(t *testing.T) {
	src := t.TempDir()
	const pl = 64 << 10
	m := content(t, src, "data", map[string]int{"a.bin": 512 << 10, "b.bin": 100 << 10}, pl)
	seeder := startNode(t, m, src, Config{}, nil)
	fi := fileIndex(t, m, "a.bin")
	pc := m.Info.Files[fi].FirstPiece + 3
	path := filepath.Join(src, "data", "a.bin")
	st, _ := os.Stat(path)
	data, _ := os.ReadFile(path)
	data[3*pl+10] ^= 1
	os.WriteFile(path, data, 0o644)
	os.Chtimes(path, st.ModTime(), st.ModTime())

	ih := wire.TruncateV2(m.Info.Hash)
	conn := rawPeer(t, seeder, ih)
	defer conn.Close()
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	next := func(want ...wire.ID) wire.Message {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			msg, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %v: %v", want, err)
			}
			for _, id := range want {
				if !msg.KeepAlive && msg.ID == id {
					return msg
				}
			}
		}
	}
	hr := m.Info.LeafRequest(pc)
	conn.Write(wire.AppendHashRequest(nil, hr.PiecesRoot, uint32(hr.BaseLayer), uint32(hr.Index), uint32(hr.Length), uint32(hr.ProofLayers)))
	if msg := next(wire.HashReject, wire.Hashes); msg.ID != wire.HashReject {
		t.Fatal("the seeder vouched for leaf hashes of a piece that no longer matches")
	}
	conn.Write(wire.AppendInterested(nil))
	next(wire.Unchoke)
	conn.Write(wire.AppendRequest(nil, uint32(pc), 0, piece.BlockSize))
	conn.Write(wire.AppendRequest(nil, uint32(pc-1), 0, piece.BlockSize))
	if msg := next(wire.Reject, wire.Piece); msg.ID != wire.Reject || msg.Index != uint32(pc) {
		t.Fatalf("request for the changed piece answered with %v of piece %d", msg.ID, msg.Index)
	}
	if msg := next(wire.Reject, wire.Piece); msg.ID != wire.Piece || msg.Index != uint32(pc-1) {
		t.Fatalf("request for a good piece answered with %v of piece %d", msg.ID, msg.Index)
	}

	// A newcomer is not shown the piece.
	conn2 := rawPeer(t, seeder, ih)
	defer conn2.Close()
	r2 := wire.NewReader(conn2, wire.Limits{NumPieces: m.Info.NumPieces})
	msg, err := r2.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID != wire.Bitfield || msg.Payload[pc/8]&(0x80>>(pc%8)) != 0 || msg.Payload[(pc-1)/8]&(0x80>>((pc-1)%8)) == 0 {
		t.Fatalf("newcomer's first message %v %x: want a bitfield without piece %d", msg.ID, msg.Payload, pc)
	}
}

// A plain peer (no fast extension) has no reject: a seeder that cannot
// read what it asks for chokes it, and keeps it, rather than dropping it
// for the seeder's own fault.
func TestPlainPeerChokedNotDropped(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", multiFiles, 64<<10)
	broken := startNode(t, m, t.TempDir(), Config{}, allHave(m.Info.NumPieces))
	conn, err := net.Dial("tcp", broken.c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := wire.WriteHandshake(conn, wire.Handshake{InfoHash: wire.TruncateV2(m.Info.Hash), PeerID: NewPeerID()}); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadHandshake(conn); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	next := func(id wire.ID) {
		t.Helper()
		for {
			msg, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %v: %v", id, err)
			}
			if !msg.KeepAlive && msg.ID == id {
				return
			}
		}
	}
	conn.Write(wire.AppendInterested(nil))
	next(wire.Unchoke)
	conn.Write(wire.AppendRequest(nil, 0, 0, piece.BlockSize))
	next(wire.Choke)
	// Asked again while choked: ignored, as BEP 3 has it, not a violation.
	conn.Write(wire.AppendRequest(nil, 0, 0, piece.BlockSize))
	time.Sleep(300 * time.Millisecond)
	if s := broken.t.Stats(); s.Peers != 1 {
		t.Fatalf("plain peer dropped for the seeder's fault: %+v", s)
	}
}

// The bookkeeping of an unreadable file, without peers: a thousand read
// errors make one line and a count; its pieces are neither served nor
// shown, the other file's are; a probe that reads it puts it back, to be
// checked piece by piece before serving; a bad piece is not served.
func TestUnreadableFileBookkeeping(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 256 << 10, "b.bin": 128 << 10}, 64<<10)
	logs, lg := newLogBuf()
	n := startNode(t, m, src, Config{Logger: lg}, nil)
	tor := n.t
	fa, fb := fileIndex(t, m, "a.bin"), fileIndex(t, m, "b.bin")
	alo, ahi := tor.pieceRange(fa)
	blo, _ := tor.pieceRange(fb)

	tor.mu.Lock()
	for range 1000 {
		tor.readFailed(fa, errors.New("input/output error"))
	}
	f := tor.srv.files[fa]
	have := tor.servableHave()
	for pc := alo; pc < ahi; pc++ {
		if tor.servable(pc) || have.Has(pc) {
			t.Errorf("piece %d of the unreadable file servable or shown", pc)
		}
	}
	if !tor.servable(blo) || !have.Has(blo) {
		t.Error("the other file's piece is not served")
	}
	refused := f.refused
	f.nextProbe = time.Time{}
	tor.mu.Unlock()
	if refused != 999 || logs.count("level=ERROR", "cannot read file", "a.bin", "input/output error") != 1 || logs.alarms() != 1 {
		t.Fatalf("refused %d, log:\n%s", refused, logs)
	}

	tor.serveTick(time.Now()) // the file is fine on disk: the probe reads it
	tor.mu.Lock()
	if f.unreadable || !f.suspect || !tor.srv.alert.Load() {
		t.Fatalf("after a good probe: %+v, alert %v", *f, tor.srv.alert.Load())
	}
	tor.mu.Unlock()
	if logs.count("level=INFO", "can be read again", "refused=999") != 1 {
		t.Fatalf("log:\n%s", logs)
	}
	for pc := alo; pc < ahi; pc++ {
		if !tor.checkBeforeServing(pc) {
			t.Fatalf("piece %d fails its check", pc)
		}
	}
	if f.suspect || tor.srv.alert.Load() {
		t.Fatal("still suspect after every piece was checked")
	}

	tor.mu.Lock()
	tor.pieceBad(alo)
	tor.pieceBad(alo) // twice: counted once
	bad, servable, shown := f.bad, tor.servable(alo), tor.servableHave().Has(alo)
	tor.mu.Unlock()
	if bad != 1 || servable || shown || !f.suspect {
		t.Fatalf("bad piece: %d bad, servable %v, shown %v, file suspect %v", bad, servable, shown, f.suspect)
	}
	if tor.checkBeforeServing(alo) || !tor.checkBeforeServing(alo+1) {
		t.Fatal("bad piece served, or a good one refused")
	}
}

// A peer leaving right after we served it may have left because what we
// sent failed its hash: the pieces last sent it are checked again, and one
// changed in a way storage cannot see (same size and mtime) is caught.
func TestPeerLeavingRechecksServedPieces(t *testing.T) {
	src := t.TempDir()
	const pl = 64 << 10
	m := content(t, src, "data", map[string]int{"a.bin": 512 << 10, "b.bin": 100 << 10}, pl)
	n := startNode(t, m, src, Config{}, nil)
	fi := fileIndex(t, m, "a.bin")
	f0 := m.Info.Files[fi].FirstPiece
	path := filepath.Join(src, "data", "a.bin")
	st, _ := os.Stat(path)
	data, _ := os.ReadFile(path)
	data[4*pl+10] ^= 1
	os.WriteFile(path, data, 0o644)
	os.Chtimes(path, st.ModTime(), st.ModTime())

	gone := &peer{t: n.t, served: [4]uint32{uint32(f0 + 3), uint32(f0 + 4)}, servedN: 2, lastWrite: time.Now()}
	n.t.mu.Lock()
	n.t.recheckServed(gone)
	n.t.mu.Unlock()
	isBad := func(pc int) bool {
		n.t.mu.Lock()
		defer n.t.mu.Unlock()
		return n.t.srv.bad != nil && n.t.srv.bad.Has(pc)
	}
	waitFor(t, 5*time.Second, "the changed piece last served was not caught", func() bool { return isBad(f0 + 4) })
	if isBad(f0 + 3) {
		t.Error("a good piece marked bad")
	}
	// One bad piece in a file that looked unchanged: the whole file is
	// checked again before being served.
	if f, _ := faultOf(n, fi); !f.suspect {
		t.Error("the file of a piece gone bad unnoticed is not suspect")
	}
}

// An upload a writer took from its queue before its piece was found bad
// is refused, even when the check that found it bad was the last one its
// file needed: the alert that makes writers look stays on while a piece
// is bad, not only while a file is suspect.
func TestBadPieceRefusedOnceFileChecked(t *testing.T) {
	src := t.TempDir()
	m := content(t, src, "data", map[string]int{"a.bin": 256 << 10, "b.bin": 64 << 10}, 64<<10)
	n := startNode(t, m, src, Config{}, nil)
	tor := n.t
	lo, hi := tor.pieceRange(fileIndex(t, m, "a.bin"))
	tor.mu.Lock()
	tor.pieceBad(lo) // the file is suspect now
	tor.mu.Unlock()
	for pc := lo + 1; pc < hi; pc++ {
		if !tor.checkBeforeServing(pc) {
			t.Fatalf("piece %d fails its check", pc)
		}
	}
	tor.mu.Lock()
	suspect := tor.srv.files[fileIndex(t, m, "a.bin")].suspect
	tor.mu.Unlock()
	if suspect {
		t.Fatal("file still suspect after all its pieces were checked")
	}
	if !tor.srv.alert.Load() {
		t.Fatal("alert off while a piece is bad")
	}
	buf := make([]byte, 16<<10)
	if tor.serveBlock(upload{piece: uint32(lo), begin: 0, length: 16 << 10}, buf) {
		t.Fatal("a block of the bad piece was served")
	}
	if !tor.serveBlock(upload{piece: uint32(lo + 1), begin: 0, length: 16 << 10}, buf) {
		t.Fatal("a block of a good piece was refused")
	}
	tor.mu.Lock()
	tor.pieceGood(lo)
	tor.mu.Unlock()
	if tor.srv.alert.Load() {
		t.Fatal("alert still on once no file is suspect and no piece bad")
	}
}
