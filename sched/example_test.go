package sched

import (
	"testing"
)

func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("../examples/router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VIPs) != 2 || !cfg.VIPs[0].Addr.Is4() || !cfg.VIPs[1].Addr.Is6() {
		t.Fatalf("VIPs: %+v", cfg.VIPs)
	}
	if len(cfg.Pools) != 2 || len(cfg.Pools[0].Nodes) != 3 || len(cfg.Pools[1].Nodes) != 3 {
		t.Fatalf("pools: %+v", cfg.Pools)
	}
	if len(cfg.Warnings) != 0 {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Current()
	if snap.Generation != 1 || len(snap.Slots) != 65537 {
		t.Fatalf("generation %d, %d slots", snap.Generation, len(snap.Slots))
	}
	var total uint32
	for _, n := range snap.Nodes {
		t.Logf("%s %s weight %d slots %d", n.Pool, n.Name, n.Weight, n.Slots)
		total += n.Slots
	}
	if total != 65537 {
		t.Fatalf("slots add up to %d", total)
	}
}
