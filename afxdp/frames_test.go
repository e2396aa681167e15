package afxdp

import (
	"encoding/binary"
	"net/netip"

	"github.com/anysched/anysched/parser"
)

// ext6 is one IPv6 extension header of a test frame: its type (0, 43, 60,
// 51 for AH, 44 for a fragment header) and, for a fragment header, the
// offset/flags word.
type ext6 struct {
	typ  byte
	frag uint16
}

// tframe describes a test frame, built byte by byte with correct lengths
// and IPv4 header checksum unless told otherwise.
type tframe struct {
	tags   []uint16 // TPIDs of the VLAN tags, outermost first
	etype  uint16   // 0: from the destination's family
	src    netip.Addr
	dst    netip.Addr
	ttl    byte // 0: 64
	ihl    int  // IPv4 header words (0: 5)
	frag   uint16
	badSum bool
	ext    []ext6
	proto  byte
	l4     []byte
	cut    int // bytes dropped from the end
	pad    int // Ethernet padding after the IP packet
	patch  map[int]byte
}

var (
	testClient4 = netip.MustParseAddr("10.99.0.2")
	testClient6 = netip.MustParseAddr("fd00:99::2")
)

func (f tframe) bytes() []byte {
	b := []byte{2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 0xc1}
	for i, tpid := range f.tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	etype := f.etype
	if etype == 0 {
		etype = 0x0800
		if f.dst.Is6() {
			etype = 0x86dd
		}
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	ttl := f.ttl
	if ttl == 0 {
		ttl = 64
	}
	src := f.src
	if !src.IsValid() {
		src = testClient4
		if f.dst.Is6() {
			src = testClient6
		}
	}
	switch {
	case etype == 0x0800 || (etype != 0x86dd && f.dst.Is4()):
		b = append(b, ipv4Packet(src, f.dst, ttl, f.ihl, f.frag, f.proto, f.l4, f.badSum)...)
	case etype == 0x86dd || f.dst.Is6():
		b = append(b, ipv6Packet(src, f.dst, ttl, f.ext, f.proto, f.l4)...)
	default:
		b = append(b, make([]byte, 46)...) // e.g. ARP
	}
	b = append(b, make([]byte, f.pad)...)
	for off, v := range f.patch {
		b[off] = v
	}
	return b[:len(b)-f.cut]
}

func ipv4Packet(src, dst netip.Addr, ttl byte, ihl int, frag uint16, proto byte, l4 []byte, badSum bool) []byte {
	if ihl == 0 {
		ihl = 5
	}
	h := make([]byte, max(ihl, 5)*4) // IHL below 5 is in the nibble only

	h[0] = 0x40 | byte(ihl&0xf)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(l4)))
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = ttl, proto
	s, d := src.Unmap().As4(), dst.Unmap().As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	if ihl >= 5 {
		sum := parser.IPv4HeaderChecksum(h)
		if badSum {
			sum ^= 0x0101
		}
		binary.BigEndian.PutUint16(h[10:], sum)
	}
	return append(h, l4...)
}

func ipv6Packet(src, dst netip.Addr, hop byte, ext []ext6, proto byte, l4 []byte) []byte {
	var exts []byte
	for i, e := range ext {
		next := proto
		if i+1 < len(ext) {
			next = ext[i+1].typ
		}
		switch e.typ {
		case 51: // AH: payload length 1 → (1+2)*4 = 12 bytes
			exts = append(exts, next, 1)
			exts = append(exts, make([]byte, 10)...)
		case 44:
			exts = append(exts, next, 0)
			exts = binary.BigEndian.AppendUint16(exts, e.frag)
			exts = append(exts, 0, 0, 0, 7)
		default:
			exts = append(exts, next, 0)
			exts = append(exts, make([]byte, 6)...)
		}
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(exts)+len(l4)))
	h[6], h[7] = proto, hop
	if len(ext) > 0 {
		h[6] = ext[0].typ
	}
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(append(h, exts...), l4...)
}

// tcpHeader is a 20-byte TCP header (data offset 5) plus payload.
func tcpHeader(sport, dport uint16, flags byte, payload ...byte) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12] = 5 << 4
	t[13] = flags
	return append(t, payload...)
}

// udpHeader is an 8-byte UDP header.
func udpHeader(sport, dport uint16) []byte {
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], 8)
	return u
}

// icmpError is an ICMP/ICMPv6 header of the given type and code with the
// quoted packet after it.
func icmpError(typ, code byte, quoted []byte) []byte {
	return append([]byte{typ, code, 0, 0, 0, 0, 5, 0xdc}, quoted...)
}

// quote4 is the start of the node's reply vip:vport → client:cport as an
// ICMP error quotes it: the IPv4 header and 8 bytes of the L4 header.
func quote4(vip netip.Addr, vport uint16, client netip.Addr, cport uint16, proto byte) []byte {
	q := ipv4Packet(vip, client, 63, 5, 0, proto, nil, false)
	q = binary.BigEndian.AppendUint16(q, vport)
	q = binary.BigEndian.AppendUint16(q, cport)
	return binary.BigEndian.AppendUint32(q, 12345)
}

// quote6 is quote4 for IPv6, with extension headers.
func quote6(vip netip.Addr, vport uint16, client netip.Addr, cport uint16, proto byte, ext ...ext6) []byte {
	var l4 []byte
	l4 = binary.BigEndian.AppendUint16(l4, vport)
	l4 = binary.BigEndian.AppendUint16(l4, cport)
	l4 = binary.BigEndian.AppendUint32(l4, 12345)
	return ipv6Packet(vip, client, 63, ext, proto, l4)
}
