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

// File is one file of WriteFilesAtomic: its name in the folder, its
// contents and its permissions.
type File struct {
	Name string
	Data []byte
	Perm os.FileMode
}

// WriteFilesAtomic writes several files of folder dir, each atomically as
// WriteFileAtomic does, but with one sync of the folder for all of their
// renames rather than one each. The files are renamed into place in the
// order given, so on a file system that keeps renames in order (ext4,
// xfs, btrfs) a crash leaves a prefix of them new; once it returns nil,
// all are durable. On an error, the files renamed already stay, new.
func WriteFilesAtomic(dir string, files []File) error {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, name := range tmps {
			if name != "" {
				os.Remove(name)
			}
		}
	}()
	for _, f := range files {
		tmp, err := os.CreateTemp(dir, "."+f.Name+".tmp-*")
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp.Name())
		err = writeSynced(tmp, f.Data, f.Perm)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(dir, f.Name)); err != nil {
			return err
		}
		tmps[i] = ""
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // as in WriteFileAtomic
	return nil
}

// writeSynced writes data to f with permissions perm and syncs it.
func writeSynced(f *os.File, data []byte, perm os.FileMode) error {
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
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
