package daemon

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/fastpath"
)

// leaf is one number of a counters struct: its path and its value.
type leaf struct {
	path string
	v    reflect.Value
}

// leaves lists every uint64 of v (a struct of uint64s and arrays of
// them), fields and array elements alike.
func leaves(path string, v reflect.Value) []leaf {
	switch v.Kind() {
	case reflect.Uint64:
		return []leaf{{path, v}}
	case reflect.Struct:
		var out []leaf
		for i := 0; i < v.NumField(); i++ {
			out = append(out, leaves(path+"."+v.Type().Field(i).Name, v.Field(i))...)
		}
		return out
	case reflect.Array:
		var out []leaf
		for i := 0; i < v.Len(); i++ {
			out = append(out, leaves(fmt.Sprintf("%s[%d]", path, i), v.Index(i))...)
		}
		return out
	}
	panic("counters hold only uint64s: " + path + " is " + v.Kind().String())
}

// notExported are the leaves that are, on purpose, no series of their own.
func notExported(path string, nodes int) bool {
	switch {
	case path == "Counters.ParseStatus[0]": // parsed fine: not a drop
		return true
	case path == "Counters.Batches", strings.HasPrefix(path, "Counters.BatchSizes["):
		return true // the batch_size histogram (its count and buckets)
	case path == "Gauges.Generation":
		return true // table_generation is the published snapshot's
	}
	var i int
	for _, arr := range []string{"Counters.NodeForwarded[%d]", "Counters.NodeNewFlows[%d]"} {
		if n, _ := fmt.Sscanf(path, arr, &i); n == 1 {
			return i >= nodes // only the snapshot's nodes have names to label
		}
	}
	return false
}

// TestEveryWorkerCounterIsExported gives every counter and gauge a worker
// exports (fastpath.Counters, fastpath.Gauges, whatever fields they grow)
// a distinct value and finds each value in a metric the collector
// exports: a field nobody wired into the collector fails the test by name.
func TestEveryWorkerCounterIsExported(t *testing.T) {
	s, w := testWorker(t)
	c := NewCollector(s, w)
	var cnt fastpath.Counters
	var g fastpath.Gauges
	all := append(leaves("Counters", reflect.ValueOf(&cnt).Elem()), leaves("Gauges", reflect.ValueOf(&g).Elem())...)
	for i, l := range all {
		l.v.SetUint(uint64(1_000_003 + 7919*i))
	}
	c.fakeTotal = func() (fastpath.Counters, fastpath.Gauges) { return cnt, g }
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]string{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			default:
				continue
			}
			seen[uint64(v)] = mf.GetName()
		}
	}
	nodes := len(s.Current().Nodes)
	for _, l := range all {
		if notExported(l.path, nodes) {
			continue
		}
		if _, ok := seen[l.v.Uint()]; !ok {
			t.Errorf("%s is not exported by the collector", l.path)
		}
	}
}

// Every verdict of the XDP program, the pass reasons of issue 11 finding
// 10 included, has a counter and a label value of its own.
func TestXDPVerdictsHaveLabels(t *testing.T) {
	var c afxdp.Counters
	if len(c) != int(classify.NumVerdicts) {
		t.Fatalf("%d XDP counters for %d verdicts", len(c), classify.NumVerdicts)
	}
	labels := map[string]bool{}
	for i := range c {
		l := afxdp.Counter(i).String()
		if labels[l] || strings.Contains(l, "unknown") {
			t.Errorf("verdict %d: label %q", i, l)
		}
		labels[l] = true
	}
	for _, want := range []string{"pass_vip_fragment", "pass_vip_icmp", "pass_vip_other", "pass_too_long"} {
		if !labels[want] {
			t.Errorf("no %s counter", want)
		}
	}
}
