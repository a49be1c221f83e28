package units

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "16k": 16384, "500K": 512000, "10M": 10 << 20, "1G": 1 << 30, "2MiB": 2 << 20, "7": 7, " 3T ": 3 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1.5M", "9999999999T", "10X", "M1"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted as %d", in, got)
		}
	}
}
