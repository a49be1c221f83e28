package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// errNoCommand is permuteArgs' answer to a command line that names no
// command (nor asks for help or the version).
var errNoCommand = errors.New("missing command (see the list above)")

// permuteArgs moves every flag of a command ahead of its positional
// arguments. urfave/cli stops reading flags at the first argument, so
// `shoal get MAGNET -o DIR` would otherwise drop -o silently; users of git
// and go expect flags anywhere. A global flag (--log-level) written after
// the command moves before it, where urfave/cli reads it. Everything after
// "--" stays positional. Duration values are checked here, with a message
// that says what is wrong, before urfave/cli's bare "parse error".
func permuteArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return nil, errNoCommand
	}
	lead := []string{args[0]}
	i := 1
	asked := false // for help or the version, which need no command
	// Global flags come before the command name; copy them through.
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		switch strings.TrimLeft(args[i], "-") {
		case "help", "h", "version", "v":
			asked = true
		}
		lead = append(lead, args[i])
		if takesValue(app.Flags, args[i]) && i+1 < len(args) {
			i++
			lead = append(lead, args[i])
		}
		i++
	}
	if i >= len(args) {
		if asked {
			return lead, nil
		}
		return nil, errNoCommand
	}
	cmd := app.Command(args[i])
	name := args[i]
	i++
	if cmd == nil && (name == "help" || name == "h") {
		// urfave/cli adds its help command only once it runs.
		return append(append(lead, name), args[i:]...), nil
	}
	if cmd == nil {
		return nil, fmt.Errorf("unknown command %q (see shoal --help)", name)
	}
	// A command with subcommands (remote): the subcommand's name comes
	// next, and its flags are the ones to move.
	head := []string{name}
	if len(cmd.Subcommands) > 0 && i < len(args) {
		if sub := cmd.Command(args[i]); sub != nil {
			head = append(head, args[i])
			cmd = sub
			i++
		}
	}
	var globals, flags, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		set, global := cmd.Flags, flagNamed(cmd.Flags, a) == nil && flagNamed(app.Flags, a) != nil
		if global {
			set = app.Flags
		}
		group := []string{a}
		if takesValue(set, a) {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs a value: %s", a)
			}
			i++
			group = append(group, args[i])
		}
		if err := checkDuration(set, group); err != nil {
			return nil, err
		}
		if global {
			globals = append(globals, group...)
		} else {
			flags = append(flags, group...)
		}
	}
	if err := checkDurationEnv(cmd.Flags); err != nil {
		return nil, err
	}
	out := append(append(lead, globals...), head...)
	out = append(out, flags...)
	if len(pos) > 0 {
		// "--" keeps positional arguments that start with '-' from being
		// read as flags.
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out, nil
}

// flagNamed returns the flag the token a (-x, --name, --name=value) names
// among flags, or nil.
func flagNamed(flags []cli.Flag, a string) cli.Flag {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether the flag token a names a flag that reads the
// next argument as its value (not a bool flag, no "=value" attached).
func takesValue(flags []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	f := flagNamed(flags, a)
	// Unknown flags are left to urfave/cli to report.
	_, isBool := f.(*cli.BoolFlag)
	return f != nil && !isBool
}

// checkDuration checks the value of a duration flag given as group
// ("--timeout", "5" or "--timeout=5").
func checkDuration(flags []cli.Flag, group []string) error {
	if _, ok := flagNamed(flags, group[0]).(*cli.DurationFlag); !ok {
		return nil
	}
	name, v, found := strings.Cut(strings.TrimLeft(group[0], "-"), "=")
	if !found && len(group) > 1 {
		v = group[1]
	}
	return durationError("--"+name, v)
}

// checkDurationEnv checks duration flags set through SHOAL_<FLAG>.
func checkDurationEnv(flags []cli.Flag) error {
	for _, f := range flags {
		df, ok := f.(*cli.DurationFlag)
		if !ok {
			continue
		}
		for _, e := range df.EnvVars {
			if v, ok := os.LookupEnv(e); ok && v != "" {
				if err := durationError(e, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// durationError explains a duration that does not parse; a bare number,
// the usual slip, gets the unit it lacks suggested.
func durationError(what, v string) error {
	if _, err := time.ParseDuration(v); err == nil {
		return nil
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return fmt.Errorf("%s: %s: use a unit, e.g. %ss or 2m", what, v, v)
	}
	return fmt.Errorf("%s: %q is not a duration; use e.g. 30s, 5m or 1h", what, v)
}
