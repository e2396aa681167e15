package afxdp

import (
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/parser"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_NET_ADMIN) to load XDP programs")
	}
}

var (
	testVIP4 = netip.MustParseAddr("10.200.0.1")
	testVIP6 = netip.MustParseAddr("fd00:200::1")
)

func TestLoadProgramPassesVerifier(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer p.Close()
}

// testVIPs are the services of the program tests: 443 on both addresses.
var testVIPs = []netip.AddrPort{netip.AddrPortFrom(testVIP4, 443), netip.AddrPortFrom(testVIP6, 443)}

// verdictCase is one frame and the verdict both the program and the Go
// model (classify) must give it.
type verdictCase struct {
	name string
	f    tframe
	want Counter
}

// verdictCases cover every class of issue 11 finding 10: each frame the
// fast path forwards is redirected, each it could only drop is passed, by
// reason. toSocket is what a redirect counts as without a socket.
func verdictCases() []verdictCase {
	const toSocket = CounterPassNoSocket
	other4 := netip.MustParseAddr("10.99.0.9")
	other6 := netip.MustParseAddr("fd00:99::9")
	mapped4 := netip.AddrFrom16(testVIP4.As16())
	syn := tcpHeader(40000, 443, 0x02)
	hello := tcpHeader(40000, 443, 0x18, 0x16, 3, 1)
	return []verdictCase{
		{"v4 tcp vip", tframe{dst: testVIP4, proto: 6, l4: syn}, toSocket},
		{"v4 tcp vip with payload and padding", tframe{dst: testVIP4, proto: 6, l4: hello, pad: 6}, toSocket},
		{"v4 tcp vip other port", tframe{dst: testVIP4, proto: 6, l4: tcpHeader(40000, 80, 0x02)}, CounterPassVIPOther},
		{"v4 tcp vip port 0 (not the address key)", tframe{dst: testVIP4, proto: 6, l4: tcpHeader(40000, 0, 0x02)}, CounterPassVIPOther},
		{"v6 tcp vip port 0", tframe{dst: testVIP6, proto: 6, l4: tcpHeader(40000, 0, 0x02)}, CounterPassVIPOther},
		{"v4 frag needed quoting vip port 0", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 0, testClient4, 40000, 6))}, CounterPassVIPICMP},
		{"v4 tcp router", tframe{dst: other4, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v4 udp vip (QUIC)", tframe{dst: testVIP4, proto: 17, l4: udpHeader(40000, 443)}, CounterPassVIPOther},
		{"v4 esp vip", tframe{dst: testVIP4, proto: 50, l4: make([]byte, 16)}, CounterPassVIPOther},
		{"v4 ttl 1", tframe{dst: testVIP4, ttl: 1, proto: 6, l4: syn}, CounterPassTTL},
		{"v4 ttl 2", tframe{dst: testVIP4, ttl: 2, proto: 6, l4: syn}, toSocket},
		{"v4 ttl 1 not vip", tframe{dst: other4, ttl: 1, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v4 options", tframe{dst: testVIP4, ihl: 7, proto: 6, l4: syn}, toSocket},
		{"v4 full options", tframe{dst: testVIP4, ihl: 15, proto: 6, l4: syn}, toSocket},
		{"v4 bad header checksum", tframe{dst: testVIP4, proto: 6, l4: syn, badSum: true}, CounterPassMalformed},
		{"v4 bad ihl", tframe{dst: testVIP4, ihl: 4, proto: 6, l4: syn}, CounterPassMalformed},
		{"v4 short", tframe{dst: testVIP4, proto: 6, l4: syn, cut: 30}, CounterPassMalformed},
		{"v4 tcp header cut", tframe{dst: testVIP4, proto: 6, l4: syn, cut: 2}, CounterPassMalformed},
		{"v4 tcp data offset past the end", tframe{dst: testVIP4, proto: 6, l4: func() []byte { t := tcpHeader(1, 443, 2); t[12] = 6 << 4; return t }()}, CounterPassMalformed},
		{"v4 first fragment (the rest cannot follow it to a node)", tframe{dst: testVIP4, frag: 0x2000, proto: 6, l4: syn}, CounterPassVIPFrag},
		{"v4 first fragment not vip", tframe{dst: other4, frag: 0x2000, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v4 later fragment tcp", tframe{dst: testVIP4, frag: 0x00b9, proto: 6, l4: make([]byte, 24)}, CounterPassVIPFrag},
		{"v4 later fragment udp", tframe{dst: testVIP4, frag: 0x00b9, proto: 17, l4: make([]byte, 24)}, CounterPassVIPFrag},
		{"v4 later fragment not vip", tframe{dst: other4, frag: 0x00b9, proto: 6, l4: make([]byte, 24)}, CounterPassNotVIP},
		{"v4 frag needed quoting vip tcp", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 6))}, toSocket},
		{"v4 time exceeded quoting vip tcp", tframe{dst: testVIP4, proto: 1, l4: icmpError(11, 0, quote4(testVIP4, 443, testClient4, 40000, 6))}, toSocket},
		{"v4 parameter problem quoting vip tcp", tframe{dst: testVIP4, proto: 1, l4: icmpError(12, 0, quote4(testVIP4, 443, testClient4, 40000, 6))}, toSocket},
		{"v4 frag needed quoting vip udp (QUIC PMTUD)", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 17))}, CounterPassVIPICMP},
		{"v4 frag needed quoting vip tcp other port", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 22, testClient4, 40000, 6))}, CounterPassVIPICMP},
		{"v4 frag needed to router quoting vip tcp", tframe{dst: other4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 6))}, toSocket},
		{"v4 frag needed to router quoting its own flow", tframe{dst: other4, proto: 1, l4: icmpError(3, 4, quote4(other4, 22, testClient4, 40000, 6))}, CounterPassNotVIP},
		{"v4 frag needed quote cut", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 6)[:24])}, CounterPassVIPICMP},
		{"v4 echo to vip", tframe{dst: testVIP4, proto: 1, l4: icmpError(8, 0, make([]byte, 32))}, CounterPassVIPICMP},
		{"v4 echo to router", tframe{dst: other4, proto: 1, l4: icmpError(8, 0, make([]byte, 32))}, CounterPassNotVIP},
		{"v4 802.1Q", tframe{tags: []uint16{0x8100}, dst: testVIP4, proto: 6, l4: syn}, toSocket},
		{"v4 QinQ", tframe{tags: []uint16{0x88a8, 0x8100}, dst: testVIP4, proto: 6, l4: syn}, toSocket},
		{"v4 0x9100 tag", tframe{tags: []uint16{0x9100}, dst: testVIP4, proto: 6, l4: syn}, toSocket},
		{"v4 0x9100 over 802.1Q", tframe{tags: []uint16{0x9100, 0x8100}, dst: testVIP4, proto: 6, l4: syn}, toSocket},
		{"v4 three tags", tframe{tags: []uint16{0x88a8, 0x8100, 0x8100}, dst: testVIP4, proto: 6, l4: syn}, CounterPassNonIP},
		{"v4 QinQ not vip", tframe{tags: []uint16{0x88a8, 0x8100}, dst: other4, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v4 vlan cut", tframe{tags: []uint16{0x8100}, dst: testVIP4, proto: 6, l4: syn, cut: 41}, CounterPassMalformed},
		{"arp", tframe{etype: 0x0806}, CounterPassNonIP},
		{"arp in vlan", tframe{tags: []uint16{0x8100}, etype: 0x0806}, CounterPassNonIP},
		{"v6 tcp vip", tframe{dst: testVIP6, proto: 6, l4: syn}, toSocket},
		{"v6 tcp vip other port", tframe{dst: testVIP6, proto: 6, l4: tcpHeader(1, 444, 2)}, CounterPassVIPOther},
		{"v6 tcp router", tframe{dst: other6, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v6 udp vip (QUIC)", tframe{dst: testVIP6, proto: 17, l4: udpHeader(40000, 443)}, CounterPassVIPOther},
		{"v6 hop limit 1", tframe{dst: testVIP6, ttl: 1, proto: 6, l4: syn}, CounterPassTTL},
		{"v6 hop limit 1 not vip (MLD)", tframe{dst: other6, ttl: 1, ext: []ext6{{typ: 0}}, proto: 58, l4: icmpError(143, 0, make([]byte, 20))}, CounterPassNotVIP},
		{"v6 QinQ", tframe{tags: []uint16{0x88a8, 0x8100}, dst: testVIP6, proto: 6, l4: syn}, toSocket},
		{"v6 hop-by-hop then tcp", tframe{dst: testVIP6, ext: []ext6{{typ: 0}}, proto: 6, l4: syn}, toSocket},
		{"v6 AH first then tcp", tframe{dst: testVIP6, ext: []ext6{{typ: 51}}, proto: 6, l4: syn}, toSocket},
		{"v6 dest opts, routing, AH then tcp", tframe{dst: testVIP6, ext: []ext6{{typ: 60}, {typ: 43}, {typ: 51}}, proto: 6, l4: syn}, toSocket},
		{"v6 eight ext headers then tcp", tframe{dst: testVIP6, ext: []ext6{{typ: 0}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}}, proto: 6, l4: syn}, toSocket},
		{"v6 nine ext headers", tframe{dst: testVIP6, ext: []ext6{{typ: 0}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}}, proto: 6, l4: syn}, CounterPassMalformed},
		{"v6 misplaced hop-by-hop", tframe{dst: testVIP6, ext: []ext6{{typ: 60}, {typ: 0}}, proto: 6, l4: syn}, CounterPassMalformed},
		{"v6 first fragment tcp", tframe{dst: testVIP6, ext: []ext6{{typ: 44, frag: 1}}, proto: 6, l4: syn}, CounterPassVIPFrag},
		{"v6 atomic fragment tcp (offset 0, M clear)", tframe{dst: testVIP6, ext: []ext6{{typ: 44, frag: 0}}, proto: 6, l4: syn}, toSocket},
		{"v6 later fragment", tframe{dst: testVIP6, ext: []ext6{{typ: 44, frag: 0x0100}}, proto: 6, l4: make([]byte, 24)}, CounterPassVIPFrag},
		{"v6 ninth header a later fragment", tframe{dst: testVIP6, ext: []ext6{{typ: 0}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 43}, {typ: 60}, {typ: 44, frag: 0x0100}}, proto: 6, l4: make([]byte, 24)}, CounterPassVIPFrag},
		{"v6 dest opts then udp", tframe{dst: testVIP6, ext: []ext6{{typ: 60}}, proto: 17, l4: udpHeader(1, 443)}, CounterPassVIPOther},
		{"v6 hop-by-hop to router", tframe{dst: other6, ext: []ext6{{typ: 0}}, proto: 6, l4: syn}, CounterPassNotVIP},
		{"v6 ext header past the end", tframe{dst: testVIP6, ext: []ext6{{typ: 60}}, proto: 59, patch: map[int]byte{14 + 40 + 1: 3}}, CounterPassMalformed},
		{"v6 packet too big quoting vip tcp", tframe{dst: testVIP6, proto: 58, l4: icmpError(2, 0, quote6(testVIP6, 443, testClient6, 40000, 6))}, toSocket},
		{"v6 unreachable quoting vip tcp", tframe{dst: testVIP6, proto: 58, l4: icmpError(1, 4, quote6(testVIP6, 443, testClient6, 40000, 6))}, toSocket},
		{"v6 too big quoting vip tcp with ext headers", tframe{dst: testVIP6, proto: 58, l4: icmpError(2, 0, quote6(testVIP6, 443, testClient6, 40000, 6, ext6{typ: 60}, ext6{typ: 44}))}, toSocket},
		{"v6 too big quoting vip udp (QUIC PMTUD)", tframe{dst: testVIP6, proto: 58, l4: icmpError(2, 0, quote6(testVIP6, 443, testClient6, 40000, 17))}, CounterPassVIPICMP},
		{"v6 too big quoting a later fragment", tframe{dst: testVIP6, proto: 58, l4: icmpError(2, 0, quote6(testVIP6, 443, testClient6, 40000, 6, ext6{typ: 44, frag: 0x0100}))}, CounterPassVIPICMP},
		{"v6 neighbour solicitation", tframe{dst: testVIP6, ttl: 255, proto: 58, l4: icmpError(135, 0, make([]byte, 16))}, CounterPassVIPICMP},
		{"v6 echo to vip", tframe{dst: testVIP6, proto: 58, l4: icmpError(128, 0, make([]byte, 16))}, CounterPassVIPICMP},
		{"v6 short", tframe{dst: testVIP6, proto: 6, l4: syn, cut: 30}, CounterPassMalformed},
		{"v6 tcp header cut", tframe{dst: testVIP6, proto: 6, l4: syn, cut: 2}, CounterPassMalformed},
		{"v4-mapped in v6 header is not the v4 VIP", tframe{etype: 0x86dd, dst: mapped4, src: testClient6, proto: 6, l4: syn}, CounterPassNotVIP},
	}
}

