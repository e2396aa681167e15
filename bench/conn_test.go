package bench

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const sampleProcNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100630A:C350 0100C80A:01BB 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 0 10 -1
   1: 0100630A:C351 0B00630A:01BB 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 0 10 -1
   2: 0100630A:C352 0100C80A:01BB 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
   3: 0100630A:C353 0C00630A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 0 10 -1
   4: garbage line
`

func TestParseProcNetTCP(t *testing.T) {
	got := parseProcNetTCP(sampleProcNetTCP)
	want := []procTCPConn{
		{netip.MustParseAddrPort("10.200.0.1:443"), tcpEstablished},
		{netip.MustParseAddrPort("10.99.0.11:443"), tcpEstablished},
		{netip.MustParseAddrPort("10.200.0.1:443"), 6}, // TIME_WAIT
		{netip.MustParseAddrPort("10.99.0.12:8080"), tcpEstablished},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	if v, err := parseVmRSS("Name:\thaproxy\nVmRSS:\t   10240 kB\nThreads: 1\n"); err != nil || v != 10240*1024 {
		t.Errorf("got %v, %v", v, err)
	}
	for _, bad := range []string{"", "VmRSS:\t12 MB\n", "VmRSS: x kB\n", "VmRSS: -1 kB\n"} {
		if v, err := parseVmRSS(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, v)
		}
	}
}

func TestSlabObjectSize(t *testing.T) {
	text := "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\nnf_conntrack_expect 0 0 208 39 2\nnf_conntrack          96    160    256   16    1 : tunables\n"
	if v, err := slabObjectSize(text, "nf_conntrack"); err != nil || v != 256 {
		t.Errorf("got %v, %v", v, err)
	}
	if _, err := slabObjectSize("nf_conntrack 1 1 x\n", "nf_conntrack"); err == nil {
		t.Error("a bad objsize was accepted")
	}
	if _, err := slabObjectSize(text, "missing"); err == nil {
		t.Error("a missing cache was found")
	}
}

func TestGauges(t *testing.T) {
	text := "# HELP anysched_pins x\nanysched_pins 12\nanysched_pins_total 9\nanysched_transition_entries NaN\nanysched_reassembly_in_use 1\n"
	g := gauges(text, "anysched_pins", "anysched_transition_entries", "anysched_reassembly_in_use")
	if g["anysched_pins"] != 12 || g["anysched_reassembly_in_use"] != 1 || len(g) != 2 {
		t.Errorf("got %v", g)
	}
}

// The per-entry size the report states is lookup's, within the 64 B a
// legacy connection may cost; the report spells out the flow key's size.
func TestPinEntryBytes(t *testing.T) {
	if PinEntryBytes != 60+1.0/64 || flowKeyBytes != 38 {
		t.Errorf("PinEntryBytes %v, flowKeyBytes %d", PinEntryBytes, flowKeyBytes)
	}
}

func TestConnConfigCheckNamesTheField(t *testing.T) {
	good := ConnConfig{Reps: 1, Duration: time.Second, Concurrency: 1, Hold: 10, HoldRate: 10, Shares: []int{0},
		Anysched: "conn_test.go", Anynode: "conn_test.go", Anyclient: "conn_test.go", ClientCPU: 0, RouterCPU: 1}
	cases := []struct {
		field string
		edit  func(*ConnConfig)
	}{
		{"conn-reps", func(c *ConnConfig) { c.Reps = 0 }},
		{"conn-duration", func(c *ConnConfig) { c.Duration = 0 }},
		{"conn-concurrency", func(c *ConnConfig) { c.Concurrency = 0 }},
		{"hold", func(c *ConnConfig) { c.Hold = maxHold + 1 }},
		{"hold-rate", func(c *ConnConfig) { c.HoldRate = math.NaN() }},
		{"shares", func(c *ConnConfig) { c.Shares = []int{-1} }},
		{"shares", func(c *ConnConfig) { c.Shares = nil }},
		{"cpus", func(c *ConnConfig) { c.RouterCPU = 0 }},
		{"anyclient", func(c *ConnConfig) { c.Anyclient = "/nonexistent" }},
	}
	for _, tc := range cases {
		c := good
		tc.edit(&c)
		if err := c.Check(); err == nil || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}

func FuzzKernelText(f *testing.F) {
	f.Add(sampleProcNetTCP)
	f.Add("VmRSS:\t 4 kB\nnf_conntrack 1 2 248 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, c := range parseProcNetTCP(text) {
			if !c.remote.Addr().Is4() || c.state < 0 || c.state > 255 {
				t.Fatalf("bad connection %+v", c)
			}
		}
		if v, err := parseVmRSS(text); err == nil && (v < 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("RSS %v", v)
		}
		if v, err := slabObjectSize(text, "nf_conntrack"); err == nil && (v <= 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("object size %v", v)
		}
	})
}

// The state goals are judged from the holds: a pin per legacy connection
// meets ≤ 64 B, no pins for migrating ones meets 0 B; two pins per legacy
// and one per migrating connection miss all three.
func TestStateGoalsInReport(t *testing.T) {
	hold := func(front string, share int, pins float64) StateSample {
		mig := 100 * share / 100
		return StateSample{Front: front, Share: share, Held: 100, Migrating: mig, Legacy: 100 - mig, Live: 100,
			Plateau: FrontState{Entries: pins, Bytes: pins * PinEntryBytes}}
	}
	res := func(states ...StateSample) string {
		r := &Results{Conn: ConnConfig{Shares: []int{0, 50, 100}}, Conns: &ConnRun{
			Fronts: []ScenarioInfo{{Name: NameAnysched}}, States: states,
			Derived: ConnDerivations{PinEntryBytes: PinEntryBytes, ConntrackObjectSize: 248, HoldRequests: holdRequests}}}
		var b strings.Builder
		b.WriteString(r.Report("x.json", nil))
		return b.String()
	}
	good := res(hold(NameAnysched, 0, 100), hold(NameAnysched, 50, 50), hold(NameAnysched, 100, 0))
	for _, want := range []string{"per migrating connection (all 100 migration-capable): 0.0 B (goal 0 B): met",
		"per legacy connection (all 100 legacy): 60.0 B (goal ≤ 64 B): met",
		"at 50 %: per migrating connection, after the legacy ones at the 0 % rate: 0.0 B (goal 0 B): met"} {
		if !strings.Contains(good, want) {
			t.Errorf("report lacks %q:\n%s", want, good)
		}
	}
	bad := res(hold(NameAnysched, 0, 200), hold(NameAnysched, 50, 150), hold(NameAnysched, 100, 100))
	if strings.Contains(bad, ": met") || strings.Count(bad, "**missed**") != 3 {
		t.Errorf("two pins per legacy and one per migrating connection should miss all three goals:\n%s", bad)
	}
}
