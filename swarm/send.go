package swarm

import (
	"slices"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// writeLoop sends queued messages and serves uploads until the peer
// closes. Control messages go first. On a plaintext TCP connection a
// block that lies in one file goes from the page cache to the socket with
// sendfile after its header (sendfile.go), the socket corked while more
// are queued; otherwise (MSE's RC4, a rate limit, a v1 block crossing
// files or padding) uploads are read from disk one block at a time,
// straight into the output buffer, and writes are batched up to flushAt so
// a fast peer is fed in large writes.
func (p *peer) writeLoop() {
	t := p.t
	out := make([]byte, 0, flushAt+wire.BlockSize+64)
	// A rate limit meters blocks as they are read into out; sendfile
	// would bypass the batching that WaitN paces, so it serves only while
	// no limit applies (limits change at run time: SetRateLimits).
	sf := newBlockSender(p.conn)
	for {
		p.sendMu.Lock()
		out = append(out, p.ctrl...)
		p.ctrl = p.ctrl[:0]
		var u upload
		has := false
		for p.upHead < len(p.uploads) && !has {
			u = p.uploads[p.upHead]
			p.upHead++
			has = u.length > 0 // cancelled ones have length 0
		}
		if p.upHead == len(p.uploads) {
			p.uploads, p.upHead = p.uploads[:0], 0
		}
		more := has && p.upHead < len(p.uploads)
		if has && (p.servedN == 0 || p.served[(p.servedN-1)%uint(len(p.served))] != u.piece) {
			p.served[p.servedN%uint(len(p.served))] = u.piece
			p.servedN++
		}
		p.sendMu.Unlock()

		waited, handled, limited := false, false, false
		var real int64 // the block's bytes of file data; past them, zeros
		if has {
			if lim, glim := t.upLimit.Load(), t.c.upLimit.Load(); lim != nil || glim != nil {
				limited = true
				before := time.Now()
				if err := waitLimits(t.ctx, int(u.length), lim, glim); err != nil {
					p.close(nil)
					return
				}
				// Held back by the rate limit: batching buys nothing
				// then, and blocks sitting in out could no longer be
				// cancelled (endgame) or arrive in time.
				waited = time.Since(before) > time.Millisecond
			}
			// Past the end of the file's data lies the alignment gap: zeros.
			real = max(0, min(int64(u.length), t.info.PieceSize(int(u.piece))-int64(u.begin)))
			if sf != nil && !limited && real == int64(u.length) {
				var ok bool
				if out, handled, ok = p.sendFromFile(sf, u, out); !ok {
					return
				}
			}
			if handled {
				p.sendMu.Lock()
				p.lastWrite = time.Now()
				p.sendMu.Unlock()
				if more {
					continue
				}
			}
		}
		if has && !handled {
			start := len(out)
			out = wire.AppendPieceHeader(out, u.piece, u.begin, int(u.length))
			hdr := len(out)
			out = slices.Grow(out, int(u.length))[:hdr+int(u.length)]
			clear(out[hdr+int(real):])
			if real > 0 && !t.serveBlock(u, out[hdr:hdr+int(real)]) {
				// Our data is gone or changed under us (serve.go): not the
				// peer's fault, but it must be told. A plain peer has no
				// reject; a choke is its refusal.
				out = out[:start]
				t.refused.add(RejectedServeFault)
				if p.fast {
					out = wire.AppendReject(out, u.piece, u.begin, u.length)
				} else {
					t.mu.Lock()
					t.choker.Choke(p)
					t.mu.Unlock()
				}
				continue
			}
			p.upBytes.Add(int64(u.length))
			t.uploaded.Add(int64(u.length))
		}
		if len(out) > 0 && (len(out) >= flushAt || !more || waited) {
			p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := p.conn.Write(out); err != nil {
				p.close(err)
				return
			}
			out = out[:0]
			p.sendMu.Lock()
			p.lastWrite = time.Now()
			p.sendMu.Unlock()
		}
		if sf != nil && sf.corked && len(out) == 0 && (!more || waited) {
			// Nothing more queued: push out what the cork holds.
			if err := sf.setCork(false); err != nil {
				p.close(err)
				return
			}
		}
		if has {
			continue
		}
		select {
		case <-p.wake:
		case <-p.closed:
			return
		}
	}
}
