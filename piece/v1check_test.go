package piece

import (
	"crypto/sha1"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// v1Info hand-builds a v1 info dict over files laid end to end (pad files
// among them, as zeros) and parses it; it returns the piece space too.
func v1Info(t *testing.T, pl int, files []File) (*Info, []byte) {
	t.Helper()
	var space []byte
	var list []any
	for i, f := range files {
		d := map[string]any{"length": f.Length, "path": []any{string(rune('a' + i))}}
		data := make([]byte, f.Length)
		if f.Pad {
			d["attr"] = "p"
			d["path"] = []any{".pad", "x"}
		} else {
			for j := range data {
				data[j] = byte(j*7 + i*13 + 1)
			}
		}
		list = append(list, d)
		space = append(space, data...)
	}
	var pieces []byte
	for off := 0; off < len(space); off += pl {
		s := sha1.Sum(space[off:min(len(space), off+pl)])
		pieces = append(pieces, s[:]...)
	}
	b, err := bencode.Marshal(map[string]any{"name": "t", "piece length": pl, "pieces": string(pieces), "files": list})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return in, space
}

func TestCheckV1(t *testing.T) {
	// 24 KiB pieces: not a power of two nor of blocks; pieces cross files
	// and a pad file sits inside piece 1.
	pl := 24 << 10
	in, space := v1Info(t, pl, []File{{Length: 30000}, {Length: 2000, Pad: true}, {Length: 50000}})
	if in.Format != FormatV1 || in.NumPieces != 4 {
		t.Fatalf("format %v, %d pieces", in.Format, in.NumPieces)
	}
	for p := range in.NumPieces {
		data := space[p*pl : min(len(space), (p+1)*pl)]
		if int64(len(data)) != in.PieceSize(p) || !in.CheckV1(p, data) {
			t.Fatalf("piece %d (%d bytes, PieceSize %d) fails", p, len(data), in.PieceSize(p))
		}
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 1
		if in.CheckV1(p, bad) {
			t.Fatalf("piece %d with a flipped byte passes", p)
		}
		if in.CheckV1(p, append(append([]byte(nil), data...), 0)) {
			t.Fatalf("piece %d with a byte too many passes", p)
		}
	}
	// The last piece is short: zeros are only what the torrent says.
	last := in.NumPieces - 1
	if in.CheckV1(last, space[last*pl:len(space)-1]) {
		t.Fatal("short last piece less its final byte passes")
	}
	if in.CheckV1(-1, nil) || in.CheckV1(in.NumPieces, nil) {
		t.Fatal("piece out of range passes")
	}
	data := space[:pl]
	if n := testing.AllocsPerRun(100, func() { in.CheckV1(0, data) }); n != 0 {
		t.Fatalf("CheckV1 allocates %v times a call", n)
	}
	// Fed a block at a time, as a download hashes a piece.
	var v V1Hasher
	for p := range in.NumPieces {
		v.Reset()
		d := space[p*pl : min(len(space), (p+1)*pl)]
		for off := 0; off < len(d); off += BlockSize {
			v.Write(d[off:min(len(d), off+BlockSize)])
		}
		if v.Len() != int64(len(d)) || !v.Check(in, p) {
			t.Fatalf("piece %d fails when fed in blocks", p)
		}
	}
}

// In a hybrid, a file's last piece is checked through its implied pad: the
// data the v2 side sends plus zeros to the piece boundary.
func TestCheckV1Hybrid(t *testing.T) {
	m, _ := sample(t) // big.bin of 5 blocks + 123 in 2-block pieces, small.txt
	pl := int(m.Info.PieceLength)
	var info map[string]any
	if err := bencode.Unmarshal(m.Info.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5*BlockSize+123)
	small := make([]byte, 100)
	seed := uint32(len("big.bin")*7919 + len(big))
	for i := range big {
		seed = seed*1664525 + 1013904223
		big[i] = byte(seed >> 24)
	}
	seed = uint32(len("sub/small.txt")*7919 + len(small))
	for i := range small {
		seed = seed*1664525 + 1013904223
		small[i] = byte(seed >> 24)
	}
	padded := func(b []byte) []byte { return append(b, make([]byte, (pl-len(b)%pl)%pl)...) }
	space := append(padded(append([]byte(nil), big...)), small...)
	var pieces []byte
	for off := 0; off < len(space); off += pl {
		s := sha1.Sum(space[off:min(len(space), off+pl)])
		pieces = append(pieces, s[:]...)
	}
	info["pieces"] = string(pieces)
	info["files"] = []any{
		map[string]any{"length": len(big), "path": []any{"big.bin"}},
		map[string]any{"length": pl - len(big)%pl, "path": []any{".pad", "x"}, "attr": "p"},
		map[string]any{"length": 0, "path": []any{"sub", "empty"}},
		map[string]any{"length": len(small), "path": []any{"sub", "small.txt"}},
	}
	b, _ := bencode.Marshal(info)
	in, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if in.Format != FormatHybrid {
		t.Fatalf("format %v", in.Format)
	}
	// Piece 2 is big.bin's last: 1 block + 123 bytes of data, a pad after.
	if in.PieceSize(2) != BlockSize+123 || in.V1PieceSize(2) != int64(pl) {
		t.Fatalf("piece 2: size %d, v1 size %d", in.PieceSize(2), in.V1PieceSize(2))
	}
	for p := range in.NumPieces {
		data := space[p*pl:][:in.PieceSize(p)]
		if !in.CheckV1(p, data) {
			t.Fatalf("piece %d fails", p)
		}
	}
	tail := space[2*pl : 3*pl]
	tail[len(tail)-1] = 1 // data in the pad
	if in.CheckV1(2, tail) {
		t.Fatal("piece with data in its pad passes")
	}
}
