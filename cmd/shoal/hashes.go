package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shoal-p2p/shoal/piece"
)

// looksLikeMagnet tells a magnet link, URN or bare hash from a file name.
// A file that exists wins, so a torrent named like a hash still opens. A
// word of letters and digits alone, at least as long as the shortest
// hash, is taken for a mistyped hash rather than a missing file, so that
// the error says what a hash looks like.
func looksLikeMagnet(s string) bool {
	l := strings.ToLower(s)
	if strings.HasPrefix(l, "magnet:") || strings.HasPrefix(l, "urn:btmh:") || strings.HasPrefix(l, "urn:btih:") {
		return true
	}
	if _, err := os.Stat(s); err == nil {
		return false
	}
	return len(s) >= 32 && strings.IndexFunc(s, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) < 0
}

// parseLink reads what looksLikeMagnet took for a magnet: a magnet link,
// a URN, or a bare info-hash (64 hex digits for v2; 40 hex digits or 32
// base32 letters for v1). The error is one line that says what a hash
// looks like.
func parseLink(s string) (piece.Magnet, error) {
	s = strings.TrimSpace(s)
	l := strings.ToLower(s)
	bare := !strings.HasPrefix(l, "magnet:") && !strings.HasPrefix(l, "urn:")
	n := len(s)
	if bare && n == 32 {
		// Only a btih URN may be base32; a bare one is as clear.
		s = "urn:btih:" + s
	}
	mg, err := piece.ParseMagnet(s)
	if err == nil || !bare {
		return mg, err
	}
	const want = "64 hex digits for v2, 40 hex digits or 32 base32 letters for v1"
	switch n {
	case 64, 40, 32:
		// The length is a hash's: say what is wrong with the digits.
		why := err.Error()
		if _, after, ok := strings.Cut(why, fmt.Sprintf("%q: ", s)); ok {
			why = after
		}
		return mg, fmt.Errorf("%q is not an info-hash (%s): %s", strings.TrimPrefix(s, "urn:btih:"), want, why)
	}
	return mg, fmt.Errorf("%.70q is neither a file nor an info-hash (%s); it has %d characters", s, want, n)
}

// magnetID names a magnet's torrent in file names, as piece.Info.ID names
// a torrent: the v2 hash when the link carries one, else the v1 hash.
func magnetID(mg piece.Magnet) string {
	if mg.HasV2() {
		return fmt.Sprintf("%x", mg.Hash[:])
	}
	return mg.V1Hash.String()
}

// formatName says in words which hashes a torrent of format f (as
// piece.Format spells it) carries, for info.
func formatName(f string) string {
	switch f {
	case "v2":
		return "v2 (BitTorrent v2 only: SHA-256 merkle trees)"
	case "hybrid":
		return "hybrid (v1 and v2 over the same data: v1-only and v2 peers share one swarm)"
	case "v1":
		return "v1 (BitTorrent v1 only: SHA-1 piece hashes)"
	}
	return f
}

// printHashes writes the lines create and seed print about the torrent:
// "info-hash: ID" (the v2 hash when the torrent has one, else the v1
// hash), then "magnet:" right after it, as CLI.md promises scripts, and
// for a hybrid then "info-hash v1:", so every hash the torrent has is
// shown.
func printHashes(w io.Writer, in *piece.Info, mg piece.Magnet) {
	fmt.Fprintf(w, "info-hash: %s\nmagnet: %s\n", in.ID(), mg)
	if in.HasV1() && in.HasV2() {
		fmt.Fprintf(w, "info-hash v1: %s\n", in.V1Hash)
	}
}
