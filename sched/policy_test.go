package sched

import (
	"testing"
	"time"
)

func policyScheduler(t *testing.T, policy string, now *int64) *Scheduler {
	t.Helper()
	cfg, err := ParseConfig([]byte(`vips: [{address: 10.200.0.1}]
table: {size: 1009, seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64}
policy: `+policy+`
hysteresis: {threshold: 0.1, min_interval: 2s}
reports: {interval: 1s, timeout: 500ms, stale_after: 1h}
score: {delay_weight: 0, load_weight: 1}
pools:
  - {name: a, nodes: [{name: a1, address: 10.201.0.11, capacity: 100}, {name: a2, address: 10.201.0.12, capacity: 300}]}
  - {name: b, nodes: [{name: b1, address: 10.201.0.21}]}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, WithClock(func() int64 { return *now }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// setLoads gives each node (by ID) a fresh report with that CPU load and
// runs the periodic evaluation. Caller must not hold mu.
func setLoads(s *Scheduler, now int64, cpu ...float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range cpu {
		st := s.nodes[id]
		st.report, st.reportAt, st.hasReport = Report{CPU: c}, now, true
	}
	s.evaluate(now, false)
}

func TestHysteresis(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := policyScheduler(t, "weighted", &now)
	setLoads(s, now, 0.5, 0.5, 0.5) // a structural change? no: all still eligible
	gen := s.Current().Generation
	now += int64(3 * time.Second)
	setLoads(s, now, 0.2, 0.5, 0.5)
	if s.Current().Generation == gen {
		t.Fatal("a large share change did not rebuild")
	}
	gen = s.Current().Generation
	w := s.Current().Nodes[0].Weight

	// A small change (well under 10% of a share) does not rebuild, even
	// after the minimum interval.
	now += int64(3 * time.Second)
	setLoads(s, now, 0.21, 0.5, 0.5)
	if s.Current().Generation != gen {
		t.Fatal("a change under the threshold rebuilt the table")
	}
	// A large change within the minimum interval waits for it.
	now += int64(time.Second)
	s.mu.Lock()
	s.lastBuild = now
	s.mu.Unlock()
	now += int64(time.Second)
	setLoads(s, now, 0.9, 0.5, 0.5)
	if s.Current().Generation != gen {
		t.Fatal("rebuilt within the minimum interval")
	}
	now += int64(time.Second)
	setLoads(s, now, 0.9, 0.5, 0.5)
	snap := s.Current()
	if snap.Generation == gen || snap.Nodes[0].Weight >= w {
		t.Fatalf("no rebuild after the minimum interval: generation %d weight %d (was %d)", snap.Generation, snap.Nodes[0].Weight, w)
	}
	// A node going down rebuilds at once, minimum interval or not, and
	// even its slots that moved within G move on (a dead owner has no
	// flows to protect).
	gen = snap.Generation
	s.mu.Lock()
	s.nodes[2].up = false
	s.evaluate(now, false)
	s.mu.Unlock()
	if snap := s.Current(); snap.Generation == gen || snap.Nodes[2].Slots != 0 {
		t.Fatal("a down node did not rebuild at once")
	}
}

func TestPolicies(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := policyScheduler(t, "best-pool", &now)
	// Pool a is less loaded: it takes everything, 1:3 by capacity.
	setLoads(s, now, 0.1, 0.1, 0.6)
	snap := s.Current()
	if snap.Nodes[2].Slots != 0 || snap.Nodes[0].Weight != 100 || snap.Nodes[1].Weight != 300 {
		t.Fatalf("best-pool: %+v", snap.Nodes)
	}
	if r := float64(snap.Nodes[1].Slots) / float64(snap.Nodes[0].Slots); r < 2.9 || r > 3.1 {
		t.Fatalf("capacity 1:3 gave slots %d:%d", snap.Nodes[0].Slots, snap.Nodes[1].Slots)
	}
	// Pool b becomes the better one.
	now += int64(3 * time.Second)
	setLoads(s, now, 0.9, 0.9, 0.1)
	snap = s.Current()
	if snap.Nodes[2].Slots != 1009 {
		t.Fatalf("best-pool after the loads swapped: %+v", snap.Nodes)
	}
	// Draining a whole pool's nodes hands the traffic to the other pool.
	s2 := policyScheduler(t, "weighted", &now)
	now += int64(3 * time.Second) // past the minimum interval after New
	setLoads(s2, now, 0.0, 0.0, 1.0)
	snap = s2.Current()
	for _, n := range snap.Nodes {
		if n.Slots == 0 {
			t.Fatalf("weighted: node %s has no slots: %+v", n.Name, snap.Nodes)
		}
	}
	if !(snap.Nodes[2].Weight < snap.Nodes[0].Weight) {
		t.Fatalf("weighted: the fully loaded node weighs %d, the idle one %d", snap.Nodes[2].Weight, snap.Nodes[0].Weight)
	}
}
