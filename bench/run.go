package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// PacketConfig sizes a packet run.
type PacketConfig struct {
	// Reps is how many times the scenario sequence is repeated.
	Reps int `json:"reps"`
	// Burst is how long the generator sends per workload.
	Burst time.Duration `json:"burst_ns"`
	// Unit is the frames per template per generator call (see Workloads).
	Unit int `json:"unit"`
	// Flows is the generator's flow count per template.
	Flows int `json:"flows"`
	// Anysched is the built router binary.
	Anysched string `json:"anysched"`
	// Dir is scratch space for configs and logs.
	Dir string `json:"-"`
	// SenderCPU and RouterCPU pin the generator and the router.
	SenderCPU int `json:"sender_cpu"`
	RouterCPU int `json:"router_cpu"`
	// Only, when not empty, limits the run to these scenario names.
	Only []string `json:"only,omitempty"`
}

// Check validates the configuration; errors name the field.
func (c PacketConfig) Check() error {
	switch {
	case c.Reps < 1 || c.Reps > 1000:
		return fmt.Errorf("reps %d: want 1..1000", c.Reps)
	case c.Burst < time.Millisecond || c.Burst > 10*time.Minute:
		return fmt.Errorf("burst %v: want 1ms..10m", c.Burst)
	case c.Unit < 1 || c.Unit > 1<<24:
		return fmt.Errorf("unit %d: want 1..2^24", c.Unit)
	case c.Flows < 1 || c.Flows > MaxFlows:
		return fmt.Errorf("flows %d: want 1..2^30", c.Flows)
	case c.Anysched == "":
		return errors.New("anysched: the router binary is required")
	case c.SenderCPU < 0 || c.RouterCPU < 0 || c.SenderCPU >= runtime.NumCPU() || c.RouterCPU >= runtime.NumCPU():
		return fmt.Errorf("cpus %d,%d: want CPUs below %d", c.SenderCPU, c.RouterCPU, runtime.NumCPU())
	case c.SenderCPU == c.RouterCPU:
		return fmt.Errorf("cpus %d,%d: the sender and the router need different CPUs", c.SenderCPU, c.RouterCPU)
	}
	known := map[string]bool{}
	for _, s := range PacketScenarios() {
		known[s.Name()] = true
	}
	for _, n := range c.Only {
		if !known[n] {
			return fmt.Errorf("scenarios: %q is not one of %s", n, strings.Join(ScenarioNames(), ", "))
		}
	}
	if _, err := os.Stat(c.Anysched); err != nil {
		return fmt.Errorf("anysched: %w", err)
	}
	return nil
}

// ScenarioNames lists the packet scenarios in run order.
func ScenarioNames() []string {
	var out []string
	for _, s := range PacketScenarios() {
		out = append(out, s.Name())
	}
	return out
}

// PacketRun is the outcome of RunPackets.
type PacketRun struct {
	Scenarios []ScenarioInfo `json:"scenarios"`
	Workloads []WorkloadInfo `json:"workloads"`
	Samples   []Sample       `json:"samples"`
}

// ScenarioInfo describes a scenario in the results.
type ScenarioInfo struct {
	Name  string `json:"name"`
	About string `json:"about"`
}

// WorkloadInfo says exactly what one round of a workload sends.
type WorkloadInfo struct {
	Name  string         `json:"name"`
	Parts map[string]int `json:"frames_per_round"`
	// MeanBytes is the mean frame size (without FCS).
	MeanBytes float64 `json:"mean_frame_bytes"`
}

// RunPackets builds a bed and runs every packet scenario on it, interleaved
// (rep 1: S1 S2 … Sn, rep 2: S1 …), each with every workload. progress
// gets one line per burst.
func RunPackets(ctx context.Context, cfg PacketConfig, progress func(string)) (*PacketRun, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	var scenarios []Scenario
	for _, s := range PacketScenarios() {
		if len(cfg.Only) == 0 || contains(cfg.Only, s.Name()) {
			scenarios = append(scenarios, s)
		}
	}
	bed, err := NewBed(cfg.SenderCPU, cfg.RouterCPU)
	if err != nil {
		return nil, err
	}
	defer bed.Close()
	gen, err := NewGenerator(GeneratorOptions{Flows: cfg.Flows})
	if err != nil {
		return nil, err
	}
	defer gen.Close()
	tb := bed.TB
	// The source MAC is node1's: the reflector sends every frame back to
	// it, so the reflector is counted at the nodes like the rest.
	addrs := Addresses{SrcMAC: tb.Nodes[0].MAC, DstMAC: tb.Router.MAC,
		Src: clientBase, Dst: tb.VIP4, DstPort: 443}
	workloads, err := Workloads(addrs, cfg.Unit)
	if err != nil {
		return nil, err
	}
	run := &PacketRun{}
	for _, s := range scenarios {
		run.Scenarios = append(run.Scenarios, ScenarioInfo{Name: s.Name(), About: s.About()})
	}
	for _, w := range workloads {
		info := WorkloadInfo{Name: w.Name, Parts: map[string]int{}}
		var bytes int
		for _, p := range w.Parts {
			info.Parts[p.Template.Name] += p.Weight
			bytes += p.Weight * len(p.Template.Frame)
		}
		info.MeanBytes = float64(bytes) / float64(w.Frames())
		run.Workloads = append(run.Workloads, info)
	}
	env := &Env{Bed: bed, Anysched: cfg.Anysched, Dir: cfg.Dir, Flows: cfg.Flows}
	total := cfg.Reps * len(scenarios) * len(workloads)
	done := 0
	for rep := 1; rep <= cfg.Reps; rep++ {
		for _, s := range scenarios {
			if err := ctx.Err(); err != nil {
				return run, err
			}
			if err := s.Start(env); err != nil {
				return run, fmt.Errorf("%s: %w", s.Name(), err)
			}
			if err := bed.CheckPinning(); err != nil {
				s.Stop(env)
				return run, fmt.Errorf("%s: %w", s.Name(), err)
			}
			for _, w := range workloads {
				sample, err := Measure(ctx, env, gen, s, w, cfg.Burst)
				if err != nil {
					s.Stop(env)
					return run, fmt.Errorf("%s/%s: %w", s.Name(), w.Name, err)
				}
				sample.Rep = rep
				run.Samples = append(run.Samples, sample)
				done++
				progress(fmt.Sprintf("[%3d/%d] rep %d %-9s %-5s %8.0f pps delivered, %8.0f offered, loss %5.1f%%",
					done, total, rep, s.Name(), w.Name, sample.PPS, sample.OfferedPPS, 100*sample.Loss()))
			}
			if err := s.Stop(env); err != nil {
				return run, fmt.Errorf("%s: %w", s.Name(), err)
			}
		}
	}
	return run, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
