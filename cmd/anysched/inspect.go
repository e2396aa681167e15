package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/pflag"

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

// linkType is a capture's LINKTYPE_ value. gopacket v1.1.19 keeps link
// types in a uint8 (layers.LinkType), which turns LINKTYPE_LINUX_SLL2 (276,
// what tcpdump -i any writes nowadays) into 20; inspect reads the real
// value from the file headers itself.
type linkType uint16

// The link types inspect reads.
const (
	linkEthernet linkType = 1
	linkRaw      linkType = 101
	linkSLL      linkType = 113
	linkIPv4     linkType = 228
	linkIPv6     linkType = 229
	linkSLL2     linkType = 276
)

// packetReader is what pcapgo's pcap and pcapng readers have in common,
// with the link type looked up per packet (pcapng has one per interface).
type packetReader struct {
	read     func() ([]byte, gopacket.CaptureInfo, error)
	linkType func(ci *gopacket.CaptureInfo) (linkType, error)
}

// openCapture detects pcap or pcapng by the magic number and opens the
// matching pcapgo reader. idbLinkTypes are the link types of the pcapng
// interface description blocks, from checkPcapngBlocks.
func openCapture(r io.Reader, idbLinkTypes []linkType) (*packetReader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, errors.New("too short for a pcap or pcapng header")
	}
	switch m := binary.LittleEndian.Uint32(magic); m {
	case pcapngSectionHeader: // the same in both byte orders
		// Without WantMixedLinkType pcapgo silently drops packets of
		// interfaces whose link type differs from the first one's.
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("corrupt pcapng: %w", err)
		}
		return &packetReader{
			read: ng.ReadPacketData,
			linkType: func(ci *gopacket.CaptureInfo) (linkType, error) {
				intf, err := ng.Interface(ci.InterfaceIndex)
				if err != nil {
					return 0, fmt.Errorf("packet on interface %d: %w", ci.InterfaceIndex, err)
				}
				return widenLinkType(intf.LinkType, idbLinkTypes), nil
			},
		}, nil
	case 0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1:
		hdr, err := br.Peek(24)
		if err != nil {
			return nil, errors.New("corrupt pcap: file header cut short")
		}
		var order binary.ByteOrder = binary.LittleEndian
		if m == 0xD4C3B2A1 || m == 0x4D3CB2A1 {
			order = binary.BigEndian
		}
		// The low 16 bits are the link type; the high ones may carry the
		// FCS length.
		lt := linkType(order.Uint32(hdr[20:24]))
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("corrupt pcap: %w", err)
		}
		// pcapgo allocates each record's captured length (checked only
		// against the header's snap length) before reading it; a corrupt
		// header must not make it ask for gigabytes.
		pr.SetSnaplen(min(pr.Snaplen(), maxSnaplen))
		return &packetReader{
			read:     pr.ReadPacketData,
			linkType: func(*gopacket.CaptureInfo) (linkType, error) { return lt, nil },
		}, nil
	}
	return nil, fmt.Errorf("not a pcap or pcapng file (magic %x)", magic)
}

// widenLinkType undoes gopacket's uint8 truncation of a pcapng interface's
// link type, using the 16-bit values the interface blocks really hold.
func widenLinkType(truncated layers.LinkType, idbLinkTypes []linkType) linkType {
	for _, lt := range idbLinkTypes {
		if uint8(lt) == uint8(truncated) {
			return lt
		}
	}
	return linkType(truncated)
}

const (
	pcapngSectionHeader        = 0x0A0D0D0A
	pcapngInterfaceDescription = 1
	// maxSnaplen is libpcap's MAXIMUM_SNAPLEN, the largest snap length
	// tcpdump writes.
	maxSnaplen = 262144
)

// checkPcapngBlocks walks the block structure of a pcapng file of the given
// size (type, length, body, repeated length), reports a block that is cut
// short or whose lengths disagree, and returns the link types of the
// interface description blocks. pcapgo's NgReader reports a file that
// ends inside a block as a clean end of file, which would hide a corrupt
// capture. For anything else it does nothing (pcapgo reports a cut classic
// pcap record itself).
func checkPcapngBlocks(f io.ReaderAt, size int64) (idbLinkTypes []linkType, err error) {
	var hdr [12]byte
	if n, _ := f.ReadAt(hdr[:4], 0); n < 4 || binary.LittleEndian.Uint32(hdr[:4]) != pcapngSectionHeader {
		return nil, nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	for off := int64(0); off < size; {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			return nil, fmt.Errorf("corrupt pcapng: block header at offset %d cut short", off)
		}
		if binary.LittleEndian.Uint32(hdr[:4]) == pcapngSectionHeader {
			if _, err := f.ReadAt(hdr[8:12], off+8); err != nil {
				return nil, fmt.Errorf("corrupt pcapng: section header at offset %d cut short", off)
			}
			switch {
			case binary.LittleEndian.Uint32(hdr[8:12]) == 0x1A2B3C4D:
				order = binary.LittleEndian
			case binary.BigEndian.Uint32(hdr[8:12]) == 0x1A2B3C4D:
				order = binary.BigEndian
			default:
				return nil, fmt.Errorf("corrupt pcapng: bad byte-order magic at offset %d", off)
			}
		}
		length := int64(order.Uint32(hdr[4:8]))
		if length < 12 || length%4 != 0 || off+length > size {
			return nil, fmt.Errorf("corrupt pcapng: block at offset %d has length %d (file size %d)", off, length, size)
		}
		var trailer [4]byte
		if _, err := f.ReadAt(trailer[:], off+length-4); err != nil || int64(order.Uint32(trailer[:])) != length {
			return nil, fmt.Errorf("corrupt pcapng: block at offset %d: trailing length does not match %d", off, length)
		}
		// pcapgo allocates a packet's captured length before reading it:
		// check it against the block so a lying field cannot ask for GBs.
		if lenOff, overhead, ok := pcapngCaptureLengthField(order.Uint32(hdr[:4])); ok {
			var field [4]byte
			if length < overhead {
				return nil, fmt.Errorf("corrupt pcapng: packet block at offset %d is %d bytes, shorter than its header", off, length)
			}
			if _, err := f.ReadAt(field[:], off+lenOff); err != nil || int64(order.Uint32(field[:])) > length-overhead {
				return nil, fmt.Errorf("corrupt pcapng: packet block at offset %d claims more packet bytes than its length %d", off, length)
			}
		}
		if order.Uint32(hdr[:4]) == pcapngInterfaceDescription {
			var lt [2]byte
			if length < 20 {
				return nil, fmt.Errorf("corrupt pcapng: interface block at offset %d is %d bytes", off, length)
			}
			if _, err := f.ReadAt(lt[:], off+8); err != nil {
				return nil, fmt.Errorf("corrupt pcapng: interface block at offset %d cut short", off)
			}
			idbLinkTypes = append(idbLinkTypes, linkType(order.Uint16(lt[:])))
		}
		off += length
	}
	return idbLinkTypes, nil
}

