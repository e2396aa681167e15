// Package sched owns the router's scheduling state: the configuration
// (VIPs, pools, nodes, policy), the live status of every node (active
// probes, load reports, config overrides), the weights derived from it, the
// weighted Maglev table built from those weights, the immutable Snapshot
// that the fast path reads, and the per-worker Decider that adds the pin
// table and the transition set of DESIGN.md §5.
//
// # Control plane and data plane
//
// A Scheduler builds Snapshots off the hot path and publishes each with
// one atomic pointer store. Readers call Current (one atomic load) and then
// only read the Snapshot: it is never written after publication, so the
// fast path takes no lock and allocates nothing.
//
// Node IDs (Node.ID, the index into Snapshot.Nodes) are stable for the life
// of a Scheduler: a node keeps its ID across rebuilds and reloads, and a
// node removed by a reload stays in Snapshot.Nodes with Removed set. Pins
// and transition records store IDs, so they survive every new Snapshot.
//
// # Flow hash
//
// HashFlow is SipHash-1-3 (one compression round per 8-byte block, three
// finalization rounds), keyed with the 128-bit secret table.seed, over the
// 5-tuple with the destination folded into the source by XOR (7 bytes for
// IPv4, 19 for IPv6; see hash.go). SipHash is a PRF designed for exactly
// this job: short inputs, a secret key, and an attacker who may choose
// inputs and observe some function of the output. Without the seed nobody
// can predict which slot, and so which node, a 5-tuple lands on, so no
// node can be aimed at; an attacker can only try connections and see
// where they land, which any scheme allows. The folding is injective for
// a given VIP and port, so per VIP the hash is the PRF of the full tuple;
// it saves SipHash blocks (IPv4: 4 rounds in all, IPv6: 6). The 1-3
// variant (the hash of Rust's standard HashMap and of CPython's str since
// 3.11) is chosen over 2-4 because the flow hash is on the per-packet
// path: an observer learns only a node choice (a few bits of a reduced
// output), far from what a SipHash distinguisher needs, and 2-4 needs
// 6 / 10 rounds instead of 4 / 6 (BenchmarkFlowHash/*-siphash24 measures
// the generic 2-4 code). HighwayHash would need a module, and its speed
// pays off only on long inputs. The implementation is written here,
// specialised to the two input sizes so it loads whole words straight
// from the FlowKey arrays, and is checked against a generic SipHash that
// passes the reference vectors.
// Maglev permutations use SipHash-2-4 over the node name with the same
// seed, so a node's permutation depends on its name, not its position.
//
// A slot is chosen from the top 32 bits of the flow hash by
// multiply-shift (Lemire's reduction), which avoids a 64-bit division.
//
// # Maglev
//
// The table has M slots (M prime, default 65537). Each node with a weight
// above zero has a Maglev permutation (offset, skip derived from its name
// and the seed) and a quota of M·w/Σw slots (largest remainder), so shares
// are exact to one slot. The fill is a race in virtual time: in each
// round, in name order, every node under quota earns its weight in credit
// and, when the credit reaches the largest weight, visits its next
// preference and claims it if free. Unlike classic Maglev, where skipping
// a taken preference is free, every visit costs time, so before quotas
// bind a slot belongs to whichever node reaches it first — a rendezvous
// rule that one node's change cannot alter elsewhere. Measured at M=65537
// with 100 nodes (TestMaglevDisruption): removing a node moves about 1.3×
// the minimum (classic Maglev: 1.58×) and a +10% weight change about 2.4×
// the (tiny, ~0.1% of slots) minimum (classic: 4.4×); the remainder is
// the quota cascade, the price of exact shares (a pure race without quotas
// is minimal but leaves shares ±7% off). The table is a pure function of
// (node names, weights, seed, M): the same inputs give the same bytes in
// any process. Snapshot.Digest covers node names, not IDs, so two routers
// that assigned IDs in a different order still compare equal.
//
// # Transition rule and dwell
//
// Every slot carries its owner, its previous owner and the end of its
// grace period (Slot.Until = t0 + G, where t0 is when it moved). While
// now < Until a non-SYN packet on the slot goes to the previous owner
// unless the Decider recorded the flow's SYN on the slot after the move,
// in which case it goes where the SYN went. The Scheduler enforces the
// dwell time: a rebuild never moves a slot whose grace period is still
// running (its move waits, Snapshot.Held counts such slots, and the
// scheduler rebuilds again when the earliest one is free). The exception
// is a slot whose current owner was removed from the config or is down:
// new flows must not wait for a dead node, so the slot takes its new
// owner at once while the running grace period keeps protecting the
// previous owner's flows.
//
// # Pin table and transition set: one per worker
//
// Each fast-path worker owns one Decider, with its own pin table and
// transition set. The NIC's RSS steers every packet of a 5-tuple to the
// same receive queue and so to the same worker, so a flow's pin and its
// transition record are always found by the worker that created them,
// with no locks and no shared cache lines. The cost: a change of the RSS
// indirection table (ethtool -X) moves flows between workers and loses
// their pins; the capacity is per worker. Both tables are fixed-capacity,
// preallocated, set-associative open addressing: a key hashes to a bucket
// of 8 entries whose tags share one cache line, and a bitmap with one bit
// per bucket (small enough to stay in L1) lets a probe of an empty bucket
// skip that line: a pin table is sized for the peak, so most lookups are
// misses in mostly empty buckets. Insert reuses an empty or
// expired entry of the bucket and otherwise evicts the bucket's oldest
// entry (smallest deadline), which keeps every operation O(1) and
// allocation free. Expiry is lazy on lookup and insert, plus Sweep, which
// the fast path calls with a small budget once per batch.
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