// TestProgramVerdicts runs the program on hand-built frames of every class
// with BPF_PROG_TEST_RUN, and the Go model on the same frames. No socket
// is in the XSK map, so a frame the program redirects comes back as
// XDP_PASS and counts as pass_no_socket: that counter is "would have gone
// to the socket".
func TestProgramVerdicts(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{MaxQueues: 4})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer p.Close()
	if err := p.SetVIPs(testVIPs); err != nil {
		t.Fatal(err)
	}
	model := classify.NewVIPs(testVIPs)
	var pkt parser.Packet
	// A test run sees at most a page of a frame, so only the model can be
	// shown a frame above classify.MaxFrameLen.
	long := tframe{dst: testVIP4, proto: 6, l4: tcpHeader(40000, 443, 0x02), pad: classify.MaxFrameLen}.bytes()
	if got := modelVerdict(model, long, &pkt); got != CounterPassTooLong {
		t.Errorf("model, %d-byte frame: %s, want %s", len(long), got, CounterPassTooLong)
	}
	for _, c := range verdictCases() {
		t.Run(c.name, func(t *testing.T) {
			data := c.f.bytes()
			if got := runVerdict(t, p, data); got != c.want {
				t.Errorf("program: %s, want %s", got, c.want)
			}
			if got := modelVerdict(model, data, &pkt); got != c.want {
				t.Errorf("model: %s, want %s", got, c.want)
			}
		})
	}

	// A reload that drops the v4 VIP stops its redirection.
	if err := p.SetVIPs(testVIPs[1:]); err != nil {
		t.Fatal(err)
	}
	syn := tcpHeader(40000, 443, 0x02)
	if got := runVerdict(t, p, tframe{dst: testVIP4, proto: 6, l4: syn}.bytes()); got != CounterPassNotVIP {
		t.Errorf("after removing the VIP: %s, want %s", got, CounterPassNotVIP)
	}
	icmp := tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 6))}
	if got := runVerdict(t, p, icmp.bytes()); got != CounterPassNotVIP {
		t.Errorf("ICMP after removing the VIP: %s, want %s", got, CounterPassNotVIP)
	}
	if got := runVerdict(t, p, tframe{dst: testVIP6, proto: 6, l4: syn}.bytes()); got != CounterPassNoSocket {
		t.Errorf("kept VIP: %s, want %s", got, CounterPassNoSocket)
	}
}

