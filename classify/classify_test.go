package classify

import (
	"net/netip"
	"testing"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

var (
	vip4    = netip.MustParseAddr("10.200.0.1")
	vip6    = netip.MustParseAddr("fd00:200::1")
	client4 = netip.MustParseAddr("10.99.0.2")
	client6 = netip.MustParseAddr("fd00:99::2")
)

// The model on frames built by packettest (correct checksums); the XDP
// program is held to the model by afxdp's BPF_PROG_TEST_RUN tests, which
// cover every class.
func TestFrame(t *testing.T) {
	vips := NewVIPs([]netip.AddrPort{netip.AddrPortFrom(vip4, 443), netip.AddrPortFrom(vip6, 443)})
	syn := func(src, dst netip.Addr, dport uint16, ttl uint8) []byte {
		return packettest.Frame(t, packettest.TCP{Src: src, Dst: dst, SrcPort: 40000, DstPort: dport, Flags: parser.TCPFlagSYN, TTL: ttl})
	}
	badSum := syn(client4, vip4, 443, 0)
	badSum[14+10] ^= 1
	cases := []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"v4 vip", syn(client4, vip4, 443, 0), Redirect},
		{"v6 vip", syn(client6, vip6, 443, 0), Redirect},
		{"v4 vip other port", syn(client4, vip4, 80, 0), PassVIPOther},
		{"v4 other address", syn(client4, client4, 443, 0), PassNotVIP},
		{"ttl 1", syn(client4, vip4, 443, 1), PassTTL},
		{"bad header checksum", badSum, PassMalformed},
		{"v6 to ::ffff:10.200.0.1", syn(client6, netip.AddrFrom16(vip4.As16()), 443, 0), PassNotVIP},
		{"frag needed quoting the vip", packettest.ICMPFragNeeded(t, client4, vip4, 40000, 443), Redirect},
		{"frag needed quoting another port", packettest.ICMPFragNeeded(t, client4, vip4, 40000, 22), PassVIPICMP},
		{"too big quoting the vip", packettest.ICMPv6TooBig(t, client6, vip6, 40000, 443, 1280), Redirect},
		{"arp", append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6}, make([]byte, 28)...), PassNonIP},
		{"runt", []byte{1, 2, 3}, PassMalformed},
		{"too long", append(syn(client4, vip4, 443, 0), make([]byte, MaxFrameLen)...), PassTooLong},
	}
	var p parser.Packet
	for _, c := range cases {
		if got := vips.Frame(c.frame, &p); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { vips.Frame(cases[0].frame, &p) }); n != 0 {
		t.Errorf("Frame allocates %v times", n)
	}
}

func TestKeys(t *testing.T) {
	vips := NewVIPs([]netip.AddrPort{netip.AddrPortFrom(vip4, 443), netip.AddrPortFrom(vip4, 8443), {}, netip.AddrPortFrom(vip6, 0)})
	if got := len(vips.Keys()); got != 3 { // two services and their one address; the bad entries ignored
		t.Fatalf("%d keys", got)
	}
	if AddrPortKey(vip4, 443)[KeyFamilyOffset] != parser.FamilyIPv4 || AddrPortKey(vip6, 443)[KeyFamilyOffset] != parser.FamilyIPv6 {
		t.Fatal("family byte")
	}
	if Verdict(200).String() != "unknown_verdict" || PassVIPICMP.String() != "pass_vip_icmp" {
		t.Fatal("names")
	}
}
