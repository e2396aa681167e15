// Package cli owns the command-line conventions the three binaries share:
// help that was asked for goes to stdout and is not an error, every other
// flag problem is a UsageError (exit 2, the message names the flag), and a
// usage text is its help lines followed by the flag table.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// UsageError is a bad flag, argument or input file named on the command
// line; commands exit 2 on it. Msg names what was wrong.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// AsksForHelp reports whether args ask for the usage text.
func AsksForHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			return true
		}
	}
	return false
}

// NewFlagSet returns a flag set whose usage text — help, one line per
// string, then "flags:" and the flag table — goes to stdout when args ask
// for help and to stderr when it follows a mistake.
func NewFlagSet(name string, args []string, stdout, stderr io.Writer, help ...string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	out := stderr
	if AsksForHelp(args) {
		out = stdout
	}
	fs.Usage = func() {
		for _, line := range help {
			fmt.Fprintln(out, line)
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "flags:")
		fmt.Fprint(out, fs.FlagUsages())
	}
	return fs
}

// Parse parses args into fs. It returns nil, pflag.ErrHelp when help was
// asked for (the usage text has been printed), or a *UsageError.
func Parse(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pflag.ErrHelp):
		return pflag.ErrHelp
	}
	return &UsageError{Msg: err.Error()}
}
