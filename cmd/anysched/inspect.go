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

	"github.com/anysched/anysched/internal/capture"
	"github.com/anysched/anysched/parser"
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
	// reasm is the zero value (the fast path's defaults) except in tests.
	reasm parser.ReassemblerConfig
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
	flows, skipped, err := inspectCapture(f, st.Size(), &opts)
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
		fmt.Fprintln(fs.Output(), "Feeds every client-to-server TCP flow of the capture through the router's own")
		fmt.Fprintln(fs.Output(), "packet parser and ClientHello reassembler and prints, per flow in order of first")
		fmt.Fprintln(fs.Output(), "appearance, what the ClientHello carried and whether the fast path would pin the")
		fmt.Fprintln(fs.Output(), "flow (\"legacy\": a ClientHello without migration_support, malformed, or never")
		fmt.Fprintln(fs.Output(), "completed) or store nothing (migration_support; or no ClientHello to act on).")
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

// flowState is what inspect learns about one client-to-server flow. Once
// the ClientHello is decided (complete, malformed, not a ClientHello, or
// given up on by the reassembler) later payloads are not fed: a real router
// cannot tell them from a first payload, but they cannot change its pin
// decision either, and the report is about the first flight.
type flowState struct {
	key      parser.FlowKey
	payloads int // client segments with payload
	segments int // of those, the ones fed to the reassembler
	// supportSegment is the segment (1-based) after which the scanner
	// first saw migration_support, 0 if it never did.
	supportSegment int
	decided        bool
	verdict        parser.Verdict
	hello          helloSummary
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
// (issue 2); the rest explain the decision. Legacy is true when the fast
// path would pin the flow (see decision).
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
	case !fl.decided:
		return "pending" // the capture ended before the ClientHello did
	}
	return fl.verdict.String()
}

// decision says whether the fast path pins the flow and why. It follows
// fastpath.Worker (clientHello in fastpath/worker.go) for a TLS VIP: a
// pending, complete-without-migration_support, malformed or unknown
// ClientHello pins the flow; a complete one with migration_support unpins
// it; a payload that is not a ClientHello is not acted on, because the
// router cannot tell a first payload from a later one without state.
func (fl *flowState) decision() (pinned bool, reason string) {
	h := &fl.hello
	switch {
	case fl.payloads == 0:
		return false, "no payload: nothing to inspect, the flow follows the table"
	case !fl.decided:
		return true, "ClientHello incomplete when the capture ended: pinned until it completes"
	case fl.verdict == parser.VerdictNotHello:
		return false, "first payload is not a TLS ClientHello: not acted on (the router cannot tell it from a later payload), the flow follows the table"
	case fl.verdict == parser.VerdictMalformed:
		return true, "malformed ClientHello (" + h.malformed.String() + "): pinned"
	case fl.verdict == parser.VerdictUnknown:
		return true, "reassembler gave up (out of order, too large, timed out or no free slot): pinned"
	case !h.support:
		return true, "no migration_support: pinned as a legacy flow"
	case fl.segments > 1:
		return false, "migration_support: pinned while the ClientHello was incomplete, unpinned when it completed; nothing stored"
	}
	return false, "migration_support: the client will move to a unicast node; nothing stored"
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

// inspectCapture reads every packet of a capture of the given size (see
// package capture) and feeds the client-to-server TCP
// flows through parser.ParseFrame and one parser.Reassembler with the fast
// path's defaults, in capture order, with the capture's timestamps as the
// reassembler's clock. It returns the flows in order of first appearance
// and how many frames it skipped.
func inspectCapture(r io.ReaderAt, size int64, opts *inspectOptions) (flows []*flowState, skipped int, err error) {
	pr, err := capture.Open(r, size)
	if err != nil {
		return nil, 0, err
	}
	reasm, err := parser.NewReassembler(opts.reasm)
	if err != nil {
		return nil, 0, err
	}
	byKey := make(map[parser.FlowKey]*flowState)
	var (
		pkt   parser.Packet
		hello parser.ClientHello
	)
	for {
		frame, ts, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, capture.ErrUnconvertible) {
			skipped++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if parser.ParseFrame(frame, &pkt) != parser.StatusOK || pkt.Flow.Proto != parser.ProtoTCP {
			skipped++
			continue
		}
		if !opts.wants(&pkt.Flow) {
			continue // the server's side, or traffic to other addresses and ports
		}
		fl := byKey[pkt.Flow]
		if fl != nil && fl.payloads > 0 && pkt.TCPFlags&(parser.TCPFlagSYN|parser.TCPFlagACK) == parser.TCPFlagSYN {
			// A new connection reusing the 5-tuple (a long capture, a
			// client that recycles ports): report it as a flow of its own.
			reasm.Forget(&pkt.Flow)
			fl = nil
		}
		if fl == nil {
			fl = &flowState{key: pkt.Flow}
			byKey[pkt.Flow] = fl
			flows = append(flows, fl)
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		fl.payloads++
		if fl.decided {
			continue
		}
		fl.segments++
		v := reasm.Feed(&pkt.Flow, pkt.Seq, pkt.Payload, ts.UnixNano(), &opts.hello, &hello)
		if hello.MigrationSupport && fl.supportSegment == 0 && v != parser.VerdictUnknown {
			fl.supportSegment = fl.segments
		}
		switch v {
		case parser.VerdictPending:
			fl.hello = summarize(&hello)
		case parser.VerdictUnknown:
			// The reassembler reset hello; keep what earlier segments
			// showed. Unknown always means the bytes began a ClientHello.
			fl.decided, fl.verdict = true, v
			fl.hello.isHello, fl.hello.complete = true, false
		default:
			fl.decided, fl.verdict = true, v
			fl.hello = summarize(&hello)
		}
	}
	for _, fl := range flows {
		if fl.decided && fl.verdict == parser.VerdictNotHello {
			fl.segments = 0
		}
	}
	return flows, skipped, nil
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
