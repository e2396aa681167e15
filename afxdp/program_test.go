package afxdp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
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

// frame is a hand-built test frame description.
type frame struct {
	vlans   int // 802.1Q/802.1ad tags
	etype   uint16
	dst     netip.Addr
	ttl     byte
	proto   byte
	dport   uint16
	icmp    byte // ICMP type when proto is ICMP/ICMPv6
	ihl     int  // IPv4 header words (0: 5)
	fragOff uint16
	cut     int // bytes to drop from the end
}

func (f frame) bytes() []byte {
	b := make([]byte, 0, 128)
	b = append(b, 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2) // dst, src MAC
	tags := []uint16{0x88a8, 0x8100}
	for i := 0; i < f.vlans; i++ {
		b = binary.BigEndian.AppendUint16(b, tags[(i+2-f.vlans)%2])
		b = binary.BigEndian.AppendUint16(b, uint16(100+i)) // TCI
	}
	etype := f.etype
	if etype == 0 {
		etype = 0x0800
		if f.dst.Is6() {
			etype = 0x86dd
		}
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], 40000)
	binary.BigEndian.PutUint16(l4[2:], f.dport)
	if f.proto == 1 || f.proto == 58 {
		l4[0], l4[1] = f.icmp, 0
	}
	switch etype {
	case 0x0800:
		ihl := f.ihl
		if ihl == 0 {
			ihl = 5
		}
		h := make([]byte, ihl*4)
		h[0] = 0x40 | byte(ihl)
		binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(l4)))
		binary.BigEndian.PutUint16(h[6:], f.fragOff)
		h[8], h[9] = f.ttl, f.proto
		copy(h[12:], []byte{10, 99, 0, 1})
		d := f.dst.As4()
		copy(h[16:], d[:])
		b = append(append(b, h...), l4...)
	case 0x86dd:
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
		h[6], h[7] = f.proto, f.ttl
		h[8], h[23] = 0xfd, 1
		d := f.dst.As16()
		copy(h[24:], d[:])
		b = append(append(b, h...), l4...)
	default:
		b = append(b, make([]byte, 46)...) // e.g. ARP payload
	}
	return b[:len(b)-f.cut]
}

func TestLoadProgramPassesVerifier(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer p.Close()
}

