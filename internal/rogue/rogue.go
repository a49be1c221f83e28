// Package rogue runs misbehaving BitTorrent peers for tests and benchmarks:
// a poisoner that serves corrupted blocks and a free-rider that never
// uploads. Both are real swarm clients on real sockets (127.0.0.1 unless
// told otherwise), so they meet honest peers exactly as any other client
// would: by dialing them, by being dialed, or through a tracker.
//
// It is internal test tooling, not part of shoal's API.
package rogue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/storage"
	"github.com/shoal-p2p/shoal/swarm"
)

// DefaultListenAddr is where a rogue peer listens when Options.ListenAddr
// is empty: a free port on loopback.
const DefaultListenAddr = "127.0.0.1:0"

// poisonerSlots is the poisoner's number of upload slots: enough that it
// serves everyone who asks at once rather than a few at a time.
const poisonerSlots = 64

// Options says where a rogue peer finds the swarm and how fast it may
// upload. The zero value listens on DefaultListenAddr, knows no peers, and
// has no upload cap.
type Options struct {
	// Peers are addresses to dial.
	Peers []netip.AddrPort
	// Trackers are announce URLs, each announced to as a tier of its own
	// (BEP 12), like `shoal get -t`. The torrent's own trackers are not
	// used: a rogue peer announces only where it is told to.
	Trackers []string
	// MaxUploadRate caps payload bytes sent per second; 0 means unlimited.
	MaxUploadRate int64
	// ListenAddr is HOST:PORT to accept peers on; "" means
	// DefaultListenAddr.
	ListenAddr string
	// Logger receives the swarm's connection events; nil discards them.
	Logger *slog.Logger
}

// Peer is a running rogue peer: one swarm client serving one torrent.
type Peer struct {
	client  *swarm.Client
	torrent *swarm.Torrent
	st      *storage.Storage
	addr    netip.AddrPort

	closeOnce sync.Once
	closeErr  error
}

// Addr returns the address the peer accepts connections on.
func (p *Peer) Addr() netip.AddrPort { return p.addr }

// Done is closed once the peer holds, or claims to hold, every piece: at
// once for a poisoner, which claims them all from the start, and when the
// download is complete and verified for a free-rider.
func (p *Peer) Done() <-chan struct{} { return p.torrent.Done() }

// Stats returns the peer's torrent figures: what it uploaded (the poison
// served) and downloaded, its connections, and whom it banned.
func (p *Peer) Stats() swarm.Stats { return p.torrent.Stats() }

// Close disconnects the peer, stops its listener and waits for every
// goroutine it started, then closes its storage. It is safe to call more
// than once; later calls return the first call's error.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		errT := p.torrent.Close()
		if errT != nil {
			errT = fmt.Errorf("rogue: closing torrent at %s: %w", p.addr, errT)
		}
		errC := p.client.Close()
		if errC != nil {
			errC = fmt.Errorf("rogue: closing listener %s: %w", p.addr, errC)
		}
		errS := p.st.Close()
		if errS != nil {
			errS = fmt.Errorf("rogue: closing storage in %s: %w", p.st.Dir(), errS)
		}
		p.closeErr = errors.Join(errT, errC, errS)
	})
	return p.closeErr
}

// StartPoisoner starts a peer that claims every piece of m and serves
// corrupted data: it copies the content from src into workDir with one byte
// flipped in every 16 KiB block, so every block it sends fails its leaf
// hash. src is the content as `shoal seed` was given it: the file of a
// single-file torrent, the folder of a multi-file one, or a folder holding
// the one file of a single-file torrent. The copy streams one block at a
// time, whatever the file sizes.
func StartPoisoner(ctx context.Context, m *piece.MetaInfo, src, workDir string, opts Options) (*Peer, error) {
	if m == nil || m.Info == nil {
		return nil, errors.New("rogue: poisoner: no torrent given")
	}
	from := dataDir(src, m.Info)
	for i, f := range m.Info.Files {
		if f.Pad {
			continue // a v1 pad file is zeros, never on disk
		}
		rel := filepath.Join(m.Info.DiskPath(i)...)
		if err := copyPoisoned(filepath.Join(from, rel), filepath.Join(workDir, rel), f.Length); err != nil {
			return nil, fmt.Errorf("rogue: poisoner: %w", err)
		}
	}
	st, err := storage.OpenWith(workDir, m.Info, storage.Options{Logger: logger(opts)})
	if err != nil {
		return nil, fmt.Errorf("rogue: poisoner: %w", err)
	}
	// Claimed, never checked: that is the lie.
	have := make([]byte, (m.Info.NumPieces+7)/8)
	for p := range m.Info.NumPieces {
		have[p/8] |= 0x80 >> (p % 8)
	}
	p, err := start(ctx, m, st, have, swarm.Config{UploadSlots: poisonerSlots, NoServeChecks: true}, opts)
	if err != nil {
		return nil, fmt.Errorf("rogue: poisoner: %w", err)
	}
	return p, nil
}

