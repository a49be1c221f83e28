package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readCounter counts Read calls: each is a read(2) on a socket.
type readCounter struct {
	r     io.Reader
	calls int
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.calls++
	return c.r.Read(p)
}

// chunked hands out at most the next of its sizes per Read, in turn, like
// a socket on which segments arrive at odd boundaries.
type chunked struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	return c.r.Read(p[:min(n, len(p))])
}

// mixedStream is every sample message, then full blocks interleaved with
// small messages and a bitfield larger than the read buffer, so that
// messages straddle every refill and one forces the buffer to grow.
func mixedStream(t *testing.T) ([]byte, []Message) {
	t.Helper()
	msgs := sampleMessages()
	block := bytes.Repeat([]byte{7}, BlockSize)
	for i := range uint32(12) {
		msgs = append(msgs, Message{ID: Have, Index: i}, Message{ID: Piece, Index: i, Begin: BlockSize, Payload: block})
		if i == 5 {
			msgs = append(msgs, Message{KeepAlive: true}, Message{ID: Bitfield, Payload: bytes.Repeat([]byte{0x5a}, ReadBufferSize+100)})
		}
	}
	var stream []byte
	for _, m := range msgs {
		var err error
		if stream, err = AppendMessage(stream, m); err != nil {
			t.Fatalf("AppendMessage(%v): %v", m.ID, err)
		}
	}
	return stream, msgs
}

// TestReaderReadAhead decodes one stream through readers that split it
// every way a socket may: the read-ahead and its refills must hand out the
// same messages as one whole read would, and end cleanly.
func TestReaderReadAhead(t *testing.T) {
	stream, msgs := mixedStream(t)
	sources := map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(stream) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
		"chunked": func() io.Reader {
			return &chunked{r: bytes.NewReader(stream), sizes: []int{3, 16397, 1, 40000, 5, 9, 70000}}
		},
	}
	for name, src := range sources {
		r := NewReader(src(), Limits{})
		for i, want := range msgs {
			got, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s: message %d (%v): %v", name, i, want.ID, err)
			}
			if !equalMessage(got, want) {
				t.Fatalf("%s: message %d: got %v %d+%d (%d bytes), want %v %d+%d (%d bytes)",
					name, i, got.ID, got.Index, got.Begin, len(got.Payload), want.ID, want.Index, want.Begin, len(want.Payload))
			}
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("%s: after the last message: err = %v, want io.EOF", name, err)
		}
	}
}

