package lookup_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

// newScheduler builds the table the way the router does, so the benchmark
// decides over a real snapshot (weighted Maglev, slots in transition).
func newScheduler(b *testing.B, yaml string, now *int64) *sched.Scheduler {
	b.Helper()
	cfg, err := sched.ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s, err := sched.New(cfg, sched.WithClock(func() int64 { return *now }))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkLookup is one Decide per packet: hash, table, pin table and
// transition set, over 4096 flows of which a tenth are pinned.
func BenchmarkLookup(b *testing.B) {
	var now int64 = int64(time.Hour)
	s := newScheduler(b, packettest.EqualNodesConfig(100, 65537, 5*time.Second, nil), &now)
	// A weight change puts some slots in transition, as in production.
	cfg, err := sched.ParseConfig([]byte(packettest.EqualNodesConfig(100, 65537, 5*time.Second, map[int]string{7: "drain: true"})), "test.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		b.Fatal(err)
	}
	snap := s.Current()
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 1 << 16, TransitionCapacity: 1 << 14})
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]parser.FlowKey, 4096)
	for i := range keys {
		keys[i] = packettest.RandomFlowKey(r, i%4 == 0)
		// A tenth of the flows are legacy and pinned.
		if i%10 == 0 {
			dec := d.Decide(snap, &keys[i], true, now)
			d.Pin(&keys[i], dec.Hash, dec.Node, snap.PinIdle, now)
		}
	}
	b.ReportAllocs()
	var sink uint16
	i := 0
	for b.Loop() {
		sink += d.Decide(snap, &keys[i&4095], false, now).Node
		i++
	}
	_ = sink
}
