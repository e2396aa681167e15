// Package bench owns the side-by-side performance report: anysched against
// what operators run today, on the same veth bed, in one run.
//
// It owns five things:
//
//   - the in-kernel packet generator (generator.go): an XDP program run by
//     BPF_PROG_RUN in live-frame mode, which rewrites each template frame's
//     source address and port per frame (checksums fixed incrementally) and
//     transmits it with XDP_TX into the router's veth, from one pinned CPU;
//   - the packet scenarios (scenario.go): the bare AF_XDP reflector,
//     anysched, Linux IP forwarding and nftables DNAT with conntrack, run
//     interleaved (A B C D A B C D …) on one bed and counted at the nodes
//     by an XDP counting program;
//   - the connection scenarios (conn.go): real TLS connections from
//     anyclient through anysched (migrating and legacy clients), nftables
//     DNAT + conntrack and HAProxy to anynode nodes: connections/s and
//     connect-to-first-byte, interleaved over reps, and each front end's
//     state while it holds live connections at several shares of
//     migration-capable clients;
//   - the Go micro-benchmarks (micro.go): `go test -bench` output kept raw
//     (benchstat reads it) and summarised against the line-rate budgets;
//   - the report (report.go, report_conn.go): results/<date>.json,
//     REPORT.md and SVG plots.
//
// bench/cmd/anybench runs it all (`make bench`). The router, the nodes
// and the client are driven as built binaries (`anysched run`, anynode,
// `anyclient load`), so this package depends on their command lines,
// internal/testbed's public API, and parser.FlowKey (the size of a pin).
package bench
