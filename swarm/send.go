package swarm

import (
	"slices"
	"time"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// writeLoop sends queued messages and serves uploads until the peer
// closes. Control messages go first. Requests for contiguous blocks of a
// piece, queued one after another (a downloader asks for a piece in
// order), are served as a run: the blocks read with one positioned read
// (storage.ReadBlocks) into the output buffer between their headers, and
// written in one go (appendRun). Otherwise, on a plaintext TCP connection
// a block that lies in one file goes from the page cache to the socket
// with sendfile after its header (sendfile.go), the socket corked while
// more are queued; and else (MSE's RC4, a rate limit, a v1 block crossing
// files or padding) uploads are read from disk one block at a time,
// straight into the output buffer. Writes are batched up to flushAt so a
// fast peer is fed in large writes.
func (p *peer) writeLoop() {
	t := p.t
	out := make([]byte, 0, flushAt+wire.BlockSize+64)
	// A rate limit meters blocks as they are read into out; sendfile
	// would bypass the batching that WaitN paces, so it serves only while
	// no limit applies (limits change at run time: SetRateLimits).
	sf := newBlockSender(p.conn)
	var run []upload
	for {
		// Runs are read ahead of the rate limit's pacing: only without one.
		unlimited := t.upLimit.Load() == nil && t.c.upLimit.Load() == nil
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
		run = run[:0]
		if has && unlimited {
			run = p.takeRun(append(run, u), flushAt-len(out))
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
		if len(run) > 1 {
			out = p.appendRun(run, out)
			handled = true
		} else if has {
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
			out = p.appendBlock(u, real, out)
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

// takeRun extends run, which holds the upload just taken from the queue,
// with the uploads queued right after it that continue it in its piece,
// within the piece's data (past it lie zeros, served block by block), up
// to room bytes, and takes them from the queue: the output buffer then
// never holds much more than flushAt. Called with sendMu.
func (p *peer) takeRun(run []upload, room int) []upload {
	u := run[0]
	size := int64(p.t.info.PieceSize(int(u.piece)))
	end := int64(u.begin) + int64(u.length)
	if end > size {
		return run
	}
	n := int64(u.length)
	for p.upHead < len(p.uploads) {
		v := p.uploads[p.upHead]
		// A cancelled upload (length 0) ends the run, like any gap.
		if v.length == 0 || v.piece != u.piece || int64(v.begin) != end ||
			end+int64(v.length) > size || n+int64(v.length) > int64(room) {
			break
		}
		run = append(run, v)
		p.upHead++
		end += int64(v.length)
		n += int64(v.length)
	}
	return run
}

// appendRun appends the piece messages of run, contiguous blocks of one
// piece, to out, their data read with one call between their headers:
// for a downloader asking for a piece in order, two system calls per
// flushAt bytes served where sendfile needs two per block (a header write
// and the sendfile), which cost more CPU than the copies they save. A
// piece that fails its check before serving (servecheck.go) is refused
// block by block; should the read fail, each block is served alone
// (appendBlock), which deals with the failure as it does for any block.
func (p *peer) appendRun(run []upload, out []byte) []byte {
	t := p.t
	pc := int(run[0].piece)
	start, total := len(out), 0
	for _, u := range run {
		total += wire.PieceHeaderSize + int(u.length)
	}
	out = slices.Grow(out, total)
	p.runBufs = p.runBufs[:0]
	for _, u := range run {
		out = wire.AppendPieceHeader(out, u.piece, u.begin, int(u.length))
		hdr := len(out)
		out = out[:hdr+int(u.length)]
		p.runBufs = append(p.runBufs, out[hdr:])
	}
	if t.srv.alert.Load() && !t.checkBeforeServing(pc) {
		// Refused here, not by appendBlock: that check may have been the
		// last a changed file needed, so the alert is off and appendBlock
		// would not look again.
		clear(p.runBufs)
		out = out[:start]
		for _, u := range run {
			out = p.refuseBlock(u, out)
		}
		return out
	}
	err := t.st.ReadBlocks(pc, int(run[0].begin), p.runBufs)
	clear(p.runBufs)
	if err != nil {
		out = out[:start]
		for _, u := range run {
			out = p.appendBlock(u, int64(u.length), out)
		}
		return out
	}
	n := int64(total - len(run)*wire.PieceHeaderSize)
	p.upBytes.Add(n)
	t.uploaded.Add(n)
	return out
}

// appendBlock appends the piece message of upload u to out, its first
// real bytes read from disk and the rest zeros. A block that cannot be
// read is refused instead (serveBlock tells why).
func (p *peer) appendBlock(u upload, real int64, out []byte) []byte {
	t := p.t
	start := len(out)
	out = wire.AppendPieceHeader(out, u.piece, u.begin, int(u.length))
	hdr := len(out)
	out = slices.Grow(out, int(u.length))[:hdr+int(u.length)]
	clear(out[hdr+int(real):])
	if real > 0 && !t.serveBlock(u, out[hdr:hdr+int(real)]) {
		return p.refuseBlock(u, out[:start])
	}
	p.upBytes.Add(int64(u.length))
	t.uploaded.Add(int64(u.length))
	return out
}

// refuseBlock tells the peer that upload u will not be served: our data
// is gone or changed under us (serve.go), not the peer's fault, but it
// must be told. A plain peer has no reject; a choke is its refusal.
func (p *peer) refuseBlock(u upload, out []byte) []byte {
	t := p.t
	t.refused.add(RejectedServeFault)
	if p.fast {
		return wire.AppendReject(out, u.piece, u.begin, u.length)
	}
	t.mu.Lock()
	t.choker.Choke(p)
	t.mu.Unlock()
	return out
}
