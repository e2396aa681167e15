package fastpath

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anysched/anysched/parser"
)

func TestCollectorExportsCounters(t *testing.T) {
	h := newHarness(t)
	h.send(buildFrame(t, flow(1, parser.TCPFlagSYN, nil)), buildFrame(t, flow(1, parser.TCPFlagACK|parser.TCPFlagPSH, clientHello(false, 0))), []byte{9})
	h.w.Finish()
	c := NewCollector(h.s, h.w)
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
