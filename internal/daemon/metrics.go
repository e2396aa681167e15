package daemon

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
)

// Collector exports the counters of a set of workers as Prometheus
// metrics. On every scrape it asks each worker for a copy of its counters
// taken at a batch boundary (see fastpath.Worker.Stats), so each worker's numbers
// are consistent with each other; different workers are copied a few
// microseconds apart, and a worker blocked in Receive reports the copy
// from its last batch boundary (it has seen no packets since, so nothing
// is lost but the time of the copy).
type Collector struct {
	workers []*fastpath.Worker
	src     fastpath.SnapshotSource
	wait    time.Duration

	rx, tx, rxBytes, txBytes, dropped, routed *prometheus.Desc
	nodeFwd, nodeNew                          *prometheus.Desc
	hellos, helloPins                         *prometheus.Desc
	pins, pinCap, pinInserts, pinEvictions    *prometheus.Desc
	pinExpirations, trans, transEvictions     *prometheus.Desc
	batch, txPartial, generation, reasm       *prometheus.Desc
	tables                                    deciderDescs
	txRetries                                 *prometheus.Desc

	// fakeTotal, when set, replaces the workers' counters (tests).
	fakeTotal                 func() (fastpath.Counters, fastpath.Gauges)
	reasmDecided, reasmEvents *prometheus.Desc
}

// NewCollector returns a collector over workers; src names the nodes and
// gives the table generation.
func NewCollector(src fastpath.SnapshotSource, workers ...*fastpath.Worker) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("anysched_"+name, help, labels, nil)
	}
	return &Collector{
		workers:        workers,
		src:            src,
		wait:           200 * time.Millisecond,
		rx:             d("packets_received_total", "Frames the fast path received from its rings."),
		tx:             d("packets_transmitted_total", "Frames the fast path handed back for sending."),
		rxBytes:        d("bytes_received_total", "Bytes of received frames."),
		txBytes:        d("bytes_transmitted_total", "Bytes of frames handed back for sending."),
		dropped:        d("packets_dropped_total", "Frames not forwarded, by reason (parser status or pipeline drop reason).", "reason"),
		routed:         d("packets_routed_total", "Forwarded frames by the rule that chose their node.", "route"),
		nodeFwd:        d("node_forwarded_packets_total", "Frames forwarded to each node.", "node", "pool"),
		nodeNew:        d("node_new_flows_total", "SYNs (new flows) sent to each node.", "node", "pool"),
		hellos:         d("clienthellos_total", "ClientHellos by outcome: seen (decided), migration_support, migration_token, pending (segments held while incomplete), unknown (given up: see reassembly_events_total), malformed.", "outcome"),
		helloPins:      d("clienthello_pin_changes_total", "Pins made (legacy, malformed or unknown ClientHello) and removed (migration_support on a pin no complete legacy ClientHello made final).", "change"),
		pins:           d("pins", "Pinned flows (legacy clients) in the pin tables."),
		pinCap:         d("pin_capacity", "Capacity of the pin tables."),
		pinInserts:     d("pin_inserts_total", "Pins made."),
		pinEvictions:   d("pin_evictions_total", "Pins evicted to make room (a legacy flow may move)."),
		pinExpirations: d("pin_expirations_total", "Pins removed after their idle timeout."),
		trans:          d("transition_entries", "Flows recorded in the transition sets (born on a moving slot)."),
		transEvictions: d("transition_evictions_total", "Transition records evicted to make room."),
		batch:          d("batch_size", "Frames per received batch."),
		txPartial:      d("tx_partial_total", "Transmit calls that took fewer frames than offered (retried)."),
		txRetries:      d("tx_retries_total", "Further Transmit calls it took to send what a partial one left."),
		generation:     d("table_generation", "Generation of the published table snapshot."),
		tables:         newDeciderDescs(d),
		reasm:          d("reassembly_in_use", "ClientHellos held across segments (pending, or opened by their SYN)."),
		reasmDecided:   d("reassembly_decided", "Reassembly slots kept as markers of flows whose ClientHello was decided (until FIN/RST or the timeout), so a retransmission does not start a new scan."),
		reasmEvents: d("reassembly_events_total", "What the ClientHello reassembler did, by event: started, opened (by a SYN), completed, malformed; "+
			"the reasons a ClientHello was unknown: no_slot, overflow, holes, conflict (overlapping bytes that differ), timeout; "+
			"out_of_order (segments held ahead of a gap), bad_checksum (segments refused before they could change state), ignored (payload of decided flows), "+
			"expired, replaced, forgotten (slots freed).", "event"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rx, c.tx, c.rxBytes, c.txBytes, c.dropped, c.routed, c.nodeFwd, c.nodeNew,
		c.hellos, c.helloPins, c.pins, c.pinCap, c.pinInserts, c.pinEvictions, c.pinExpirations, c.trans,
		c.transEvictions, c.batch, c.txPartial, c.generation, c.reasm, c.txRetries} {
		ch <- d
	}
	c.tables.describe(ch)
	ch <- c.reasmDecided
	ch <- c.reasmEvents
}

