package fastpath

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The per-packet path links only what it runs: the parser (with the
// header layout and code points), the lookup state, the Ring boundary and
// the system-call package. Capture readers,
// metrics, the control plane and the TLS engine are wired in around it
// (package daemon, ring/offline), never imported by it. `go list -deps`
// is the evidence; this test keeps it true.
func TestImportsStayOnTheDataPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/google/gopacket",
		"github.com/prometheus/",
		"github.com/anysched/anysched/internal/capture",
		"github.com/anysched/anysched/ring/offline",
		"github.com/anysched/anysched/sched",
		"github.com/anysched/anysched/tls13",
		"net/http",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("fastpath depends on %s", d)
			}
		}
	}
	var own []string
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/anysched/anysched/") {
			own = append(own, strings.TrimPrefix(d, "github.com/anysched/anysched/"))
		}
	}
	slices.Sort(own)
	if want := "codepoint fastpath header lookup parser ring"; strings.Join(own, " ") != want {
		t.Errorf("fastpath's own dependencies are %q, want %q", strings.Join(own, " "), want)
	}
}
