package swarm

import (
	"slices"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// writeLoop sends queued messages and serves uploads until the peer
// closes. Control messages go first; uploads are read from disk one block
// at a time, straight into the output buffer, and writes are batched up to
// flushAt so a fast peer is fed in large writes.
func (p *peer) writeLoop() {
	t := p.t
	out := make([]byte, 0, flushAt+wire.BlockSize+64)
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

		waited := false
		if has {
			if lim, glim := t.upLimit.Load(), t.c.upLimit.Load(); lim != nil || glim != nil {
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
			start := len(out)
			out = wire.AppendPieceHeader(out, u.piece, u.begin, int(u.length))
			hdr := len(out)
			out = slices.Grow(out, int(u.length))[:hdr+int(u.length)]
			// Past the end of the file's data lies the alignment gap: zeros.
			real := max(0, min(int64(u.length), t.info.PieceSize(int(u.piece))-int64(u.begin)))
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
