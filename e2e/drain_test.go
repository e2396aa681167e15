package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestNodeDrainMovesEveryCapableClient: SIGTERM on an anynode drains it:
// every migration-capable client on it (rendezvous and background,
// already migrated or not) moves to its pool sibling before the node
// exits, without a failed request; legacy clients on it finish or are
// counted.
func TestNodeDrainMovesEveryCapableClient(t *testing.T) {
	e := Start(t, Options{ClientAddrs: 4, DrainTimeout: 15 * time.Second})
	const repeat = 50
	const interval = 200 * time.Millisecond

	holders := append(e.startHeldGets(t, 8, "rendezvous", repeat, interval), e.startHeldGets(t, 8, "background", repeat, interval)...)
	on := map[*Proc]string{}
	count := map[string]int{}
	for _, p := range holders {
		r := firstAnswer(t, p)
		on[p] = r.Node
		count[r.Node]++
	}
	// Drain the node holding the most capable clients.
	var victim *Node
	for _, n := range e.Nodes {
		if n.Sibling != nil && (victim == nil || count[n.Name] > count[victim.Name]) {
			victim = n
		}
	}
	if count[victim.Name] == 0 {
		t.Fatalf("no held client on any node: %v", count)
	}
	type heldLegacy struct {
		c    *LegacyConn
		node string
	}
	var legacy []heldLegacy
	for i := range 12 {
		c, err := e.DialLegacy(t, e.VIP(false), e.Bed.Client.Extra4[i%4])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		node, err := c.Get()
		if err != nil {
			t.Fatal(err)
		}
		legacy = append(legacy, heldLegacy{c, node})
	}

	var others []*Node
	for _, n := range e.Nodes {
		if n != victim {
			others = append(others, n)
		}
	}
	capable0, _ := e.AnycastHandshakes(t, others...)
	termed := time.Now()
	victim.Signal(t, syscall.SIGTERM)
	code := victim.Wait(t)
	drainTime := time.Since(termed)
	if code != 0 {
		t.Errorf("%s exited with %d after its drain", victim.Name, code)
	}

	moved, brokenCapable := 0, 0
	for _, p := range holders {
		code, rs := getResults(t, p)
		if code != 0 || len(rs) != repeat {
			brokenCapable++
			p.logTo(t)
			t.Errorf("a capable client first on %s: exit %d, %d of %d answers", on[p], code, len(rs), repeat)
			continue
		}
		last := rs[len(rs)-1]
		if on[p] != victim.Name && !oneConnection(rs[1:]) {
			t.Errorf("a capable client on %s changed connection during %s's drain: %+v", on[p], victim.Name, rs)
		}
		if on[p] == victim.Name {
			// A move is a new move count on the same client connection;
			// a redial would start over.
			if last.Moves <= rs[0].Moves {
				t.Errorf("a capable client of %s reached %s without a move (moves %d -> %d): redialed, not moved", victim.Name, last.Node, rs[0].Moves, last.Moves)
			}
			if last.Node != victim.Sibling.Name || last.Remote != victim.Sibling.Unicast.String() {
				t.Errorf("a capable client of the drained %s ended on %s at %s; want %s at %v", victim.Name, last.Node, last.Remote, victim.Sibling.Name, victim.Sibling.Unicast)
			} else {
				moved++
			}
		}
	}
	// Redials would be new VIP handshakes on the other nodes.
	capable1, _ := e.AnycastHandshakes(t, others...)
	if capable1 != capable0 {
		t.Errorf("the other nodes completed %v VIP handshakes by capable clients during the drain: clients redialed instead of moving", capable1-capable0)
	}
	legacyOnVictim, legacyBroken := 0, 0
	for _, l := range legacy {
		node, err := l.c.Get()
		if l.node != victim.Name {
			if err != nil || node != l.node {
				t.Errorf("a legacy connection on %s was affected by %s's drain: %q, %v", l.node, victim.Name, node, err)
			}
			continue
		}
		legacyOnVictim++
		if err != nil {
			legacyBroken++
		}
	}
	_, byNode := e.NewFlows(t, 20)
	if byNode[victim.Name] != 0 {
		t.Errorf("%v of 20 new flows went to the drained, stopped %s", byNode[victim.Name], victim.Name)
	}
	t.Logf("FIGURE drain: SIGTERM to exit of %s in %v; capable clients on it: %d (rendezvous and background), %d moved to %s, broken: %d (of %d capable clients in all); "+
		"legacy connections on it: %d, cut by its exit: %d (legacy connections elsewhere all answered)",
		victim.Name, drainTime.Round(time.Millisecond), count[victim.Name], moved, victim.Sibling.Name, brokenCapable, len(holders), legacyOnVictim, legacyBroken)
}