// TestReaderFewReads pins what the read-ahead is for: a stream of blocks
// costs about one read per ReadBufferSize of it, and a burst of haves one
// read in all, where reading each message's prefix, id and body apart
// cost three reads a message.
func TestReaderFewReads(t *testing.T) {
	var blocks []byte
	const n = 256 // 4 MiB
	for i := range uint32(n) {
		blocks = AppendPiece(blocks, i, 0, make([]byte, BlockSize))
	}
	src := &readCounter{r: bytes.NewReader(blocks)}
	r := NewReader(src, Limits{})
	for range n {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if max := len(blocks)/(ReadBufferSize-(4+1+8+BlockSize)) + 1; src.calls > max {
		t.Errorf("%d blocks took %d reads, want at most %d", n, src.calls, max)
	}

	var haves []byte
	for i := range uint32(1000) {
		haves = AppendHave(haves, i)
	}
	src = &readCounter{r: bytes.NewReader(haves)}
	r = NewReader(src, Limits{})
	for range 1000 {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if src.calls != 1 {
		t.Errorf("1000 haves (%d bytes) took %d reads, want 1", len(haves), src.calls)
	}
}

// TestReaderTruncatedAhead cuts a stream that was read ahead: the end of
// the stream inside a message, after the buffer holds part of it, is
// io.ErrUnexpectedEOF, and at a message boundary io.EOF.
func TestReaderTruncatedAhead(t *testing.T) {
	stream, msgs := mixedStream(t)
	r := NewReader(bytes.NewReader(stream[:len(stream)-1]), Limits{})
	var err error
	for range msgs {
		if _, err = r.ReadMessage(); err != nil {
			break
		}
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut in the last block: err = %v, want io.ErrUnexpectedEOF", err)
	}
	// Two bytes of a length prefix after a message.
	r = NewReader(bytes.NewReader(append(AppendHave(nil, 1), 0, 0)), Limits{})
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut in a length prefix: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestReaderGrowsForFastPeer pins MaxReadAhead: a peer whose data always
// fills the buffer has it doubled up to the limit, so a stream of blocks
// costs a quarter of the reads at four times the size; one that trickles
// keeps the small buffer; and the default never grows.
func TestReaderGrowsForFastPeer(t *testing.T) {
	var blocks []byte
	const n = 256 // 4 MiB
	for i := range uint32(n) {
		blocks = AppendPiece(blocks, i, 0, make([]byte, BlockSize))
	}
	read := func(src io.Reader, lim Limits) *Reader {
		t.Helper()
		r := NewReader(src, lim)
		for range n {
			if _, err := r.ReadMessage(); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	const ahead = 4 * ReadBufferSize
	fast := &readCounter{r: bytes.NewReader(blocks)}
	if r := read(fast, Limits{MaxReadAhead: ahead}); len(r.buf) != ahead {
		t.Errorf("buffer of a fast peer: %d bytes, want %d", len(r.buf), ahead)
	}
	if max := len(blocks)/(ahead-(4+1+8+BlockSize)) + 4; fast.calls > max {
		t.Errorf("%d blocks took %d reads with %d bytes of read-ahead, want at most %d", n, fast.calls, ahead, max)
	}
	slow := &chunked{r: bytes.NewReader(blocks), sizes: []int{ReadBufferSize / 4}}
	if r := read(slow, Limits{MaxReadAhead: ahead}); len(r.buf) != ReadBufferSize {
		t.Errorf("buffer of a peer that never fills it: %d bytes, want %d", len(r.buf), ReadBufferSize)
	}
	if r := read(bytes.NewReader(blocks), Limits{}); len(r.buf) != ReadBufferSize {
		t.Errorf("buffer without MaxReadAhead: %d bytes, want %d", len(r.buf), ReadBufferSize)
	}
	// A peer fast at first, then slow: the buffer it grew goes back to
	// its first size rather than staying with the connection.
	half := len(blocks) / 2
	half -= half % (4 + 1 + 8 + BlockSize)
	slowed := io.MultiReader(bytes.NewReader(blocks[:half]), &chunked{r: bytes.NewReader(blocks[half:]), sizes: []int{ReadBufferSize / 8}})
	if r := read(slowed, Limits{MaxReadAhead: ahead}); len(r.buf) != ReadBufferSize {
		t.Errorf("buffer of a peer that slowed down: %d bytes, want %d", len(r.buf), ReadBufferSize)
	}
}

// TestReaderReadyKeepsPayloads pins the contract the downloader's runs of
// blocks rest on: while Ready reports true, ReadMessage neither reads nor
// moves the buffer, so every payload since the last read is intact; Ready
// is false when the next message is not whole yet.
func TestReaderReadyKeepsPayloads(t *testing.T) {
	var stream []byte
	const n = 40
	for i := range uint32(n) {
		stream = AppendPiece(stream, i, 0, bytes.Repeat([]byte{byte(i)}, BlockSize))
	}
	src := &chunked{r: bytes.NewReader(stream), sizes: []int{3, 70000, 16397, 1, 100000}}
	r := NewReader(src, Limits{MaxReadAhead: 4 * ReadBufferSize})
	var held []Message
	for i := range n {
		if !r.Ready() {
			held = held[:0] // about to read: the caller is done with them
		}
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		held = append(held, m)
		for _, h := range held {
			if !bytes.Equal(h.Payload, bytes.Repeat([]byte{byte(h.Index)}, BlockSize)) {
				t.Fatalf("after message %d: the payload of block %d, held while Ready, was overwritten", i, h.Index)
			}
		}
	}
	if r.Ready() {
		t.Error("Ready at the end of the stream")
	}
	part := NewReader(bytes.NewReader(stream[:4+1+8+100]), Limits{})
	if part.Ready() {
		t.Error("Ready before any read")
	}
	if _, err := part.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated block: %v, want io.ErrUnexpectedEOF", err)
	}
}
