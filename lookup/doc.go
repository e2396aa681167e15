// Package lookup is the data plane's half of scheduling: everything a
// fast-path worker touches per packet. It owns the immutable Snapshot
// (VIPs, nodes, the Maglev table with each slot's transition state), the
// keyed flow hash, the weighted Maglev build, and the per-worker Decider
// with its pin table and transition set. It imports only the standard
// library and parser. The control plane, package sched (config, probes,
// node reports, scores, the Scheduler that builds and publishes
// Snapshots), imports it, never the reverse, so the fast path links none
// of the control plane's HTTP, YAML or timers.
//
// # Snapshots
//
// A Snapshot is built off the hot path and published with one atomic
// pointer store. Readers load it once and then only read it: it is never
// written after publication, so the fast path takes no lock and allocates
// nothing.
//
// Node IDs (Node.ID, the index into Snapshot.Nodes) are stable for the life
// of the Scheduler that assigns them: a node keeps its ID across rebuilds
// and reloads, and a node removed by a reload stays in Snapshot.Nodes with
// Removed set. Pins and transition records store IDs, so they survive
// every new Snapshot.
//
// # Flow hash
//
// HashFlow is SipHash-1-3 (one compression round per 8-byte block, three
// finalization rounds), keyed with the 128-bit secret table.seed, over the
// whole 5-tuple (13 bytes for IPv4, 37 for IPv6; see hash.go). SipHash is
// a PRF designed for exactly this job: short inputs, a secret key, and an
// attacker who may choose inputs and observe some function of the output.
// Without the seed nobody can predict which slot, and so which node, a
// 5-tuple lands on, so no node can be aimed at, nor can anyone build a
// flow that shares another's pin bucket and tag; an attacker can only try
// connections and see where they land, which any scheme allows. (An
// earlier version XOR-folded the destination into the source to save
// blocks; that let anyone construct, for another VIP:port, a flow with a
// victim's exact hash under every seed.) The 1-3 variant (the hash of
// Rust's standard HashMap and of CPython's str since 3.11) is chosen over
// 2-4 because the flow hash is on the per-packet path: an observer learns
// only a node choice (a few bits of a reduced output), far from what a
// SipHash distinguisher needs, and 2-4 needs 8 / 14 rounds instead of
// 5 / 8 (BenchmarkFlowHash/*-siphash24 measures
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
// # Transition rule
//
// Every slot carries its owner, its previous owner and the end of its
// grace period (Slot.Until = t0 + G, where t0 is when it moved). While
// now < Until a non-SYN packet on the slot goes to the previous owner
// unless the Decider recorded the flow's SYN on the slot after the move,
// in which case it goes where the SYN went. When a slot may move again
// (the dwell time) is the Scheduler's rule; see package sched. One move
// may come within a grace period: a new owner that is drained or lost
// gives the slot up at once (a fresh grace period begins, Prev stays the
// owner before it), so a transition record lives until Until + G, and
// the flows that owner already got keep reaching it.
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
// misses in mostly empty buckets.
//
// Each bucket is a segmented LRU, because R1 cannot tell a real client
// from someone forging its addresses (DESIGN.md §5, threat model): a new
// entry starts on probation, and a later trusted packet of its flow
// promotes it to protected and records its activity. Insert reuses an
// empty or expired entry, else evicts the least recently active
// probation entry, else (a bucket of eight talking flows) the least
// recently active protected one. A flood of one-shot flows — spoofed
// SYNs, spoofed one-byte 0x16 segments that each make a pin — only
// recycles probation entries; to evict a flow that is talking an
// attacker must complete two-packet flows and fill its whole bucket
// with flows more recently active than it. Expiry is lazy on lookup and
// insert, plus Sweep, which the fast path calls with a small budget once
// per batch. An entry takes 60 bytes with its tag (EntryBytes: within the
// 64 bytes a legacy connection may cost), which DeciderConfig.Bytes turns
// into the tables' memory.
//
// # What a packet may change
//
// DecidePacket changes a table only for a packet that is intact (the
// caller's check, the TCP checksum) and only in ways a forged packet
// cannot use to end or move a connection: a SYN on a live pinned 5-tuple
// follows the pin and changes nothing; an RST shortens its pin's idle
// time (Snapshot.PinIdleAfterRST) and the flow's next packet restores it;
// a pin made final by a complete legacy ClientHello is not removed by a
// later one (UnpinUnlessFinal); an ICMP error changes nothing. A
// transition record or previous owner whose node is removed or down stops
// at once: those packets go to the slot's owner, as pins to removed nodes
// do.
package lookup
