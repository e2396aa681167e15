package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/internal/cli"
	"github.com/anysched/anysched/internal/daemon"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
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

func parseRunFlags(args []string, stdout, stderr io.Writer) (*runOptions, error) {
	fs := cli.NewFlagSet("run", args, stdout, stderr, runHelp...)
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
	fs.StringVar(&o.pcapIn, "pcap-in", "", "forward this capture (pcap or pcapng; link types Ethernet, Linux cooked SLL/SLL2 as from tcpdump -i any, and raw IP, all forwarded as Ethernet) offline instead of an interface; frames the XDP program would pass to the kernel are reported as to-kernel with its reason, never forwarded; every decision is logged; a file that is not a readable capture exits 2")
	fs.StringVar(&o.pcapOut, "pcap-out", "", "with --pcap-in: write the frames the router would send to this pcap file (Ethernet, nanosecond timestamps); it must not be the --pcap-in file")
	fs.BoolVar(&o.explain, "explain", false, "print one line per frame saying what was decided and why (always on with --pcap-in unless --log-level is above info)")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error (debug also explains every frame)")
	fs.IntVar(&o.pollMs, "poll-ms", fastpath.DefaultPollMs, "how long a worker waits for frames before it checks for shutdown (milliseconds)")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	bad := func(format string, a ...any) (*runOptions, error) {
		return nil, &cli.UsageError{Msg: fmt.Sprintf(format, a...)}
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
			return &cli.UsageError{Msg: fmt.Sprintf("--%s %d: want a power of two in %d..%d", name, v, lo, hi)}
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
		return runPcap(ctx, o, cfg, log, stdout, stderr)
	}
	return runDaemon(ctx, o, cfg, log, stdout)
}

