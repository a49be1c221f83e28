package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

var fuzzLimits = Limits{MaxBitfield: 4096, MaxExtended: 1 << 16, MaxHashes: 256}

// FuzzReadMessage feeds arbitrary streams to the reader: it must never
// panic, never hand out more than the limits allow, and every message it
// accepts must re-encode to bytes that decode to the same message.
func FuzzReadMessage(f *testing.F) {
	var all []byte
	for _, m := range sampleMessages() {
		// Small seeds keep the fuzzer's minimisation quick; a short block
		// exercises the same code as a full one.
		if m.ID == Piece && len(m.Payload) > 16 {
			m.Payload = m.Payload[:16]
		}
		all, _ = AppendMessage(all, m)
		one, _ := AppendMessage(nil, m)
		f.Add(one)
	}
	f.Add(all)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 4, 42, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 4, byte(Have), 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), fuzzLimits)
		for {
			m, err := r.ReadMessage()
			if errors.Is(err, ErrUnknownID) {
				if len(m.Payload) > fuzzLimits.MaxExtended {
					t.Fatalf("unknown message of %d bytes", len(m.Payload))
				}
				continue
			}
			if err != nil {
				return
			}
			switch m.ID {
			case Piece:
				if !m.KeepAlive && len(m.Payload) > BlockSize {
					t.Fatalf("block of %d bytes", len(m.Payload))
				}
			case Extended:
				if len(m.Payload) > fuzzLimits.MaxExtended {
					t.Fatalf("extended payload of %d bytes", len(m.Payload))
				}
			}
			enc, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("re-encoding accepted %+v: %v", m, err)
			}
			m = cloneMessage(m)
			again, err := NewReader(bytes.NewReader(enc), fuzzLimits).ReadMessage()
			if err != nil || !equalMessage(again, m) {
				t.Fatalf("round trip: %+v, %v; want %+v", again, err, m)
			}
		}
	})
}

func FuzzExtensionHandshake(f *testing.F) {
	f.Add([]byte("d1:md11:ut_metadatai3e6:ut_pexi1ee1:pi51413e4:reqqi250e1:v5:shoal6:yourip4:\x01\x02\x03\x0413:metadata_sizei100e11:upload_onlyi1ee"))
	f.Add([]byte("d1:mdee"))
	f.Add([]byte("d4:ipv616:0123456789abcdef4:ipv44:abcde"))
	f.Add([]byte("d1:md1:xi256eee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseExtendedHandshake(data)
		if err != nil {
			return
		}
		b, err := h.Marshal()
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", h, err)
		}
		h2, err := ParseExtendedHandshake(b)
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip: %+v, %v; want %+v", h2, err, h)
		}
	})
}

func FuzzMetadataMsg(f *testing.F) {
	f.Add([]byte("d8:msg_typei0e5:piecei0ee"))
	f.Add([]byte("d8:msg_typei2e5:piecei3ee"))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei3eeabc"))
	f.Add([]byte("d8:msg_typei1e5:piecei1e10:total_sizei16386eexy"))
	f.Add([]byte("d8:msg_typei9e5:piecei0ee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadataMsg(data)
		if err != nil {
			return
		}
		if len(m.Data) > MetadataPieceSize {
			t.Fatalf("data of %d bytes", len(m.Data))
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		m2, err := ParseMetadataMsg(b)
		if err != nil || m2.Type != m.Type || m2.Piece != m.Piece || m2.TotalSize != m.TotalSize || !bytes.Equal(m2.Data, m.Data) {
			t.Fatalf("round trip: %+v, %v; want %+v", m2, err, m)
		}
	})
}

func FuzzPex(f *testing.F) {
	f.Add([]byte("d5:added6:\x01\x02\x03\x04\x00\x017:added.f1:\x02e"))
	f.Add([]byte("d6:added618:0123456789abcdef\x00\x018:added6.f1:\x01" +
		"7:dropped6:\x05\x06\x07\x08\x00\x02e"))
	f.Add([]byte("d8:dropped618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04\x00\x05e"))
	f.Add([]byte("de"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePex(data)
		if err != nil {
			return
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", p, err)
		}
		p2, err := ParsePex(b)
		if err != nil || len(p2.Added) != len(p.Added) || len(p2.Dropped) != len(p.Dropped) {
			t.Fatalf("round trip: %+v, %v; want %+v", p2, err, p)
		}
		// IPv4-mapped addresses in added6 move to added on re-encoding,
		// so the second encoding, not the first, must be a fixed point.
		b2, err := p2.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not a fixed point:\n%q\n%q", b, b2)
		}
	})
}

// FuzzHashesMsg frames arbitrary bytes as a hashes message, and also
// encodes arbitrary fields with AppendHashes, checking both decode paths.
func FuzzHashesMsg(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(bytes.Repeat([]byte{1}, 48+64), uint32(1), uint32(2), uint32(2), uint32(0))
	f.Add(bytes.Repeat([]byte{2}, 48+31), uint32(0), uint32(0), uint32(1), uint32(3))
	f.Fuzz(func(t *testing.T, body []byte, base, index, length, proof uint32) {
		frame := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
		frame = append(frame, byte(Hashes))
		frame = append(frame, body...)
		m, err := NewReader(bytes.NewReader(frame), fuzzLimits).ReadMessage()
		if err == nil {
			if len(m.Payload)%HashSize != 0 || m.NumHashes() > fuzzLimits.MaxHashes || uint64(m.NumHashes()) < uint64(m.Length) {
				t.Fatalf("accepted bad hashes message %+v", m)
			}
			if !bytes.Equal(m.PiecesRoot[:], body[:HashSize]) || !bytes.Equal(m.Payload, body[48:]) {
				t.Fatalf("fields misplaced: %+v", m)
			}
		}

		var rt [HashSize]byte
		copy(rt[:], body)
		hashes := body[:len(body)/HashSize*HashSize]
		enc := AppendHashes(nil, rt, base, index, length, proof, hashes)
		m, err = NewReader(bytes.NewReader(enc), fuzzLimits).ReadMessage()
		want := Message{ID: Hashes, PiecesRoot: rt, BaseLayer: base, Index: index, Length: length, ProofLayers: proof, Payload: hashes}
		switch n := len(hashes) / HashSize; {
		case n > fuzzLimits.MaxHashes:
			if !errors.Is(err, ErrMessageTooLong) {
				t.Fatalf("%d hashes: err = %v", n, err)
			}
		case uint64(n) < uint64(length):
			if err == nil {
				t.Fatalf("%d hashes for length %d accepted", n, length)
			}
		default:
			if err != nil || !equalMessage(m, want) {
				t.Fatalf("round trip: %+v, %v; want %+v", m, err, want)
			}
		}
	})
}
