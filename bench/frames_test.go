package bench

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/parser"
)

var testAddrs = Addresses{
	SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}, DstMAC: [6]byte{2, 0, 0, 0, 0, 2},
	Src: clientBase, Dst: netip.MustParseAddr("10.200.0.1"), DstPort: 443,
}

// checksumsOK verifies the IPv4 header and TCP checksums of an untagged
// IPv4 frame from scratch.
func checksumsOK(t *testing.T, f []byte) {
	t.Helper()
	ip := f[14:34]
	if testbed.Checksum(0, ip) != 0xffff {
		t.Errorf("IPv4 header checksum wrong")
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	tcp := f[34 : 14+total]
	pseudo := testbed.ChecksumAdd(0, ip[12:20]) + protoTCP + uint32(len(tcp))
	if testbed.Checksum(pseudo, tcp) != 0xffff {
		t.Errorf("TCP checksum wrong")
	}
}

func TestTemplatesParse(t *testing.T) {
	tm, err := Templates(testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := parser.DefaultHelloConfig()
	want := map[int]struct {
		size      int // 0: any
		flags     uint8
		hello     parser.HelloStatus
		migration bool
	}{
		slotSYN:            {smallFrame, flagSYN, parser.HelloNotClientHello, false},
		slotACK:            {smallFrame, flagACK, parser.HelloNotClientHello, false},
		slotData:           {largeFrame, flagACK, parser.HelloNotClientHello, false},
		slotHelloLegacy:    {0, flagACK | flagPSH, parser.HelloComplete, false},
		slotHelloMigrating: {0, flagACK | flagPSH, parser.HelloComplete, true},
		slotPQLegacy1:      {largeFrame, flagACK, parser.HelloIncomplete, false},
		slotPQMigrating1:   {largeFrame, flagACK, parser.HelloIncomplete, false},
	}
	for slot, w := range want {
		tpl, ok := tm[slot]
		if !ok {
			t.Fatalf("slot %d missing", slot)
		}
		f := tpl.Frame
		checksumsOK(t, f)
		if w.size != 0 && len(f) != w.size {
			t.Errorf("%s: %d bytes, want %d", tpl.Name, len(f), w.size)
		}
		if got := int(f[offIPID+1] & (maxTemplates - 1)); got != slot {
			t.Errorf("%s: IP ID slot %d, want %d", tpl.Name, got, slot)
		}
		var p parser.Packet
		if st := parser.ParseFrame(f, &p); st != parser.StatusOK {
			t.Fatalf("%s: ParseFrame: %v", tpl.Name, st)
		}
		if p.TCPFlags != w.flags || p.Flow.DstPort != 443 {
			t.Errorf("%s: flags %#x port %d", tpl.Name, p.TCPFlags, p.Flow.DstPort)
		}
		var ch parser.ClientHello
		if st := parser.ScanClientHello(p.Payload, &cfg, &ch); st != w.hello || ch.MigrationSupport != w.migration {
			t.Errorf("%s: hello %v migration %v, want %v %v", tpl.Name, st, ch.MigrationSupport, w.hello, w.migration)
		}
	}
	// The two segments of a post-quantum hello reassemble into one hello.
	for _, first := range []int{slotPQLegacy1, slotPQMigrating1} {
		r, err := parser.NewReassembler(parser.ReassemblerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var ch parser.ClientHello
		var v parser.Verdict
		for _, slot := range []int{first, first + 1} {
			var p parser.Packet
			if st := parser.ParseFrame(tm[slot].Frame, &p); st != parser.StatusOK {
				t.Fatalf("%s: %v", tm[slot].Name, st)
			}
			checksumsOK(t, tm[slot].Frame)
			v = r.Feed(&p.Flow, p.Seq, p.Payload, 0, &cfg, &ch)
		}
		if v != parser.VerdictComplete || !ch.ECH || ch.MigrationSupport != (first == slotPQMigrating1) {
			t.Errorf("%s: verdict %v, ECH %v, migration %v", tm[first].Name, v, ch.ECH, ch.MigrationSupport)
		}
	}
}

func TestSYNsHaveTheirOwnFlows(t *testing.T) {
	tm, err := Templates(testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	if got := netip.AddrFrom4([4]byte(tm[slotSYN].Frame[26:30])); got != synBase {
		t.Errorf("SYN source %v, want %v", got, synBase)
	}
	if got := netip.AddrFrom4([4]byte(tm[slotACK].Frame[26:30])); got != clientBase {
		t.Errorf("ACK source %v, want %v", got, clientBase)
	}
}

func TestWorkloads(t *testing.T) {
	ws, err := Workloads(testAddrs, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("%d workloads", len(ws))
	}
	for _, w := range ws {
		for i, p := range w.Parts {
			if len(p.Template.Frame) == 0 || p.Weight < 1 {
				t.Errorf("%s part %d: %q weight %d", w.Name, i, p.Template.Name, p.Weight)
			}
		}
	}
	mix := ws[2]
	// Segment 2 follows segment 1 with the same weight, within the
	// router's reassembly slots.
	for i, p := range mix.Parts {
		if p.Template.Name == "hello-pq/2" || p.Template.Name == "hello-pq+ms/2" {
			prev := mix.Parts[i-1]
			if prev.Template.Name+"" != p.Template.Name[:len(p.Template.Name)-1]+"1" || prev.Weight != p.Weight || p.Weight > reassemblySlots {
				t.Errorf("%s after %s weights %d %d", p.Template.Name, prev.Template.Name, p.Weight, prev.Weight)
			}
		}
	}
	for _, bad := range []int{0, -1, 1<<24 + 1} {
		if _, err := Workloads(testAddrs, bad); err == nil {
			t.Errorf("unit %d accepted", bad)
		}
	}
	v6 := testAddrs
	v6.Dst = netip.MustParseAddr("fd00::1")
	if _, err := Workloads(v6, 1); err == nil {
		t.Error("IPv6 destination accepted")
	}
}
