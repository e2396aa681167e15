package e2e

import (
	"testing"
	"time"
)

// TestRouterRestartBreaksNoMigratedConnection: anysched is SIGKILLed and
// started again under load. Migrated connections never noticed (they are
// on the nodes' unicast addresses), anycast-phase flows keep their node
// (the new router builds the same table from the same inputs), and the
// legacy connections whose pin disagreed with the table (pinned before a
// weight change) are what the lost pins break: counted and reported.
func TestRouterRestartBreaksNoMigratedConnection(t *testing.T) {
	e := Start(t, Options{ClientAddrs: 4, Router: RouterConfig{Static: true, Grace: time.Second}})
	vip := e.VIP(false)

	// Legacy connections pinned under the first table, from several
	// client addresses.
	type heldLegacy struct {
		c          *LegacyConn
		node       string
		onNewTable bool // the table after the weight change agrees with its pin
	}
	var legacy []*heldLegacy
	for i := range 16 {
		c, err := e.DialLegacy(t, vip, e.Bed.Client.Extra4[i%4])
		if err != nil {
			t.Fatalf("legacy connection: %v", err)
		}
		defer c.Close()
		node, err := c.Get()
		if err != nil {
			t.Fatalf("legacy request: %v", err)
		}
		legacy = append(legacy, &heldLegacy{c: c, node: node})
	}
	// A weight change: some of those pins now disagree with the table.
	e.Router.Reload(t, true, func(c *RouterConfig) { c.Weights = map[string]int{"node1": 400, "node4": 10} })
	for _, l := range legacy {
		l.onNewTable = e.TableNode(t, e.Router.Config, l.c.Local, vip) == l.node
	}

	// Load across the restart, and long-lived migrated connections.
	capable0, legacy0 := e.AnycastHandshakes(t)
	url := e.VIPURL(false)
	loads := map[string]*Proc{
		"rendezvous": e.StartLoad(t, url, "--policy", "rendezvous", "--connections", "4", "--rate", "10", "--duration", "8s", "--requests-per-conn", "3"),
		"background": e.StartLoad(t, url, "--policy", "background", "--connections", "4", "--rate", "4", "--duration", "8s", "--requests-per-conn", "4", "--think", "150ms"),
		"never":      e.StartLoad(t, url, "--policy", "never", "--connections", "2", "--rate", "3", "--duration", "8s", "--requests-per-conn", "3", "--think", "200ms"),
	}
	migrated := e.startHeldGets(t, 4, "rendezvous", 40, 250*time.Millisecond)
	for _, p := range migrated {
		if r := firstAnswer(t, p); !r.Migrated {
			t.Fatalf("held client not migrated: %+v", r)
		}
	}

	newFlows := e.Router.Metrics(t).Sum("anysched_node_new_flows_total")
	killed := time.Now()
	e.Router.Restart(t) // SIGKILL, then the same binary and config
	gap := time.Since(killed)

	broken := map[string]int{}
	conns := map[string]int{}
	for kind, p := range loads {
		res, code := LoadResultOf(t, p)
		broken[kind], conns[kind] = res.Broken, res.Connections
		if kind != "never" && (code != 0 || res.Broken != 0) {
			t.Errorf("%s load across the restart: exit %d, %d of %d connections broken (%v)", kind, code, res.Broken, res.Connections, res.Failures)
		}
	}
	for _, p := range migrated {
		code, rs := getResults(t, p)
		if code != 0 || len(rs) != 40 || !oneConnection(rs) {
			p.logTo(t)
			t.Errorf("a migrated connection across the restart: exit %d, %d of 40 answers, all on one connection: %v", code, len(rs), oneConnection(rs))
			broken["migrated held"]++
		}
	}
	// Connections that died between requests are redialed by the client
	// unseen: the nodes' VIP handshakes count them.
	capable1, legacy1 := e.AnycastHandshakes(t)
	capableRedials := int(capable1-capable0) - conns["rendezvous"] - conns["background"] - len(migrated)
	legacyRedials := int(legacy1-legacy0) - conns["never"]
	if capableRedials != 0 && broken["rendezvous"]+broken["background"]+broken["migrated held"] == 0 {
		t.Errorf("the nodes completed %d VIP handshakes by capable clients beyond the connections they opened: migrating connections broken and silently redialed", capableRedials)
	}
	pinLost, keptByTable, wouldMove := 0, 0, 0
	for _, l := range legacy {
		node, err := l.c.Get()
		survived := err == nil && node == l.node
		switch {
		case l.onNewTable && !survived:
			t.Errorf("a legacy connection on %s whose pin agreed with the table broke across the restart: %q, %v", l.node, node, err)
		case l.onNewTable:
			keptByTable++
		case !survived:
			wouldMove++
			pinLost++
		default:
			wouldMove++
		}
	}
	m := e.Router.Metrics(t)
	t.Logf("FIGURE restart: SIGKILL to /ready again in %v (new flows seen by the old router before it: %v); migrating: %d rendezvous + %d background connections "+
		"under load, %d broken (%d redialed unseen); 4 held migrated connections, %d broken; legacy: %d held connections, %d on slots the table still gives their node: %d kept it, "+
		"%d pinned against the table: %d broken by the lost pins (by design); anyclient never load: %d of %d broken, %d redialed unseen; new router's pins now %v",
		gap.Round(time.Millisecond), newFlows, conns["rendezvous"], conns["background"], broken["rendezvous"]+broken["background"], capableRedials, broken["migrated held"],
		len(legacy), keptByTable, keptByTable, wouldMove, pinLost, broken["never"], conns["never"], legacyRedials, m.Value("anysched_pins"))
}