// Total returns the sum of the workers' counters and gauges (the
// highest table generation).
func (c *Collector) Total() (fastpath.Counters, fastpath.Gauges) {
	if c.fakeTotal != nil {
		return c.fakeTotal()
	}
	// Ask every worker at once: an idle one answers only after its
	// Receive times out, and those waits should overlap, not add up.
	copies := make([]fastpath.Counters, len(c.workers))
	extras := make([]fastpath.Gauges, len(c.workers))
	var wg sync.WaitGroup
	for i, w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			copies[i], extras[i] = w.Stats(c.wait)
		}()
	}
	wg.Wait()
	var sum fastpath.Counters
	var ex fastpath.Gauges
	for i := range c.workers {
		sum.Add(&copies[i])
		ex.Reassembling += extras[i].Reassembling
		ex.ReassemblyDecided += extras[i].ReassemblyDecided
		ex.Generation = max(ex.Generation, extras[i].Generation)
	}
	return sum, ex
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	sum, ex := c.Total()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(c.rx, sum.RxPackets)
	counter(c.tx, sum.TxPackets)
	counter(c.rxBytes, sum.RxBytes)
	counter(c.txBytes, sum.TxBytes)
	for st := parser.Status(1); st < parser.NumStatus; st++ {
		counter(c.dropped, sum.ParseStatus[st], st.String())
	}
	for r := fastpath.DropReason(0); r < fastpath.NumDropReasons; r++ {
		counter(c.dropped, sum.Dropped[r], r.String())
	}
	for r := fastpath.Route(0); r < fastpath.NumRoutes; r++ {
		counter(c.routed, sum.Routed[r], r.String())
	}
	if snap := c.src.Current(); snap != nil {
		for i := range snap.Nodes {
			if i >= fastpath.MaxNodes {
				break
			}
			n := &snap.Nodes[i]
			counter(c.nodeFwd, sum.NodeForwarded[i], n.Name, n.Pool)
			counter(c.nodeNew, sum.NodeNewFlows[i], n.Name, n.Pool)
		}
		gauge(c.generation, snap.Generation)
	}
	counter(c.hellos, sum.ClientHellos, "seen")
	counter(c.hellos, sum.ClientHelloMigrationSupport, "migration_support")
	counter(c.hellos, sum.ClientHelloMigrationToken, "migration_token")
	counter(c.hellos, sum.ClientHelloPending, "pending")
	counter(c.hellos, sum.ClientHelloUnknown, "unknown")
	counter(c.hellos, sum.ClientHelloMalformed, "malformed")
	counter(c.helloPins, sum.ClientHelloPins, "pin")
	counter(c.helloPins, sum.ClientHelloUnpins, "unpin_migration_support")
	var dec lookup.DeciderStats
	for _, w := range c.workers {
		st := w.Decider().Stats()
		dec.PinSize += st.PinSize
		dec.PinCapacity += st.PinCapacity
		dec.PinInserts += st.PinInserts
		dec.PinEvictions += st.PinEvictions
		dec.PinExpirations += st.PinExpirations
		dec.TransSize += st.TransSize
		dec.TransEvictions += st.TransEvictions
	}
	gauge(c.pins, dec.PinSize)
	gauge(c.pinCap, dec.PinCapacity)
	counter(c.pinInserts, dec.PinInserts)
	counter(c.pinEvictions, dec.PinEvictions)
	counter(c.pinExpirations, dec.PinExpirations)
	gauge(c.trans, dec.TransSize)
	counter(c.transEvictions, dec.TransEvictions)
	c.tables.collect(ch, c.workers)
	gauge(c.reasm, ex.Reassembling)
	gauge(c.reasmDecided, ex.ReassemblyDecided)
	ra := &sum.Reassembly
	for _, e := range []struct {
		name string
		v    uint64
	}{
		{"started", ra.Started}, {"opened", ra.Opened}, {"completed", ra.Completed}, {"malformed", ra.Malformed},
		{"no_slot", ra.NoSlot}, {"overflow", ra.Overflow}, {"holes", ra.Holes}, {"conflict", ra.Conflict}, {"timeout", ra.Timeout},
		{"out_of_order", ra.OutOfOrder}, {"bad_checksum", sum.ReassemblyBadChecksum}, {"ignored", ra.Ignored},
		{"expired", ra.Expired}, {"replaced", ra.Replaced}, {"forgotten", ra.Forgotten},
	} {
		counter(c.reasmEvents, e.v, e.name)
	}
	counter(c.txPartial, sum.TxPartial)
	counter(c.txRetries, sum.TxRetries)

	// Batch sizes are counted in power-of-two buckets: bucket b holds sizes
	// below 2^b, so its upper bound is 2^b - 1.
	buckets := make(map[float64]uint64, fastpath.NumBatchBuckets)
	var cum, total uint64
	var sumApprox float64
	for b := 0; b < fastpath.NumBatchBuckets; b++ {
		cum += sum.BatchSizes[b]
		buckets[float64(fastpath.BatchSizeBucket(b)-1)] = cum
		if b > 0 {
			// Midpoint of [2^(b-1), 2^b).
			sumApprox += float64(sum.BatchSizes[b]) * (float64(int(1)<<(b-1)) + float64(fastpath.BatchSizeBucket(b)-1)) / 2
		}
		total += sum.BatchSizes[b]
	}
	ch <- prometheus.MustNewConstHistogram(c.batch, total, sumApprox, buckets)
}

