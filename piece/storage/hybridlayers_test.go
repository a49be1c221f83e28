package storage

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/shoal-p2p/shoal/piece"
)

// A hybrid torrent whose .torrent left out the piece layers is downloaded
// by SHA-1 until they come (get does not wait for them), so a folder that
// already holds its data, with no resume record, must be found whole by
// Check: the v1 hashes prove each piece. Before, every piece whose merkle
// root was unknown counted as missing, and a file of good data that was
// not all zeros was taken for a user's file (foreign), so get refused to
// run on the torrent's own complete data.
func TestHybridCheckWithoutLayersUsesSHA1(t *testing.T) {
	tt := makeHybrid(t, []srcFile{{"a.bin", 100000}, {"b.bin", 70000}}, 32<<10, 9)
	in := tt.m.Info
	m := &piece.MetaInfo{Info: in} // no piece layers
	if len(m.MissingLayers()) != 2 {
		t.Fatalf("%d files lack layers, want 2", len(m.MissingLayers()))
	}
	s := openT(t, tt.src, in, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
	have, err := s.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, allHave(in.NumPieces)) {
		t.Errorf("check found %08b, want every piece", have)
	}
	if f := s.Foreign(); f != nil {
		t.Errorf("the torrent's own data taken for foreign files: %+v", f)
	}

	// The SHA-1 still decides: a piece that does not match it is not had.
	var info map[string]any
	if err := bencode.Unmarshal(in.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	pieces := []byte(info["pieces"].(string))
	pieces[1*20] ^= 1
	info["pieces"] = string(pieces)
	bad := parseInfoDict(t, info, nil)
	s2 := openT(t, tt.src, bad.Info, Options{Logger: quiet(), ResumePath: filepath.Join(t.TempDir(), "r")})
	if have, err = s2.Check(context.Background(), bad, nil); err != nil {
		t.Fatal(err)
	}
	for p := range in.NumPieces {
		if got := have[p/8]&(0x80>>(p%8)) != 0; got != (p != 1) {
			t.Errorf("piece %d with a broken SHA-1 in the torrent: had = %v", p, got)
		}
	}
}
