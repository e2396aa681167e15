package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/internal/capture"
	"github.com/anysched/anysched/internal/daemon"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

func init() {
	register(subcommand{
		name:    "inspect",
		summary: "read a pcap/pcapng file and show, per TCP flow, the ClientHello and whether the router would pin it",
		run:     runInspect,
	})
}

// inspectOptions are the parsed flags of `anysched inspect`.
type inspectOptions struct {
	pcap  string
	vips  []netip.Addr
	ports []uint16
	json  bool
	hello parser.HelloConfig
	// reasm and pinCapacity are zero (the fast path's defaults) except in
	// tests. (The table never changes, so no transition is ever recorded.)
	reasm       parser.ReassemblerConfig
	pinCapacity int
	// observe, when set, sees every Explanation of a counted flow after
	// inspect took it in, with a query of the worker's pin table at that
	// moment (for the differential test).
	observe func(e *fastpath.Explanation, pinned func(*parser.FlowKey) bool)
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	opts, code, ok := parseInspectFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	f, err := os.Open(opts.pcap)
	if err != nil {
		fmt.Fprintf(stderr, "anysched inspect: --pcap: %v\n", err)
		return exitUsage
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fmt.Fprintf(stderr, "anysched inspect: --pcap: %v\n", err)
		return exitUsage
	}
	if st.IsDir() {
		fmt.Fprintf(stderr, "anysched inspect: --pcap %s is a directory\n", opts.pcap)
		return exitUsage
	}
	flows, skipped, badSums, err := inspectCapture(f, st.Size(), &opts)
	if err != nil {
		fmt.Fprintf(stderr, "anysched inspect: --pcap %s: %v\n", opts.pcap, err)
		return exitUsage
	}
	w := bufio.NewWriter(stdout)
	if opts.json {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // the flow key's ">" stays readable
		for _, fl := range flows {
			if err := enc.Encode(fl.report()); err != nil {
				fmt.Fprintf(stderr, "anysched inspect: %v\n", err)
				return exitFailure
			}
		}
	} else {
		writeInspectTable(w, flows)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "anysched inspect: write: %v\n", err)
		return exitFailure
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "anysched inspect: %d frame(s) skipped: not TCP, or not parseable\n", skipped)
	}
	if badSums > 0 {
		fmt.Fprintf(stderr, "anysched inspect: %d segment(s) with a bad TCP checksum not read: the node drops them, so the router does too "+
			"(a capture taken on the sending host with checksum offload on holds unfinished checksums: capture on the wire, or turn tx-checksumming off)\n", badSums)
	}
	return exitOK
}

