// Package daemon wires the anysched daemon together: the scheduler (the
// control plane), one fast-path worker per queue, the MAC book and its
// neighbour-table feed, config reload, the Prometheus collectors and the
// metrics server. Run serves a network interface through afxdp;
// RunCapture drives the same wiring over a capture file (anysched run
// --pcap-in). cmd/anysched only turns flags into a Config.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/ring"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

// Config is what the router runs with; cmd/anysched fills it from flags.
type Config struct {
	// ConfigPath is the router configuration file, reloaded on SIGHUP.
	ConfigPath string
	// Sched is ConfigPath as loaded at start.
	Sched *sched.Config
	Log   *slog.Logger

	// Interface, Queues (nil: all), XDPMode and Ring configure the AF_XDP
	// port of Run. RequireZeroCopy fails Run when a queue fell back to copy
	// mode.
	Interface       string
	Queues          []int
	XDPMode         afxdp.AttachMode
	Ring            afxdp.RingOptions
	RequireZeroCopy bool
	// Reflect runs the reflector (MACs swapped, no parsing) instead of the
	// workers: the I/O ceiling of a bed.
	Reflect bool

	// Batch and PollMs configure every worker (see fastpath.Config);
	// worker i is pinned to CPUs[i % len(CPUs)] when CPUs is not empty.
	Batch, PollMs int
	CPUs          []int
	// Explain, when set, is called for every frame (fastpath.Config.Explain).
	Explain func(*fastpath.Explanation)
	// ExplainPass, when set, is called by RunCapture for every frame the
	// XDP program would have passed to the kernel (such frames never
	// reach a worker, so Explain does not see them).
	ExplainPass func(frame []byte, v classify.Verdict)

	// MetricsAddr, when set, serves /metrics and /ready there.
	MetricsAddr string
}

// UsageError is a failure caused by the configuration or the arguments
// (an unknown interface, a config the scheduler refuses), not by the
// system: anysched exits 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// plane is the scheduling and forwarding state shared by Run and
// RunCapture: the scheduler, the MAC book and a worker per Ring.
type plane struct {
	s       *sched.Scheduler
	book    *fastpath.MACBook
	workers []*fastpath.Worker
}

// newPlane makes the scheduler and an empty MAC book; addWorkers then
// puts a worker on each Ring.
func newPlane(c *Config, clock func() int64, opts ...sched.Option) (*plane, error) {
	opts = append(opts, sched.WithLogger(c.Log))
	if clock != nil {
		opts = append(opts, sched.WithClock(clock))
	}
	s, err := sched.New(c.Sched, opts...)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("scheduler: %w", err)}
	}
	return &plane{s: s, book: fastpath.NewMACBook()}, nil
}

func (p *plane) addWorkers(c *Config, src fastpath.MAC, rings []ring.Ring, clock func() int64) error {
	// The tables are allocated here, all at once: a capacity that does not
	// fit is a config error naming the field, not "fatal error: out of
	// memory" a moment later.
	avail, err := memoryAvailable()
	if err != nil {
		c.Log.Warn("available memory unknown; table capacities not checked against it", "err", err)
	}
	if err := c.Sched.CheckMemory(len(rings), avail); err != nil {
		return &UsageError{fmt.Errorf("--config %s: %w", c.ConfigPath, err)}
	}
	for i, r := range rings {
		wc := fastpath.Config{
			Batch: c.Batch, SourceMAC: src, MACs: p.book, Clock: clock,
			Decider: sched.DeciderConfigFrom(c.Sched), PollMs: c.PollMs, Explain: c.Explain,
		}
		if len(c.CPUs) > 0 {
			wc.PinCPU, wc.CPU = true, c.CPUs[i%len(c.CPUs)]
		}
		w, err := fastpath.NewWorker(r, p.s, wc)
		if err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
		p.workers = append(p.workers, w)
	}
	return nil
}