// modelVerdict is classify's verdict as the program counts it in a test
// run: a redirect without a socket is pass_no_socket.
func modelVerdict(m *classify.VIPs, data []byte, pkt *parser.Packet) Counter {
	v := m.Frame(data, pkt)
	if v == classify.Redirect {
		return CounterPassNoSocket
	}
	return v
}

// runVerdict runs the program once and returns the one counter that moved.
func runVerdict(t testing.TB, p *Program, data []byte) Counter {
	t.Helper()
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ret, err := p.prog.Run(&ebpf.RunOptions{Data: data})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	if ret != xdpPass {
		t.Fatalf("verdict %d, want XDP_PASS (%d)", ret, xdpPass)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	moved, found := Counter(0), false
	for i := range after {
		if d := after[i] - before[i]; d == 1 && !found {
			moved, found = Counter(i), true
		} else if d != 0 {
			t.Fatalf("counter %s moved by %d", Counter(i), d)
		}
	}
	if !found {
		t.Fatal("no counter moved")
	}
	return moved
}

func TestSetVIPsRejectsBadEntries(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{MaxVIPs: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetVIPs([]netip.AddrPort{netip.AddrPortFrom(testVIP4, 0)}); err == nil {
		t.Error("port 0 accepted")
	}
	if err := p.SetVIPs([]netip.AddrPort{{}}); err == nil {
		t.Error("invalid address accepted")
	}
	many := make([]netip.AddrPort, 0, 8)
	for i := 0; i < 8; i++ {
		many = append(many, netip.AddrPortFrom(testVIP4, uint16(1000+i)))
	}
	if err := p.SetVIPs(many); err == nil {
		t.Error("more VIPs than the map holds accepted")
	}
}

func TestVIPKeyLayout(t *testing.T) {
	k := classify.AddrPortKey(testVIP4, 443)
	want := classify.Key{10: 0xff, 11: 0xff, 12: 10, 13: 200, 14: 0, 15: 1, 16: 0x01, 17: 0xbb, 18: 4}
	if k != want {
		t.Errorf("v4 key %x, want %x", k, want)
	}
	if classify.AddrPortKey(netip.AddrFrom16(testVIP4.As16()), 443) != want {
		t.Error("a v4-mapped config address gives a different key")
	}
	a := testVIP4.As16()
	if classify.ServiceKey(6, &a, 443) == want {
		t.Error("the IPv6 address ::ffff:10.200.0.1 has the IPv4 VIP's key")
	}
}

// BenchmarkProgram times the XDP program in the kernel (BPF_PROG_TEST_RUN
// with a repeat count): ns per frame, JIT-compiled.
func BenchmarkProgram(b *testing.B) {
	requireRoot(b)
	p, err := LoadProgram(ProgramOptions{MaxQueues: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.SetVIPs(testVIPs); err != nil {
		b.Fatal(err)
	}
	syn := tcpHeader(40000, 443, 0x02)
	for _, c := range []struct {
		name string
		f    tframe
	}{
		{"vip_tcp4", tframe{dst: testVIP4, proto: 6, l4: syn}},
		{"vip_tcp6_qinq", tframe{tags: []uint16{0x88a8, 0x8100}, dst: testVIP6, proto: 6, l4: syn}},
		{"vip_tcp6_ah", tframe{dst: testVIP6, ext: []ext6{{typ: 51}}, proto: 6, l4: syn}},
		{"vip_icmp4_frag_needed", tframe{dst: testVIP4, proto: 1, l4: icmpError(3, 4, quote4(testVIP4, 443, testClient4, 40000, 6))}},
		{"not_vip_tcp4", tframe{dst: netip.MustParseAddr("10.99.0.9"), proto: 6, l4: tcpHeader(40000, 22, 0x10)}},
		{"arp", tframe{etype: 0x0806}},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := c.f.bytes()
			_, d, err := p.prog.Benchmark(data, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/frame")
		})
	}
}
