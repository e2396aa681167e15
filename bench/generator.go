package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// xdpMD is struct xdp_md, the context BPF_PROG_RUN takes for XDP: in
// live-frame mode data is 0, data_end the frame length, and
// ingress_ifindex the device whose ndo_xdp_xmit XDP_TX uses.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Generator is the in-kernel packet generator: the generator program
// (generatorInstructions) run with BPF_F_TEST_XDP_LIVE_FRAMES, so every
// frame is really transmitted out of the chosen interface (XDP_TX becomes
// a redirect to the ingress device). On a veth, the frames arrive at the
// peer only if the peer has NAPI (an XDP program or GRO).
type Generator struct {
	prog    *xdpProgram
	headers *ebpf.Map // per slot: the template's pristine headers
	flows   int
}

// SetHeaders stores the pristine headers of w's templates, which the
// program restores in every frame.
func (g *Generator) SetHeaders(w Workload) error {
	for _, p := range w.Parts {
		f := p.Template.Frame
		if len(f) < minGenFrame {
			return fmt.Errorf("bench: template %s: %d bytes, want at least %d", p.Template.Name, len(f), minGenFrame)
		}
		var v [headerSlot]byte
		copy(v[:], f[:minGenFrame])
		if err := g.headers.Put(uint32(f[offIPID+1]&(maxTemplates-1)), v); err != nil {
			return fmt.Errorf("bench: generator headers: %w", err)
		}
	}
	return nil
}

// GeneratorOptions shape the generator.
type GeneratorOptions struct {
	// Flows is how many distinct (source address, source port) pairs each
	// template cycles through (1..MaxFlows).
	Flows int
}

// NewGenerator loads the generator program.
func NewGenerator(opts GeneratorOptions) (*Generator, error) {
	if opts.Flows < 1 || opts.Flows > MaxFlows {
		return nil, errFlows
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"bench_gen_counters": {Name: "bench_gen_counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: maxTemplates},
			"bench_gen_headers":  {Name: "bench_gen_headers", Type: ebpf.Array, KeySize: 4, ValueSize: headerSlot, MaxEntries: maxTemplates},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"bench_gen": {Name: "bench_gen", Type: ebpf.XDP, Instructions: generatorInstructions(int32(opts.Flows)), License: "Dual MIT/GPL"},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("bench: load bench_gen: %w", err)
	}
	x := &xdpProgram{coll: coll, prog: coll.Programs["bench_gen"], m: coll.Maps["bench_gen_counters"]}
	return &Generator{prog: x, headers: coll.Maps["bench_gen_headers"], flows: opts.Flows}, nil
}

// Close unloads the program.
func (g *Generator) Close() { g.prog.Close() }

// Sent is how many frames the program has handled, over all slots and
// CPUs (frames it transmitted, unless the device refused them).
func (g *Generator) Sent() (uint64, error) {
	var total uint64
	for slot := range uint32(maxTemplates) {
		v, err := g.prog.sum(slot, 1)
		if err != nil {
			return 0, fmt.Errorf("bench: read generator counter: %w", err)
		}
		total += v[0]
	}
	return total, nil
}

// Burst is one generator run.
type Burst struct {
	Sent    uint64 // frames the program handled
	Elapsed time.Duration
}

// PPS is the offered rate.
func (b Burst) PPS() float64 {
	if b.Elapsed <= 0 {
		return 0
	}
	return float64(b.Sent) / b.Elapsed.Seconds()
}

// Run sends w's rounds out of interface ifindex for d (or until ctx ends),
// from the calling goroutine's thread pinned to cpu; call it on a thread in
// the interface's namespace (testbed.DoIn). The thread's CPU mask is
// restored before Run returns.
func (g *Generator) Run(ctx context.Context, w Workload, ifindex, cpu int, d time.Duration) (Burst, error) {
	if len(w.Parts) == 0 {
		return Burst{}, fmt.Errorf("bench: workload %q has no frames", w.Name)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, pin unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return Burst{}, fmt.Errorf("bench: CPU mask: %w", err)
	}
	pin.Set(cpu)
	if err := unix.SchedSetaffinity(0, &pin); err != nil {
		return Burst{}, fmt.Errorf("bench: pin generator to CPU %d: %w", cpu, err)
	}
	defer unix.SchedSetaffinity(0, &old)

	if err := g.SetHeaders(w); err != nil {
		return Burst{}, err
	}
	before, err := g.Sent()
	if err != nil {
		return Burst{}, err
	}
	opts := make([]ebpf.RunOptions, len(w.Parts))
	for i, p := range w.Parts {
		opts[i] = ebpf.RunOptions{
			Data:    p.Template.Frame,
			Context: xdpMD{DataEnd: uint32(len(p.Template.Frame)), IngressIfindex: uint32(ifindex)},
			Repeat:  uint32(p.Weight),
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		}
	}
	start := time.Now()
	deadline := start.Add(d)
	done := ctx.Done()
	for {
		for i := range opts {
			if _, err := g.prog.prog.Run(&opts[i]); err != nil {
				return Burst{}, fmt.Errorf("bench: generator run (%s): %w", w.Parts[i].Template.Name, err)
			}
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-done:
			return Burst{}, ctx.Err()
		default:
		}
	}
	elapsed := time.Since(start)
	after, err := g.Sent()
	if err != nil {
		return Burst{}, err
	}
	return Burst{Sent: after - before, Elapsed: elapsed}, nil
}
