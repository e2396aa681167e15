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

// waitPoolShare opens batches of new flows until at least min of a batch
// goes to pool (the scheduler has seen the change: probes, reports,
// hysteresis), then measures one more batch of measured flows and returns
// its shares by pool.
func (e *Env) waitPoolShare(t testing.TB, pool string, min float64, measured int) map[string]float64 {
	t.Helper()
	var last map[string]float64
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		last, _ = e.NewFlows(t, 8)
		if s := share(last, pool); s < min {
			return fmt.Errorf("%s got %.0f%% of a batch (%s)", pool, 100*s, shares(last))
		}
		return nil
	}); err != nil {
		t.Fatalf("the schedule never moved to %s: %v", pool, err)
	}
	byPool, _ := e.NewFlows(t, measured)
	if s := share(byPool, pool); s < min {
		t.Fatalf("%s got %.0f%% of %d new flows (%s); want at least %.0f%%", pool, 100*s, measured, shares(byPool), 100*min)
	}
	return byPool
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

	// 1. pool-b slow: new flows go to pool-a.
	e.SetPoolDelay(1, delay)
	phase1 := e.waitPoolShare(t, "pool-a", 0.9, measured)
	// 2. pool-a slow instead: they move to pool-b.
	e.SetPoolDelay(1, 0)
	e.SetPoolDelay(0, delay)
	phase2 := e.waitPoolShare(t, "pool-b", 0.9, measured)
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
	phase3 := e.waitPoolShare(t, "pool-a", 0.9, measured)
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
	t.Logf("FIGURE live-status: new flows (%d per phase, by pool): pool-b delayed %v: %s; pool-a delayed: %s; pool-b at full load: %s; "+
		"established connections moved: %d of %d", measured, delay, shares(phase1), shares(phase2), shares(phase3), moved, len(held))
}
