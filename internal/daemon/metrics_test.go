package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

func TestCollectorExportsCounters(t *testing.T) {
	s, w := testWorker(t,
		packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil)),
		packettest.Frame(t, flow(1, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 0))),
		[]byte{9})
	c := NewCollector(s, w)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for k, want := range map[string]float64{
		"anysched_packets_received_total":                          3,
		"anysched_packets_transmitted_total":                       2,
		"anysched_packets_dropped_total,reason=truncated_ethernet": 1,
		"anysched_clienthellos_total,outcome=seen":                 1,
		"anysched_pins":                           1,
		"anysched_batch_size":                     1,
		"anysched_table_generation":               1,
		"anysched_packets_routed_total,route=syn": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if n := testutil.CollectAndCount(c, "anysched_node_new_flows_total"); n != 2 {
		t.Errorf("%d node series", n)
	}
}

func flow(sport uint16, flags uint8, payload []byte) packettest.TCP {
	return packettest.TCP{Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("10.200.0.1"),
		SrcPort: sport, DstPort: 443, Flags: flags, Seq: 1000, Payload: payload}
}

// testWorker runs frames through one worker in one batch and stops it.
func testWorker(t *testing.T, frames ...[]byte) (*sched.Scheduler, *fastpath.Worker) {
	t.Helper()
	cfg, err := sched.ParseConfig([]byte(packettest.TwoNodeConfig("10.200.0.1")), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := offline.NewMemRing(64, 2048)
	w, err := fastpath.NewWorker(r, s, fastpath.Config{SourceMAC: fastpath.MAC(packettest.RouterMAC)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := r.Inject(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Step(0); err != nil {
		t.Fatal(err)
	}
	w.Finish()
	return s, w
}

// The pin-table and transition-set metrics: a legacy flow that talks
// (pin hit, promoted), is sent a spoofed RST (shortened) and a SYN on its
// 5-tuple (followed).
func TestCollectorExportsPinAndTransitionCounters(t *testing.T) {
	s, w := testWorker(t,
		packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil)),
		packettest.Frame(t, flow(1, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 0))),
		packettest.Frame(t, flow(1, parser.TCPFlagACK, nil)),
		packettest.Frame(t, flow(1, parser.TCPFlagRST, nil)),
		packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil)))
	c := NewCollector(s, w)
	for name, want := range map[string]float64{
		"anysched_pin_hits_total":              3,
		"anysched_pin_rst_shortened_total":     1,
		"anysched_pin_syn_followed_total":      1,
		"anysched_pins_stale_total":            0,
		"anysched_state_changes_refused_total": 0,
	} {
		if got := testutil.ToFloat64(collectorFiltered{c, name}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, series := range []struct {
		name string
		n    int
	}{
		{"anysched_flow_table_evictions_total", 4},
		{"anysched_flow_table_protected_entries", 2},
		{"anysched_flow_table_promotions_total", 2},
		{"anysched_transition_routes_total", 3},
	} {
		if n := testutil.CollectAndCount(c, series.name); n != series.n {
			t.Errorf("%s: %d series, want %d", series.name, n, series.n)
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP anysched_flow_table_protected_entries Entries confirmed by a later packet of their flow (protected from one-shot floods).
# TYPE anysched_flow_table_protected_entries gauge
anysched_flow_table_protected_entries{table="pin"} 1
anysched_flow_table_protected_entries{table="transition"} 0
`), "anysched_flow_table_protected_entries"); err != nil {
		t.Error(err)
	}
}

// collectorFiltered collects only the metric named name, for
// testutil.ToFloat64 (which wants exactly one).
type collectorFiltered struct {
	c    prometheus.Collector
	name string
}

func (f collectorFiltered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }
func (f collectorFiltered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}

// The reassembler's outcomes are exported by event, and "pending" apart
// from "unknown": a SYN opens a slot, a segment with a bad checksum is
// refused, the real first segment is held; a flow without a SYN starts a
// slot with its first segment, and a segment far past MaxBytes adds
// nothing (still pending).
func TestCollectorExportsReassemblyEvents(t *testing.T) {
	hello := packettest.ClientHello(false, 1500)
	bad := packettest.Frame(t, flow(2, parser.TCPFlagACK, hello[:600]))
	bad[len(bad)-1] ^= 0xff // the payload's last byte: the TCP checksum no longer matches
	syn := flow(2, parser.TCPFlagSYN, nil)
	syn.Seq = 999
	first := flow(3, parser.TCPFlagACK, hello[:600])
	far := flow(3, parser.TCPFlagACK, make([]byte, 1400))
	far.Seq = first.Seq + 16<<10
	s, w := testWorker(t,
		packettest.Frame(t, syn), bad,
		packettest.Frame(t, flow(2, parser.TCPFlagACK, hello[:600])),
		packettest.Frame(t, first), packettest.Frame(t, far))
	got := gathered(t, NewCollector(s, w))
	for k, want := range map[string]float64{
		"anysched_reassembly_events_total,event=opened":       1,
		"anysched_reassembly_events_total,event=started":      1,
		"anysched_reassembly_events_total,event=bad_checksum": 1,
		"anysched_reassembly_events_total,event=overflow":     0,
		"anysched_reassembly_events_total,event=conflict":     0,
		"anysched_clienthellos_total,outcome=pending":         3,
		"anysched_clienthellos_total,outcome=unknown":         0,
		"anysched_reassembly_in_use":                          2,
		"anysched_reassembly_decided":                         0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (exported %v), want %v", k, v, ok, want)
		}
	}
}

// gathered registers c and returns every series it exports, keyed
// "name,label=value,...".
func gathered(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	return got
}
