package wire

import "testing"

func BenchmarkReadPiece(b *testing.B) {
	msg := AppendPiece(nil, 1, 0, make([]byte, BlockSize))
	r := NewReader(&loop{b: msg}, Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		m, err := r.ReadMessage()
		if err != nil || len(m.Payload) != BlockSize {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	buf := make([]byte, 0, 64*17)
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range uint32(64) {
			buf = AppendRequest(buf, i, 0, BlockSize)
		}
	}
}
