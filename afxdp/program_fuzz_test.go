package afxdp

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/parser"
)

// maxTestRunFrame is the longest frame the fuzz target hands to
// BPF_PROG_TEST_RUN (the kernel takes at most a page minus head- and
// tailroom without XDP fragments).
const maxTestRunFrame = 2048

// FuzzProgramVerdict runs the XDP program on arbitrary frames with
// BPF_PROG_TEST_RUN and checks that it always passes (no socket is in
// the XSK map), moves exactly one counter, agrees with the Go model,
// classify.VIPs.Frame, on the reason, and redirects exactly when
// fastpath.Worker forwards the frame.
//
// AFXDP_WRITE_CORPUS=1 writes the seeds (every verdict case) to
// testdata/fuzz/FuzzProgramVerdict.
func FuzzProgramVerdict(f *testing.F) {
	requireRoot(f)
	var seeds [][]byte
	for _, c := range verdictCases() {
		if b := c.f.bytes(); len(b) >= 14 && len(b) <= maxTestRunFrame {
			seeds = append(seeds, b)
		}
	}
	if os.Getenv("AFXDP_WRITE_CORPUS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzProgramVerdict")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		for i, s := range seeds {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("case%02d", i)), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	p, err := LoadProgram(ProgramOptions{MaxVIPs: 16, MaxQueues: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	if err := p.SetVIPs(testVIPs); err != nil {
		f.Fatal(err)
	}
	model := classify.NewVIPs(testVIPs)
	oracle := newWorkerOracle(f)
	var pkt parser.Packet
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 14 || len(data) > maxTestRunFrame {
			return // the kernel refuses test runs on less than an Ethernet header
		}
		got := runVerdict(t, p, data)
		if want := modelVerdict(model, data, &pkt); got != want {
			t.Fatalf("frame %x: program %s, model %s", data, got, want)
		}
		if fwd := oracle.forwards(t, data); fwd != (got == CounterPassNoSocket) {
			t.Fatalf("frame %x: program %s, worker forwards %v", data, got, fwd)
		}
	})
}