// pcapngCaptureLengthField returns, for a block type that carries packet
// data, the offset of the field pcapgo takes as the captured length and the
// bytes of the block that are not packet data. A simple packet block's
// field is the original length (pcapgo caps it by the snap length only
// when one is set), so a simple packet block cut by a snap length is
// rejected too; tcpdump and dumpcap write enhanced packet blocks.
func pcapngCaptureLengthField(blockType uint32) (off, overhead int64, ok bool) {
	switch blockType {
	case 6: // enhanced packet block
		return 20, 32, true
	case 2: // obsolete packet block
		return 20, 32, true
	case 3: // simple packet block
		return 8, 16, true
	}
	return 0, 0, false
}

// The Linux cooked capture (SLL, SLL2) header lengths and the offsets of
// their protocol (EtherType) field.
const (
	sllHeaderLen   = 16
	sllProtoOff    = 14
	sll2HeaderLen  = 20
	sll2ProtoOff   = 0
	ethernetHdrLen = 14
)

// toEthernet returns the packet as an Ethernet frame for parser.ParseFrame,
// rewriting the link-layer header of cooked and raw-IP captures into
// scratch. ok is false for frames it cannot convert.
func toEthernet(lt linkType, data, scratch []byte) (frame []byte, ok bool) {
	var proto uint16
	var l3 []byte
	switch lt {
	case linkEthernet:
		return data, true
	case linkSLL:
		if len(data) < sllHeaderLen {
			return nil, false
		}
		proto, l3 = binary.BigEndian.Uint16(data[sllProtoOff:]), data[sllHeaderLen:]
	case linkSLL2:
		if len(data) < sll2HeaderLen {
			return nil, false
		}
		proto, l3 = binary.BigEndian.Uint16(data[sll2ProtoOff:]), data[sll2HeaderLen:]
	case linkRaw, linkIPv4, linkIPv6:
		if len(data) == 0 {
			return nil, false
		}
		l3 = data
		switch data[0] >> 4 {
		case 4:
			proto = parser.EtherTypeIPv4
		case 6:
			proto = parser.EtherTypeIPv6
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	if ethernetHdrLen+len(l3) > len(scratch) {
		return nil, false
	}
	clear(scratch[:12])
	binary.BigEndian.PutUint16(scratch[12:], proto)
	n := copy(scratch[ethernetHdrLen:], l3)
	return scratch[:ethernetHdrLen+n], true
}

func supportedLinkType(lt linkType) bool {
	switch lt {
	case linkEthernet, linkSLL, linkSLL2, linkRaw, linkIPv4, linkIPv6:
		return true
	}
	return false
}

// inspectCapture checks and reads every packet of a capture of the given
// size and feeds the client-to-server TCP
// flows through parser.ParseFrame and one parser.Reassembler with the fast
// path's defaults, in capture order, with the capture's timestamps as the
// reassembler's clock. It returns the flows in order of first appearance
// and how many frames it skipped.
func inspectCapture(r io.ReaderAt, size int64, opts *inspectOptions) (flows []*flowState, skipped int, err error) {
	idbLinkTypes, err := checkPcapngBlocks(r, size)
	if err != nil {
		return nil, 0, err
	}
	pr, err := openCapture(io.NewSectionReader(r, 0, size), idbLinkTypes)
	if err != nil {
		return nil, 0, err
	}
	reasm, err := parser.NewReassembler(opts.reasm)
	if err != nil {
		return nil, 0, err
	}
	byKey := make(map[parser.FlowKey]*flowState)
	scratch := make([]byte, parser.MaxFrameLen)
	var (
		pkt   parser.Packet
		hello parser.ClientHello
	)
	for n := 1; ; n++ {
		data, ci, err := pr.read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("corrupt capture at packet %d: %w", n, err)
		}
		lt, err := pr.linkType(&ci)
		if err != nil {
			return nil, 0, err
		}
		if !supportedLinkType(lt) {
			return nil, 0, fmt.Errorf("packet %d: link type %d is not supported (Ethernet, Linux SLL/SLL2 and raw IP are); capture on an Ethernet interface", n, lt)
		}
		frame, ok := toEthernet(lt, data, scratch)
		if !ok || parser.ParseFrame(frame, &pkt) != parser.StatusOK || pkt.Flow.Proto != parser.ProtoTCP {
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
		v := reasm.Feed(&pkt.Flow, pkt.Seq, pkt.Payload, ci.Timestamp.UnixNano(), &opts.hello, &hello)
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
