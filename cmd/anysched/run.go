package main

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

func init() {
	register(subcommand{
		name:    "run",
		summary: "run the router: AF_XDP fast path, scheduler, metrics (or forward a capture offline)",
		run:     runMain,
	})
}

// runOptions are the flags of `anysched run`.
type runOptions struct {
	config      string
	iface       string
	queues      []int
	batch       int
	frames      int
	frameSize   int
	rxRing      int
	txRing      int
	fillRing    int
	compRing    int
	xdpMode     afxdp.AttachMode
	zerocopy    string
	cpus        []int
	metricsAddr string
	mode        string
	pcapIn      string
	pcapOut     string
	explain     bool
	logLevel    slog.Level
	pollMs      int
}

// usageError is a bad flag; its message names the flag.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseRunFlags(args []string, stdout, stderr io.Writer) (*runOptions, error) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	usageOut := stderr
	for _, a := range args {
		if a == "-h" || a == "--help" {
			usageOut = stdout // asked for: not an error
		}
	}
	var (
		o                         runOptions
		queues, cpus, mode, level string
		xdpMode                   string
	)
	fs.StringVar(&o.config, "config", "", "router configuration file (YAML: VIPs, pools, nodes, table); required")
	fs.StringVar(&o.iface, "iface", "", "network interface to serve with AF_XDP (required unless --pcap-in)")
	fs.StringVar(&queues, "queues", "", "RX queues to serve, e.g. \"0-3\" or \"0,2\" (default: all queues of the interface); one worker per queue")
	fs.IntVar(&o.batch, "batch", fastpath.DefaultBatch, fmt.Sprintf("frames received and processed per batch (1..%d); offline (--pcap-in) frames go one at a time, each on its capture time", fastpath.MaxBatch))
	fs.IntVar(&o.frames, "umem-frames", afxdp.DefaultNumFrames, "UMEM frames per queue (64..1048576)")
	fs.IntVar(&o.frameSize, "frame-size", afxdp.DefaultFrameSize, "UMEM frame size in bytes, a power of two from 2048 to the page size")
	fs.IntVar(&o.rxRing, "rx-ring", afxdp.DefaultRingSize, "AF_XDP RX ring entries (power of two, 64..65536)")
	fs.IntVar(&o.txRing, "tx-ring", afxdp.DefaultRingSize, "AF_XDP TX ring entries (power of two, 64..65536)")
	fs.IntVar(&o.fillRing, "fill-ring", afxdp.DefaultRingSize, "AF_XDP fill ring entries (power of two, 64..65536)")
	fs.IntVar(&o.compRing, "completion-ring", afxdp.DefaultRingSize, "AF_XDP completion ring entries (power of two, 64..65536)")
	fs.StringVar(&xdpMode, "xdp-mode", "native", "where the XDP program runs: native (in the driver) or generic (any driver, slow)")
	fs.StringVar(&o.zerocopy, "zerocopy", "auto", "AF_XDP zero-copy: auto (try it, fall back to copy mode with one log line), on (fail without it), off (copy mode)")
	fs.StringVar(&cpus, "cpus", "", "CPUs to pin the queue workers to, e.g. \"2-5\" (worker i gets the i-th CPU, round robin); default: no pinning")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9300); empty: no metrics server")
	fs.StringVar(&mode, "mode", "forward", "forward: schedule and forward VIP traffic; reflect: send every redirected frame back with MACs swapped and no parsing (the I/O ceiling of the bed)")
	fs.StringVar(&o.pcapIn, "pcap-in", "", "forward this capture (pcap or pcapng; link types Ethernet, Linux cooked SLL/SLL2 as from tcpdump -i any, and raw IP, all forwarded as Ethernet) offline instead of an interface; every decision is logged")
	fs.StringVar(&o.pcapOut, "pcap-out", "", "with --pcap-in: write the frames the router would send to this pcap file (Ethernet, nanosecond timestamps)")
	fs.BoolVar(&o.explain, "explain", false, "print one line per frame saying what was decided and why (always on with --pcap-in unless --log-level is above info)")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error (debug also explains every frame)")
	fs.IntVar(&o.pollMs, "poll-ms", fastpath.DefaultPollMs, "how long a worker waits for frames before it checks for shutdown (milliseconds)")
	fs.Usage = func() {
		fmt.Fprintln(usageOut, "usage: anysched run --config FILE --iface IF [flags]")
		fmt.Fprintln(usageOut, "       anysched run --config FILE --pcap-in IN [--pcap-out OUT] [flags]")
		fmt.Fprintln(usageOut)
		fmt.Fprintln(usageOut, "Runs the ingress router: an XDP program steers TCP to the configured VIPs into one")
		fmt.Fprintln(usageOut, "AF_XDP socket per RX queue; a worker per queue parses, schedules and forwards each")
		fmt.Fprintln(usageOut, "frame to its node's MAC (direct server return). SIGHUP reloads the config; SIGINT")
		fmt.Fprintln(usageOut, "and SIGTERM stop cleanly and detach the program.")
		fmt.Fprintln(usageOut)
		fmt.Fprintln(usageOut, "flags:")
		fmt.Fprint(usageOut, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	bad := func(format string, a ...any) (*runOptions, error) {
		return nil, &usageError{fmt.Sprintf(format, a...)}
	}
	var err error
	if o.config == "" {
		return bad("--config is required")
	}
	if o.pcapOut != "" && o.pcapIn == "" {
		return bad("--pcap-out needs --pcap-in")
	}
	if o.pcapIn == "" && o.iface == "" {
		return bad("--iface is required (or --pcap-in to forward a capture offline)")
	}
	if o.pcapIn != "" && o.iface != "" {
		return bad("--pcap-in and --iface exclude each other")
	}
	if o.queues, err = parseIntList(queues, 0, 1<<16); err != nil {
		return bad("--queues %q: %v", queues, err)
	}
	if o.cpus, err = parseIntList(cpus, 0, 1<<16); err != nil {
		return bad("--cpus %q: %v", cpus, err)
	}
	if o.batch < 1 || o.batch > fastpath.MaxBatch {
		return bad("--batch %d: want 1..%d", o.batch, fastpath.MaxBatch)
	}
	if o.pollMs < 1 || o.pollMs > 10000 {
		return bad("--poll-ms %d: want 1..10000", o.pollMs)
	}
	if o.xdpMode, err = afxdp.ParseAttachMode(xdpMode); err != nil {
		return bad("--xdp-mode %q: want native or generic", xdpMode)
	}
	switch o.zerocopy {
	case "auto", "on", "off":
	default:
		return bad("--zerocopy %q: want auto, on or off", o.zerocopy)
	}
	switch mode {
	case "forward", "reflect":
		o.mode = mode
	default:
		return bad("--mode %q: want forward or reflect", mode)
	}
	if o.mode == "reflect" && o.pcapIn != "" {
		return bad("--mode reflect needs --iface, not --pcap-in")
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return bad("--log-level %q: want debug, info, warn or error", level)
	}
	pow2 := func(name string, v, lo, hi int) error {
		if v < lo || v > hi || v&(v-1) != 0 {
			return &usageError{fmt.Sprintf("--%s %d: want a power of two in %d..%d", name, v, lo, hi)}
		}
		return nil
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{
		{"frame-size", o.frameSize, 2048, os.Getpagesize()},
		{"rx-ring", o.rxRing, 64, 1 << 16},
		{"tx-ring", o.txRing, 64, 1 << 16},
		{"fill-ring", o.fillRing, 64, 1 << 16},
		{"completion-ring", o.compRing, 64, 1 << 16},
	} {
		if err := pow2(c.name, c.v, c.lo, c.hi); err != nil {
			return nil, err
		}
	}
	if o.frames < 64 || o.frames > 1<<20 {
		return bad("--umem-frames %d: want 64..%d", o.frames, 1<<20)
	}
	if o.frames < 2*o.batch {
		return bad("--umem-frames %d: want at least twice --batch (%d)", o.frames, o.batch)
	}
	if o.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.metricsAddr); err != nil {
			return bad("--metrics-addr %q: want HOST:PORT", o.metricsAddr)
		}
	}
	return &o, nil
}

