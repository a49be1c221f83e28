package swarm

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/mse"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// A plaintext peer asking for every block of a v1 torrent whose pieces
// cross files gets exactly the torrent's bytes, in the order asked. Asked
// for in order, contiguous blocks are served as runs, read with one call
// (appendRun); asked for out of order, each block alone: those inside one
// file by sendfile, those crossing a file boundary by the read into the
// output buffer.
func TestSendfileServesExactBytes(t *testing.T) {
	src := t.TempDir()
	// 32 KiB pieces of two 16 KiB blocks. a.bin ends 30000 bytes in, so
	// piece 0's second block crosses into b.bin; the last block is short.
	files := []tfile{{path: "a.bin", size: 30000}, {path: "b.bin", size: 90000}}
	m := v1Content(t, src, "data", files, 32<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	a, _ := os.ReadFile(filepath.Join(src, "data", "a.bin"))
	b, _ := os.ReadFile(filepath.Join(src, "data", "b.bin"))
	space := append(a, b...)

	type block struct{ pc, begin, n uint32 }
	var blocks []block
	var crossing int64
	for pc := 0; pc < m.Info.NumPieces; pc++ {
		size := m.Info.V1PieceSize(pc)
		for b := int64(0); b < size; b += piece.BlockSize {
			n := min(piece.BlockSize, size-b)
			blocks = append(blocks, block{uint32(pc), uint32(b), uint32(n)})
			if start := int64(pc)*m.Info.PieceLength + b; start < 30000 && start+n > 30000 {
				crossing += n
			}
		}
	}
	if crossing == 0 {
		t.Fatal("no block crosses a.bin's end: the test lays out nothing to fall back for")
	}
	// serve asks for blocks in the given order on a new connection and
	// checks each block's bytes; it returns the bytes sent by sendfile.
	serve := func(order []block) int64 {
		t.Helper()
		before := seeder.t.sentFromFile.Load()
		conn := rawPeer(t, seeder, swarmHash(seeder))
		defer conn.Close()
		conn.Write(wire.AppendInterested(nil))
		r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
		readUntil(t, r, "unchoke", func(msg wire.Message) bool { return msg.ID != wire.Unchoke })
		var reqs []byte
		for _, k := range order {
			reqs = wire.AppendRequest(reqs, k.pc, k.begin, k.n)
		}
		conn.Write(reqs)
		for i := 0; i < len(order); {
			msg, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("after %d blocks: %v", i, err)
			}
			if msg.ID != wire.Piece {
				continue
			}
			k := order[i]
			if msg.Index != k.pc || msg.Begin != k.begin {
				t.Fatalf("block %d is %d+%d, want %d+%d", i, msg.Index, msg.Begin, k.pc, k.begin)
			}
			at := int64(k.pc)*m.Info.PieceLength + int64(k.begin)
			if !bytes.Equal(msg.Payload, space[at:at+int64(k.n)]) {
				t.Fatalf("block %d+%d: %d bytes, not the torrent's", k.pc, k.begin, len(msg.Payload))
			}
			i++
		}
		return seeder.t.sentFromFile.Load() - before
	}

	serve(blocks)
	// Each piece's blocks last first: no two asked for in a row are
	// contiguous, so none is part of a run.
	var lone []block
	for i := 0; i < len(blocks); i++ {
		if i+1 < len(blocks) && blocks[i+1].pc == blocks[i].pc {
			lone = append(lone, blocks[i+1])
		}
		lone = append(lone, blocks[i])
		if i+1 < len(blocks) && blocks[i+1].pc == blocks[i].pc {
			i++
		}
	}
	var total int64
	for _, k := range blocks {
		total += int64(k.n)
	}
	if sent := serve(lone); runtime.GOOS == "linux" && sent != total-crossing {
		t.Fatalf("%d bytes went by sendfile, want %d: all but the %d crossing a.bin's end", sent, total-crossing, crossing)
	}
}

// Only a stream that passes bytes unchanged may be written to under its
// wrappers: RC4 must see every byte.
func TestRawTCPLooksThroughWrappers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tcp := c.(*net.TCPConn)
	for name, tc := range map[string]struct {
		conn net.Conn
		want *net.TCPConn
	}{
		"bare":                 {tcp, tcp},
		"replayed prefix":      {&prefixConn{Conn: tcp}, tcp},
		"primed in prefix":     {&primedConn{Conn: &prefixConn{Conn: tcp}}, tcp},
		"MSE plaintext":        {&mse.Conn{Conn: tcp, Method: mse.MethodPlaintext}, tcp},
		"MSE RC4":              {&mse.Conn{Conn: tcp, Method: mse.MethodRC4}, nil},
		"RC4 under a wrapper":  {&prefixConn{Conn: &mse.Conn{Conn: tcp, Method: mse.MethodRC4}}, nil},
		"not TCP (a net.Pipe)": {pipeEnd(t), nil},
	} {
		if got := rawTCP(tc.conn); got != tc.want {
			t.Errorf("%s: rawTCP = %v, want %v", name, got, tc.want)
		}
	}
}

func pipeEnd(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}
