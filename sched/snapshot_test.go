package sched

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

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
	if snap.Node(NoNode) != nil || snap.Node(0).Name != "a1" {
		t.Fatal("Node lookup")
	}
	// IPv6 flows: LookupNew agrees with a Decider's SYN decision.
	d := NewDecider(DeciderConfigFrom(cfg))
	var k parser.FlowKey
	k.SetIPv6(netip.MustParseAddr("2001:db8::7").AsSlice(), netip.MustParseAddr("fd00:200::1").AsSlice())
	k.SrcPort, k.DstPort, k.Proto = 40000, 443, 6
	dec := d.Decide(snap, &k, true, Now())
	if dec.Node != snap.LookupNew(&k) || dec.Via != ViaTable || dec.Hash != snap.Hash(&k) || dec.Slot != snap.SlotOf(dec.Hash) {
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
	d := NewDecider(DeciderConfig{})
	k := keyN(3)
	if dec := d.Decide(snap, &k, true, now); dec.Node != NoNode || dec.Via != ViaNone {
		t.Fatalf("decision on an empty table: %+v", dec)
	}
	for _, v := range []Via{ViaNone, ViaTable, ViaPin, ViaTransitionOld, ViaTransitionNew, Via(99)} {
		if v.String() == "" {
			t.Fatal("empty Via name")
		}
	}
	if PolicyBestPool.String() != "best-pool" || PolicyWeighted.String() != "weighted" || Policy(9).String() == "" {
		t.Fatal("policy names")
	}
}

// A table big enough to be mapped on huge pages works like a small one
// and is released with its owner.
func TestLargeFlowTable(t *testing.T) {
	ft := newFlowTable(1<<18, 10)
	if ft.capacity() != 1<<18 {
		t.Fatalf("capacity %d", ft.capacity())
	}
	for i := range 50000 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), uint16(i), 1000, 0)
	}
	for i := range 50000 {
		k := keyN(i)
		if n, ok := ft.lookup(&k, HashFlow(refKey(), &k), 1); ok && n != uint16(i) {
			t.Fatalf("key %d maps to %d", i, n)
		}
	}
	if got := ft.count + int(ft.evictions.Load()); got != 50000 {
		t.Fatalf("count %d + evictions %d", ft.count, ft.evictions.Load())
	}
	ft = nil
	runtime.GC()
}
