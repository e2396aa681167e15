package lookup

import (
	"os/exec"
	"strings"
	"testing"
)

// lookup is a leaf: the standard library and parser, nothing of the
// control plane (sched), no module from outside. `go list -deps` is the
// evidence; this test keeps it true.
func TestLookupIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == "github.com/anysched/anysched/lookup", d == "github.com/anysched/anysched/parser",
			d == "github.com/anysched/anysched/codepoint", d == "github.com/anysched/anysched/header":
		case strings.Contains(strings.Split(d, "/")[0], "."):
			t.Errorf("lookup depends on %s", d)
		}
	}
}
