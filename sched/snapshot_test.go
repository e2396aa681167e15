package sched

import (
	"net/netip"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
)

func TestSnapshotHelpers(t *testing.T) {
	cfg, err := LoadConfig("../examples/router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Current()
	if snap.M() != 65537 || s.Builds() != 1 {
		t.Fatalf("M %d builds %d", snap.M(), s.Builds())
	}
	if v, ok := snap.VIPFor(netip.MustParseAddr("fd00:200::1"), 443); !ok || !v.TLS {
		t.Fatalf("VIPFor v6: %+v %v", v, ok)
	}
	if _, ok := snap.VIPFor(netip.MustParseAddr("10.200.0.1"), 80); ok {
		t.Fatal("VIPFor matched the wrong port")
	}
	if snap.Node(lookup.NoNode) != nil || snap.Node(0).Name != "a1" {
		t.Fatal("Node lookup")
	}
	// IPv6 flows: LookupNew agrees with a Decider's SYN decision.
	d := lookup.NewDecider(DeciderConfigFrom(cfg))
	var k parser.FlowKey
	k.SetIPv6(netip.MustParseAddr("2001:db8::7").AsSlice(), netip.MustParseAddr("fd00:200::1").AsSlice())
	k.SrcPort, k.DstPort, k.Proto = 40000, 443, 6
	dec := d.Decide(snap, &k, true, lookup.Now())
	if dec.Node != snap.LookupNew(&k) || dec.Via != lookup.ViaTable || dec.Hash != snap.Hash(&k) || dec.Slot != snap.SlotOf(dec.Hash) {
		t.Fatalf("IPv6 decision %+v", dec)
	}
	if st := d.Stats(); st.PinCapacity < uint64(cfg.Pins.Capacity) || st.TransCapacity < uint64(cfg.Transitions.Capacity) {
		t.Fatalf("capacities %+v", st)
	}
}

// With every node drained the table is empty: decisions say so.
func TestEmptyTable(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 2, 101, time.Second, &now)
	now += int64(2 * time.Second)
	reloadWith(t, s, 2, 101, time.Second, map[int]string{0: "drain: true", 1: "drain: true"})
	snap := s.Current()
	now += int64(2 * time.Second)
	d := lookup.NewDecider(lookup.DeciderConfig{})
	k := packettest.FlowKeyN(3)
	if dec := d.Decide(snap, &k, true, now); dec.Node != lookup.NoNode || dec.Via != lookup.ViaNone {
		t.Fatalf("decision on an empty table: %+v", dec)
	}
	for _, v := range []lookup.Via{lookup.ViaNone, lookup.ViaTable, lookup.ViaPin, lookup.ViaTransitionOld, lookup.ViaTransitionNew, lookup.Via(99)} {
		if v.String() == "" {
			t.Fatal("empty Via name")
		}
	}
	if PolicyBestPool.String() != "best-pool" || PolicyWeighted.String() != "weighted" || Policy(9).String() == "" {
		t.Fatal("policy names")
	}
}