func xdpCollector(port *afxdp.Port) prometheus.Collector {
	desc := prometheus.NewDesc("anysched_xdp_verdicts_total", "Frames by the XDP program's verdict (redirected to AF_XDP or passed to the kernel, by reason).", []string{"verdict"}, nil)
	return collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		c, err := port.Counters()
		if err != nil {
			return
		}
		for i, v := range c {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), afxdp.Counter(i).String())
		}
	}}
}

func reflectCollector(stats []*afxdp.ReflectStats) prometheus.Collector {
	desc := prometheus.NewDesc("anysched_reflected_packets_total", "Frames the reflector sent back.", nil, nil)
	return collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		var n uint64
		for _, s := range stats {
			n += s.Reflected.Load()
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n))
	}}
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// deciderDescs are the pin-table and transition-set metrics beyond sizes
// and totals: how packets were routed by them, what each segment lost,
// and what spoofable packets (RST, stray SYN, bad checksums) were allowed
// to change.
type deciderDescs struct {
	pinHits, pinsStale, protected, promotions, evictions *prometheus.Desc
	rstShortened, synFollowed, unpinKept, transRoutes    *prometheus.Desc
	transStale, unverified                               *prometheus.Desc
}

func newDeciderDescs(d func(name, help string, labels ...string) *prometheus.Desc) deciderDescs {
	return deciderDescs{
		pinHits:      d("pin_hits_total", "Packets routed by their flow's pin."),
		pinsStale:    d("pins_stale_total", "Pins dropped because their node was removed from the config."),
		protected:    d("flow_table_protected_entries", "Entries confirmed by a later packet of their flow (protected from one-shot floods).", "table"),
		promotions:   d("flow_table_promotions_total", "Entries promoted from probation to protected by a later packet of their flow.", "table"),
		evictions:    d("flow_table_evictions_total", "Entries evicted to make room, by table (pin, transition) and segment (probation: never confirmed by a later packet; protected: the bucket was all talking flows).", "table", "segment"),
		rstShortened: d("pin_rst_shortened_total", "Pins whose idle time a client RST cut to pins.rst_idle_timeout (a later packet of the flow restores it)."),
		synFollowed:  d("pin_syn_followed_total", "SYNs on a live pinned 5-tuple, sent to the pin's node and changing nothing."),
		unpinKept:    d("pin_unpins_refused_total", "ClientHellos with migration_support that left the flow's pin, by reason: final (a complete legacy ClientHello had pinned the flow), would_move (the pin's node is not where the flow would go without it).", "reason"),
		transRoutes:  d("transition_routes_total", "Non-SYN packets on a slot in its grace period, by where they went: old (previous owner), new (recorded SYN's node), owner (previous owner removed or down: the current owner).", "to"),
		transStale:   d("transition_records_stale_total", "Transition records dropped because their node was removed or down."),
		unverified:   d("state_changes_refused_total", "Packets that would have changed a pin or transition record but had a bad TCP checksum (the node drops them): decided, changed nothing."),
	}
}

