// Package loadreport owns the result format of `anyclient load`: the JSON
// report its --json mode writes (one line per --report-every, the last
// with Final set) and its human-readable lines, so the load generator, the
// e2e tests and bench read and write one definition.
package loadreport

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Report is one line of `anyclient load --json`; Final marks the last.
// The load generator writes it; the e2e tests and bench read it.
type Report struct {
	Final       bool           `json:"final"`
	Elapsed     float64        `json:"elapsed_seconds"`
	Policy      string         `json:"policy"`
	Connections int            `json:"connections"`
	Open        int            `json:"open"`
	Done        int            `json:"done"`
	Migrated    int            `json:"migrated"`
	Resumed     int            `json:"resumed"`
	Fallbacks   int            `json:"fallbacks"`
	Broken      int            `json:"broken"`
	Requests    int            `json:"requests"`
	TTFBp50ms   float64        `json:"ttfb_p50_ms"`
	TTFBp99ms   float64        `json:"ttfb_p99_ms"`
	TTFBMaxms   float64        `json:"ttfb_max_ms"`
	Reasons     map[string]int `json:"fallback_reasons"`
	Failures    map[string]int `json:"failures"`
	Nodes       map[string]int `json:"nodes"`
}

// Line is the live progress line.
func (r Report) Line() string {
	s := fmt.Sprintf("%6.1fs conns=%d open=%d migrated=%d resumed=%d fallback=%d broken=%d requests=%d ttfb p50=%.2fms p99=%.2fms",
		r.Elapsed, r.Connections, r.Open, r.Migrated, r.Resumed, r.Fallbacks, r.Broken, r.Requests, r.TTFBp50ms, r.TTFBp99ms)
	return s
}

// Summary is the human-readable end of a run.
func (r Report) Summary(w io.Writer) {
	fmt.Fprintf(w, "policy %s, %.1fs: %d connections, %d requests\n", r.Policy, r.Elapsed, r.Connections, r.Requests)
	fmt.Fprintf(w, "  migrated  %d\n  resumed   %d\n  fallback  %d%s\n  broken    %d%s\n",
		r.Migrated, r.Resumed, r.Fallbacks, counts(r.Reasons), r.Broken, counts(r.Failures))
	fmt.Fprintf(w, "  connect-to-first-byte p50 %.2fms p99 %.2fms max %.2fms\n", r.TTFBp50ms, r.TTFBp99ms, r.TTFBMaxms)
	if len(r.Nodes) > 0 {
		fmt.Fprintf(w, "  nodes     %s\n", strings.Trim(counts(r.Nodes), " ()"))
	}
}

// counts formats a small map as " (a=1, b=2)", sorted by key.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
