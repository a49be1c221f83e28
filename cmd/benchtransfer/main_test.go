package main

import (
	"slices"
	"testing"
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
