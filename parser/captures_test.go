package parser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// captureFlow is what the parser and reassembler found in one client→443
// flow of a capture.
type captureFlow struct {
	key      FlowKey
	segments int // payload-carrying segments fed until a final verdict
	verdict  Verdict
	hello    ClientHello
	sni      string
	pending  []bool // MigrationSupport seen after each pending segment
}

// captureFrames returns every frame of the committed captures (pcap and
// pcapng), for fuzz seeds and benchmarks.
func captureFrames(tb testing.TB) [][]byte {
	files, _ := filepath.Glob("testdata/*.pcap*")
	var frames [][]byte
	for _, path := range files {
		frames = append(frames, ethernetFrames(tb, path)...)
	}
	return frames
}

// Link types of the committed captures (pcap LINKTYPE_ values).
const (
	linkTypeEthernet = 1
	linkTypeSLL      = 113 // Linux cooked capture ("any" device)
	linkTypeSLL2     = 276
)

// ethernetFrames reads a pcap or pcapng file and returns its frames as
// Ethernet frames: Linux cooked (SLL, SLL2) headers, as tcpdump -i any
// writes them, are rewritten to an Ethernet header with the same EtherType.
// Frames of other link types are left out.
func ethernetFrames(tb testing.TB, path string) [][]byte {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var next func() ([]byte, error)
	link := -1
	if r, err := pcapgo.NewReader(bytes.NewReader(raw)); err == nil {
		next = func() ([]byte, error) { d, _, err := r.ReadPacketData(); return d, err }
		// gopacket's LinkType is 8 bits wide; SLL2 (276) needs the header.
		switch binary.LittleEndian.Uint32(raw[0:4]) {
		case 0xa1b2c3d4, 0xa1b23c4d:
			link = int(binary.LittleEndian.Uint32(raw[20:24]))
		default:
			link = int(binary.BigEndian.Uint32(raw[20:24]))
		}
	} else if ng, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions); err == nil {
		next = func() ([]byte, error) { d, _, err := ng.ReadPacketData(); return d, err }
		link = int(ng.LinkType())
	} else {
		tb.Fatalf("%s: neither pcap nor pcapng: %v", path, err)
	}
	var frames [][]byte
	for {
		d, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		var hdr, protoOff int
		switch link {
		case linkTypeEthernet:
			frames = append(frames, d)
			continue
		case linkTypeSLL:
			hdr, protoOff = 16, 14
		case linkTypeSLL2:
			hdr, protoOff = 20, 0
		default:
			tb.Logf("%s: link type %d, not read", path, link)
			return nil
		}
		if len(d) < hdr {
			continue
		}
		f := make([]byte, 14, 14+len(d)-hdr)
		copy(f[12:14], d[protoOff:protoOff+2])
		frames = append(frames, append(f, d[hdr:]...))
	}
	return frames
}

// readCapture runs every frame of a capture through ParseFrame and every
// client→port-443 payload through one Reassembler.
func readCapture(t *testing.T, path string) []*captureFlow {
	t.Helper()
	frames := ethernetFrames(t, path)
	r := newReasm(t, ReassemblerConfig{})
	flows := map[FlowKey]*captureFlow{}
	var order []*captureFlow
	for n, frame := range frames {
		var p Packet
		if ParseFrame(frame, &p) != StatusOK || p.ICMPError || p.Flow.DstPort != 443 {
			continue
		}
		fl := flows[p.Flow]
		if fl == nil {
			fl = &captureFlow{key: p.Flow, verdict: VerdictNotHello}
			flows[p.Flow] = fl
			order = append(order, fl)
		}
		if len(p.Payload) == 0 || (fl.segments > 0 && fl.verdict != VerdictPending) {
			continue
		}
		fl.segments++
		fl.verdict = r.Feed(&p.Flow, p.Seq, p.Payload, int64(n), nil, &fl.hello)
		if fl.verdict == VerdictPending {
			fl.pending = append(fl.pending, fl.hello.MigrationSupport)
		}
		fl.sni = string(fl.hello.SNI)
	}
	return order
}

