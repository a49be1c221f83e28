package tracker

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
)

// maxPasskeyLen bounds passkeys so a key file cannot hold something that
// would not fit in a sane URL path.
const maxPasskeyLen = 128

// LoadAllowList reads an info-hash allow-list: one hash per line in hex,
// either 40 digits (a v1 hash or an already truncated v2 hash) or 64 digits
// (a full v2 SHA-256 hash, truncated to its first 20 bytes as BEP 52 clients
// announce it). Blank lines and text after '#' are ignored.
func LoadAllowList(path string) ([]InfoHash, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load allow-list: %w", err)
	}
	hs, err := parseAllowList(b)
	if err != nil {
		return nil, fmt.Errorf("load allow-list %s:%w", path, err)
	}
	return hs, nil
}

func parseAllowList(b []byte) ([]InfoHash, error) {
	var hs []InfoHash
	err := eachLine(b, func(n int, line []byte) error {
		var full [32]byte
		switch len(line) {
		case 40, 64:
			if _, err := hex.Decode(full[:], line); err != nil {
				return fmt.Errorf("%d: invalid hex info-hash: %w", n, err)
			}
		default:
			return fmt.Errorf("%d: info-hash must be 40 or 64 hex digits, got %d characters", n, len(line))
		}
		var h InfoHash
		copy(h[:], full[:20])
		hs = append(hs, h)
		return nil
	})
	return hs, err
}

// loadKeys reads a passkey file: one key per line, blank lines and text
// after '#' ignored. Keys are limited to URL-path-safe characters so that a
// key in the file always matches the same key in a request path.
func loadKeys(path string) (map[string]struct{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load passkeys: %w", err)
	}
	keys := make(map[string]struct{})
	err = eachLine(b, func(n int, line []byte) error {
		if len(line) > maxPasskeyLen {
			return fmt.Errorf("%d: passkey longer than %d bytes", n, maxPasskeyLen)
		}
		for _, c := range line {
			if !isKeyChar(c) {
				return fmt.Errorf("%d: passkey has character %q; allowed are A-Z a-z 0-9 . _ ~ -", n, c)
			}
		}
		keys[string(line)] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load passkeys %s:%w", path, err)
	}
	return keys, nil
}

func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '~' || c == '-'
}

// eachLine calls f with the 1-based number and trimmed content of each
// non-empty line after stripping '#' comments.
func eachLine(b []byte, f func(n int, line []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if err := f(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}