// parseIntList reads "0-3,6" into [0 1 2 3 6]; "" is nil.
func parseIntList(s string, lo, hi int) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		from, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", a)
		}
		to := from
		if isRange {
			if to, err = strconv.Atoi(b); err != nil {
				return nil, fmt.Errorf("%q is not a number", b)
			}
		}
		if from < lo || to > hi || from > to {
			return nil, fmt.Errorf("%q: want numbers %d..%d, low-high", part, lo, hi)
		}
		for i := from; i <= to; i++ {
			if seen[i] {
				return nil, fmt.Errorf("%d listed twice", i)
			}
			seen[i] = true
			out = append(out, i)
		}
	}
	return out, nil
}

func runMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseRunFlags(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "anysched run: %v\n", err)
		return exitUsage
	}
	cfg, err := sched.LoadConfig(o.config)
	if err != nil {
		fmt.Fprintf(stderr, "anysched run: --config %s:\n%v\n", o.config, err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	for _, w := range cfg.Warnings {
		log.Warn("config", "warning", w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.pcapIn != "" {
		return runPcap(ctx, o, cfg, log, stdout)
	}
	return runDaemon(ctx, o, cfg, log, stdout)
}

// explainer returns a fastpath.Config.Explain function that prints one
// line per frame.
func explainer(w io.Writer, stamp func() time.Time) func(*fastpath.Explanation) {
	return func(e *fastpath.Explanation) {
		var b strings.Builder
		if stamp != nil {
			b.WriteString(stamp().UTC().Format("15:04:05.000000 "))
		}
		fmt.Fprintf(&b, "frame %d ", e.Frame)
		p := e.Packet
		if e.Status != parser.StatusOK {
			fmt.Fprintf(&b, "drop parse=%s", e.Status)
			fmt.Fprintln(w, b.String())
			return
		}
		kind := "tcp"
		if p.ICMPError {
			kind = fmt.Sprintf("icmp-error type=%d code=%d mtu=%d quoting", p.ICMPType, p.ICMPCode, p.ICMPMTU)
		}
		fmt.Fprintf(&b, "%s %s flags=%s len=%d ", kind, p.Flow.String(), tcpFlags(p.TCPFlags), len(p.Payload))
		if !e.Forwarded {
			fmt.Fprintf(&b, "drop reason=%s", e.Drop)
			fmt.Fprintln(w, b.String())
			return
		}
		fmt.Fprintf(&b, "-> %s (pool %s) route=%s via=%s", e.Node.Name, e.Node.Pool, e.Route, e.Via)
		if e.Hello != parser.VerdictNotHello {
			fmt.Fprintf(&b, " clienthello=%s", e.Hello)
			if h := e.HelloInfo; h != nil && e.Hello == parser.VerdictComplete {
				fmt.Fprintf(&b, " migration_support=%v migration_token=%v sni=%q", h.MigrationSupport, h.MigrationToken, h.SNI)
			}
		}
		if e.Pinned {
			b.WriteString(" pinned")
		}
		if e.Unpinned {
			b.WriteString(" unpinned")
		}
		fmt.Fprintln(w, b.String())
	}
}

func tcpFlags(f uint8) string {
	const names = "FSRPAUEC"
	var b []byte
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			b = append(b, names[i])
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// runPcap forwards a capture offline through one worker, on capture time.
func runPcap(ctx context.Context, o *runOptions, cfg *sched.Config, log *slog.Logger, stdout io.Writer) int {
	in, err := os.Open(o.pcapIn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "anysched run: --pcap-in: %v\n", err)
		return exitUsage
	}
	defer in.Close()
	inStat, err := in.Stat()
	if err != nil {
		fmt.Fprintf(os.Stderr, "anysched run: --pcap-in: %v\n", err)
		return exitUsage
	}
	if inStat.IsDir() {
		fmt.Fprintf(os.Stderr, "anysched run: --pcap-in %s is a directory\n", o.pcapIn)
		return exitUsage
	}
	var out *os.File
	if o.pcapOut != "" {
		if out, err = os.Create(o.pcapOut); err != nil {
			fmt.Fprintf(os.Stderr, "anysched run: --pcap-out: %v\n", err)
			return exitUsage
		}
	}
	var outW io.Writer
	if out != nil {
		outW = out
	}
	// Offline, frames go through one at a time so each is decided at its
	// own capture time (the worker reads its clock once per batch).
	ring, err := fastpath.NewPcapRing(in, inStat.Size(), outW, 2, 1<<16)
	if err != nil {
		log.Error("reading capture (pcap or pcapng; Ethernet, Linux SLL/SLL2 or raw IP)", "file", o.pcapIn, "err", err)
		return exitFailure
	}
	// The clock follows the capture: pins, grace periods and reassembly
	// timeouts behave as they would have when the capture was taken.
	start := lookup.Now()
	var first time.Time
	clock := func() int64 {
		t := ring.Now()
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
	s, err := sched.New(cfg, sched.WithClock(clock), sched.WithLogger(func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }))
	if err != nil {
		log.Error("scheduler", "err", err)
		return exitUsage
	}
	book := fastpath.NewMACBook()
	wcfg := fastpath.Config{
		Batch:   1,
		MACs:    book,
		Decider: sched.DeciderConfigFrom(cfg),
		Clock:   clock,
	}
	// Offline there is no interface: the source MAC is a fixed locally
	// administered address, and nodes without a configured MAC get one
	// derived from their ID so their frames are still written.
	wcfg.SourceMAC = fastpath.MAC{0x02, 0, 0, 0, 0, 0x01}
	for _, n := range s.Current().Nodes {
		if !n.HasMAC {
			book.Set(n.ID, fastpath.MAC{0x02, 0xff, 0, 0, byte(n.ID >> 8), byte(n.ID)})
			log.Info("node has no MAC in the config; using a placeholder offline", "node", n.Name, "id", n.ID)
		}
	}
	if o.explain || o.logLevel <= slog.LevelInfo {
		wcfg.Explain = explainer(stdout, ring.Now)
	}
	w, err := fastpath.NewWorker(ring, s, wcfg)
	if err != nil {
		log.Error("worker", "err", err)
		return exitFailure
	}
	for ctx.Err() == nil {
		if _, err := w.Step(0); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			log.Error("forwarding", "err", err)
			return exitFailure
		}
	}
	if err := ring.Close(); err != nil {
		log.Error("writing capture", "err", err)
		return exitFailure
	}
	if out != nil {
		if err := out.Close(); err != nil {
			log.Error("writing capture", "err", err)
			return exitFailure
		}
	}
	c, _ := w.Counters()
	st := w.Decider().Stats()
	log.Info("capture forwarded", "read", ring.Read, "written", ring.Written, "oversize", ring.Oversize, "unconvertible", ring.Unconvertible,
		"forwarded", c.TxPackets, "dropped", c.RxPackets-c.TxPackets,
		"clienthellos", c.ClientHellos, "migration_support", c.ClientHelloMigrationSupport,
		"pins", st.PinSize, "transitions", st.TransSize)
	return exitOK
}

// runDaemon serves an interface until SIGINT/SIGTERM.
func runDaemon(ctx context.Context, o *runOptions, cfg *sched.Config, log *slog.Logger, stdout io.Writer) int {
	if _, err := net.InterfaceByName(o.iface); err != nil {
		log.Error("bad --iface", "iface", o.iface, "err", err)
		return exitUsage
	}
	s, err := sched.New(cfg, sched.WithLogger(func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }))
	if err != nil {
		log.Error("scheduler", "err", err)
		return exitUsage
	}
	ropts := afxdp.RingOptions{
		NumFrames: o.frames, FrameSize: o.frameSize,
		FillRingSize: o.fillRing, CompletionRingSize: o.compRing, RxRingSize: o.rxRing, TxRingSize: o.txRing,
		Copy: o.zerocopy == "off",
	}
	port, err := afxdp.Open(afxdp.Config{
		Interface: o.iface, Queues: o.queues, Mode: o.xdpMode, Ring: ropts,
		VIPs: vipPorts(s.Current()), Logger: log,
	})
	if err != nil {
		log.Error("opening the interface", "iface", o.iface, "err", err)
		return exitFailure
	}
	defer func() {
		if err := port.Close(); err != nil {
			log.Error("closing the interface", "err", err)
		} else {
			log.Info("XDP program detached, sockets closed", "iface", o.iface)
		}
	}()
	if o.zerocopy == "on" {
		for _, r := range port.Rings {
			if !r.ZeroCopy() {
				log.Error("--zerocopy on, but the driver refused it", "queue", r.Queue(), "err", r.ZeroCopyError())
				return exitFailure
			}
		}
	}
	log.Info("interface open", "iface", o.iface, "queues", len(port.Rings), "xdp_mode", o.xdpMode, "mode", o.mode)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(port.Rings)+4)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(xdpCollector(port))

	if o.mode == "reflect" {
		stats := make([]*afxdp.ReflectStats, len(port.Rings))
		for i, r := range port.Rings {
			stats[i] = new(afxdp.ReflectStats)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := afxdp.Reflect(ctx, r, stats[i]); err != nil {
					errs <- fmt.Errorf("reflector on queue %d: %w", r.Queue(), err)
				}
			}()
		}
		reg.MustRegister(reflectCollector(stats))
	} else {
		book := fastpath.NewMACBook()
		stopMACs, err := resolveMACs(ctx, o.iface, s, book, log)
		if err != nil {
			log.Error("neighbour table", "err", err)
			return exitFailure
		}
		defer stopMACs()
		var src fastpath.MAC
		copy(src[:], port.Interface.HardwareAddr)
		workers := make([]*fastpath.Worker, len(port.Rings))
		for i, r := range port.Rings {
			wc := fastpath.Config{
				Batch: o.batch, SourceMAC: src, MACs: book,
				Decider: sched.DeciderConfigFrom(cfg), PollMs: o.pollMs,
			}
			if len(o.cpus) > 0 {
				wc.PinCPU, wc.CPU = true, o.cpus[i%len(o.cpus)]
			}
			if o.explain || o.logLevel <= slog.LevelDebug {
				wc.Explain = explainer(stdout, time.Now)
			}
			if workers[i], err = fastpath.NewWorker(r, s, wc); err != nil {
				log.Error("worker", "queue", r.Queue(), "err", err)
				return exitFailure
			}
		}
		for i, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.Run(ctx); err != nil {
					errs <- fmt.Errorf("worker on queue %d: %w", port.Rings[i].Queue(), err)
				}
			}()
		}
		reg.MustRegister(fastpath.NewCollector(s, workers...))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("scheduler: %w", err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			reloadOnHUP(ctx, o.config, s, port, log)
		}()
	}

	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			log.Error("metrics listener", "addr", o.metricsAddr, "err", err)
			cancel()
			wg.Wait()
			return exitFailure
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	log.Info("ready", "iface", o.iface, "queues", len(port.Rings), "mode", o.mode)

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-errs:
		log.Error("stopping after a failure", "err", err)
		code = exitFailure
	}
	cancel()
	wg.Wait()
	return code
}

