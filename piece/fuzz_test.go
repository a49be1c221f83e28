package piece

import (
	"os"
	"path/filepath"
	"testing"
)

// seedTorrents adds every fixture under testdata/torrents, made by shoal
// and by libtorrent (v2 and hybrid), as fuzz seeds.
func seedTorrents(f *testing.F) {
	paths, _ := filepath.Glob("../testdata/torrents/*.torrent")
	if len(paths) == 0 {
		f.Fatal("no seed torrents in testdata/torrents")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts is self-consistent and survives a re-encode.
func FuzzParse(f *testing.F) {
	seedTorrents(f)
	f.Add([]byte("d4:infod9:file treed1:ad0:d6:lengthi0eeee12:meta versioni2e4:name1:n12:piece lengthi16384eee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		in := m.Info
		pieces := 0
		for i, file := range in.Files {
			if file.FirstPiece != pieces {
				t.Fatalf("file %d starts at piece %d, want %d", i, file.FirstPiece, pieces)
			}
			for _, c := range in.DiskPath(i) {
				if CheckPathComponent(c) != nil {
					t.Fatalf("unsafe component %q accepted", c)
				}
			}
			pieces += file.NumPieces
		}
		if pieces != in.NumPieces {
			t.Fatalf("%d pieces counted, info says %d", pieces, in.NumPieces)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(b)
		if err != nil || m2.Info.Hash != in.Hash {
			t.Fatalf("re-encoded torrent: %v", err)
		}
	})
}

// FuzzParseMagnet checks that magnet parsing never panics and that an
// accepted magnet round-trips through String.
func FuzzParseMagnet(f *testing.F) {
	for _, s := range []string{hexHash, "urn:btmh:1220" + hexHash, "magnet:?xt=urn:btmh:1220" + hexHash + "&dn=a&tr=http%3A%2F%2Fh%2Fa&x.pe=127.0.0.1:1",
		"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567", "magnet:?", "urn:btmh:1114"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMagnet(s)
		if err != nil {
			return
		}
		m2, err := ParseMagnet(m.String())
		if err != nil || m2.Hash != m.Hash || m2.String() != m.String() {
			t.Fatalf("%q → %q → %v", s, m.String(), err)
		}
	})
}
