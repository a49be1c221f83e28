// Command shoal seeds, downloads and tracks BitTorrent v2 swarms.
//
// Results (hashes, magnet links, JSON) go to stdout; progress, status and
// logs go to stderr. Exit status: 0 success, 1 the work failed, 2 bad usage
// or bad input. See `shoal help` and the README.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/termsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// SHOAL_CPUPROFILE=FILE writes a CPU profile: how the benchmark
	// figures in README were investigated.
	if f := os.Getenv("SHOAL_CPUPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.StartCPUProfile(out)
			code := run(os.Args, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			out.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes shoal with args and returns the exit status. Every failure
// is printed as one line on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	args, err := permuteArgs(app, args)
	if errors.Is(err, errNoCommand) {
		// What the user needs then is the list of commands; it goes to
		// stderr, as this is a failure, not a result.
		newApp(stderr, stderr).Run([]string{"shoal", "--help"})
	}
	if err != nil {
		err = usageError("%v", err)
	} else {
		err = app.Run(args)
	}
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	// The message may quote a torrent's name or a peer's words: escaped,
	// it stays one line and cannot drive the terminal.
	fmt.Fprintf(stderr, "shoal: %s\n", termsafe.String(err.Error()))
	return code
}

// warnf prints a warning on w, escaped like a failure.
func warnf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "shoal: warning: %s\n", termsafe.String(fmt.Sprintf(format, args...)))
}

// exitError carries the exit status a failure should end with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError reports bad usage or bad input: exit status 2.
func usageError(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

// failure reports work that did not succeed: exit status 1.
func failure(format string, args ...any) error {
	return &exitError{1, fmt.Errorf(format, args...)}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "shoal",
		Usage:                "share files over BitTorrent v2",
		Version:              version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "log detail on stderr: debug, info, warn or error", EnvVars: env("log-level")},
		},
		Before: func(c *cli.Context) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usageError("--log-level: %v", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
			return nil
		},
		Commands: []*cli.Command{
			createCommand(),
			infoCommand(),
			verifyCommand(),
			seedCommand(),
			getCommand(),
			trackerCommand(),
			dhtCommand(),
			daemonCommand(),
			remoteCommand(),
		},
		// urfave/cli would otherwise exit the process itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError("%v", err)
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return usageError("%v", err)
		}
		for _, sub := range cmd.Subcommands {
			sub.OnUsageError = cmd.OnUsageError
		}
	}
	return app
}

// env names the environment variable that may set a flag: SHOAL_<FLAG>.
func env(flag string) []string {
	return []string{"SHOAL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// exactArgs checks a command got exactly n positional arguments.
func exactArgs(c *cli.Context, n int, what string) error {
	switch {
	case c.NArg() < n:
		return usageError("%s: missing %s (see shoal %s --help)", c.Command.Name, what, c.Command.Name)
	case c.NArg() > n:
		return usageError("%s: unexpected argument %q", c.Command.Name, c.Args().Get(n))
	}
	return nil
}