// captureWant is what every ClientHello flow of a capture must show.
type captureWant struct {
	hellos           bool // at least one flow carries a ClientHello, all complete
	segments         int  // segments each ClientHello spans (0: any)
	records          int  // TLS records it spans (0: any)
	family           uint8
	migrationSupport bool
	migrationToken   bool
	ech, grease      bool
	supportPending   []bool // MigrationSupport after each pending segment
}

var captureWants = map[string]captureWant{
	"chromium.pcap":          {hellos: true, segments: 2, family: FamilyIPv4, ech: true, grease: true, supportPending: []bool{false}},
	"curl.pcap":              {hellos: true, segments: 1, family: FamilyIPv4},
	"curl-any-sll2.pcap":     {hellos: true, segments: 1, family: FamilyIPv4}, // Linux cooked v2 header
	"go-crypto-tls.pcap":     {hellos: true, segments: 2, family: FamilyIPv4, supportPending: []bool{false}},
	"ipv6-mtu1280-go.pcapng": {hellos: true, segments: 2, family: FamilyIPv6, supportPending: []bool{false}},
	"no-clienthello.pcap":    {},
	"openssl-s_client.pcap":  {hellos: true, family: FamilyIPv4},
	// migration_support in the first segment is seen while pending; in the
	// second, only once complete.
	"utls-support-first.pcap":  {hellos: true, segments: 2, family: FamilyIPv4, migrationSupport: true, supportPending: []bool{true}},
	"utls-support-second.pcap": {hellos: true, segments: 2, family: FamilyIPv4, migrationSupport: true, supportPending: []bool{false}},
	"utls-support-token.pcap":  {hellos: true, family: FamilyIPv4, migrationSupport: true, migrationToken: true},
	// A 3 KB hello in three TLS records and three segments, migration_support
	// in the last.
	"utls-record-split.pcap": {hellos: true, segments: 3, records: 3, family: FamilyIPv4, migrationSupport: true, supportPending: []bool{false, false}},
}

// TestCaptures reads the real ClientHellos captured in network namespaces
// (parser/testdata/*.pcap*, recorded by scripts/capture) through the same
// ParseFrame + Reassembler path the fast path uses.
func TestCaptures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.pcap*")
	if len(files) == 0 {
		t.Skip("no captures in testdata")
	}
	for _, path := range files {
		name := filepath.Base(path)
		flows := readCapture(t, path)
		want, known := captureWants[name]
		hellos := 0
		for _, fl := range flows {
			h := &fl.hello
			t.Logf("%s: %v segs %d %v sni %q mig %v tok %v tls13 %v ech %v grease %v psk %v exts %d pending %v",
				name, fl.key, fl.segments, fl.verdict, fl.sni, h.MigrationSupport, h.MigrationToken, h.OffersTLS13, h.ECH, h.GREASE, h.PreSharedKey, h.Extensions, fl.pending)
			if fl.verdict == VerdictNotHello {
				continue
			}
			hellos++
			if !known {
				continue
			}
			if fl.verdict != VerdictComplete || fl.sni != "vip.anysched.test" || !h.OffersTLS13 || fl.key.Family != want.family ||
				want.segments != 0 && fl.segments != want.segments || want.records != 0 && h.Records != want.records || h.MigrationSupport != want.migrationSupport ||
				h.MigrationToken != want.migrationToken || h.ECH != want.ech || h.GREASE != want.grease ||
				want.supportPending != nil && !slices.Equal(fl.pending, want.supportPending) {
				t.Errorf("%s: flow %v: verdict %v segments %d sni %q hello %+v pending %v, want %+v",
					name, fl.key, fl.verdict, fl.segments, fl.sni, h, fl.pending, want)
			}
		}
		if known && (hellos > 0) != want.hellos {
			t.Errorf("%s: %d ClientHello flows, want hellos=%v", name, hellos, want.hellos)
		}
	}
}
