package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestHelpGoesToStdoutAndMistakesToStderr(t *testing.T) {
	for _, c := range []struct {
		args              []string
		wantHelp, wantBad bool
	}{
		{[]string{"--help"}, true, false},
		{[]string{"-h"}, true, false},
		{[]string{"--count", "x"}, false, true},
		{[]string{"--nope"}, false, true},
		{[]string{"--count", "3"}, false, false},
	} {
		var stdout, stderr bytes.Buffer
		fs := NewFlagSet("demo", c.args, &stdout, &stderr, "usage: demo [flags]", "", "Does a demo.")
		count := fs.Int("count", 1, "how many")
		err := Parse(fs, c.args)
		var ue *UsageError
		switch {
		case c.wantHelp:
			if !errors.Is(err, pflag.ErrHelp) || !strings.Contains(stdout.String(), "Does a demo.") || !strings.Contains(stdout.String(), "--count") || stderr.Len() != 0 {
				t.Errorf("%v: err %v, stdout %q, stderr %q", c.args, err, stdout.String(), stderr.String())
			}
		case c.wantBad:
			fs.Usage() // what a command prints after the error
			if !errors.As(err, &ue) || !strings.Contains(stderr.String(), "usage: demo") || stdout.Len() != 0 {
				t.Errorf("%v: err %v, stdout %q, stderr %q", c.args, err, stdout.String(), stderr.String())
			}
		default:
			if err != nil || *count != 3 {
				t.Errorf("%v: err %v, count %d", c.args, err, *count)
			}
		}
	}
	if err := Usagef("--x %d: bad", 7); err.Error() != "--x 7: bad" {
		t.Errorf("Usagef: %q", err)
	}
}
