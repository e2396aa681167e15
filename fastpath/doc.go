// Package fastpath owns the router's per-packet work: a Worker runs a
// batch loop over a ring.Ring that parses each frame in place, decides its
// node from the published lookup.Snapshot and its own lookup.Decider
// (pins, transitions), follows the ClientHello to pin or unpin the flow,
// rewrites the frame as a router (MACs, TTL with an RFC 1624 checksum
// update) and sends the same frame back out, counting every outcome.
// Nothing on this path allocates, locks or grows.
//
// It imports only parser (with header and codepoint), lookup, ring and
// x/sys/unix (TestImportsStayOnTheDataPlane): the control plane that
// publishes the snapshots (sched), the Prometheus collector (package
// daemon) and the Rings over memory and capture files (ring/offline) are
// wired in around it.
package fastpath
