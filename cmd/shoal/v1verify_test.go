package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verify checks v1 and hybrid data by their SHA-1 pieces too, and names a
// bad v1 piece in every file it holds bytes of: without pad files the
// piece that ends big.bin also holds all of "read me.txt".
func TestVerifyV1AndHybrid(t *testing.T) {
	const pl = 16 << 10
	order := []string{"big.bin", "docs/read me.txt", "empty"}
	for _, tc := range []struct {
		format string
		pieces int
		bad    []string
	}{
		{"v1", 19, []string{"BAD data/big.bin: piece 18 (bytes 294912-299999) does not match", "BAD data/docs/read me.txt: piece 0 (bytes 0-999) does not match"}},
		{"v1pad", 20, []string{"BAD data/big.bin: piece 18 (bytes 294912-299999) does not match"}},
		{"hybrid", 20, []string{"BAD data/big.bin: piece 18 (bytes 294912-299999) does not match"}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			dir := content(t)
			switch tc.format {
			case "hybrid":
				writeHybridTorrent(t, dir, "t.torrent", pl, order...)
			default:
				writeV1Torrent(t, dir, "t.torrent", pl, tc.format == "v1pad", order...)
			}
			r := shoal(t, dir, nil, "verify", "t.torrent")
			if want := fmt.Sprintf("OK data: 3 files, 301000 bytes, %d pieces verified\n", tc.pieces); r.code != 0 || r.stdout != want {
				t.Fatalf("verify intact: %d %q %s; want %q", r.code, r.stdout, r.stderr, want)
			}
			big := filepath.Join(dir, "data", "big.bin")
			data, err := os.ReadFile(big)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)-1] ^= 1
			if err := os.WriteFile(big, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r = shoal(t, dir, nil, "verify", "t.torrent")
			want := strings.Join(tc.bad, "\n") + "\n"
			if r.code != 1 || r.stdout != want || !strings.Contains(r.stderr, fmt.Sprintf("%d of 3 files do not match", len(tc.bad))) {
				t.Fatalf("verify flipped byte: %d\n%s%s\nwant:\n%s", r.code, r.stdout, r.stderr, want)
			}
		})
	}
}