// Run serves c.Interface until ctx ends (nil) or a part fails (its
// error). SIGHUP reloads c.ConfigPath: the table and the XDP program's VIP
// map follow; a config that fails to load is logged and the running one
// stays.
func Run(ctx context.Context, c Config) error {
	log := c.Log
	if _, err := net.InterfaceByName(c.Interface); err != nil {
		return &UsageError{fmt.Errorf("--iface %s: %w", c.Interface, err)}
	}
	if c.Reflect {
		return runReflect(ctx, &c)
	}
	// The port is opened after the scheduler (its VIP map starts from the
	// first snapshot), so reloads, which update the map, start after both.
	var port *afxdp.Port
	p, err := newPlane(&c, nil, sched.WithOnReload(func(cfg *sched.Config) {
		if err := port.SetVIPs(VIPPorts(cfg.VIPs)); err != nil {
			log.Error("reload: updating the XDP VIP map", "err", err)
		}
	}))
	if err != nil {
		return err
	}
	if port, err = openPort(&c, VIPPorts(p.s.Current().VIPs)); err != nil {
		return err
	}
	defer closePort(port, &c)
	rings := make([]ring.Ring, len(port.Rings))
	for i, r := range port.Rings {
		rings[i] = r
	}
	var src fastpath.MAC
	copy(src[:], port.Interface.HardwareAddr)
	if err := p.addWorkers(&c, src, rings, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopMACs, err := resolveMACs(ctx, c.Interface, p.s, p.book, log)
	if err != nil {
		return fmt.Errorf("neighbour table: %w", err)
	}
	defer stopMACs()

	reg := newRegistry(port)
	reg.MustRegister(NewCollector(p.s, p.workers...))
	var reloads reloadStats
	reg.MustRegister(reloadCollector(&reloads))
	var wg sync.WaitGroup
	errs := make(chan error, len(p.workers)+2)
	for i, w := range p.workers {
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				errs <- fmt.Errorf("worker on queue %d: %w", port.Rings[i].Queue(), err)
			}
		})
	}
	wg.Go(func() {
		if err := p.s.Run(ctx); err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("scheduler: %w", err)
		}
	})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() { p.watchReloads(ctx, c.ConfigPath, hup, log, &reloads) })
	return serve(ctx, cancel, &wg, errs, reg, &c, len(port.Rings), "forward")
}

// runReflect serves c.Interface with the reflector on every queue.
func runReflect(ctx context.Context, c *Config) error {
	port, err := openPort(c, VIPPorts(c.Sched.VIPs))
	if err != nil {
		return err
	}
	defer closePort(port, c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reg := newRegistry(port)
	stats := make([]*afxdp.ReflectStats, len(port.Rings))
	var wg sync.WaitGroup
	errs := make(chan error, len(port.Rings))
	for i, r := range port.Rings {
		stats[i] = new(afxdp.ReflectStats)
		wg.Go(func() {
			if err := afxdp.Reflect(ctx, r, stats[i]); err != nil {
				errs <- fmt.Errorf("reflector on queue %d: %w", r.Queue(), err)
			}
		})
	}
	reg.MustRegister(reflectCollector(stats))
	return serve(ctx, cancel, &wg, errs, reg, c, len(port.Rings), "reflect")
}

func openPort(c *Config, vips []netip.AddrPort) (*afxdp.Port, error) {
	port, err := afxdp.Open(afxdp.Config{
		Interface: c.Interface, Queues: c.Queues, Mode: c.XDPMode, Ring: c.Ring,
		VIPs: vips, Logger: c.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the interface %s: %w", c.Interface, err)
	}
	if c.RequireZeroCopy {
		for _, r := range port.Rings {
			if !r.ZeroCopy() {
				closePort(port, c)
				return nil, fmt.Errorf("--zerocopy on, but the driver refused it on queue %d: %w", r.Queue(), r.ZeroCopyError())
			}
		}
	}
	mode := "forward"
	if c.Reflect {
		mode = "reflect"
	}
	c.Log.Info("interface open", "iface", c.Interface, "queues", len(port.Rings), "xdp_mode", c.XDPMode, "mode", mode)
	return port, nil
}

func closePort(port *afxdp.Port, c *Config) {
	if err := port.Close(); err != nil {
		c.Log.Error("closing the interface", "err", err)
	} else {
		c.Log.Info("XDP program detached, sockets closed", "iface", c.Interface)
	}
}

func newRegistry(port *afxdp.Port) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(xdpCollector(port))
	return reg
}

// serve starts the metrics server, reports readiness and waits for ctx or
// the first error on errs; it stops everything in wg before it returns.
func serve(ctx context.Context, cancel context.CancelFunc, wg *sync.WaitGroup, errs <-chan error, reg *prometheus.Registry, c *Config, queues int, mode string) error {
	log := c.Log
	defer wg.Wait()
	defer cancel()
	if c.MetricsAddr != "" {
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener %s: %w", c.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	log.Info("ready", "iface", c.Interface, "queues", queues, "mode", mode)
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return nil
	case err := <-errs:
		log.Error("stopping after a failure", "err", err)
		return err
	}
}

// VIPPorts lists the VIPs as the XDP program's VIP map holds them.
func VIPPorts(vips []lookup.VIP) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(vips))
	for _, v := range vips {
		out = append(out, netip.AddrPortFrom(v.Addr, v.Port))
	}
	return out
}

