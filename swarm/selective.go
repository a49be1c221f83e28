package swarm

import (
	"fmt"

	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/piece/picker"
)

// PiecePriorities maps per-file priorities (len(info.Files), pad files
// ignored) to the per-piece ones AddOptions.Priority takes: a piece gets
// the highest priority of the files it holds bytes of. In a v1 torrent a
// piece may span files, so the piece at the boundary of a wanted file is
// wanted whole, and the bytes of it that belong to an unwanted neighbour
// are written to that neighbour's file (sparse, holding only them): a
// piece can only be verified whole. v2 and hybrid pieces are per file.
func PiecePriorities(info *piece.Info, files []picker.Priority) ([]picker.Priority, error) {
	if len(files) != len(info.Files) {
		return nil, fmt.Errorf("priorities for %d files, torrent has %d", len(files), len(info.Files))
	}
	prio := make([]picker.Priority, info.NumPieces)
	pl := int64(info.PieceLength)
	for i, f := range info.Files {
		if f.Pad || f.Length == 0 || files[i] == picker.Skip {
			continue
		}
		first := int(f.Offset / pl)
		last := int((f.Offset + f.Length - 1) / pl)
		if info.Format != piece.FormatV1 {
			first, last = f.FirstPiece, f.FirstPiece+f.NumPieces-1
		}
		for p := max(first, 0); p <= last && p < len(prio); p++ {
			prio[p] = max(prio[p], files[i])
		}
	}
	return prio, nil
}

// SharedFiles lists the files not wanted (files[i] == picker.Skip) that
// share a piece with a wanted one: those are the only unwanted files a
// selective v1 download writes to. v2 and hybrid torrents have none.
func SharedFiles(info *piece.Info, files []picker.Priority) []int {
	if info.Format != piece.FormatV1 || len(files) != len(info.Files) {
		return nil
	}
	prio, err := PiecePriorities(info, files)
	if err != nil {
		return nil
	}
	pl := int64(info.PieceLength)
	var out []int
	for i, f := range info.Files {
		if f.Pad || f.Length == 0 || files[i] != picker.Skip {
			continue
		}
		for p := f.Offset / pl; p <= (f.Offset+f.Length-1)/pl && p < int64(len(prio)); p++ {
			if prio[p] != picker.Skip {
				out = append(out, i)
				break
			}
		}
	}
	return out
}