func parseInspectFlags(args []string, stdout, stderr io.Writer) (opts inspectOptions, code int, ok bool) {
	fs := pflag.NewFlagSet("inspect", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	pcapPath := fs.String("pcap", "", "capture file to read, pcap or pcapng (required); link types Ethernet, Linux cooked (SLL, SLL2: tcpdump -i any) and raw IP")
	vips := fs.StringArray("vip", nil, "VIP address: only TCP flows to it count (repeatable; default: every destination)")
	ports := fs.UintSlice("port", []uint{443}, "VIP TCP port: only flows to it count (repeatable or comma-separated)")
	asJSON := fs.Bool("json", false, "print one JSON object per flow and line instead of a table")
	supportID := fs.Uint16("migration-support-ext", parser.DefaultMigrationSupport, "code point of the migration_support extension")
	tokenID := fs.Uint16("migration-token-ext", parser.DefaultMigrationToken, "code point of the migration_token extension")
	// Code points read better in hex, as the draft writes them.
	fs.Lookup("migration-support-ext").DefValue = fmt.Sprintf("0x%04X", parser.DefaultMigrationSupport)
	fs.Lookup("migration-token-ext").DefValue = fmt.Sprintf("0x%04X", parser.DefaultMigrationToken)
	// pflag calls Usage itself on --help, on its output (stderr); help
	// goes to stdout, printed below, once.
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprintln(fs.Output(), "usage: anysched inspect --pcap FILE [--vip ADDR]... [--port N]... [--json]")
		fmt.Fprintln(fs.Output())
		fmt.Fprintln(fs.Output(), "Runs the capture through the router's own fast path (the worker of anysched run,")
		fmt.Fprintln(fs.Output(), "on the capture's clock) and prints, per client-to-server TCP flow in order of first")
		fmt.Fprintln(fs.Output(), "appearance, what the ClientHello carried and whether the fast path held a pin for")
		fmt.Fprintln(fs.Output(), "the flow at its end (\"legacy\": a ClientHello without migration_support, malformed,")
		fmt.Fprintln(fs.Output(), "or never completed) or stored nothing (migration_support; or no ClientHello to act on).")
		fmt.Fprintln(fs.Output(), "Every VIP is taken to be a TLS VIP (a non-TLS VIP pins all its flows at the SYN).")
		fmt.Fprintln(fs.Output())
		fmt.Fprintln(fs.Output(), "flags:")
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output())
		fmt.Fprintln(fs.Output(), "Exit codes: 0 ok, 1 write failure, 2 bad flags or a missing, corrupt or unsupported capture.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			usage()
			return opts, exitOK, false
		}
		fmt.Fprintf(stderr, "anysched inspect: %v\n", err)
		return opts, exitUsage, false
	}
	fail := func(format string, a ...any) (inspectOptions, int, bool) {
		fmt.Fprintf(stderr, "anysched inspect: "+format+"\n", a...)
		return opts, exitUsage, false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *pcapPath == "" {
		return fail("--pcap is required")
	}
	opts.pcap = *pcapPath
	for _, v := range *vips {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fail("--vip %q is not an IP address", v)
		}
		opts.vips = append(opts.vips, a.Unmap())
	}
	if len(*ports) == 0 {
		return fail("--port needs at least one port")
	}
	for _, p := range *ports {
		if p == 0 || p > 65535 {
			return fail("--port %d is out of range 1..65535", p)
		}
		opts.ports = append(opts.ports, uint16(p))
	}
	if *supportID == *tokenID {
		return fail("--migration-support-ext and --migration-token-ext are both 0x%04X", *supportID)
	}
	opts.json = *asJSON
	opts.hello = parser.HelloConfig{MigrationSupport: *supportID, MigrationToken: *tokenID}
	return opts, exitOK, true
}

// flowState is what inspect learns about one client-to-server flow from
// the fast path's own decisions (fastpath.Explanation, one per frame): the
// first flight's ClientHello as the worker's reassembler read it, and
// whether the worker held a pin for the flow after its last packet.
type flowState struct {
	key      parser.FlowKey
	payloads int // client segments with payload the worker forwarded
	segments int // of those, the ones fed to the reassembler for the first flight
	// supportSegment is the segment (1-based) after which the scanner
	// first saw migration_support, 0 if it never did.
	supportSegment int
	// decided: the first flight's ClientHello was decided (complete,
	// malformed, or given up on by the reassembler); verdict says how.
	decided bool
	verdict parser.Verdict
	hello   helloSummary
	// pinned is whether the worker holds a pin for the flow after its
	// last packet before the client's RST, if any (the RST ends the
	// connection and takes its pin along); pinEvent says what made it when
	// that was not the first flight's ClientHello.
	pinned   bool
	pinEvent string
}

// helloSummary copies the fields of a parser.ClientHello that the report
// needs: the parser's slices point into buffers that are reused.
type helloSummary struct {
	isHello, complete       bool
	support, token          bool
	tls13, psk, ech, grease bool
	sni                     string
	length                  int
	malformed               parser.MalformedReason
}

func summarize(h *parser.ClientHello) helloSummary {
	return helloSummary{
		isHello: h.IsClientHello, complete: h.Complete,
		support: h.MigrationSupport, token: h.MigrationToken,
		tls13: h.OffersTLS13, psk: h.PreSharedKey, ech: h.ECH, grease: h.GREASE,
		sni: string(h.SNI), length: h.Length, malformed: h.Malformed,
	}
}

