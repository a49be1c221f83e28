package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	if err := WriteFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two" {
		t.Fatalf("read back %q, %v; want \"two\"", got, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries, want only the file: %v", len(ents), ents)
	}
}

func TestWriteFileAtomicFailsInMissingFolder(t *testing.T) {
	if err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "such"), []byte("x"), 0o600); err == nil {
		t.Fatal("want an error for a missing folder")
	}
}

func TestWriteFilesAtomicWritesAllAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFilesAtomic(dir, []File{{"a", []byte("one"), 0o600}, {"b", []byte("two"), 0o644}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "one", "b": "two"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s: read back %q, %v; want %q", name, got, err, want)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "b")); st.Mode().Perm() != 0o644 {
		t.Errorf("b: mode %v, want 0644", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("folder holds %v, want only a and b", ents)
	}
	// A name that cannot be created (its folder is missing): an error,
	// and no temporary file left behind by the file before it.
	if err := WriteFilesAtomic(dir, []File{{"c", []byte("x"), 0o600}, {filepath.Join("no", "d"), []byte("y"), 0o600}}); err == nil {
		t.Fatal("want an error for a file in a missing folder")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("after a failed write the folder holds %v, want only a and b", ents)
	}
}

func TestWriteFileAtomicInStaysInside(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	os.Mkdir(filepath.Join(dir, "state"), 0o755)
	if err := WriteFileAtomicIn(root, filepath.Join("state", "rec"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomicIn(root, filepath.Join("state", "rec"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "state", "rec"))
	if err != nil || string(got) != "two" {
		t.Fatalf("read back %q, %v; want \"two\"", got, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "state")); len(ents) != 1 {
		t.Errorf("state folder holds %v, want only the record", ents)
	}
	// A folder on the way that links out of root: refused, nothing written
	// where it points.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomicIn(root, filepath.Join("link", "rec"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote through a symbolic link leading out of the folder")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("files appeared outside the folder: %v", ents)
	}
}
