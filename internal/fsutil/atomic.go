// Package fsutil holds file-system helpers shared by shoal's packages.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path so that a crash at any moment leaves
// either the old file or the complete new one, never a torn mix: it writes
// a temporary file in the same folder, syncs it, renames it over path and
// syncs the folder so the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems refuse to sync a folder; the data itself is safe
	// by then, so that is not worth failing for.
	_ = d.Sync()
	return nil
}

// WriteFileAtomicIn is WriteFileAtomic for name inside root: every step
// goes through the os.Root, so a symbolic link planted on the way (a
// state folder linked elsewhere, say) cannot lead the write out of root's
// folder; it fails instead. The folder of name must exist.
func WriteFileAtomicIn(root *os.Root, name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	var tmp *os.File
	var tmpName string
	for range 100 {
		tmpName = filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d", filepath.Base(name), rand.Uint32()))
		f, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			tmp = f
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if tmp == nil {
		return fmt.Errorf("%s: no free temporary name", name)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			root.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmpName, name); err != nil {
		return err
	}
	ok = true
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // as in WriteFileAtomic
	return nil
}