// inspectReport is one JSON line. The first eight keys are the contract
// scripts and the README rely on; the rest explain the decision. Legacy is
// true when the fast path held a pin for the flow at its end (see
// decision).
type inspectReport struct {
	Flow             string `json:"flow"`
	ClientHello      bool   `json:"client_hello"`
	Complete         bool   `json:"complete"`
	Segments         int    `json:"segments"`
	MigrationSupport bool   `json:"migration_support"`
	MigrationToken   bool   `json:"migration_token"`
	SNI              string `json:"sni"`
	Legacy           bool   `json:"legacy"`
	// SupportSegment is the TCP segment of the ClientHello that carried
	// migration_support (1 = the first), 0 if none: above 1 only the
	// reassembler can see it.
	SupportSegment int    `json:"migration_support_segment"`
	Verdict        string `json:"verdict"`
	Reason         string `json:"reason"`
	HelloBytes     int    `json:"hello_bytes"`
	TLS13          bool   `json:"tls13"`
	PSK            bool   `json:"psk"`
	ECH            bool   `json:"ech"`
	GREASE         bool   `json:"grease"`
}

func (fl *flowState) verdictName() string {
	switch {
	case fl.payloads == 0:
		return "no_payload"
	case fl.segments == 0:
		return parser.VerdictNotHello.String()
	case !fl.decided:
		return "pending" // the capture ended before the ClientHello did
	}
	return fl.verdict.String()
}

// decision says whether the fast path held a pin for the flow at its end
// (after its last packet; before the client's RST, which removes it), and
// why. The answer is the worker's (fl.pinned, tracked
// from its Explanations); the reason reads the first flight's ClientHello
// when that is what decided it, and names the later event otherwise.
func (fl *flowState) decision() (pinned bool, reason string) {
	h := &fl.hello
	firstFlight := false
	switch {
	case fl.payloads == 0:
		reason = "no payload: nothing to inspect, the flow follows the table"
	case fl.segments == 0:
		reason = "first payload is not a TLS ClientHello: not acted on (the router cannot tell it from a later payload), the flow follows the table"
	case !fl.decided:
		firstFlight, reason = true, "ClientHello incomplete when the capture ended: pinned until it completes"
	case fl.verdict == parser.VerdictMalformed:
		firstFlight, reason = true, "malformed ClientHello ("+h.malformed.String()+"): pinned"
	case fl.verdict == parser.VerdictUnknown:
		firstFlight, reason = true, "reassembler gave up (out of order, too large, timed out or no free slot): pinned"
	case !h.support:
		firstFlight, reason = true, "no migration_support: pinned as a legacy flow"
	case fl.segments > 1:
		reason = "migration_support: pinned while the ClientHello was incomplete, unpinned when it completed; nothing stored"
	default:
		reason = "migration_support: the client will move to a unicast node; nothing stored"
	}
	if firstFlight != fl.pinned {
		reason = fl.pinEvent
		if reason == "" && fl.pinned {
			reason = "pinned by the fast path"
		} else if reason == "" {
			reason = "no pin at the flow's last packet: it expired or was evicted"
		}
	}
	return fl.pinned, reason
}

func (fl *flowState) report() inspectReport {
	h := &fl.hello
	legacy, reason := fl.decision()
	return inspectReport{
		Flow:             fl.key.String(),
		ClientHello:      h.isHello,
		Complete:         h.complete,
		Segments:         fl.segments,
		MigrationSupport: h.support,
		MigrationToken:   h.token,
		SNI:              h.sni,
		Legacy:           legacy,
		SupportSegment:   fl.supportSegment,
		Verdict:          fl.verdictName(),
		Reason:           reason,
		HelloBytes:       h.length,
		TLS13:            h.tls13,
		PSK:              h.psk,
		ECH:              h.ech,
		GREASE:           h.grease,
	}
}

