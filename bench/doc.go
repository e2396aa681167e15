// Package bench owns the side-by-side performance report of DESIGN.md §9:
// anysched against what operators run today, on the same veth bed, in one
// run.
//
// It owns four things:
//
//   - the in-kernel packet generator (generator.go): an XDP program run by
//     BPF_PROG_RUN in live-frame mode, which rewrites each template frame's
//     source address and port per frame (checksums fixed incrementally) and
//     transmits it with XDP_TX into the router's veth, from one pinned CPU;
//   - the packet scenarios (scenario.go): the bare AF_XDP reflector,
//     anysched, Linux IP forwarding and nftables DNAT with conntrack, run
//     interleaved (A B C D A B C D …) on one bed and counted at the nodes
//     by an XDP counting program;
//   - the Go micro-benchmarks (micro.go): `go test -bench` output kept raw
//     (benchstat reads it) and summarised against the line-rate budgets;
//   - the report (report.go): results/<date>.json, REPORT.md and SVG plots.
//
// bench/cmd/anybench runs it all (`make bench`). The router is driven as a
// built binary (`anysched run`), so this package depends only on the
// router's command line and on internal/testbed's public API.
//
// Connection-level scenarios (real TLS connections/s, connect-to-first-byte
// latency, state per connection) are a second Scenario kind: see
// ConnScenario in scenario.go for where they plug in.
package bench