// TestProgramVerdicts runs the program on hand-built frames with
// BPF_PROG_TEST_RUN. No socket is in the XSK map, so a frame the program
// redirects comes back as XDP_PASS and counts as pass_no_socket: that
// counter is "would have gone to the socket".
func TestProgramVerdicts(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{MaxQueues: 4})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer p.Close()
	vips := []netip.AddrPort{netip.AddrPortFrom(testVIP4, 443), netip.AddrPortFrom(testVIP6, 443)}
	if err := p.SetVIPs(vips); err != nil {
		t.Fatal(err)
	}
	other4 := netip.MustParseAddr("10.99.0.2")
	other6 := netip.MustParseAddr("fd00:99::2")
	toSocket := CounterPassNoSocket
	cases := []struct {
		name string
		f    frame
		want Counter
	}{
		{"v4 tcp vip", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443}, toSocket},
		{"v4 tcp vip other port", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 80}, CounterPassNotVIP},
		{"v4 tcp router", frame{dst: other4, ttl: 64, proto: 6, dport: 443}, CounterPassNotVIP},
		{"v4 udp vip", frame{dst: testVIP4, ttl: 64, proto: 17, dport: 443}, CounterPassNotVIP},
		{"v4 ttl 1", frame{dst: testVIP4, ttl: 1, proto: 6, dport: 443}, CounterPassTTL},
		{"v4 ttl 0", frame{dst: testVIP4, ttl: 0, proto: 6, dport: 443}, CounterPassTTL},
		{"v4 ttl 2", frame{dst: testVIP4, ttl: 2, proto: 6, dport: 443}, toSocket},
		{"v4 options", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, ihl: 7}, toSocket},
		{"v4 bad ihl", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, ihl: 4}, CounterPassMalformed},
		{"v4 short", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, cut: 30}, CounterPassMalformed},
		{"v4 tcp header cut", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, cut: 18}, CounterPassMalformed},
		{"v4 first fragment", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, fragOff: 0x2000}, toSocket},
		{"v4 later fragment", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 9, fragOff: 0x00b9}, toSocket},
		{"v4 later fragment not vip", frame{dst: other4, ttl: 64, proto: 6, fragOff: 0x00b9}, CounterPassNotVIP},
		{"v4 icmp unreachable to vip", frame{dst: testVIP4, ttl: 64, proto: 1, icmp: 3}, toSocket},
		{"v4 icmp time exceeded to vip", frame{dst: testVIP4, ttl: 64, proto: 1, icmp: 11}, toSocket},
		{"v4 icmp echo to vip", frame{dst: testVIP4, ttl: 64, proto: 1, icmp: 8}, CounterPassNotVIP},
		{"v4 icmp unreachable to router", frame{dst: other4, ttl: 64, proto: 1, icmp: 3}, CounterPassNotVIP},
		{"v4 802.1Q", frame{vlans: 1, dst: testVIP4, ttl: 64, proto: 6, dport: 443}, toSocket},
		{"v4 QinQ", frame{vlans: 2, dst: testVIP4, ttl: 64, proto: 6, dport: 443}, toSocket},
		{"v4 QinQ not vip", frame{vlans: 2, dst: other4, ttl: 64, proto: 6, dport: 443}, CounterPassNotVIP},
		{"v4 vlan cut", frame{vlans: 1, dst: testVIP4, ttl: 64, proto: 6, dport: 443, cut: 42}, CounterPassMalformed},
		{"arp", frame{etype: 0x0806}, CounterPassNonIP},
		{"arp in vlan", frame{vlans: 1, etype: 0x0806}, CounterPassNonIP},
		{"v6 tcp vip", frame{dst: testVIP6, ttl: 64, proto: 6, dport: 443}, toSocket},
		{"v6 tcp vip other port", frame{dst: testVIP6, ttl: 64, proto: 6, dport: 444}, CounterPassNotVIP},
		{"v6 tcp router", frame{dst: other6, ttl: 64, proto: 6, dport: 443}, CounterPassNotVIP},
		{"v6 hop limit 1", frame{dst: testVIP6, ttl: 1, proto: 6, dport: 443}, CounterPassTTL},
		{"v4 ttl 1 not vip", frame{dst: other4, ttl: 1, proto: 6, dport: 443}, CounterPassNotVIP},
		{"v6 hop limit 1 not vip (MLD)", frame{dst: other6, ttl: 1, proto: 0}, CounterPassNotVIP},
		{"v6 QinQ", frame{vlans: 2, dst: testVIP6, ttl: 64, proto: 6, dport: 443}, toSocket},
		{"v6 packet too big to vip", frame{dst: testVIP6, ttl: 64, proto: 58, icmp: 2}, toSocket},
		{"v6 unreachable to vip", frame{dst: testVIP6, ttl: 64, proto: 58, icmp: 1}, toSocket},
		{"v6 neighbour solicitation", frame{dst: testVIP6, ttl: 255, proto: 58, icmp: 135}, CounterPassNotVIP},
		{"v6 echo to vip", frame{dst: testVIP6, ttl: 64, proto: 58, icmp: 128}, CounterPassNotVIP},
		{"v6 fragment header to vip", frame{dst: testVIP6, ttl: 64, proto: 44}, toSocket},
		{"v6 hop-by-hop to router", frame{dst: other6, ttl: 64, proto: 0}, CounterPassNotVIP},
		{"v6 short", frame{dst: testVIP6, ttl: 64, proto: 6, dport: 443, cut: 30}, CounterPassMalformed},
		{"v6 tcp header cut", frame{dst: testVIP6, ttl: 64, proto: 6, dport: 443, cut: 18}, CounterPassMalformed},
		{"v4-mapped in v6 header is not the v4 VIP", frame{dst: netip.AddrFrom16(testVIP4.As16()), ttl: 64, proto: 6, dport: 443, etype: 0x86dd}, CounterPassNotVIP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runVerdict(t, p, c.f.bytes())
			if got != c.want {
				t.Errorf("counter %s, want %s", got, c.want)
			}
		})
	}

	// A reload that drops the v4 VIP stops its redirection.
	if err := p.SetVIPs(vips[1:]); err != nil {
		t.Fatal(err)
	}
	if got := runVerdict(t, p, frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443}.bytes()); got != CounterPassNotVIP {
		t.Errorf("after removing the VIP: %s, want %s", got, CounterPassNotVIP)
	}
	if got := runVerdict(t, p, frame{dst: testVIP4, ttl: 64, proto: 1, icmp: 3}.bytes()); got != CounterPassNotVIP {
		t.Errorf("ICMP after removing the VIP: %s, want %s", got, CounterPassNotVIP)
	}
	if got := runVerdict(t, p, frame{dst: testVIP6, ttl: 64, proto: 6, dport: 443}.bytes()); got != toSocket {
		t.Errorf("kept VIP: %s, want %s", got, toSocket)
	}
}

// runVerdict runs the program once and returns the one counter that moved.
func runVerdict(t *testing.T, p *Program, data []byte) Counter {
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
	moved := Counter(-1)
	for i := range after {
		if d := after[i] - before[i]; d == 1 && moved < 0 {
			moved = Counter(i)
		} else if d != 0 {
			t.Fatalf("counter %s moved by %d", Counter(i), d)
		}
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
	k := vipKey(testVIP4, 443)
	want := [vipKeySize]byte{10: 0xff, 11: 0xff, 12: 10, 13: 200, 14: 0, 15: 1, 16: 0x01, 17: 0xbb}
	if k != want {
		t.Errorf("v4 key %x, want %x", k, want)
	}
	if vipKey(netip.AddrFrom16(testVIP4.As16()), 443) != want {
		t.Error("v4-mapped address gives a different key")
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
	if err := p.SetVIPs([]netip.AddrPort{netip.AddrPortFrom(testVIP4, 443), netip.AddrPortFrom(testVIP6, 443)}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    frame
	}{
		{"vip_tcp4", frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443}},
		{"vip_tcp6_qinq", frame{vlans: 2, dst: testVIP6, ttl: 64, proto: 6, dport: 443}},
		{"not_vip_tcp4", frame{dst: netip.MustParseAddr("10.99.0.2"), ttl: 64, proto: 6, dport: 22}},
		{"arp", frame{etype: 0x0806}},
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