func (t *deciderDescs) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{t.pinHits, t.pinsStale, t.protected, t.promotions, t.evictions,
		t.rstShortened, t.synFollowed, t.unpinKept, t.transRoutes, t.transStale, t.unverified} {
		ch <- d
	}
}

func (t *deciderDescs) collect(ch chan<- prometheus.Metric, workers []*fastpath.Worker) {
	var s lookup.DeciderStats
	for _, w := range workers {
		st := w.Decider().Stats()
		s.PinHits += st.PinHits
		s.PinsStale += st.PinsStale
		s.PinProtected += st.PinProtected
		s.TransProtected += st.TransProtected
		s.PinPromotions += st.PinPromotions
		s.TransPromotions += st.TransPromotions
		s.PinEvictionsProbation += st.PinEvictionsProbation
		s.PinEvictionsProtected += st.PinEvictionsProtected
		s.TransEvictionsProbation += st.TransEvictionsProbation
		s.TransEvictionsProtected += st.TransEvictionsProtected
		s.PinRSTShortened += st.PinRSTShortened
		s.PinSYNsFollowed += st.PinSYNsFollowed
		s.PinFinalKept += st.PinFinalKept
		s.PinUnpinWouldMove += st.PinUnpinWouldMove
		s.TransToOld += st.TransToOld
		s.TransToNew += st.TransToNew
		s.TransOldGone += st.TransOldGone
		s.TransStale += st.TransStale
		s.Unverified += st.Unverified
	}
	metric := func(d *prometheus.Desc, kind prometheus.ValueType, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, kind, float64(v), labels...)
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	metric(t.pinHits, c, s.PinHits)
	metric(t.pinsStale, c, s.PinsStale)
	metric(t.protected, g, s.PinProtected, "pin")
	metric(t.protected, g, s.TransProtected, "transition")
	metric(t.promotions, c, s.PinPromotions, "pin")
	metric(t.promotions, c, s.TransPromotions, "transition")
	metric(t.evictions, c, s.PinEvictionsProbation, "pin", "probation")
	metric(t.evictions, c, s.PinEvictionsProtected, "pin", "protected")
	metric(t.evictions, c, s.TransEvictionsProbation, "transition", "probation")
	metric(t.evictions, c, s.TransEvictionsProtected, "transition", "protected")
	metric(t.rstShortened, c, s.PinRSTShortened)
	metric(t.synFollowed, c, s.PinSYNsFollowed)
	metric(t.unpinKept, c, s.PinFinalKept, "final")
	metric(t.unpinKept, c, s.PinUnpinWouldMove, "would_move")
	metric(t.transRoutes, c, s.TransToOld, "old")
	metric(t.transRoutes, c, s.TransToNew, "new")
	metric(t.transRoutes, c, s.TransOldGone, "owner")
	metric(t.transStale, c, s.TransStale)
	metric(t.unverified, c, s.Unverified)
}
