package piece

import "testing"

// FileOfPiece gives the first file with data in a v1 piece, whatever
// empty files lie in the piece space: an empty file part-way through a
// piece ends, as a range of pieces, before the file it sits after, and the
// binary search must not take it for the end of the search. The swarm
// finds the files of a v1 piece from FileOfPiece on (serve checks, faults).
func TestFileOfPieceV1EmptyFileMidPiece(t *testing.T) {
	const pl = 16 << 10
	// a ends part-way through piece 4; the empty files sit there too.
	in, err := ParseInfo(encode(t, v1Dict(pl, tf{"a", 4*pl + 100, ""}, tf{"e1", 0, ""}, tf{"c", 5 * pl, ""},
		tf{"e2", 0, ""}, tf{"e3", 0, ""}, tf{"d", 100, ""}, tf{"e4", 0, ""}, tf{"f", 3 * pl, ""})))
	if err != nil {
		t.Fatal(err)
	}
	for p := range in.NumPieces {
		want := -1
		for i := range in.Files {
			f := &in.Files[i]
			if f.Length > 0 && f.Offset < int64(p+1)*pl && f.Offset+f.Length > int64(p)*pl {
				want = i
				break
			}
		}
		if got := in.FileOfPiece(p); got != want {
			t.Errorf("piece %d: file %d (%s), want %d (%s)", p, got, in.Files[min(got, len(in.Files)-1)].Path, want, in.Files[want].Path)
		}
	}
}