// explainer returns a fastpath.Config.Explain function that prints one
// line per frame. number, when set, numbers the frames (offline: the
// frame's place in the capture, counting those passed to the kernel);
// otherwise the worker's count is used.
func explainer(w io.Writer, stamp func() time.Time, number func() uint64) func(*fastpath.Explanation) {
	return func(e *fastpath.Explanation) {
		var b strings.Builder
		if stamp != nil {
			b.WriteString(stamp().UTC().Format("15:04:05.000000 "))
		}
		n := e.Frame
		if number != nil {
			n = number()
		}
		fmt.Fprintf(&b, "frame %d ", n)
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

// passExplainer prints one line for a frame the XDP program would pass to
// the kernel: it never reaches the fast path, so it is neither forwarded
// nor dropped by the router.
func passExplainer(w io.Writer, stamp func() time.Time, number func() uint64) func([]byte, classify.Verdict) {
	return func(_ []byte, v classify.Verdict) {
		var b strings.Builder
		if stamp != nil {
			b.WriteString(stamp().UTC().Format("15:04:05.000000 "))
		}
		fmt.Fprintf(&b, "frame %d to-kernel xdp=%s", number(), v)
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

// runPcap forwards a capture offline through the router's wiring. A bad
// input file (missing, a directory, not a capture, corrupt anywhere in it)
// exits 2 like a bad flag, as inspect does: the operator named the wrong
// thing, nothing failed at run time. --pcap-out naming the input (by path,
// symlink or hard link) is refused before anything is created, so the
// input is never truncated.
func runPcap(ctx context.Context, o *runOptions, cfg *sched.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	in, err := os.Open(o.pcapIn)
	if err != nil {
		fmt.Fprintf(stderr, "anysched run: --pcap-in: %v\n", err)
		return exitUsage
	}
	defer in.Close()
	inStat, err := in.Stat()
	if err != nil {
		fmt.Fprintf(stderr, "anysched run: --pcap-in: %v\n", err)
		return exitUsage
	}
	if inStat.IsDir() {
		fmt.Fprintf(stderr, "anysched run: --pcap-in %s is a directory\n", o.pcapIn)
		return exitUsage
	}
	var out *os.File
	if o.pcapOut != "" {
		if outStat, err := os.Stat(o.pcapOut); err == nil && os.SameFile(inStat, outStat) {
			fmt.Fprintf(stderr, "anysched run: --pcap-out %s is the same file as --pcap-in %s: writing it would destroy the capture being read\n", o.pcapOut, o.pcapIn)
			return exitUsage
		}
		if out, err = os.Create(o.pcapOut); err != nil {
			fmt.Fprintf(stderr, "anysched run: --pcap-out: %v\n", err)
			return exitUsage
		}
	}
	var outW io.Writer
	if out != nil {
		outW = out
	}
	// Two frame slots: RunCapture sends frames one at a time.
	capRing, err := offline.NewPcapRing(in, inStat.Size(), outW, 2, 1<<16)
	if err != nil {
		if out != nil {
			out.Close()
		}
		fmt.Fprintf(stderr, "anysched run: --pcap-in %s: %v (want pcap or pcapng; Ethernet, Linux SLL/SLL2 or raw IP)\n", o.pcapIn, err)
		return exitUsage
	}
	rc := routerConfig(o, cfg, log)
	if o.explain || o.logLevel <= slog.LevelInfo {
		number := func() uint64 { return capRing.Read }
		rc.Explain = explainer(stdout, capRing.Now, number)
		rc.ExplainPass = passExplainer(stdout, capRing.Now, number)
	}
	err = daemon.RunCapture(ctx, rc, capRing)
	if out != nil {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing capture: %w", cerr)
		}
	}
	if errors.Is(err, offline.ErrBadCapture) {
		fmt.Fprintf(stderr, "anysched run: --pcap-in %s: %v\n", o.pcapIn, err)
		return exitUsage
	}
	return exitCode(log, err)
}

// runDaemon serves an interface until SIGINT/SIGTERM.
func runDaemon(ctx context.Context, o *runOptions, cfg *sched.Config, log *slog.Logger, stdout io.Writer) int {
	rc := routerConfig(o, cfg, log)
	if o.explain || o.logLevel <= slog.LevelDebug {
		rc.Explain = explainer(stdout, time.Now, nil)
	}
	return exitCode(log, daemon.Run(ctx, rc))
}

func routerConfig(o *runOptions, cfg *sched.Config, log *slog.Logger) daemon.Config {
	return daemon.Config{
		ConfigPath: o.config, Sched: cfg, Log: log,
		Interface: o.iface, Queues: o.queues, XDPMode: o.xdpMode,
		Ring: afxdp.RingOptions{
			NumFrames: o.frames, FrameSize: o.frameSize,
			FillRingSize: o.fillRing, CompletionRingSize: o.compRing, RxRingSize: o.rxRing, TxRingSize: o.txRing,
			Copy: o.zerocopy == "off",
		},
		RequireZeroCopy: o.zerocopy == "on",
		Reflect:         o.mode == "reflect",
		Batch:           o.batch, PollMs: o.pollMs, CPUs: o.cpus,
		MetricsAddr: o.metricsAddr,
	}
}

// exitCode logs a router failure and maps it to the exit code: 2 for a
// usage or configuration problem, 1 for anything else.
func exitCode(log *slog.Logger, err error) int {
	if err == nil {
		return exitOK
	}
	log.Error("anysched run", "err", err)
	if _, ok := errors.AsType[*daemon.UsageError](err); ok {
		return exitUsage
	}
	return exitFailure
}

var runHelp = []string{
	"usage: anysched run --config FILE --iface IF [flags]",
	"       anysched run --config FILE --pcap-in IN [--pcap-out OUT] [flags]",
	"",
	"Runs the ingress router: an XDP program steers TCP to the configured VIPs into one",
	"AF_XDP socket per RX queue; a worker per queue parses, schedules and forwards each",
	"frame to its node's MAC (direct server return). SIGHUP reloads the config; SIGINT",
	"and SIGTERM stop cleanly and detach the program.",
}
