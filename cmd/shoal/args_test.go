package main

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"shoal", "create", "P", "-o", "F", "--private"}, []string{"shoal", "create", "-o", "F", "--private", "--", "P"}},
		{[]string{"shoal", "create", "-o", "F", "P"}, []string{"shoal", "create", "-o", "F", "--", "P"}},
		{[]string{"shoal", "--log-level", "debug", "info", "X", "--json"}, []string{"shoal", "--log-level", "debug", "info", "--json", "--", "X"}},
		{[]string{"shoal", "create", "--", "-weird-name"}, []string{"shoal", "create", "--", "-weird-name"}},
		{[]string{"shoal", "create", "P", "--piece-length=16k", "extra"}, []string{"shoal", "create", "--piece-length=16k", "--", "P", "extra"}},
		// A global flag after the command moves before it.
		{[]string{"shoal", "get", "X", "--log-level", "debug", "-o", "D"}, []string{"shoal", "--log-level", "debug", "get", "-o", "D", "--", "X"}},
		{[]string{"shoal", "get", "--log-level=info", "X"}, []string{"shoal", "--log-level=info", "get", "--", "X"}},
		{[]string{"shoal", "get", "X", "--timeout", "90s"}, []string{"shoal", "get", "--timeout", "90s", "--", "X"}},
		{[]string{"shoal", "--version"}, []string{"shoal", "--version"}},
	}
	for _, c := range cases {
		if got, err := permuteArgs(app, c.in); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%v → %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPermuteArgsMissingValue(t *testing.T) {
	for _, args := range [][]string{{"shoal"}, {"shoal", "--log-level", "debug"}} {
		if _, err := permuteArgs(newApp(io.Discard, io.Discard), args); !errors.Is(err, errNoCommand) {
			t.Errorf("%v: %v, want errNoCommand", args, err)
		}
	}
	if _, err := permuteArgs(newApp(io.Discard, io.Discard), []string{"shoal", "create", "P", "-o"}); err == nil {
		t.Fatal("a value flag at the end was accepted without its value")
	}
	if _, err := permuteArgs(newApp(io.Discard, io.Discard), []string{"shoal", "nosuch", "-x"}); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "16k": 16384, "500K": 512000, "10M": 10 << 20, "1G": 1 << 30, "2MiB": 2 << 20, "7": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1.5M", "9999999999T", "10X"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// A duration without a unit is the usual slip: the message says so, for
// every duration flag, given on the command line or in the environment.
func TestDurationWithoutUnit(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"get", "x.torrent", "--timeout", "5"}, "shoal: --timeout: 5: use a unit, e.g. 5s or 2m\n"},
		{nil, []string{"get", "--timeout=5", "x.torrent"}, "shoal: --timeout: 5: use a unit, e.g. 5s or 2m\n"},
		{nil, []string{"get", "x.torrent", "--timeout", "soon"}, `shoal: --timeout: "soon" is not a duration; use e.g. 30s, 5m or 1h` + "\n"},
		{nil, []string{"tracker", "--interval", "30"}, "shoal: --interval: 30: use a unit, e.g. 30s or 2m\n"},
		{[]string{"SHOAL_TIMEOUT=5"}, []string{"get", "x.torrent"}, "shoal: SHOAL_TIMEOUT: 5: use a unit, e.g. 5s or 2m\n"},
	} {
		if r := shoal(t, dir, c.env, c.args...); r.code != 2 || r.stderr != c.want {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 and %q", c.env, c.args, r.code, r.stderr, c.want)
		}
	}
}

// shoal alone is a usage error: the list of commands on stderr, exit 2.
func TestNoCommandShowsHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--log-level", "info"}} {
		cmd := exec.Command(shoalBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 2 || out.Len() != 0 || !strings.Contains(errb.String(), "COMMANDS:") ||
			!strings.HasSuffix(errb.String(), "shoal: missing command (see the list above)\n") {
			t.Errorf("shoal %v: exit %d, stdout %q, stderr:\n%s", args, code, out.String(), errb.String())
		}
	}
}

// --log-level, a global flag, works after the command too.
func TestGlobalFlagAfterCommand(t *testing.T) {
	dir := content(t)
	shoal(t, dir, nil, "create", "data", "-o", "data.torrent")
	r := shoal(t, dir, nil, "verify", "data.torrent", "--log-level", "loud")
	if r.code != 2 || !strings.Contains(r.stderr, "--log-level") {
		t.Fatalf("a bad --log-level after the command: exit %d %q", r.code, r.stderr)
	}
	r = shoal(t, dir, nil, "info", "data.torrent", "--log-level", "debug", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "data"`) {
		t.Fatalf("--log-level after the command: exit %d %q", r.code, r.stderr)
	}
	// debug reaches the logger: the DHT-less get logs its start at debug.
	r = shoal(t, dir, nil, "get", "data.torrent", "-o", "out", "--peer", deadAddr(t), "--no-dht", "--listen", "127.0.0.1:0", "--timeout", "1s", "--log-level", "debug")
	if r.code != 1 || !strings.Contains(r.stderr, "level=DEBUG") {
		t.Fatalf("get … --log-level debug logged nothing at debug: exit %d\n%s", r.code, r.stderr)
	}
}
