package benchproc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, " 16k ": 16 << 10, "16KiB": 16 << 10, "4M": 4 << 20,
		"4MB": 4 << 20, "1MiB": 1 << 20, "2G": 2 << 30, "1T": 1 << 40, "7B": 7,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1X", "1.5M", "9999999999999T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{1000: "1000 B", 16 << 10: "16 KiB", 3 << 20: "3 MiB", 1 << 30: "1 GiB", 1<<20 + 1024: "1025 KiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLineValue(t *testing.T) {
	out := "name: x\n  info-hash: abc  \r\ninfo-hash: second\ndone: 5 1.25\n"
	for prefix, want := range map[string]string{
		"info-hash: ": "abc", // first match wins, surrounding space dropped
		"done: ":      "5 1.25",
		"magnet: ":    "",
	} {
		if got := LineValue(out, prefix); got != want {
			t.Errorf("LineValue(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &LineWriter{Fn: func(l string) { got = append(got, l) }}
	for _, chunk := range []string{"listen", "ing: 1.2.3.4:5\r\nmag", "net: m\n\nunfinished"} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if want := []string{"listening: 1.2.3.4:5", "magnet: m", ""}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestWriteRandomAndFileSHA256(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	const n = 4<<20 + 123 // more than one chunk, and not a whole number of them
	sum, err := WriteRandom(context.Background(), path, n)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); len(data) != n || !bytes.Equal(sum, want[:]) {
		t.Fatalf("WriteRandom: %d bytes, sum %x; file has %d bytes, sum %x", n, sum, len(data), want)
	}
	got, size, err := FileSHA256(path)
	if err != nil || size != n || !bytes.Equal(got, sum) {
		t.Errorf("FileSHA256 = %x, %d, %v; want %x, %d", got, size, err, sum, n)
	}
	if _, _, err := FileSHA256(filepath.Join(dir, "missing")); err == nil {
		t.Error("FileSHA256 of a missing file: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteRandom(ctx, filepath.Join(dir, "cancelled"), n); err == nil {
		t.Error("WriteRandom with a cancelled context: no error")
	}
}
