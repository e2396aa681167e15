package fastpath

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anysched/anysched/parser"
)

// DropReason says why the pipeline did not forward a frame that parsed.
// Frames that did not parse are counted by parser.Status instead.
type DropReason uint8

// Drop reasons. In user space every drop frees the frame; "pass to the
// kernel" is only possible in the XDP program, so a frame that policy would
// pass but that still reached the socket is dropped and counted here.
const (
	// DropNotVIP: destination (or, for an ICMP error, the quoted flow's
	// destination) is not a VIP of the current snapshot.
	DropNotVIP DropReason = iota
	// DropTTLExpired: TTL / hop limit 1 or 0; the XDP program passes those
	// to the kernel, which answers with ICMP time exceeded.
	DropTTLExpired
	// DropNoNode: the table has no node for the flow (empty pool, all down).
	DropNoNode
	// DropNoMAC: the chosen node's MAC address is not known yet.
	DropNoMAC
	// DropShutdown: frames waiting for transmission when the worker stopped.
	DropShutdown
	// DropTxError: the Ring refused frames with an error.
	DropTxError
	// DropFragment: an IP fragment (a first one: it has ports). The rest of
	// its packet cannot be placed, so the XDP program passes every
	// fragment to the kernel; one that still arrives is not forwarded.
	DropFragment

	// NumDropReasons sizes arrays indexed by DropReason.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropNotVIP:     "not_vip",
	DropTTLExpired: "ttl_expired",
	DropNoNode:     "no_node",
	DropNoMAC:      "no_mac",
	DropShutdown:   "shutdown",
	DropTxError:    "tx_error",
	DropFragment:   "fragment",
}

// String returns a snake_case name, suitable as a metric label.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// Route is the metric label of how the pipeline chose a forwarded
// packet's node: the lookup.Via of its Decision, coarsened (both
// transition cases are RouteTransition), plus the two cases the pipeline
// tells apart before the lookup (a SYN, an ICMP error). Both name their
// values in snake_case.
type Route uint8

// Routes, in the order the pipeline tries them.
const (
	RouteSYN        Route = iota // a SYN: the table, recorded in the transition set if its slot moved
	RoutePin                     // the pin table
	RouteTransition              // the transition set (grace period of a moved slot)
	RouteTable                   // the current table
	RouteICMP                    // an ICMP error, routed by the flow it quotes

	NumRoutes
)

var routeNames = [NumRoutes]string{
	RouteSYN:        "syn",
	RoutePin:        "pin",
	RouteTransition: "transition",
	RouteTable:      "table",
	RouteICMP:       "icmp_error",
}

// String returns a snake_case name, suitable as a metric label.
func (r Route) String() string {
	if r < NumRoutes {
		return routeNames[r]
	}
	return "unknown"
}

// MaxNodes bounds the per-node counters of one worker. Nodes with a higher
// index are forwarded but counted only in the totals.
const MaxNodes = 256

// batchBuckets is the number of power-of-two batch size buckets: bucket b
// holds batches of size in [2^(b-1), 2^b), bucket 0 the empty ones.
const batchBuckets = 12

// Counters are the plain per-worker counters of the hot loop. Only the
// worker's goroutine writes them; a collector gets a consistent copy taken
// at a batch boundary (see Worker.Stats).
type Counters struct {
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
	Batches              uint64
	// BatchSizes[b] counts received batches of bits.Len(size) == b.
	BatchSizes [batchBuckets]uint64
	// TxPartial counts Transmit calls that took fewer frames than offered;
	// TxRetries the further calls it took to send them.
	TxPartial, TxRetries uint64

	ParseStatus [parser.NumStatus]uint64
	Dropped     [NumDropReasons]uint64
	Routed      [NumRoutes]uint64

	// ClientHello outcomes: decided at all (complete, malformed or
	// unknown), complete with migration_support, carrying a
	// migration_token, segments held while incomplete (pending), given up
	// by the reassembler (unknown: Reassembly says why), malformed.
	ClientHellos, ClientHelloMigrationSupport, ClientHelloMigrationToken uint64
	ClientHelloPending, ClientHelloUnknown, ClientHelloMalformed         uint64
	// Segments that would have changed reassembly state (SYN of a TLS VIP
	// flow, a payload that may start or continues a ClientHello, FIN/RST
	// of a tracked flow) refused for a bad TCP checksum. (Payloads of
	// decided flows, not scanned, are Reassembly.Ignored.)
	ReassemblyBadChecksum uint64
	// Reassembly is the reassembler's own account (slots taken, verdicts
	// and why a ClientHello was unknown), copied when it changes.
	Reassembly parser.ReassemblerStats
	// Pins made and removed because of what a ClientHello said.
	ClientHelloPins, ClientHelloUnpins uint64

	NodeForwarded [MaxNodes]uint64
	NodeNewFlows  [MaxNodes]uint64
}

