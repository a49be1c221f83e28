package main

import (
	"io"
	"slices"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"shoal", "create", "P", "-o", "F", "--private"}, []string{"shoal", "create", "-o", "F", "--private", "--", "P"}},
		{[]string{"shoal", "create", "-o", "F", "P"}, []string{"shoal", "create", "-o", "F", "--", "P"}},
		{[]string{"shoal", "--log-level", "debug", "info", "X", "--json"}, []string{"shoal", "--log-level", "debug", "info", "--json", "--", "X"}},
		{[]string{"shoal", "create", "--", "-weird-name"}, []string{"shoal", "create", "--", "-weird-name"}},
		{[]string{"shoal", "create", "P", "--piece-length=16k", "extra"}, []string{"shoal", "create", "--piece-length=16k", "--", "P", "extra"}},
		{[]string{"shoal"}, []string{"shoal"}},
	}
	for _, c := range cases {
		if got, err := permuteArgs(app, c.in); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%v → %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPermuteArgsMissingValue(t *testing.T) {
	if _, err := permuteArgs(newApp(io.Discard, io.Discard), []string{"shoal", "create", "P", "-o"}); err == nil {
		t.Fatal("a value flag at the end was accepted without its value")
	}
	if _, err := permuteArgs(newApp(io.Discard, io.Discard), []string{"shoal", "nosuch", "-x"}); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "16k": 16384, "500K": 512000, "10M": 10 << 20, "1G": 1 << 30, "2MiB": 2 << 20, "7": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1.5M", "9999999999T", "10X"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
