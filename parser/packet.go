package parser

import (
	"encoding/binary"

	"github.com/anysched/anysched/header"
)

// Limits of ParseFrame.
const (
	// MaxFrameLen is the longest frame ParseFrame accepts; every offset in
	// Packet fits in a uint16.
	MaxFrameLen = 0xffff
	// MaxVLANTags is how many 802.1Q/802.1ad tags may precede the L3 header.
	MaxVLANTags = 2
	// MaxIPv6ExtHeaders bounds the IPv6 extension headers walked before the
	// upper-layer header, so a crafted chain cannot cost more than that.
	MaxIPv6ExtHeaders = 8
)

// The fast paths clear tags 0 and 1 by index; this fails to compile if
// MaxVLANTags changes without them.
const _ = uint(MaxVLANTags-2) + uint(2-MaxVLANTags)

// EtherTypes ParseFrame knows.
const (
	EtherTypeIPv4   uint16 = 0x0800
	EtherTypeIPv6   uint16 = 0x86dd
	EtherTypeVLAN   uint16 = 0x8100 // 802.1Q C-tag
	EtherTypeQinQ   uint16 = 0x88a8 // 802.1ad S-tag
	EtherTypeQinQv1 uint16 = 0x9100 // pre-standard S-tag, still seen in the wild
)

// IP protocol numbers ParseFrame knows.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoICMPv6 uint8 = 58
)

// TCP flags as found in byte 13 of the TCP header (Packet.TCPFlags).
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// PacketFlags are facts about a frame that are not part of the 5-tuple.
type PacketFlags uint8

// Values of Packet.Flags.
const (
	// FlagFragment: the IP packet is a fragment (more-fragments set or a
	// non-zero offset). A first fragment still has its TCP header parsed.
	FlagFragment PacketFlags = 1 << iota
	// FlagNonFirstFragment: fragment offset is non-zero; no L4 header.
	FlagNonFirstFragment
	// FlagIPv4Options: the IPv4 header is longer than 20 bytes.
	FlagIPv4Options
	// FlagIPv6ExtHeaders: at least one IPv6 extension header was skipped.
	FlagIPv6ExtHeaders
)

// Packet is the result of reading one frame in place. Offsets count from the
// first byte of the frame; Payload is a sub-slice of it, so a Packet is valid
// only as long as the frame's buffer is. ParseFrame overwrites every field.
type Packet struct {
	// Flow is the TCP 5-tuple as the client sent it (source = client). For an
	// ICMP error it is the quoted flow reversed: client → VIP.
	Flow FlowKey
	// Payload is the TCP payload (without Ethernet padding). Nil for ICMP
	// errors.
	Payload []byte

	// L3Off is where the IPv4/IPv6 header starts; L3End is where the IP
	// packet ends (any bytes after it are link-layer padding).
	L3Off, L3End uint16
	// L4Off is where the TCP (or ICMP) header starts.
	L4Off uint16
	// PayloadOff is where Payload starts.
	PayloadOff uint16
	// TTLOff is the offset of the IPv4 TTL or the IPv6 hop limit.
	TTLOff uint16
	// IPv4ChecksumOff is the offset of the IPv4 header checksum (0 for
	// IPv6). Use UpdateChecksum16 when rewriting a header field.
	IPv4ChecksumOff uint16

	// VLANOff[i] is the offset of tag i (its 2-byte TPID, then its 2-byte
	// TCI), outermost first; VLANTCI[i] is that tag's TCI.
	VLANOff [MaxVLANTags]uint16
	// VLANTCI holds the tag control information of each tag.
	VLANTCI [MaxVLANTags]uint16
	// VLANCount is how many tags there are (0..MaxVLANTags).
	VLANCount uint8

	// EtherType is the EtherType of the L3 header (after the tags).
	EtherType uint16
	// IPVersion is 4 or 6, 0 before an IP header was seen.
	IPVersion uint8
	// Flags holds fragment and header facts.
	Flags PacketFlags

	// TCPFlags is byte 13 of the TCP header (TCPFlagSYN, ...).
	TCPFlags uint8
	// Seq and Ack are the TCP sequence and acknowledgment numbers. For an
	// ICMP error Seq is the quoted segment's sequence number (the node's).
	Seq, Ack uint32

	// ICMPError reports an ICMP (type 3, 11, 12) or ICMPv6 (type 1..4) error
	// quoting a TCP packet; Flow then names the quoted flow client → VIP and
	// L4Off points at the ICMP header.
	ICMPError bool
	// ICMPType and ICMPCode are the error's type and code.
	ICMPType, ICMPCode uint8
	// ICMPMTU is the next-hop MTU of an IPv4 "fragmentation needed"
	// (type 3 code 4) or an ICMPv6 "packet too big" error, else 0.
	ICMPMTU uint32
}

