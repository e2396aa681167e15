package fastpath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

var (
	routerMAC = MAC{0x02, 0, 0, 0, 0, 0xfe}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc1}
	vip4      = netip.MustParseAddr("10.200.0.1")
	vip6      = netip.MustParseAddr("fd00:200::1")
)

// testConfig has two nodes with configured MACs (02:..:0a, 02:..:0b), a
// TLS VIP on IPv4 and IPv6 port 443 and a non-TLS VIP on port 80. weightA
// overrides node a's weight (-1: capacity).
func testConfig(t testing.TB, weightA int) *sched.Config {
	t.Helper()
	w := ""
	if weightA >= 0 {
		w = "        weight: " + itoa(weightA) + "\n"
	}
	y := `vips:
  - address: 10.200.0.1
    port: 443
    tls: true
  - address: fd00:200::1
    port: 443
    tls: true
  - address: 10.200.0.1
    port: 80
    tls: false
pools:
  - name: p
    nodes:
      - name: a
        address: 10.201.0.11
        mac: "02:00:00:00:00:0a"
` + w + `      - name: b
        address: 10.201.0.12
        mac: "02:00:00:00:00:0b"
table:
  size: 1009
  seed: "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64"
grace_period: 1s
pins:
  capacity: 4096
  idle_timeout: 1m
transitions:
  capacity: 4096
`
	cfg, err := sched.ParseConfig([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

// fakeClock is a settable lookup.Now-scale clock.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64 { return c.t.Load() }

func newTestScheduler(t testing.TB, clk *fakeClock) *sched.Scheduler {
	t.Helper()
	s, err := sched.New(testConfig(t, -1), sched.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type frameSpec struct {
	src     netip.Addr
	dst     netip.Addr
	sport   uint16
	dport   uint16
	flags   uint8
	seq     uint32
	ttl     uint8
	payload []byte
	vlan    uint16 // 0: untagged
}

func buildFrame(t testing.TB, s frameSpec) []byte {
	t.Helper()
	if s.ttl == 0 {
		s.ttl = 64
	}
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: net.HardwareAddr(routerMAC[:])}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	ipType := layers.EthernetTypeIPv4
	if s.src.Is6() {
		ipType = layers.EthernetTypeIPv6
	}
	if s.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlan, Type: ipType})
	} else {
		eth.EthernetType = ipType
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Window: 65535,
		FIN: s.flags&parser.TCPFlagFIN != 0, SYN: s.flags&parser.TCPFlagSYN != 0,
		RST: s.flags&parser.TCPFlagRST != 0, PSH: s.flags&parser.TCPFlagPSH != 0,
		ACK: s.flags&parser.TCPFlagACK != 0,
	}
	if s.src.Is6() {
		ip := &layers.IPv6{Version: 6, HopLimit: s.ttl, NextHeader: layers.IPProtocolTCP,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: s.ttl, Protocol: layers.IPProtocolTCP,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), Flags: layers.IPv4DontFragment}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	}
	ls = append(ls, tcp, gopacket.Payload(s.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// buildICMPFragNeeded builds an ICMPv4 "fragmentation needed" from a router
// on the path to the client, quoting the node's reply segment of the flow
// client:sport → vip:dport (so the quoted packet is VIP → client).
func buildICMPFragNeeded(t testing.TB, client, vip netip.Addr, sport, dport uint16) []byte {
	t.Helper()
	quoted := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolTCP,
		SrcIP: vip.AsSlice(), DstIP: client.AsSlice(), Length: 1500}
	qb := gopacket.NewSerializeBuffer()
	if err := quoted.SerializeTo(qb, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	q := append([]byte(nil), qb.Bytes()...)
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4[0:], dport)
	binary.BigEndian.PutUint16(l4[2:], sport)
	binary.BigEndian.PutUint32(l4[4:], 12345)
	q = append(q, l4...)
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: net.HardwareAddr(routerMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 60, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.IP{192, 0, 2, 1}, DstIP: vip.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, icmp, gopacket.Payload(q)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// clientHello builds a TLS 1.3 ClientHello record with SNI and, when
// migration is set, an empty migration_support extension (0xFE4D). pad
// adds a padding extension of that many bytes to make it span segments.
func clientHello(migration bool, pad int) []byte {
	var ext []byte
	addExt := func(typ uint16, body []byte) {
		ext = binary.BigEndian.AppendUint16(ext, typ)
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(body)))
		ext = append(ext, body...)
	}
	host := []byte("example.test")
	sni := binary.BigEndian.AppendUint16(nil, uint16(len(host)+3))
	sni = append(sni, 0)
	sni = binary.BigEndian.AppendUint16(sni, uint16(len(host)))
	sni = append(sni, host...)
	addExt(0, sni)
	addExt(43, []byte{2, 0x03, 0x04})
	if migration {
		addExt(parser.DefaultMigrationSupport, nil)
	}
	if pad > 0 {
		addExt(21, make([]byte, pad))
	}
	var body []byte
	body = append(body, 0x03, 0x03)
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 32)
	body = append(body, make([]byte, 32)...) // session id
	body = append(body, 0, 2, 0x13, 0x01)    // cipher suites
	body = append(body, 1, 0)                // compression
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	hs := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	hs = append(hs, body...)
	rec := []byte{0x16, 0x03, 0x01, byte(len(hs) >> 8), byte(len(hs))}
	return append(rec, hs...)
}

// buildICMPv6TooBig builds an ICMPv6 "packet too big" from a router on the
// path, quoting the node's reply of the flow client:sport → vip:dport.
func buildICMPv6TooBig(t testing.TB, client, vip netip.Addr, sport, dport uint16, mtu uint32) []byte {
	t.Helper()
	quoted := &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: layers.IPProtocolTCP,
		SrcIP: vip.AsSlice(), DstIP: client.AsSlice(), Length: 1400}
	qb := gopacket.NewSerializeBuffer()
	if err := quoted.SerializeTo(qb, gopacket.SerializeOptions{}); err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, mtu)
	body = append(body, qb.Bytes()...)
	body = binary.BigEndian.AppendUint16(body, dport)
	body = binary.BigEndian.AppendUint16(body, sport)
	body = binary.BigEndian.AppendUint32(body, 12345)
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: net.HardwareAddr(routerMAC[:]), EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: netip.MustParseAddr("2001:db8:ffff::1").AsSlice(), DstIP: vip.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, icmp, gopacket.Payload(body)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}
