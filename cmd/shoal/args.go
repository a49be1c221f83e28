package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs moves every flag of a command ahead of its positional
// arguments. urfave/cli stops reading flags at the first argument, so
// `shoal get MAGNET -o DIR` would otherwise drop -o silently; users of git
// and go expect flags anywhere. Everything after "--" stays positional.
func permuteArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	i := 1
	// Global flags come before the command name; copy them through.
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		out = append(out, args[i])
		if takesValue(app.Flags, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	if i >= len(args) {
		return out, nil
	}
	cmd := app.Command(args[i])
	out = append(out, args[i])
	i++
	if cmd == nil && (args[i-1] == "help" || args[i-1] == "h") {
		// urfave/cli adds its help command only once it runs.
		return append(out, args[i:]...), nil
	}
	if cmd == nil {
		return nil, fmt.Errorf("unknown command %q (see shoal --help)", args[i-1])
	}
	var flags, pos []string
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
		flags = append(flags, a)
		if takesValue(cmd.Flags, a) {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs a value: %s", a)
			}
			i++
			flags = append(flags, args[i])
		}
	}
	out = append(out, flags...)
	if len(pos) > 0 {
		// "--" keeps positional arguments that start with '-' from being
		// read as flags.
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out, nil
}

// takesValue reports whether the flag token a names a flag that reads the
// next argument as its value (not a bool flag, no "=value" attached).
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			_, isBool := f.(*cli.BoolFlag)
			return !isBool
		}
	}
	// Unknown flags are left to urfave/cli to report.
	return false
}