// StartFreeRider starts a peer that downloads m into dir (the data goes to
// the torrent's disk paths under dir, as with `shoal get -o dir`) and never
// unchokes anyone, so it uploads nothing. What is already verified in dir
// is kept, as a resumed download would.
func StartFreeRider(ctx context.Context, m *piece.MetaInfo, dir string, opts Options) (*Peer, error) {
	if m == nil || m.Info == nil {
		return nil, errors.New("rogue: free-rider: no torrent given")
	}
	st, err := storage.OpenWith(dir, m.Info, storage.Options{Logger: logger(opts)})
	if err != nil {
		return nil, fmt.Errorf("rogue: free-rider: %w", err)
	}
	have, err := st.Check(ctx, m, nil)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("rogue: free-rider: checking %s: %w", dir, err)
	}
	p, err := start(ctx, m, st, have, swarm.Config{UploadSlots: -1}, opts)
	if err != nil {
		return nil, fmt.Errorf("rogue: free-rider: %w", err)
	}
	return p, nil
}

// start listens, adds the torrent with the given bitfield and points it at
// the peers and trackers of opts. It takes st over: on failure st is
// closed.
func start(ctx context.Context, m *piece.MetaInfo, st *storage.Storage, have []byte, cfg swarm.Config, opts Options) (*Peer, error) {
	cfg.ListenAddr = opts.ListenAddr
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	cfg.MaxUploadRate = opts.MaxUploadRate
	cfg.Logger = logger(opts)
	cl, err := swarm.Listen(ctx, cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	addr, err := netip.ParseAddrPort(cl.Addr().String())
	if err != nil {
		cl.Close()
		st.Close()
		return nil, fmt.Errorf("listener address %s: %w", cl.Addr(), err)
	}
	t, err := cl.Add(m, st, have)
	if err != nil {
		cl.Close()
		st.Close()
		return nil, fmt.Errorf("adding torrent %s: %w", m.Info.HexHash(), err)
	}
	t.AddPeers(opts.Peers...)
	var tiers [][]string
	for _, u := range opts.Trackers {
		tiers = append(tiers, []string{u})
	}
	t.AddTrackers(tiers)
	return &Peer{client: cl, torrent: t, st: st, addr: addr}, nil
}

func logger(opts Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// dataDir is the folder the torrent's disk paths start from when seeding
// src, as `shoal seed` works it out: src itself for a single-file torrent
// made from a folder holding one file, else src's parent.
func dataDir(src string, info *piece.Info) string {
	src = filepath.Clean(src)
	if st, err := os.Stat(src); err == nil && st.IsDir() && info.SingleFile() {
		return src
	}
	return filepath.Dir(src)
}

// copyPoisoned copies the file from to to, flipping every bit of the
// middle byte of each 16 KiB block. The source must be size bytes long.
func copyPoisoned(from, to string, size int64) (err error) {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != size {
		return fmt.Errorf("%s: %d bytes (%s), want a regular file of %d bytes as the torrent says", from, fi.Size(), fi.Mode().Type(), size)
	}
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	buf := make([]byte, piece.BlockSize)
	for off := int64(0); off < size; {
		n, err := io.ReadFull(in, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			return fmt.Errorf("reading %s at byte %d: %w", from, off, err)
		}
		buf[n/2] ^= 0xff
		if _, err := out.Write(buf[:n]); err != nil {
			return fmt.Errorf("writing %s at byte %d: %w", to, off, err)
		}
		off += int64(n)
	}
	return nil
}
