// Package lttest runs libtorrent 2.0 (Debian's python3-libtorrent) as the
// reference peer in shoal's interop tests.
package lttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Python is the interpreter that can import Debian's python3-libtorrent;
// another python3 earlier on PATH usually cannot.
const Python = "/usr/bin/python3"

// Require fails the test unless libtorrent can be imported. Interop is part
// of what shoal promises, so a missing libtorrent is a failure, not a skip;
// `make test` installs it. Set SHOAL_NO_INTEROP=1 to skip knowingly.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("SHOAL_NO_INTEROP") == "1" {
		t.Skip("SHOAL_NO_INTEROP=1: interop with libtorrent not tested")
	}
	out, err := exec.Command(Python, "-c", "import libtorrent; print(libtorrent.__version__)").CombinedOutput()
	if err != nil {
		t.Fatalf("libtorrent is not importable by %s (install python3-libtorrent, or run make test): %v\n%s", Python, err, out)
	}
	if !strings.HasPrefix(string(out), "2.") {
		t.Fatalf("libtorrent %s found; interop tests need 2.x", strings.TrimSpace(string(out)))
	}
}

// Script returns the path of a helper script in testdata/interop.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "interop", name)
}

// Run runs a helper script with args and returns its trimmed stdout,
// failing the test with its stderr if it fails.
func Run(t testing.TB, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Python, append([]string{Script(script)}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
