package swarm

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxFileLines is issue 11's bound on a non-test file of swarm and its
// packages: past it a file holds more than one concern, and a newcomer
// can no longer tell from the tree where a concern lives.
const maxFileLines = 600

// swarmSources lists the non-test Go files under swarm/, by their path
// from the repository root.
func swarmSources(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, filepath.ToSlash(filepath.Join("swarm", p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// No file of swarm grows past maxFileLines (issue 11).
func TestSwarmFilesStaySmall(t *testing.T) {
	for _, f := range swarmSources(t) {
		data, err := os.ReadFile(strings.TrimPrefix(f, "swarm/"))
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte("\n")); n > maxFileLines {
			t.Errorf("%s has %d lines, more than %d: split it by concern", f, n, maxFileLines)
		}
	}
}

// README's Layout section names every file of package swarm and every
// package under it, so a newcomer finds each concern from the README
// (issue 11): a file added without a word there fails here.
func TestLayoutNamesEverySwarmFile(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	pkgs := map[string]bool{}
	for _, f := range swarmSources(t) {
		dir, base := filepath.Dir(f), filepath.Base(f)
		if dir != "swarm" {
			pkgs[dir] = true
			continue
		}
		if !strings.Contains(layout, "`"+base+"`") && !strings.Contains(layout, "`"+f+"`") {
			t.Errorf("README's Layout does not name %s", f)
		}
	}
	for dir := range pkgs {
		if !strings.Contains(layout, "`"+dir+"`") {
			t.Errorf("README's Layout does not name package %s", dir)
		}
	}
}
