package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `make fuzz` runs every fuzz target in the repository: go test -fuzz
// takes one target at a time, so each must be listed, and one that is
// not is never fuzzed (FuzzParseInfo and lsd's FuzzParse were not).
func TestMakeFuzzRunsEveryTarget(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	// The recipe's logical lines, continuations joined.
	recipe := strings.Split(strings.ReplaceAll(string(mk), "\\\n", " "), "\n")
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	n := 0
	err = filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(filepath.Dir(strings.TrimPrefix(p, "../../"))) + "/"
		for _, m := range decl.FindAllSubmatch(src, -1) {
			n++
			name := regexp.MustCompile(`\b` + string(m[1]) + `\b`)
			listed := false
			for _, line := range recipe {
				if strings.Contains(line, " "+pkg+" ") && strings.Contains(line, "-fuzz") && name.MatchString(line) {
					listed = true
				}
			}
			if !listed {
				t.Errorf("%s in %s is not run by make fuzz", m[1], p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no fuzz targets: the walk is wrong")
	}
}