func writeInspectTable(w io.Writer, flows []*flowState) {
	rows := [][]string{{"FLOW", "HELLO", "SEGS", "BYTES", "MIG_SUPPORT", "MIG_TOKEN", "SNI", "OFFERS", "ROUTER", "WHY"}}
	for _, fl := range flows {
		r := fl.report()
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		decision := "no pin"
		if r.Legacy {
			decision = "pin (legacy)"
		}
		sni := r.SNI
		if sni == "" {
			sni = "-"
		} else if strings.IndexFunc(sni, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
			// The name comes off the wire: no control bytes to the terminal.
			sni = strconv.QuoteToASCII(sni)
		}
		var offers []string
		for _, o := range []struct {
			on   bool
			name string
		}{{r.TLS13, "tls1.3"}, {r.PSK, "psk"}, {r.ECH, "ech"}, {r.GREASE, "grease"}} {
			if o.on {
				offers = append(offers, o.name)
			}
		}
		if len(offers) == 0 {
			offers = append(offers, "-")
		}
		support := yes(r.MigrationSupport)
		if r.MigrationSupport && r.Segments > 1 {
			support = fmt.Sprintf("yes (seg %d)", r.SupportSegment)
		}
		rows = append(rows, []string{r.Flow, r.Verdict, fmt.Sprint(r.Segments), fmt.Sprint(r.HelloBytes),
			support, yes(r.MigrationToken), sni, strings.Join(offers, ","), decision, r.Reason})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			if i == len(row)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-len(c)+2))
		}
		fmt.Fprintln(w, b.String())
	}
}

// inspectNode is the one node of inspect's table: every flow goes to it,
// so the report depends only on what the fast path does per flow (and the
// seed, required of every config, changes nothing).
const inspectNode = `
pools:
  - name: inspect
    nodes:
      - name: inspect
        address: 192.0.2.1
        mac: "02:00:00:00:00:02"
table:
  size: 101
  seed: "696e7370656374696e73706563746e6f"
transitions:
  capacity: 8
`

// inspectCapture runs a capture of the given size (see package capture)
// through the real fast path, fastpath.Worker over an offline.PcapRing, one
// frame per batch on the capture's clock, with every VIP a TLS VIP (given
// by --vip × --port, or else every destination:port of the client flows),
// and builds a report per client-to-server flow from the worker's
// Explanations. It returns the flows in order of first appearance and how
// many frames it skipped (not convertible to Ethernet, too large, or not
// parseable) and how many segments the worker refused for a bad TCP
// checksum.
func inspectCapture(r io.ReaderAt, size int64, opts *inspectOptions) (flows []*flowState, skipped, badSums int, err error) {
	vips, err := inspectVIPs(r, size, opts)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(vips) == 0 {
		return nil, 0, 0, nil // nothing to route; inspectVIPs read the whole capture
	}
	var y strings.Builder
	y.WriteString("vips:\n")
	for _, v := range vips {
		fmt.Fprintf(&y, "  - address: \"%s\"\n    port: %d\n    tls: true\n", v.Addr(), v.Port())
	}
	y.WriteString(inspectNode)
	cfg, err := sched.ParseConfig([]byte(y.String()), "inspect")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("inspect's table: %w", err)
	}
	if opts.pinCapacity > 0 {
		cfg.Pins.Capacity = opts.pinCapacity
	}
	in, err := offline.NewPcapRing(r, size, nil, 2, 1<<16)
	if err != nil {
		return nil, 0, 0, err
	}
	clock := func() int64 { return in.Now().UnixNano() }
	s, err := sched.New(cfg, sched.WithClock(clock))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("inspect's table: %w", err)
	}
	// What the XDP program would pass to the kernel never reaches the
	// worker live, so it does not here either (as in run --pcap-in).
	in.Classify(classify.NewVIPs(daemon.VIPPorts(s.Current().VIPs)), nil)
	byKey := make(map[parser.FlowKey]*flowState)
	var w *fastpath.Worker
	explain := func(e *fastpath.Explanation) {
		if e.Status != parser.StatusOK {
			skipped++
			return
		}
		p := e.Packet
		if !opts.wants(&p.Flow) {
			return // the server's side, or traffic to other addresses and ports
		}
		syn := !p.ICMPError && p.TCPFlags&(parser.TCPFlagSYN|parser.TCPFlagACK) == parser.TCPFlagSYN
		fl := byKey[p.Flow]
		if fl != nil && fl.payloads > 0 && syn {
			// A new connection reusing the 5-tuple (a long capture, a
			// client that recycles ports): report it as a flow of its own.
			fl = nil
		}
		if fl == nil {
			fl = &flowState{key: p.Flow}
			byKey[p.Flow] = fl
			flows = append(flows, fl)
		}
		if e.Forwarded {
			fl.observe(e, syn)
		}
		if opts.observe != nil {
			opts.observe(e, func(k *parser.FlowKey) bool { return w.Decider().Pinned(k, s.Current().Hash(k), clock()) })
		}
	}
	w, err = fastpath.NewWorker(in, s, fastpath.Config{
		Batch: 1, SourceMAC: daemon.OfflineSourceMAC, Hello: opts.hello, Reassembly: opts.reasm,
		Decider: sched.DeciderConfigFrom(cfg), Clock: clock, Explain: explain,
	})
	if err != nil {
		return nil, 0, 0, err
	}
	for {
		if _, err := w.Step(0); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, 0, 0, err
		}
	}
	c, _ := w.Counters()
	return flows, skipped + int(in.Unconvertible+in.Oversize), int(c.ReassemblyBadChecksum), nil
}

