package e2e

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestMigratingClientsHoldNoRouterState: migrating clients (rendezvous and
// background, IPv4 and IPv6) end on their node's unicast address and the
// router makes no pin for them; legacy clients (Go crypto/tls, OpenSSL
// s_client, curl) are pinned and served through the VIP.
func TestMigratingClientsHoldNoRouterState(t *testing.T) {
	e := Start(t, Options{})
	r := e.Router

	before := r.Metrics(t)
	migrating := 0
	for _, v6 := range []bool{false, false, false, true} {
		got := e.Get(t, "--policy", "rendezvous", e.VIPURL(v6))
		res := got[len(got)-1]
		n := e.NodeByName(res.Node)
		if n == nil || !res.Migrated || res.Remote != n.Unicast.String() || res.Status != 200 {
			t.Fatalf("rendezvous get (v6 %v): %+v; want migrated to the answering node's unicast address", v6, res)
		}
		migrating++
	}
	for range 2 {
		// The first request is answered on the VIP at once; the connection
		// moves behind it, so the third one is on the unicast address.
		got := e.Get(t, "--policy", "background", "--repeat", "3", "--interval", "200ms", e.VIPURL(false))
		res := got[len(got)-1]
		n := e.NodeByName(res.Node)
		if len(got) != 3 || n == nil || res.Remote != n.Unicast.String() || got[0].Node != res.Node {
			t.Fatalf("background get: %+v; want 3 answers from one node, the last on its unicast address", got)
		}
		migrating++
	}
	mid := r.Metrics(t)
	// A ClientHello split over segments is held (pinned) until it is
	// complete; migration_support then removes the pin. What must hold is
	// the steady state: no entry left for any migrating connection.
	transient := mid.Value("anysched_pin_inserts_total") - before.Value("anysched_pin_inserts_total")
	if mid.Value("anysched_pins") != before.Value("anysched_pins") {
		t.Errorf("%d migrating connections left pins: gauge %v -> %v; want no change; router counters that changed:\n%s",
			migrating, before.Value("anysched_pins"), mid.Value("anysched_pins"), mid.Diff(before))
	}

	// Legacy: a held crypto/tls connection is pinned while it lives.
	lc, err := e.DialLegacy(t, e.VIP(false), netip.Addr{})
	if err != nil {
		t.Fatalf("crypto/tls to the VIP: %v", err)
	}
	defer lc.Close()
	goNode, err := lc.Get()
	if err != nil || e.NodeByName(goNode) == nil {
		t.Fatalf("crypto/tls request: node %q, %v", goNode, err)
	}
	held := r.Metrics(t)
	if held.Value("anysched_pins") != mid.Value("anysched_pins")+1 {
		t.Errorf("a held legacy connection: pins %v -> %v; want one more", mid.Value("anysched_pins"), held.Value("anysched_pins"))
	}
	if again, err := lc.Get(); err != nil || again != goNode {
		t.Errorf("second request on the pinned connection: %q, %v; want %s", again, err, goNode)
	}
	legacy := map[string]string{"crypto/tls": goNode}
	for i, v6 := range []bool{false, true} {
		node, err := e.OpenSSL(t, e.VIP(v6))
		if err != nil {
			t.Fatal(err)
		}
		legacy[fmt.Sprintf("openssl#%d", i+1)] = node
		node, err = e.Curl(t, e.VIPURL(v6))
		if err != nil {
			t.Fatal(err)
		}
		legacy[fmt.Sprintf("curl#%d", i+1)] = node
	}
	for name, node := range legacy {
		if e.NodeByName(node) == nil {
			t.Errorf("%s served by %q, not one of the nodes", name, node)
		}
	}
	after := r.Metrics(t)
	// Each legacy ClientHello is pinned; a pin outlives a FIN (until its
	// idle timeout) but not the client's RST (openssl and curl may end
	// with one), so the gauge alone undercounts them.
	const pinned = `anysched_clienthello_pin_changes_total{change="pin"}`
	legacyPins := after.Value(pinned) - mid.Value(pinned)
	if int(legacyPins) != len(legacy) {
		t.Errorf("%d legacy connections made %v ClientHello pins; want one each; router counters that changed:\n%s",
			len(legacy), legacyPins, after.Diff(mid))
	}
	t.Logf("FIGURE migration: %d migrating connections (rendezvous v4/v6, background) -> 0 pins held (%v transient while a split ClientHello was incomplete), "+
		"each on its node's unicast address; %d legacy connections (crypto/tls, openssl s_client, curl; v4/v6) -> %v pins made (%v still held), served by %v",
		migrating, transient, len(legacy), legacyPins, after.Value("anysched_pins")-mid.Value("anysched_pins"), legacy)
}
