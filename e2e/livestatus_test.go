package e2e

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// share is the fraction of flows that went to key.
func share(m map[string]float64, key string) float64 {
	total := 0.0
	for _, v := range m {
		total += v
	}
	if total == 0 {
		return 0
	}
	return m[key] / total
}

func shares(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %.0f%% ", k, 100*share(m, k))
	}
	return strings.TrimSpace(b.String())
}

// phaseShares is what one change of live status did to new flows: the
// shares by pool of the first batch after it and of the batch at which
// the schedule had settled, and how long settling took.
type phaseShares struct {
	first, settled map[string]float64
	took           time.Duration
}

func (p phaseShares) String() string {
	return fmt.Sprintf("first batch %s, settled %s after %v", shares(p.first), shares(p.settled), p.took.Round(100*time.Millisecond))
}

// settlePoolShare opens batches of n new flows until one gives pool at
// least min of them (the scheduler has seen the change: probes, reports,
// hysteresis, dwell); the test fails if that does not happen within
// failAfter.
func (e *Env) settlePoolShare(t testing.TB, pool string, min float64, n int) phaseShares {
	t.Helper()
	start := time.Now()
	var p phaseShares
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		byPool, _ := e.NewFlows(t, n)
		if p.first == nil {
			p.first = byPool
		}
		p.settled, p.took = byPool, time.Since(start)
		if s := share(byPool, pool); s < min {
			return fmt.Errorf("%s got %.0f%% of %d new flows (%s)", pool, 100*s, n, shares(byPool))
		}
		return nil
	}); err != nil {
		t.Fatalf("the schedule never gave %s %.0f%% of new flows: %v", pool, 100*min, err)
	}
	return p
}

// TestLiveStatusMovesNewFlowsOnly: the router's probes (delay) and the
// nodes' load reports decide where NEW connections go — a pool's delay
// or load moves the share of new flows — while established connections
// keep their node through every change.
func TestLiveStatusMovesNewFlowsOnly(t *testing.T) {
	const capacity = 20
	e := Start(t, Options{Delays: true, NodeCapacity: capacity, Router: RouterConfig{Policy: "best-pool", Grace: time.Second}})
	const delay = 30 * time.Millisecond // probe RTT 30 ms of the 50 ms delay reference: score 0.3
	const measured = 40

	// Established connections, opened before any change: legacy ones
	// through the VIP (pinned by the router) on every node.
	var held []*LegacyConn
	heldOn := map[*LegacyConn]string{}
	for len(held) < 6 {
		c, err := e.DialLegacy(t, e.VIP(false), netip.Addr{})
		if err != nil {
			t.Fatalf("legacy connection: %v", err)
		}
		defer c.Close()
		node, err := c.Get()
		if err != nil {
			t.Fatalf("legacy request: %v", err)
		}
		held = append(held, c)
		heldOn[c] = node
	}

	// 1. pool-b slow: new flows go to pool-a. (Whichever pool was best
	// before is chance: both had no delay and no load.)
	e.SetPoolDelay(1, delay)
	phase1 := e.settlePoolShare(t, "pool-a", 0.9, measured)
	// 2. pool-a slow instead: they move to pool-b.
	e.SetPoolDelay(1, 0)
	e.SetPoolDelay(0, delay)
	phase2 := e.settlePoolShare(t, "pool-b", 0.9, measured)
	// 3. pool-b's nodes at full load (connections held to their unicast
	// addresses up to --capacity): its score (0.5) passes pool-a's delay
	// (0.3), so new flows go back to pool-a.
	var loaders []*LegacyConn
	for _, n := range e.Pools[1] {
		for range capacity {
			c, err := e.DialLegacy(t, n.Unicast, netip.Addr{})
			if err != nil {
				t.Fatalf("load connection to %s: %v", n.Name, err)
			}
			defer c.Close()
			loaders = append(loaders, c)
		}
	}
	phase3 := e.settlePoolShare(t, "pool-a", 0.9, measured)
	for _, c := range loaders {
		c.Close()
	}

	moved := 0
	for _, c := range held {
		node, err := c.Get()
		if err != nil {
			t.Errorf("an established connection on %s broke: %v", heldOn[c], err)
			continue
		}
		if node != heldOn[c] {
			moved++
			t.Errorf("an established connection moved from %s to %s", heldOn[c], node)
		}
	}
	t.Logf("FIGURE live-status: new flows by pool, batches of %d (best-pool policy): pool-b delayed %v: %v; then pool-a delayed instead: %v; "+
		"then pool-b at full load (%d connections per node = --capacity): %v; established connections moved: %d of %d",
		measured, delay, phase1, phase2, capacity, phase3, moved, len(held))
}
