package packettest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/codepoint"
	"github.com/anysched/anysched/parser"
)

// The MACs of frames built here: a client sending to the router.
var (
	RouterMAC = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
	ClientMAC = [6]byte{0x02, 0, 0, 0, 0, 0xc1}
)

// TCP describes one client TCP segment in an Ethernet frame from
// ClientMAC to RouterMAC. Src and Dst of the same family choose IPv4 or
// IPv6; Flags are parser.TCPFlag* bits.
type TCP struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Flags            uint8
	Seq              uint32
	// TTL is the IPv4 TTL or IPv6 hop limit (0: 64).
	TTL     uint8
	Payload []byte
	// VLAN, when not 0, adds one 802.1Q tag.
	VLAN uint16
}

// Frame serializes s with correct lengths and checksums (IPv4 with DF).
func Frame(t testing.TB, s TCP) []byte {
	t.Helper()
	if s.TTL == 0 {
		s.TTL = 64
	}
	eth := &layers.Ethernet{SrcMAC: ClientMAC[:], DstMAC: RouterMAC[:]}
	ls := []gopacket.SerializableLayer{eth}
	ipType := layers.EthernetTypeIPv4
	if s.Src.Is6() {
		ipType = layers.EthernetTypeIPv6
	}
	if s.VLAN != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.VLAN, Type: ipType})
	} else {
		eth.EthernetType = ipType
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.SrcPort), DstPort: layers.TCPPort(s.DstPort), Seq: s.Seq, Window: 65535,
		FIN: s.Flags&parser.TCPFlagFIN != 0, SYN: s.Flags&parser.TCPFlagSYN != 0,
		RST: s.Flags&parser.TCPFlagRST != 0, PSH: s.Flags&parser.TCPFlagPSH != 0,
		ACK: s.Flags&parser.TCPFlagACK != 0,
	}
	if s.Src.Is6() {
		ip := &layers.IPv6{Version: 6, HopLimit: s.TTL, NextHeader: layers.IPProtocolTCP,
			SrcIP: s.Src.AsSlice(), DstIP: s.Dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: s.TTL, Protocol: layers.IPProtocolTCP,
			SrcIP: s.Src.AsSlice(), DstIP: s.Dst.AsSlice(), Flags: layers.IPv4DontFragment}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	}
	ls = append(ls, tcp, gopacket.Payload(s.Payload))
	return serialize(t, ls...)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ICMPFragNeeded is an ICMPv4 "fragmentation needed" from a router on the
// path to the client, quoting the node's reply segment of the flow
// client:sport → vip:dport (so the quoted packet is VIP → client).
func ICMPFragNeeded(t testing.TB, client, vip netip.Addr, sport, dport uint16) []byte {
	t.Helper()
	quoted := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolTCP,
		SrcIP: vip.AsSlice(), DstIP: client.AsSlice(), Length: 1500}
	qb := gopacket.NewSerializeBuffer()
	if err := quoted.SerializeTo(qb, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	q := append([]byte(nil), qb.Bytes()...)
	q = quotedPorts(q, sport, dport)
	eth := &layers.Ethernet{SrcMAC: ClientMAC[:], DstMAC: RouterMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 60, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.IP{192, 0, 2, 1}, DstIP: vip.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
	return serialize(t, eth, ip, icmp, gopacket.Payload(q))
}

// ICMPv6TooBig is an ICMPv6 "packet too big" from a router on the path,
// quoting the node's reply of the flow client:sport → vip:dport.
func ICMPv6TooBig(t testing.TB, client, vip netip.Addr, sport, dport uint16, mtu uint32) []byte {
	t.Helper()
	quoted := &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: layers.IPProtocolTCP,
		SrcIP: vip.AsSlice(), DstIP: client.AsSlice(), Length: 1400}
	qb := gopacket.NewSerializeBuffer()
	if err := quoted.SerializeTo(qb, gopacket.SerializeOptions{}); err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, mtu)
	body = append(body, qb.Bytes()...)
	body = quotedPorts(body, sport, dport)
	eth := &layers.Ethernet{SrcMAC: ClientMAC[:], DstMAC: RouterMAC[:], EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 60, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: netip.MustParseAddr("2001:db8:ffff::1").AsSlice(), DstIP: vip.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, icmp, gopacket.Payload(body))
}

// quotedPorts appends the first 8 bytes of the quoted reply's TCP header:
// the node's port (the VIP's), the client's, and a sequence number.
func quotedPorts(b []byte, sport, dport uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint32(b, 12345)
}

// ClientHello is a TLS 1.3 ClientHello record with SNI example.test and,
// when migration is set, an empty migration_support extension. pad adds a
// padding extension of that many bytes to make it span segments.
func ClientHello(migration bool, pad int) []byte {
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
		addExt(codepoint.MigrationSupport, nil)
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
