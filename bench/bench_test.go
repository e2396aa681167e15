package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// needTools fails the test when a program the scenarios run is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("bench scenarios need %s: %v", n, err)
		}
	}
}

func buildAnysched(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anysched")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/anysched")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/anysched: %v\n%s", err, out)
	}
	return bin
}

// TestEveryScenarioTiny runs every packet scenario once, at a tiny size,
// on a real bed, checks where the frames went, and renders the report and
// plots from the result: what `make bench` does, so it cannot rot.
func TestEveryScenarioTiny(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "bridge", "nft", "conntrack", "taskset", "go")
	if runtime.NumCPU() < 2 {
		t.Fatal("the bench pins the generator and the router to two different CPUs: needs 2 CPUs")
	}
	cfg := PacketConfig{Reps: 1, Burst: 20 * time.Millisecond, Unit: 64, Flows: 256,
		Anysched: buildAnysched(t), Dir: t.TempDir(), SenderCPU: 0, RouterCPU: 1}
	var lines []string
	run, err := RunPackets(context.Background(), cfg, func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	names := ScenarioNames()
	if len(lines) != len(names)*len(run.Workloads) || len(run.Samples) != len(lines) {
		t.Fatalf("%d progress lines, %d samples for %d scenarios × %d workloads", len(lines), len(run.Samples), len(names), len(run.Workloads))
	}
	for _, s := range run.Samples {
		id := s.Scenario + "/" + s.Workload
		// RouterRX also counts the bed's own frames (ARP, IPv6 ND).
		if s.Delivered == 0 || s.Delivered > s.Offered || s.RouterRX == 0 || s.PPS <= 0 {
			t.Errorf("%s: offered %d, at router %d, delivered %d", id, s.Offered, s.RouterRX, s.Delivered)
		}
		n1, n2 := s.PerNode[0], s.PerNode[1]
		switch s.Scenario {
		case NameCeiling:
			if n1+n2 != 0 {
				t.Errorf("%s: the nodes counted %d, %d: the ceiling's frames must stop at the router", id, n1, n2)
			}
		case NameReflector, NameLinuxFwd:
			// Reflected to the source MAC (node1's); routed via node1.
			if n1 != s.Delivered || n2 != 0 {
				t.Errorf("%s: node1 %d node2 %d, want all %d at node1", id, n1, n2, s.Delivered)
			}
		case NameAnysched, NameNftDNAT:
			// 256 flows per template over two nodes: both get some.
			if n1 == 0 || n2 == 0 || n1+n2 != s.Delivered {
				t.Errorf("%s: node1 %d node2 %d of %d: want both nodes used", id, n1, n2, s.Delivered)
			}
		}
		switch s.Scenario {
		case NameAnysched:
			if s.Extra["router_received"] == 0 || s.Extra["router_transmitted"] < float64(s.Delivered) {
				t.Errorf("%s: router metrics %v", id, s.Extra)
			}
		case NameNftDNAT:
			if s.Extra["conntrack_entries"] == 0 {
				t.Errorf("%s: no conntrack entries: %v", id, s.Extra)
			}
		}
	}

	res := &Results{Date: time.Now(), Machine: ReadMachine(), Packet: cfg, Packets: run}
	res.Micro = ParseMicro([]byte(sampleBenchOutput))
	dir := t.TempDir()
	plotDir := filepath.Join(dir, "plots")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plots, err := res.WritePlots(plotDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 2 {
		t.Fatalf("plots %v", plots)
	}
	for _, p := range plots {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("%s: not an SVG (%v)", p, err)
		}
	}
	report := res.Report("x.json", plots)
	for _, want := range append(names, "÷ reflector", "Pipeline/mix", "plots/pps.svg", "plots/nspkt.svg", "Load average") {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if err := res.WriteJSON(filepath.Join(dir, "x.json")); err != nil {
		t.Fatal(err)
	}
}

func buildCommand(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	return bin
}

// TestConnScenariosTiny runs every connection scenario once and the state
// sweep at every share, at a tiny size, with real TLS through each front
// end, checks what the clients and the front ends report, and renders the
// report and the state plot from the result.
func TestConnScenariosTiny(t *testing.T) {
	needRoot(t)
	needTools(t, "ip", "nft", "conntrack", "taskset", "haproxy", "go")
	if runtime.NumCPU() < 2 {
		t.Fatal("the bench pins the front ends and the client to two different CPUs: needs 2 CPUs")
	}
	const hold = 12
	cfg := ConnConfig{Reps: 1, Duration: 300 * time.Millisecond, Concurrency: 2, Hold: hold, HoldRate: 40,
		Shares: []int{0, 50, 90, 100}, Anysched: buildAnysched(t), Anynode: buildCommand(t, "anynode"),
		Anyclient: buildCommand(t, "anyclient"), Dir: t.TempDir(), ClientCPU: 0, RouterCPU: 1}
	var lines []string
	run, err := RunConns(context.Background(), cfg, func(s string) { t.Log(s); lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if want := len(ConnScenarios()) + len(StateFronts())*len(cfg.Shares); len(lines) != want {
		t.Fatalf("%d progress lines, want %d:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
	if len(run.Samples) != len(ConnScenarios()) {
		t.Fatalf("%d connections/s samples", len(run.Samples))
	}
	for _, s := range run.Samples {
		c := s.Client
		if c.Done == 0 || c.Broken != 0 || s.CPS <= 0 || c.TTFBp50ms <= 0 || c.TTFBp99ms < c.TTFBp50ms {
			t.Errorf("%s: %+v", s.Scenario, c)
		}
		if s.Scenario == NameAnyschedMig && c.Migrated != c.Done {
			t.Errorf("%s: %d of %d migrated", s.Scenario, c.Migrated, c.Done)
		}
		if s.Scenario != NameAnyschedMig && c.Migrated != 0 {
			t.Errorf("%s: %d legacy connections migrated", s.Scenario, c.Migrated)
		}
	}
	if len(run.States) != len(StateFronts())*len(cfg.Shares) {
		t.Fatalf("%d state samples", len(run.States))
	}
	for _, s := range run.States {
		id := fmt.Sprintf("%s/%d%%", s.Front, s.Share)
		if s.Live < hold || s.Broken != 0 || s.Migrating+s.Legacy != hold || len(s.Curve) == 0 {
			t.Errorf("%s: %d live of %d, %d broken %v, %d curve points", id, s.Live, hold, s.Broken, s.Failures, len(s.Curve))
		}
		if s.OnVIP < s.Legacy || s.OnNodes < s.Migrating {
			t.Errorf("%s: %d on the VIP, %d on nodes for %d legacy, %d migrating", id, s.OnVIP, s.OnNodes, s.Legacy, s.Migrating)
		}
		grew := s.Plateau.Entries - s.Baseline.Entries
		switch s.Front {
		case NameAnysched:
			// A legacy connection is one pin; a migrating one none.
			if pins := s.Plateau.Detail["pins"]; pins != float64(s.Legacy) || grew != float64(s.Legacy) {
				t.Errorf("%s: %v pins (%v entries more) for %d legacy connections", id, pins, grew, s.Legacy)
			}
		case NameNftDNAT:
			if grew < float64(s.Legacy) || s.Plateau.Detail["object_size"] <= 0 {
				t.Errorf("%s: %v conntrack entries more for %d legacy connections (%v)", id, grew, s.Legacy, s.Plateau.Detail)
			}
		case NameHAProxy:
			if s.Plateau.Bytes <= 0 || s.Baseline.Bytes <= 0 {
				t.Errorf("%s: RSS %v, idle %v", id, s.Plateau.Bytes, s.Baseline.Bytes)
			}
		}
	}

	res := &Results{Date: time.Now(), Machine: ReadMachine(), Conn: cfg, Conns: run}
	dir := t.TempDir()
	plotDir := filepath.Join(dir, "plots")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plots, err := res.WritePlots(plotDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 2 || plots[0] != "plots/state.svg" || plots[1] != "plots/state-haproxy.svg" {
		t.Fatalf("plots %v", plots)
	}
	for _, p := range plots {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("%s: not an SVG (%v)", p, err)
		}
	}
	report := res.Report("x.json", plots)
	for _, want := range []string{NameAnyschedMig, NameAnyschedLegacy, NameNftDNAT, NameHAProxy, "÷ haproxy conn/s",
		"per migrating connection", "per legacy connection", "plots/state.svg", "plots/state-haproxy.svg", "object size"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if err := res.WriteJSON(filepath.Join(dir, "x.json")); err != nil {
		t.Fatal(err)
	}
}