// ParseFrame reads an Ethernet II frame in place into p and returns StatusOK
// or the reason it is not a TCP segment (or an ICMP error quoting one). It
// never allocates and never panics; on a non-OK status the fields read so
// far are set and the rest are zero.
func ParseFrame(frame []byte, p *Packet) Status {
	// The usual frame: untagged IPv4 without options or fragmentation,
	// carrying TCP. One straight pass; anything else takes the general path,
	// which gives the same result (FuzzParseFrame checks).
	if len(frame) >= header.EthernetHeaderLen+header.IPv4MinimumHeaderLen+header.TCPMinimumHeaderLen && len(frame) <= MaxFrameLen {
		h := frame[header.EthernetHeaderLen : header.EthernetHeaderLen+header.IPv4MinimumHeaderLen]
		// Little-endian words of the IPv4 header: a = version/IHL, TOS,
		// total length, ID, flags/fragment offset; b = TTL, protocol,
		// checksum, source; c = destination.
		a, b := binary.LittleEndian.Uint64(h[header.IPv4VersionIHLOffset:]), binary.LittleEndian.Uint64(h[header.IPv4TTLOffset:])
		c := binary.LittleEndian.Uint32(h[header.IPv4DstAddrOffset:])
		// The one's-complement sum does not depend on byte order (RFC 1071
		// §2(B)), and 0xffff reads the same either way.
		sum := a&0xffffffff + a>>32 + b&0xffffffff + b>>32 + uint64(c)
		sum = sum&0xffff + sum>>16
		sum = sum&0xffff + sum>>16
		sum = sum&0xffff + sum>>16
		// EtherType IPv4, version 4 with IHL 5, no MF and offset 0 (DF may
		// be set), protocol TCP: all in one test.
		shape := uint64(binary.LittleEndian.Uint16(frame[header.EthernetTypeOffset:])^0x0008) | (a&0xff ^ 0x45) | (a>>48)&0xff3f | (b>>8&0xff ^ uint64(ProtoTCP))
		total := int(be16(h[header.IPv4TotalLenOffset:]))
		if shape == 0 && total >= header.IPv4MinimumHeaderLen+header.TCPMinimumHeaderLen && header.EthernetHeaderLen+total <= len(frame) && sum == 0xffff {
			const l4 = header.EthernetHeaderLen + header.IPv4MinimumHeaderLen
			end := header.EthernetHeaderLen + total
			t := frame[l4:end]
			doff := int(t[header.TCPDataOffsetOffset]>>4) * 4
			if doff >= header.TCPMinimumHeaderLen && doff <= len(t) {
				// Field by field: a composite literal is built on the stack
				// and copied.
				p.Payload = t[doff:]
				p.L3Off, p.L3End, p.L4Off, p.PayloadOff = header.EthernetHeaderLen, uint16(end), l4, uint16(l4+doff)
				p.TTLOff, p.IPv4ChecksumOff = header.EthernetHeaderLen+header.IPv4TTLOffset, header.EthernetHeaderLen+header.IPv4ChecksumOffset
				p.VLANOff[0], p.VLANOff[1], p.VLANTCI[0], p.VLANTCI[1], p.VLANCount = 0, 0, 0, 0, 0
				p.EtherType, p.IPVersion, p.Flags = EtherTypeIPv4, 4, 0
				p.TCPFlags, p.Seq, p.Ack = t[header.TCPFlagsOffset], be32(t[header.TCPSeqNumOffset:]), be32(t[header.TCPAckNumOffset:])
				p.ICMPError, p.ICMPType, p.ICMPCode, p.ICMPMTU = false, 0, 0, 0
				p.Flow.setIPv4LE(uint32(b>>32), c)
				p.Flow.SrcPort = be16(t[header.TCPSrcPortOffset:])
				p.Flow.DstPort = be16(t[header.TCPDstPortOffset:])
				p.Flow.Proto = ProtoTCP
				return StatusOK
			}
		}
	}
	if len(frame) >= header.EthernetHeaderLen+header.IPv6HeaderLen+header.TCPMinimumHeaderLen && len(frame) <= MaxFrameLen &&
		be16(frame[header.EthernetTypeOffset:]) == EtherTypeIPv6 && frame[header.EthernetHeaderLen]>>4 == header.IPv6Version &&
		frame[header.EthernetHeaderLen+header.IPv6NextHeaderOffset] == ProtoTCP {
		if parseIPv6TCP(frame, p) {
			return StatusOK
		}
	}
	return parseFrameGeneral(frame, p)
}