// observe takes in one forwarded frame of the flow.
func (fl *flowState) observe(e *fastpath.Explanation, syn bool) {
	if len(e.Packet.Payload) > 0 {
		fl.payloads++
	}
	if e.Hello != parser.VerdictNotHello && !fl.decided {
		fl.segments++
		h := e.HelloInfo
		if h.MigrationSupport && fl.supportSegment == 0 && e.Hello != parser.VerdictUnknown {
			fl.supportSegment = fl.segments
		}
		switch e.Hello {
		case parser.VerdictPending:
			fl.hello = summarize(h)
		case parser.VerdictUnknown:
			// The reassembler reset its hello; keep what earlier segments
			// showed. Unknown always means the bytes began a ClientHello.
			fl.decided, fl.verdict = true, e.Hello
			fl.hello.isHello, fl.hello.complete = true, false
		default:
			fl.decided, fl.verdict = true, e.Hello
			fl.hello = summarize(h)
		}
	} else if e.Hello != parser.VerdictNotHello && e.Pinned {
		fl.pinEvent = "a later payload began a TLS handshake record the reassembler read as " + e.Hello.String() + ": pinned"
	}
	if e.Packet.TCPFlags&parser.TCPFlagRST != 0 {
		// The client's RST ends the connection and removes its pin: the
		// report is about the pin that held the connection until then.
		return
	}
	// A Decision goes to the flow's pin first, so after a forwarded frame
	// the pin exists exactly when the frame made one, or found one; a SYN
	// drops any earlier pin of the 5-tuple.
	switch {
	case e.Pinned:
		fl.pinned = true
	case e.Unpinned:
		fl.pinned = false
	case syn:
		fl.pinned = false
	default:
		fl.pinned = e.Via == lookup.ViaPin
	}
}

// inspectVIPs reads the capture once for the VIPs of inspect's table:
// --vip × --port, or every destination:port of the flows inspect counts.
func inspectVIPs(r io.ReaderAt, size int64, opts *inspectOptions) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	if len(opts.vips) > 0 {
		for _, v := range opts.vips {
			for _, p := range opts.ports {
				out = append(out, netip.AddrPortFrom(v, p))
			}
		}
	}
	pr, err := capture.Open(r, size)
	if err != nil {
		return nil, err
	}
	seen := map[netip.AddrPort]bool{}
	var pkt parser.Packet
	for {
		frame, _, err := pr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if errors.Is(err, capture.ErrUnconvertible) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(opts.vips) > 0 || parser.ParseFrame(frame, &pkt) != parser.StatusOK || !opts.wants(&pkt.Flow) {
			continue // with --vip the list is known; the pass still checks the whole file
		}
		if ap := netip.AddrPortFrom(pkt.Flow.DstAddr(), pkt.Flow.DstPort); !seen[ap] {
			seen[ap] = true
			out = append(out, ap)
		}
	}
}

// wants reports whether k is a client-to-server flow inspect counts: to one
// of the ports and, when VIPs are given, to one of them.
func (o *inspectOptions) wants(k *parser.FlowKey) bool {
	portOK := false
	for _, p := range o.ports {
		if k.DstPort == p {
			portOK = true
			break
		}
	}
	if !portOK {
		return false
	}
	if len(o.vips) == 0 {
		return true
	}
	dst := k.DstAddr()
	for _, v := range o.vips {
		if dst == v {
			return true
		}
	}
	return false
}