func vipPorts(s *lookup.Snapshot) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(s.VIPs))
	for _, v := range s.VIPs {
		out = append(out, netip.AddrPortFrom(v.Addr, v.Port))
	}
	return out
}

// reloadOnHUP reloads the config file on SIGHUP: the scheduler switches
// to it (keeping node IDs and the transition rules) and the XDP program's
// VIP map follows. A config that fails to load is logged and ignored.
func reloadOnHUP(ctx context.Context, path string, s *sched.Scheduler, port *afxdp.Port, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := sched.LoadConfig(path)
		if err == nil {
			err = s.Reload(cfg)
		}
		if err != nil {
			log.Error("reload failed; keeping the running config", "config", path, "err", err)
			continue
		}
		if err := port.SetVIPs(vipPorts(s.Current())); err != nil {
			log.Error("reload: updating the XDP VIP map", "err", err)
			continue
		}
		log.Info("config reloaded", "config", path, "generation", s.Current().Generation, "vips", len(cfg.VIPs))
	}
}

// resolveMACs keeps book filled with the MACs of nodes that have none in
// the config, from the interface's neighbour table; unknown ones are
// solicited. It follows neighbour changes and config reloads.
func resolveMACs(ctx context.Context, iface string, s *sched.Scheduler, book *fastpath.MACBook, log *slog.Logger) (func(), error) {
	need := func() []lookup.Node {
		var out []lookup.Node
		for _, n := range s.Current().Nodes {
			if !n.HasMAC && !n.Removed {
				out = append(out, n)
			}
		}
		return out
	}
	if len(need()) == 0 {
		return func() {}, nil
	}
	var mu sync.Mutex
	apply := func(addr netip.Addr, mac [6]byte, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range need() {
			if n.Unicast != addr {
				continue
			}
			if ok {
				if old, had := book.Lookup(n.ID); !had || old != fastpath.MAC(mac) {
					log.Info("node MAC from the neighbour table", "node", n.Name, "mac", net.HardwareAddr(mac[:]).String())
				}
				book.Set(n.ID, mac)
			} else {
				book.Forget(n.ID)
				log.Warn("node MAC lost from the neighbour table", "node", n.Name)
			}
		}
	}
	watcher, err := afxdp.WatchNeighbors(iface, apply)
	if err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			for _, n := range need() {
				if mac, ok := watcher.Lookup(n.Unicast); ok {
					apply(n.Unicast, mac, true)
				} else if err := afxdp.Solicit(n.Unicast); err != nil {
					log.Debug("solicit", "node", n.Name, "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return watcher.Close, nil
}

func xdpCollector(port *afxdp.Port) prometheus.Collector {
	desc := prometheus.NewDesc("anysched_xdp_verdicts_total", "Frames by the XDP program's verdict (redirected to AF_XDP or passed to the kernel, by reason).", []string{"verdict"}, nil)
	return collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		c, err := port.Counters()
		if err != nil {
			return
		}
		for i, v := range c {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), afxdp.Counter(i).String())
		}
	}}
}

func reflectCollector(stats []*afxdp.ReflectStats) prometheus.Collector {
	desc := prometheus.NewDesc("anysched_reflected_packets_total", "Frames the reflector sent back.", nil, nil)
	return collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		var n uint64
		for _, s := range stats {
			n += s.Reflected.Load()
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n))
	}}
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