// parseIPv6TCP is the fast path for untagged IPv6 carrying TCP directly (no
// extension headers). It returns false, leaving the frame to the general
// path, when a length does not fit.
func parseIPv6TCP(frame []byte, p *Packet) bool {
	const l3, l4 = header.EthernetHeaderLen, header.EthernetHeaderLen + header.IPv6HeaderLen
	h := frame[l3:l4]
	plen := int(be16(h[header.IPv6PayloadLenOffset:]))
	end := l4 + plen
	if plen < header.TCPMinimumHeaderLen || end > len(frame) {
		return false
	}
	t := frame[l4:end]
	doff := int(t[header.TCPDataOffsetOffset]>>4) * 4
	if doff < header.TCPMinimumHeaderLen || doff > len(t) {
		return false
	}
	p.Payload = t[doff:]
	p.L3Off, p.L3End, p.L4Off, p.PayloadOff = l3, uint16(end), l4, uint16(l4+doff)
	p.TTLOff, p.IPv4ChecksumOff = l3+header.IPv6HopLimitOffset, 0
	p.VLANOff[0], p.VLANOff[1], p.VLANTCI[0], p.VLANTCI[1], p.VLANCount = 0, 0, 0, 0, 0
	p.EtherType, p.IPVersion, p.Flags = EtherTypeIPv6, 6, 0
	p.TCPFlags, p.Seq, p.Ack = t[header.TCPFlagsOffset], be32(t[header.TCPSeqNumOffset:]), be32(t[header.TCPAckNumOffset:])
	p.ICMPError, p.ICMPType, p.ICMPCode, p.ICMPMTU = false, 0, 0, 0
	p.Flow.Src = [16]byte(h[header.IPv6SrcAddrOffset:header.IPv6DstAddrOffset])
	p.Flow.Dst = [16]byte(h[header.IPv6DstAddrOffset:header.IPv6HeaderLen])
	p.Flow.Family = FamilyIPv6
	p.Flow.SrcPort = be16(t[header.TCPSrcPortOffset:])
	p.Flow.DstPort = be16(t[header.TCPDstPortOffset:])
	p.Flow.Proto = ProtoTCP
	return true
}

// parseFrameGeneral is ParseFrame for every kind of frame.
func parseFrameGeneral(frame []byte, p *Packet) Status {
	*p = Packet{}
	if len(frame) > MaxFrameLen {
		return StatusFrameTooLong
	}
	off, st := parseEthernet(frame, p)
	if st != StatusOK {
		return st
	}
	switch p.EtherType {
	case EtherTypeIPv4:
		return parseIPv4(frame, off, p)
	case EtherTypeIPv6:
		return parseIPv6(frame, off, p)
	}
	return StatusNotIP
}

// UpdateChecksum16 returns the Internet checksum after one 16-bit word of
// the covered data changed from old to new (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')): the general form of the update fastpath
// specialises for its TTL decrement, and the reference its tests check
// that against.
func UpdateChecksum16(check, old, new uint16) uint16 {
	sum := uint32(^check) + uint32(^old) + uint32(new)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	return ^uint16(sum)
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