// memoryAvailable is what the flow tables are checked against; tests
// replace it to show the check without a machine of that size.
var memoryAvailable = sched.MemoryAvailable

// OfflineSourceMAC is the source MAC of frames RunCapture writes: there is
// no interface, so a fixed locally administered address.
var OfflineSourceMAC = fastpath.MAC{0x02, 0, 0, 0, 0, 0x01}

// RunCapture forwards a capture through one worker on the capture's time,
// until the capture ends (nil) or ctx does, and logs a summary. Frames go
// through one at a time so each is decided at its own capture time (the
// worker reads its clock once per batch): pins, grace periods and
// reassembly timeouts behave as they would have when the capture was
// taken. Frames go through the XDP program's rule first (package
// classify, for the config's VIPs): what the live program passes to the
// kernel is counted by reason apart from the worker's drops, as live.
// Nodes without a configured MAC get one derived from their ID, so their
// frames are still written. Probes and reports do not run offline.
func RunCapture(ctx context.Context, c Config, in *offline.PcapRing) error {
	log := c.Log
	start := lookup.Now()
	var first time.Time
	clock := func() int64 {
		t := in.Now()
		if t.IsZero() {
			return start // nothing read yet
		}
		if first.IsZero() {
			first = t
		}
		if t.Before(first) {
			return start // out-of-order capture: do not run time backwards past the start
		}
		return start + int64(t.Sub(first))
	}
	c.Batch = 1
	p, err := newPlane(&c, clock)
	if err != nil {
		return err
	}
	if err := p.addWorkers(&c, OfflineSourceMAC, []ring.Ring{in}, clock); err != nil {
		return err
	}
	in.Classify(classify.NewVIPs(VIPPorts(p.s.Current().VIPs)), c.ExplainPass)
	for _, n := range p.s.Current().Nodes {
		if !n.HasMAC {
			p.book.Set(n.ID, fastpath.MAC{0x02, 0xff, 0, 0, byte(n.ID >> 8), byte(n.ID)})
			log.Info("node has no MAC in the config; using a placeholder offline", "node", n.Name, "id", n.ID)
		}
	}
	w := p.workers[0]
	for ctx.Err() == nil {
		if _, err := w.Step(0); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("forwarding: %w", err)
		}
	}
	w.Finish()
	if err := in.Close(); err != nil {
		return fmt.Errorf("writing capture: %w", err)
	}
	cnt, _ := w.Counters()
	st := w.Decider().Stats()
	var passed uint64
	passedBy := make([]any, 0, 2*classify.NumVerdicts)
	for v, n := range in.Passed {
		passed += n
		if n > 0 {
			passedBy = append(passedBy, classify.Verdict(v).String(), n)
		}
	}
	log.Info("capture forwarded", "read", in.Read, "written", in.Written, "oversize", in.Oversize, "unconvertible", in.Unconvertible,
		"passed_to_kernel", passed, slog.Group("passed", passedBy...),
		"forwarded", cnt.TxPackets, "dropped", cnt.RxPackets-cnt.TxPackets,
		"clienthellos", cnt.ClientHellos, "migration_support", cnt.ClientHelloMigrationSupport,
		"pins", st.PinSize, "transitions", st.TransSize)
	return nil
}
