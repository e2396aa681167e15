// Package sched is the router's control plane: the configuration (VIPs,
// pools, nodes, policy), the live status of every node (active probes,
// load reports, config overrides), the scores and weights derived from
// it, and the Scheduler that turns them into lookup.Snapshots (weighted
// Maglev tables with transition state) and publishes each with one atomic
// pointer store. What the fast path reads per packet — the Snapshot, the
// flow hash, the Decider — is package lookup; sched imports it, never the
// reverse.
//
// # Dwell
//
// A slot that moved keeps its previous owner for its grace period (the
// transition rule of package lookup). The Scheduler enforces the dwell
// time: a rebuild never moves a slot whose grace period is still running
// (its move waits, Snapshot.Held counts such slots, and the scheduler
// rebuilds again when the earliest one is free). The exception is a slot
// whose current owner was removed from the config or is down: new flows
// must not wait for a dead node, so the slot takes its new owner at once
// while the running grace period keeps protecting the previous owner's
// flows.
//
// # Active probes
//
// Every probe.interval the scheduler opens a TCP connection to each node's
// unicast address and health_port (probe.timeout bounds it) and closes it
// at once. The connect time feeds an EWMA (probe.ewma_alpha) that is the
// node's delay; probe.down_after consecutive failures mark the node down,
// probe.up_after consecutive successes mark it up again. A node starts up
// (the config says it exists), so a router forwards from its first
// snapshot; a node without health_port is never probed and always up.
//
// # Node load report
//
// Each node serves its load as JSON at its report URL (by default
// http://<unicast>:<report_port>/load); the scheduler GETs it every
// reports.interval with reports.timeout:
//
//	{
//	  "node": "a1",                 // optional; if present must match the node's name
//	  "active_connections": 1234,   // required, >= 0
//	  "capacity": 10000,            // optional, > 0; replaces the configured capacity for the load ratio
//	  "cpu": 0.42,                  // required, fraction of the node's CPU in use, 0..1
//	  "draining": false             // optional; true stops new flows to the node
//	}
//
// Unknown fields are ignored (newer nodes may add some); a body over 64
// KiB, a non-200 status, invalid JSON, a missing required field or a value
// out of range is counted as malformed and leaves the last good report in
// place. A report's weight decays linearly from its age reports.interval
// to reports.stale_after, towards the "unknown" load of 1.0 (the worst), so
// a node that stops reporting is never the best one.
//
// # Score and policy
//
// A node's score is in [0,1], lower is better, the weighted mean of its
// normalized delay min(rtt_ewma/score.delay_reference, 1) (1 while
// unmeasured) and its normalized load max(active/capacity, cpu) (1 while
// unknown) — the level-2 normalized metrics of the CATS drafts. A node that
// is down, draining or has weight 0 gets no new flows. Policy best-pool
// gives all new flows to the pool with the lowest capacity-weighted mean
// score (ties: config order), weighted by capacity (or the configured
// weight) inside it; policy weighted spreads over all pools with weight
// capacity × (1 − 0.9 × score).
//
// Hysteresis: a rebuild for score changes happens only when some node's
// share of the total weight moved by more than hysteresis.threshold of its
// old share, and at most every hysteresis.min_interval; a node going up,
// down, draining, or a reload rebuilds at once. Every rebuild respects the
// dwell time above.
package sched
