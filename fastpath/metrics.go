package fastpath

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anysched/anysched/parser"
)

// Collector exports the counters of a set of workers as Prometheus
// metrics. On every scrape it asks each worker for a copy of its counters
// taken at a batch boundary (see Worker.Stats), so each worker's numbers
// are consistent with each other; different workers are copied a few
// microseconds apart, and a worker blocked in Receive reports the copy
// from its last batch boundary (it has seen no packets since, so nothing
// is lost but the time of the copy).
type Collector struct {
	workers []*Worker
	src     SnapshotSource
	wait    time.Duration

	rx, tx, rxBytes, txBytes, dropped, routed *prometheus.Desc
	nodeFwd, nodeNew                          *prometheus.Desc
	hellos, helloPins                         *prometheus.Desc
	pins, pinCap, pinInserts, pinEvictions    *prometheus.Desc
	pinExpirations, trans, transEvictions     *prometheus.Desc
	batch, txPartial, generation, reasm       *prometheus.Desc
}

// NewCollector returns a collector over workers; src names the nodes and
// gives the table generation.
func NewCollector(src SnapshotSource, workers ...*Worker) *Collector {
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
		hellos:         d("clienthellos_total", "ClientHellos by outcome: seen (decided), migration_support, migration_token, partial (segments held while incomplete, or given up), malformed.", "outcome"),
		helloPins:      d("clienthello_pin_changes_total", "Pins made (legacy, malformed or unknown ClientHello) and removed (migration_support, client RST).", "change"),
		pins:           d("pins", "Pinned flows (legacy clients) in the pin tables."),
		pinCap:         d("pin_capacity", "Capacity of the pin tables."),
		pinInserts:     d("pin_inserts_total", "Pins made."),
		pinEvictions:   d("pin_evictions_total", "Pins evicted to make room (a legacy flow may move)."),
		pinExpirations: d("pin_expirations_total", "Pins removed after their idle timeout."),
		trans:          d("transition_entries", "Flows recorded in the transition sets (born on a moving slot)."),
		transEvictions: d("transition_evictions_total", "Transition records evicted to make room."),
		batch:          d("batch_size", "Frames per received batch."),
		txPartial:      d("tx_partial_total", "Transmit calls that took fewer frames than offered (retried)."),
		generation:     d("table_generation", "Generation of the published table snapshot."),
		reasm:          d("reassembly_in_use", "ClientHellos held across segments."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rx, c.tx, c.rxBytes, c.txBytes, c.dropped, c.routed, c.nodeFwd, c.nodeNew,
		c.hellos, c.helloPins, c.pins, c.pinCap, c.pinInserts, c.pinEvictions, c.pinExpirations, c.trans,
		c.transEvictions, c.batch, c.txPartial, c.generation, c.reasm} {
		ch <- d
	}
}

// Total returns the sum of the workers' counters.
func (c *Collector) Total() (Counters, ExtraStats) {
	// Ask every worker at once: an idle one answers only after its
	// Receive times out, and those waits should overlap, not add up.
	copies := make([]Counters, len(c.workers))
	extras := make([]ExtraStats, len(c.workers))
	var wg sync.WaitGroup
	for i, w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			copies[i], extras[i] = w.Stats(c.wait)
		}()
	}
	wg.Wait()
	var sum Counters
	var ex ExtraStats
	for i, w := range c.workers {
		wc, wx := &copies[i], extras[i]
		sum.add(wc)
		ex.Reassembling += wx.Reassembling
		ex.Generation = max(ex.Generation, wx.Generation)
		st := w.Decider().Stats()
		ex.Pins += st.PinSize
		ex.PinEvictions += st.PinEvictions
		ex.Transitions += st.TransSize
	}
	return sum, ex
}

func (s *Counters) add(o *Counters) {
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
	s.ClientHelloPartial += o.ClientHelloPartial
	s.ClientHelloMalformed += o.ClientHelloMalformed
	s.ClientHelloPins += o.ClientHelloPins
	s.ClientHelloUnpins += o.ClientHelloUnpins
	s.FinRstUnpins += o.FinRstUnpins
	for i := range s.NodeForwarded {
		s.NodeForwarded[i] += o.NodeForwarded[i]
		s.NodeNewFlows[i] += o.NodeNewFlows[i]
	}
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
	for r := DropReason(0); r < NumDropReasons; r++ {
		counter(c.dropped, sum.Dropped[r], r.String())
	}
	for r := Route(0); r < NumRoutes; r++ {
		counter(c.routed, sum.Routed[r], r.String())
	}
	if snap := c.src.Current(); snap != nil {
		for i := range snap.Nodes {
			if i >= MaxNodes {
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
	counter(c.hellos, sum.ClientHelloPartial, "partial")
	counter(c.hellos, sum.ClientHelloMalformed, "malformed")
	counter(c.helloPins, sum.ClientHelloPins, "pin")
	counter(c.helloPins, sum.ClientHelloUnpins, "unpin_migration_support")
	counter(c.helloPins, sum.FinRstUnpins, "unpin_rst")
	var pinCap, inserts, expirations, transEv uint64
	for _, w := range c.workers {
		st := w.Decider().Stats()
		pinCap += st.PinCapacity
		inserts += st.PinInserts
		expirations += st.PinExpirations
		transEv += st.TransEvictions
	}
	gauge(c.pins, ex.Pins)
	gauge(c.pinCap, pinCap)
	counter(c.pinInserts, inserts)
	counter(c.pinEvictions, ex.PinEvictions)
	counter(c.pinExpirations, expirations)
	gauge(c.trans, ex.Transitions)
	counter(c.transEvictions, transEv)
	gauge(c.reasm, ex.Reassembling)
	counter(c.txPartial, sum.TxPartial)

	// Batch sizes are counted in power-of-two buckets: bucket b holds sizes
	// below 2^b, so its upper bound is 2^b - 1.
	buckets := make(map[float64]uint64, NumBatchBuckets)
	var cum, total uint64
	var sumApprox float64
	for b := 0; b < NumBatchBuckets; b++ {
		cum += sum.BatchSizes[b]
		buckets[float64(BatchSizeBucket(b)-1)] = cum
		if b > 0 {
			// Midpoint of [2^(b-1), 2^b).
			sumApprox += float64(sum.BatchSizes[b]) * (float64(int(1)<<(b-1)) + float64(BatchSizeBucket(b)-1)) / 2
		}
		total += sum.BatchSizes[b]
	}
	ch <- prometheus.MustNewConstHistogram(c.batch, total, sumApprox, buckets)
}
