package piece

import (
	"crypto/sha1"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// seedTorrents adds every fixture under testdata/torrents, made by shoal
// and by libtorrent (v2, hybrid and v1), and every torrent of
// TestParseLikeLibtorrent as fuzz seeds, handing each to add.
func seedTorrents(f *testing.F, add func([]byte)) {
	paths, _ := filepath.Glob("../testdata/torrents/*.torrent")
	if len(paths) == 0 {
		f.Fatal("no seed torrents in testdata/torrents")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	for _, c := range parseCases(f) {
		add(c.torrent)
	}
}

// checkInfo fails t unless an accepted info dict is self-consistent: the
// piece space of its format, spans that stay inside their files, paths
// that stay inside the download folder.
func checkInfo(t *testing.T, in *Info) {
	t.Helper()
	if in.NumPieces <= 0 || in.NumPieces > MaxPieces || in.TotalLength <= 0 {
		t.Fatalf("%d pieces, %d bytes", in.NumPieces, in.TotalLength)
	}
	if in.HasV1() && len(in.Pieces) != 20*in.NumPieces {
		t.Fatalf("%d bytes of v1 hashes for %d pieces", len(in.Pieces), in.NumPieces)
	}
	pl := in.PieceLength
	pieces, total := 0, int64(0)
	var off int64
	for i, f := range in.Files {
		if !f.Pad {
			for _, c := range in.DiskPath(i) {
				if CheckPathComponent(c) != nil {
					t.Fatalf("unsafe component %q accepted", c)
				}
			}
			total += f.Length
		}
		if in.Format == FormatV1 {
			if f.Offset != off || f.FirstPiece != int(off/pl) {
				t.Fatalf("v1 file %d at %d (piece %d), want %d", i, f.Offset, f.FirstPiece, off)
			}
			off += f.Length
			continue
		}
		if f.Pad || f.FirstPiece != pieces || f.Offset != int64(f.FirstPiece)*pl {
			t.Fatalf("file %d starts at piece %d (byte %d), want %d; pad %v", i, f.FirstPiece, f.Offset, pieces, f.Pad)
		}
		if (f.Length > 0) != (f.PiecesRoot != Hash{}) {
			t.Fatalf("file %d: %d bytes, root %x", i, f.Length, f.PiecesRoot)
		}
		pieces += f.NumPieces
	}
	if in.Format == FormatV1 {
		pieces = int((off + pl - 1) / pl)
	}
	if pieces != in.NumPieces || total != in.TotalLength {
		t.Fatalf("%d pieces and %d bytes counted, info says %d and %d", pieces, total, in.NumPieces, in.TotalLength)
	}
	// The first and last pieces, and a few between: a torrent may claim
	// two million.
	var spans []Span
	for k := range 16 {
		p := k * (in.NumPieces - 1) / 15
		size, v1size := in.PieceSize(p), in.V1PieceSize(p)
		if size <= 0 || size > pl || v1size < size || v1size > pl {
			t.Fatalf("piece %d: %d bytes, %d in v1", p, size, v1size)
		}
		spans = in.AppendSpans(spans[:0], p, 0, v1size)
		var n, data int64
		for _, s := range spans {
			if s.Len <= 0 {
				t.Fatalf("piece %d: empty span %+v", p, s)
			}
			if s.File >= 0 {
				if f := in.Files[s.File]; f.Pad || s.Off < 0 || s.Off+s.Len > f.Length {
					t.Fatalf("piece %d: span %+v outside file %d of %d bytes (pad %v)", p, s, s.File, f.Length, f.Pad)
				}
				data += s.Len
			}
			n += s.Len
		}
		if n != v1size || (in.Format != FormatV1 && data != size) {
			t.Fatalf("piece %d: spans cover %d bytes (%d of data), want %d (%d)", p, n, data, v1size, size)
		}
	}
}

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts is self-consistent and survives a re-encode.
func FuzzParse(f *testing.F) {
	seedTorrents(f, func(b []byte) { f.Add(b) })
	f.Add([]byte("d4:infod9:file treed1:ad0:d6:lengthi0eeee12:meta versioni2e4:name1:n12:piece lengthi16384eee"))
	f.Add([]byte("d4:infod6:lengthi5e4:name1:n12:piece lengthi1024e6:pieces20:aaaaaaaaaaaaaaaaaaaaee\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		in := m.Info
		checkInfo(t, in)
		if in.HasV2() && len(m.Layers) != len(in.Files) {
			t.Fatalf("%d layers for %d files", len(m.Layers), len(in.Files))
		}
		for i, l := range m.Layers {
			if l != nil && in.CheckLayer(i, l) != nil {
				t.Fatalf("layer %d accepted but wrong", i)
			}
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(b)
		if err != nil || m2.Info.Hash != in.Hash || m2.Info.V1Hash != in.V1Hash || len(m2.MissingLayers()) != len(m.MissingLayers()) {
			t.Fatalf("re-encoded torrent: %v", err)
		}
	})
}

// FuzzParseInfo checks ParseInfo, the parser of info dicts from peers
// (BEP 9) and of every .torrent, on v2, v1 and hybrid dicts: no panic,
// hashes of exactly the bytes given, and a self-consistent result.
func FuzzParseInfo(f *testing.F) {
	seedTorrents(f, func(b []byte) {
		var raw struct {
			Info bencode.Bytes `bencode:"info"`
		}
		if bencode.Unmarshal(trimmed(b), &raw) == nil && len(raw.Info) > 0 {
			f.Add([]byte(raw.Info))
		}
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInfo(b)
		if err != nil {
			return
		}
		if string(in.Bytes) != string(b) {
			t.Fatal("Bytes differ from the input")
		}
		if in.HasV2() != (in.Hash != Hash{}) || in.HasV2() && in.Hash != sha256.Sum256(b) {
			t.Fatalf("v2 hash %x for a %v torrent", in.Hash, in.Format)
		}
		if in.HasV1() != (in.V1Hash != V1Hash{}) || in.HasV1() && in.V1Hash != sha1.Sum(b) {
			t.Fatalf("v1 hash %x for a %v torrent", in.V1Hash, in.Format)
		}
		checkInfo(t, in)
	})
}

// trimmed drops what follows a torrent's top-level dict, as Parse does.
func trimmed(b []byte) []byte {
	if n, err := valueEnd(b); err == nil {
		return b[:n]
	}
	return b
}

// FuzzParseMagnet checks that magnet parsing never panics and that an
// accepted magnet round-trips through String with every hash it has.
func FuzzParseMagnet(f *testing.F) {
	for _, s := range []string{hexHash, "urn:btmh:1220" + hexHash, "magnet:?xt=urn:btmh:1220" + hexHash + "&dn=a&tr=http%3A%2F%2Fh%2Fa&x.pe=127.0.0.1:1",
		"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567", "magnet:?", "urn:btmh:1114",
		v1Hex, strings.ToUpper(v1Hex), "urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH", "magnet:?xt=urn:btih:aerukz4jvpg66ajdivtytk6n54asgrlh&dn=x",
		"magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRL", "magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLHA",
		"magnet:?xt=urn:btih:" + v1Hex + "&xt=urn:btmh:1220" + hexHash + "&x.pe=[::1]:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMagnet(s)
		if err != nil {
			return
		}
		if !m.HasV1() && !m.HasV2() {
			t.Fatalf("%q accepted without a hash", s)
		}
		m2, err := ParseMagnet(m.String())
		if err != nil || m2.Hash != m.Hash || m2.V1Hash != m.V1Hash || m2.String() != m.String() {
			t.Fatalf("%q → %q → %v", s, m.String(), err)
		}
	})
}
