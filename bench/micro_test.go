package bench

import (
	"context"
	"math"
	"strings"
	"testing"
)

const sampleBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/anysched/anysched/fastpath
cpu: Oxide Virtual Turin-like Processor
BenchmarkPipeline/syn-2         	    2000	      5313 ns/op	        38.63 cpu-ns/pkt	        83.02 ns/pkt	       0 B/op	       0 allocs/op
BenchmarkPipeline/mix-2         	    2000	     15952 ns/op	        64.88 cpu-ns/pkt	       249.2 ns/pkt	       0 B/op	       0 allocs/op
BenchmarkPipeline/mix-2         	    2000	     14000 ns/op	        60.00 cpu-ns/pkt	       200.0 ns/pkt	       0 B/op	       0 allocs/op
BenchmarkPipeline/mix-2         	    2000	     16000 ns/op	        70.00 cpu-ns/pkt	       260.0 ns/pkt	       0 B/op	       0 allocs/op
PASS
ok  	github.com/anysched/anysched/fastpath	1.162s
pkg: github.com/anysched/anysched/sched
BenchmarkFlowHash/v4-2             	      10	        58.10 ns/op	       0 B/op	       0 allocs/op
BenchmarkBroken-2 x 1 ns/op
BenchmarkOdd-2 10 1 ns/op 2
BenchmarkNaN-2 10 NaN ns/op
`

func TestParseMicro(t *testing.T) {
	out := ParseMicro([]byte(sampleBenchOutput))
	if out.CPU != "Oxide Virtual Turin-like Processor" {
		t.Errorf("CPU %q", out.CPU)
	}
	if len(out.Results) != 3 {
		t.Fatalf("%d results: %+v", len(out.Results), out.Results)
	}
	mix := out.Results[1]
	if mix.Pkg != "github.com/anysched/anysched/fastpath" || mix.Name != "Pipeline/mix" {
		t.Errorf("result 1: %s %s", mix.Pkg, mix.Name)
	}
	s := Summarize(mix.Values["cpu-ns/pkt"])
	if s.N != 3 || s.Median != 64.88 || s.Min != 60 || s.Max != 70 {
		t.Errorf("cpu-ns/pkt %+v", s)
	}
	if fh := out.Results[2]; fh.Pkg != "github.com/anysched/anysched/sched" || fh.Name != "FlowHash/v4" || fh.Values["ns/op"][0] != 58.1 {
		t.Errorf("FlowHash: %+v", fh)
	}
}

func TestSummarize(t *testing.T) {
	if s := Summarize(nil); s.N != 0 {
		t.Errorf("empty: %+v", s)
	}
	if s := Summarize([]float64{4, 1, 3, 2}); s.Median != 2.5 || s.Min != 1 || s.Max != 4 {
		t.Errorf("even: %+v", s)
	}
}

func TestRunMicroTiny(t *testing.T) {
	var lines []string
	raw, err := RunMicro(context.Background(), MicroConfig{Dir: "..", Count: 2, Benchtime: "1x",
		Packages: []string{"./lookup"}, Bench: "^BenchmarkFlowHash$"}, func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	out := ParseMicro(raw)
	var v4 *MicroResult
	for i := range out.Results {
		if out.Results[i].Name == "FlowHash/v4" {
			v4 = &out.Results[i]
		}
	}
	if v4 == nil || len(v4.Values["ns/op"]) != 2 || len(lines) < 2 {
		t.Fatalf("FlowHash/v4 not found twice in:\n%s", raw)
	}
	for _, bad := range []MicroConfig{{Count: 0, Benchtime: "1x"}, {Count: 1}} {
		if _, err := RunMicro(context.Background(), bad, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRouterMetrics(t *testing.T) {
	text := `# HELP anysched_packets_received_total x
anysched_packets_received_total{queue="0"} 100
anysched_packets_received_total{queue="1"} 50
anysched_packets_transmitted_total{queue="0"} 140
anysched_packets_dropped_total{queue="0",reason="no_mac"} 7
anysched_packets_dropped_total{queue="1",reason="no_mac"} 1
anysched_packets_dropped_total{queue="0",reason="ttl_expired"} 2
anysched_packets_dropped_total{queue="0",reason="tx_error"} nope
other_metric 5
`
	m := routerMetrics(text)
	want := map[string]float64{"router_received": 150, "router_transmitted": 140, "router_dropped": 10,
		"router_dropped:no_mac": 8, "router_dropped:ttl_expired": 2}
	if len(m) != len(want) {
		t.Errorf("got %v", m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestConntrackStats(t *testing.T) {
	text := "cpu=0 found=0 invalid=12 insert=0 insert_failed=1 drop=2 early_drop=0 error=0 search_restart=0\n" +
		"cpu=1 found=0 invalid=3 insert=0 insert_failed=0 drop=0 early_drop=4 error=0 search_restart=0 junk x=\n"
	m := conntrackStats(text)
	if m["invalid"] != 15 || m["insert_failed"] != 1 || m["drop"] != 2 || m["early_drop"] != 4 || len(m) != 4 {
		t.Errorf("got %v", m)
	}
}

func FuzzParseMicro(f *testing.F) {
	f.Add([]byte(sampleBenchOutput))
	f.Add([]byte("BenchmarkX-2 1 1 ns/op\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out := ParseMicro(raw)
		for _, r := range out.Results {
			if r.Name == "" || len(r.Values) == 0 {
				t.Fatalf("empty result %+v", r)
			}
			for u, vs := range r.Values {
				for _, v := range vs {
					if math.IsNaN(v) || math.IsInf(v, 0) || u == "" {
						t.Fatalf("bad value %v %q", v, u)
					}
				}
			}
		}
	})
}

func FuzzCounterText(f *testing.F) {
	f.Add("anysched_packets_dropped_total{reason=\"no_mac\"} 3\ncpu=0 drop=1 invalid=2\n")
	f.Fuzz(func(t *testing.T, text string) {
		for k, v := range routerMetrics(text) {
			if !strings.HasPrefix(k, "router_") || math.IsNaN(v) {
				t.Fatalf("%q = %v", k, v)
			}
		}
		for k := range conntrackStats(text) {
			switch k {
			case "drop", "early_drop", "insert_failed", "invalid":
			default:
				t.Fatalf("key %q", k)
			}
		}
	})
}
