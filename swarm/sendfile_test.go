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
// cross files gets exactly the torrent's bytes: blocks inside one file go
// by sendfile, those crossing a file boundary by the read into the output
// buffer, in the order asked.
func TestSendfileServesExactBytes(t *testing.T) {
	src := t.TempDir()
	// 32 KiB pieces of two 16 KiB blocks. a.bin ends 30000 bytes in, so
	// piece 0's second block crosses into b.bin; the last block is short.
	files := []tfile{{path: "a.bin", size: 30000}, {path: "b.bin", size: 90000}}
	m := v1Content(t, src, "data", files, 32<<10)
	seeder := startNode(t, m, src, Config{}, nil)
	conn := rawPeer(t, seeder, swarmHash(seeder))
	defer conn.Close()
	conn.Write(wire.AppendInterested(nil))
	r := wire.NewReader(conn, wire.Limits{NumPieces: m.Info.NumPieces})
	readUntil(t, r, "unchoke", func(msg wire.Message) bool { return msg.ID != wire.Unchoke })

	var reqs []byte
	type block struct{ pc, begin uint32 }
	var order []block
	var crossing int64
	for pc := 0; pc < m.Info.NumPieces; pc++ {
		size := m.Info.V1PieceSize(pc)
		for b := int64(0); b < size; b += piece.BlockSize {
			n := min(piece.BlockSize, size-b)
			reqs = wire.AppendRequest(reqs, uint32(pc), uint32(b), uint32(n))
			order = append(order, block{uint32(pc), uint32(b)})
			if start := int64(pc)*m.Info.PieceLength + b; start < 30000 && start+n > 30000 {
				crossing += n
			}
		}
	}
	if crossing == 0 {
		t.Fatal("no block crosses a.bin's end: the test lays out nothing to fall back for")
	}
	conn.Write(reqs)
	var got []byte
	for i := 0; i < len(order); {
		msg, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("after %d blocks: %v", i, err)
		}
		if msg.ID != wire.Piece {
			continue
		}
		if (block{msg.Index, msg.Begin}) != order[i] {
			t.Fatalf("block %d is %d+%d, want %d+%d", i, msg.Index, msg.Begin, order[i].pc, order[i].begin)
		}
		got = append(got, msg.Payload...)
		i++
	}
	a, _ := os.ReadFile(filepath.Join(src, "data", "a.bin"))
	b, _ := os.ReadFile(filepath.Join(src, "data", "b.bin"))
	if want := append(a, b...); !bytes.Equal(got, want) {
		t.Fatalf("served %d bytes, not the torrent's %d", len(got), len(want))
	}
	sent, total := seeder.t.sentFromFile.Load(), int64(len(got))
	if runtime.GOOS == "linux" && sent != total-crossing {
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
