package swarm

import (
	"errors"
	"net"
	"time"

	"github.com/shoal-p2p/shoal/swarm/mse"
	"github.com/shoal-p2p/shoal/swarm/wire"
)

// errShortFile is a sendfile that found the file shorter than the block:
// it was truncated behind our back after the piece header went out.
var errShortFile = errors.New("file ended before the block: truncated while serving")

// rawTCP returns the TCP connection under conn when nothing between them
// transforms what is written (the replay wrappers of the handshake, or
// MSE with the plaintext method), else nil: an RC4 stream must pass every
// byte through the cipher.
func rawTCP(conn net.Conn) *net.TCPConn {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c
		case *prefixConn:
			conn = c.Conn
		case *primedConn:
			conn = c.Conn
		case *mse.Conn:
			if c.Method != mse.MethodPlaintext {
				return nil
			}
			conn = c.Conn
		default:
			return nil
		}
	}
}

// sendFromFile serves upload u by writing its piece header after out and
// then sending the block from the file to the socket with sendfile. It
// reports handled false, having sent nothing, when the block must go the
// way of serveBlock: not one stretch of one file, a file that cannot be
// lent (changed, unreadable: serveBlock deals with it), or a torrent on
// alert. ok false means the connection failed and is closed. The returned
// out is empty: everything was written.
func (p *peer) sendFromFile(sf *blockSender, u upload, out []byte) (rest []byte, handled, ok bool) {
	t := p.t
	if t.srv.alert.Load() {
		return out, false, true
	}
	l, lent, err := t.st.LendBlock(int(u.piece), int(u.begin), int(u.length))
	if err != nil || !lent {
		return out, false, true
	}
	defer t.st.Return(l)
	out = wire.AppendPieceHeader(out, u.piece, u.begin, int(u.length))
	if !sf.corked {
		// Held until the queue runs dry, so the 13-byte headers and the
		// blocks leave in full segments rather than one small packet each.
		if err := sf.setCork(true); err != nil {
			p.close(err)
			return out[:0], true, false
		}
	}
	p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := p.conn.Write(out); err != nil {
		p.close(err)
		return out[:0], true, false
	}
	if err := sf.send(l.File, l.Off, int(l.Len)); err != nil {
		if errors.Is(err, errShortFile) {
			// The header promised bytes we no longer have: the stream is
			// lost, and so is the file until it can be read again.
			t.mu.Lock()
			t.readFailed(l.FileIndex, err)
			t.mu.Unlock()
		}
		p.close(err)
		return out[:0], true, false
	}
	p.upBytes.Add(int64(u.length))
	t.uploaded.Add(int64(u.length))
	t.sentFromFile.Add(int64(u.length))
	return out[:0], true, true
}
