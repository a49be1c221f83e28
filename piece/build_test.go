package piece

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// infoTokens, which lets Build refuse a folder of too many files before
// hashing it, must never count fewer tokens than the dict Build writes.
func TestInfoTokensBoundsBuiltDicts(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a", "b/c", "b/d/e", "f/g/h/i", "j"} {
		full := filepath.Join(dir, "d", filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, make([]byte, 20000+len(p)), 0o644)
	}
	files, err := listDir(filepath.Join(dir, "d"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatV2, FormatHybrid, FormatV1} {
		m, err := Build(context.Background(), filepath.Join(dir, "d"), BuildOptions{Format: f, PieceLength: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		w := newWalker(m.Info.Bytes, 0)
		if err := w.skip(); err != nil {
			t.Fatal(err)
		}
		if est := infoTokens(files, f); est < w.tokens {
			t.Errorf("%v: estimated %d tokens, the dict has %d", f, est, w.tokens)
		}
	}
}
