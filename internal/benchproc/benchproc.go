// Package benchproc holds what the benchmark commands (cmd/benchtransfer,
// cmd/swarmbench) share: running children in their own process groups and
// watching their output, building the shoal binary, writing and hashing the
// benchmark data, and reading and printing sizes.
//
// It is internal tooling for those programs, not part of shoal's API.
package benchproc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-p2p/shoal/internal/units"
)

// ModuleRoot finds the directory of the main module, so that defaults and
// go build work from any directory inside it.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// BuildShoal builds ./cmd/shoal of the current module into dst. The go tool's
// output goes to our stderr, so a compile error is seen as go prints it.
// The error says which step failed, ready to be logged as it is.
func BuildShoal(ctx context.Context, dst string) error {
	root, err := ModuleRoot()
	if err != nil {
		return fmt.Errorf("finding the module root for go build: %w", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", dst, "./cmd/shoal")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/shoal: %w", err)
	}
	return nil
}

// CreateTorrent runs `shoal create` on src and returns what it printed on
// stdout (its "key: value" lines, see LineValue). Its stderr goes to ours.
// extra goes on the command line after the rest, e.g. "--format", "v1".
func CreateTorrent(ctx context.Context, shoal, src string, pieceLength int64, torrent string, extra ...string) (string, error) {
	argv := append([]string{"create", src,
		"--piece-length", strconv.FormatInt(pieceLength, 10), "-o", torrent}, extra...)
	create := exec.CommandContext(ctx, shoal, argv...)
	create.Stderr = os.Stderr
	out, err := create.Output()
	return string(out), err
}

// WriteRandom fills path with n pseudo-random bytes and returns their
// SHA-256. Chunked, so memory stays flat whatever n is; ChaCha8 is fast
// enough that the disk, not the generator, sets the pace. The seed is the
// clock: each run gets fresh data, so no cache or dedup can flatter it.
func WriteRandom(ctx context.Context, path string, n int64) ([]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := n; left > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := buf[:min(int64(len(buf)), left)]
		rng.Read(chunk)
		h.Write(chunk)
		if _, err := f.Write(chunk); err != nil {
			return nil, err
		}
		left -= int64(len(chunk))
	}
	return h.Sum(nil), f.Close()
}

// WriteSource creates the benchmark's source file, tmp/src/name, holding n
// random bytes (see WriteRandom), and returns its path and SHA-256. It sits
// in a directory of its own because seeders are pointed at that directory.
// log reports the write, which takes a while for large n.
func WriteSource(ctx context.Context, tmp, name string, n int64, log func(string, ...any)) (string, []byte, error) {
	srcDir := filepath.Join(tmp, "src")
	if err := os.Mkdir(srcDir, 0o755); err != nil {
		return "", nil, err
	}
	src := filepath.Join(srcDir, name)
	log("writing %d bytes of random data", n)
	sum, err := WriteRandom(ctx, src, n)
	if err != nil {
		return "", nil, fmt.Errorf("writing data: %w", err)
	}
	return src, sum, nil
}

// FileSHA256 hashes a file as a stream, so a copy of any size can be checked
// without holding it in memory, and returns the digest and the byte count.
func FileSHA256(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return h.Sum(nil), n, err
}

// ParseSize reads a byte count or rate as shoal does; see units.ParseSize.
func ParseSize(s string) (int64, error) { return units.ParseSize(s) }

// HumanBytes renders n in the largest binary unit that divides it exactly
// ("1 GiB", "256 KiB", "1000 B"): the sizes in the reports are chosen, not
// measured, so an exact unit reads better than a rounded fraction.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// LineValue returns the rest of the first line of out that starts with
// prefix (such as "info-hash: "), ignoring the line's surrounding space,
// or "" if there is none. shoal and lt_peer.py report results as such
// "key: value" lines.
func LineValue(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v
		}
	}
	return ""
}
