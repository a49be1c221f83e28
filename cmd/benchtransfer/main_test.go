package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseFormats(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: an error
	}{
		{"v2,hybrid,v1", []string{"v2", "hybrid", "v1"}},
		{" v1 , v2 ", []string{"v1", "v2"}},
		{"hybrid,", []string{"hybrid"}},
		{"v3", nil},
		{"V1", nil},
		{"v1,v1", nil},
		{"", nil},
		{" , ", nil},
	} {
		got, err := parseFormats(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseFormats(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseFormats(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSeededHash(t *testing.T) {
	const (
		v2    = "ab34c9e1f0d2b8a7c6e5f4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a098"
		v1    = "0123456789abcdef0123456789abcdef01234567"
		zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	)
	for _, tc := range []struct {
		name string
		vals map[string]string
		want string
	}{
		{"shoal v2", map[string]string{"info-hash: ": v2}, v2},
		{"shoal v1", map[string]string{"info-hash: ": v1}, v1},
		{"libtorrent hybrid", map[string]string{"info-hash: ": v2, "info-hash-v1: ": v1}, v2},
		{"libtorrent v1", map[string]string{"info-hash: ": zeros, "info-hash-v1: ": v1}, v1},
		{"libtorrent v1 without its v1 line", map[string]string{"info-hash: ": zeros}, ""},
		{"nothing printed", map[string]string{}, ""},
	} {
		if got := seededHash(tc.vals); got != tc.want {
			t.Errorf("%s: seededHash = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// -encryption: shoal's policies, each once; none given is one run without
// the flag.
func TestParseEncryptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: an error
	}{
		{"off,require", []string{"off", "require"}},
		{" prefer ", []string{"prefer"}},
		{"", []string{""}},
		{"rc4", nil},
		{"off,off", nil},
	} {
		got, err := parseEncryptions(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseEncryptions(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseEncryptions(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// utime and stime are counted from the last ')', since a command name may
// hold spaces and parentheses.
func TestParseStat(t *testing.T) {
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 37 0 0 20 0 3 0 100 1000 10 18446744073709551615\n"
	c, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if c.user != 1500*time.Millisecond || c.sys != 370*time.Millisecond {
		t.Fatalf("parseStat = %v user, %v sys; want 1.5s, 370ms", c.user, c.sys)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("parseStat accepted a short line")
	}
	// Our own: it must parse, and CPU time only grows.
	a, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := procCPU(os.Getpid())
	if err != nil || b.user+b.sys < a.user+a.sys {
		t.Fatalf("procCPU went from %v to %v, %v", a, b, err)
	}
}

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{3, 1, 2}, spread{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, spread{2.5, 1, 4}},
		{[]float64{7}, spread{7, 7, 7}},
		{nil, spread{}},
	} {
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// Rates over each interval of the samples, at the interval's end.
func TestRateSeries(t *testing.T) {
	s := []sample{{0, 0}, {250 * time.Millisecond, 25e6}, {500 * time.Millisecond, 25e6}, {time.Second, 125e6}}
	got := rateSeries(s)
	want := []float64{100, 0, 200}
	if len(got) != len(want) {
		t.Fatalf("rateSeries = %v", got)
	}
	for i := range want {
		if got[i].Y != want[i] || got[i].X != s[i+1].at.Seconds() {
			t.Errorf("point %d = %+v, want (%v, %v)", i, got[i], s[i+1].at.Seconds(), want[i])
		}
	}
}

func TestSplitPairBare(t *testing.T) {
	if s, d, ok := splitPair("bare"); !ok || s != "bare" || d != "bare" {
		t.Fatalf("splitPair(bare) = %q, %q, %v", s, d, ok)
	}
	if _, _, ok := splitPair("bare-shoal"); ok {
		t.Fatal("splitPair accepted bare-shoal")
	}
}

// The progress figure: write_bytes grows with what this process dirties.
func TestIOWriteBytes(t *testing.T) {
	before, err := ioWriteBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Beside the test, not in $TMPDIR: tmpfs does no dirty accounting.
	dir, err := os.MkdirTemp(".", "iotest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := ioWriteBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 1<<20 {
		t.Fatalf("write_bytes went from %d to %d after writing 1 MiB", before, after)
	}
}