func (c *Counters) countBatch(n int) {
	c.Batches++
	c.BatchSizes[bits.Len(uint(n))]++
}

// BatchSizeBucket returns the upper bound (exclusive) of the batch sizes in
// bucket b.
func BatchSizeBucket(b int) int { return 1 << b }

// NumBatchBuckets is the length of Counters.BatchSizes.
const NumBatchBuckets = batchBuckets

// counterExchange hands a copy of a worker's counters to a collector
// without locks or atomics per packet: the collector raises a request flag,
// the worker checks it once per batch (one atomic load), copies its
// counters at the batch boundary and signals. When the worker is not
// running, the collector reads the last copy, which the worker makes on
// exit.
type counterExchange struct {
	mu      sync.Mutex // serializes collectors
	request atomic.Bool
	done    chan struct{}
	stopped atomic.Bool
	copy    Counters
	extra   Gauges
	last    Counters
	lastX   Gauges
}

// Gauges are the worker's state values, copied with its counters at the
// same batch boundary. (Its Decider's tables report their own sizes,
// safely from any goroutine, through Worker.Decider().Stats.)
type Gauges struct {
	// Table generation of the snapshot the worker last used.
	Generation uint64
	// Reassembly slots holding a ClientHello in progress, and markers of
	// flows whose ClientHello was decided.
	Reassembling, ReassemblyDecided uint64
}

func newCounterExchange() *counterExchange {
	return &counterExchange{done: make(chan struct{}, 1)}
}

// serve is called by the worker at batch boundaries.
func (x *counterExchange) serve(c *Counters, extra func() Gauges) {
	if !x.request.Load() {
		return
	}
	x.copy = *c
	x.extra = extra()
	x.request.Store(false)
	select {
	case x.done <- struct{}{}:
	default:
	}
}

// final is called by the worker when it stops.
func (x *counterExchange) final(c *Counters, extra Gauges) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.copy = *c
	x.extra = extra
	x.stopped.Store(true)
	select {
	case x.done <- struct{}{}:
	default:
	}
}

// fetch returns the freshest consistent copy it can get within wait.
func (x *counterExchange) fetch(wait time.Duration) (Counters, Gauges) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped.Load() {
		return x.copy, x.extra
	}
	select {
	case <-x.done:
	default:
	}
	x.request.Store(true)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-x.done:
		x.last, x.lastX = x.copy, x.extra
	case <-t.C:
		// The worker is blocked in Receive longer than wait; report the
		// previous copy. The request stays raised and is served later.
	}
	return x.last, x.lastX
}

// Add adds o to s, field by field (to total several workers).
func (s *Counters) Add(o *Counters) {
	s.RxPackets += o.RxPackets
	s.TxPackets += o.TxPackets
	s.RxBytes += o.RxBytes
	s.TxBytes += o.TxBytes
	s.Batches += o.Batches
	for i := range s.BatchSizes {
		s.BatchSizes[i] += o.BatchSizes[i]
	}
	s.TxPartial += o.TxPartial
	s.TxRetries += o.TxRetries
	for i := range s.ParseStatus {
		s.ParseStatus[i] += o.ParseStatus[i]
	}
	for i := range s.Dropped {
		s.Dropped[i] += o.Dropped[i]
	}
	for i := range s.Routed {
		s.Routed[i] += o.Routed[i]
	}
	s.ClientHellos += o.ClientHellos
	s.ClientHelloMigrationSupport += o.ClientHelloMigrationSupport
	s.ClientHelloMigrationToken += o.ClientHelloMigrationToken
	s.ClientHelloPending += o.ClientHelloPending
	s.ClientHelloUnknown += o.ClientHelloUnknown
	s.ClientHelloMalformed += o.ClientHelloMalformed
	s.ReassemblyBadChecksum += o.ReassemblyBadChecksum
	s.Reassembly.Add(&o.Reassembly)
	s.ClientHelloPins += o.ClientHelloPins
	s.ClientHelloUnpins += o.ClientHelloUnpins
	for i := range s.NodeForwarded {
		s.NodeForwarded[i] += o.NodeForwarded[i]
		s.NodeNewFlows[i] += o.NodeNewFlows[i]
	}
}
