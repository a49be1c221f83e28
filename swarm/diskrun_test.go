package swarm

import "testing"

// Runs join blocks that follow each other in one piece, up to the limit,
// and nothing else: a gap, another piece or a block out of order ends one.
func TestRunLen(t *testing.T) {
	const b = 16 << 10
	job := func(pc, blk, n int) diskJob { return diskJob{pc: pc, begin: blk * b, n: n} }
	for _, tc := range []struct {
		name  string
		jobs  []diskJob
		limit int
		want  []int // run lengths, in order
	}{
		{"one", []diskJob{job(0, 0, b)}, 1 << 20, []int{1}},
		{"in order", []diskJob{job(3, 0, b), job(3, 1, b), job(3, 2, b)}, 1 << 20, []int{3}},
		{"a gap", []diskJob{job(3, 0, b), job(3, 2, b), job(3, 3, b)}, 1 << 20, []int{1, 2}},
		{"out of order", []diskJob{job(3, 1, b), job(3, 0, b)}, 1 << 20, []int{1, 1}},
		{"next piece", []diskJob{job(3, 63, b), job(4, 0, b)}, 1 << 20, []int{1, 1}},
		{"interleaved peers", []diskJob{job(1, 0, b), job(2, 0, b), job(1, 1, b), job(2, 1, b)}, 1 << 20, []int{1, 1, 1, 1}},
		{"at the limit", []diskJob{job(0, 0, b), job(0, 1, b), job(0, 2, b), job(0, 3, b), job(0, 4, b)}, 2 * b, []int{2, 2, 1}},
		{"short last block", []diskJob{job(7, 0, b), job(7, 1, 100)}, 1 << 20, []int{2}},
	} {
		var got []int
		for i := 0; i < len(tc.jobs); {
			n := runLen(tc.jobs[i:], tc.limit)
			got = append(got, n)
			i += n
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: runs %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: runs %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}
