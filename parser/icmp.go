package parser

import "github.com/anysched/anysched/header"

// ICMP error types that quote the offending packet.
const (
	ICMPv4DestUnreachable uint8 = 3
	ICMPv4TimeExceeded    uint8 = 11
	ICMPv4ParamProblem    uint8 = 12
	ICMPv4CodeFragNeeded  uint8 = 4 // with ICMPv4DestUnreachable

	ICMPv6DestUnreachable uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
)

// icmpHeaderLen is type, code, checksum and the 4-byte rest of header; the
// quoted packet follows it.
const icmpHeaderLen = 8

// quotedTCPLen is how much of the quoted TCP header an ICMP error must carry
// (RFC 792 guarantees 8 bytes): ports and sequence number.
const quotedTCPLen = 8

// parseICMPv4 reads an ICMP error at off and the IPv4+TCP packet it quotes.
func parseICMPv4(frame []byte, off int, p *Packet) Status {
	p.L4Off = uint16(off)
	b := frame[off:]
	if len(b) < icmpHeaderLen {
		return StatusICMPTruncated
	}
	p.ICMPType, p.ICMPCode = b[header.ICMPTypeOffset], b[header.ICMPCodeOffset]
	switch p.ICMPType {
	case ICMPv4DestUnreachable, ICMPv4TimeExceeded, ICMPv4ParamProblem:
	default:
		return StatusICMPNotError
	}
	if p.ICMPType == ICMPv4DestUnreachable && p.ICMPCode == ICMPv4CodeFragNeeded {
		p.ICMPMTU = uint32(be16(b[header.ICMPv4MTUOffset:]))
	}
	q := b[icmpHeaderLen:]
	if len(q) < header.IPv4MinimumHeaderLen {
		return StatusICMPTruncated
	}
	ihl := int(q[0]&0x0f) * 4
	if q[0]>>4 != 4 || ihl < header.IPv4MinimumHeaderLen || q[9] != ProtoTCP || be16(q[6:8])&0x1fff != 0 {
		return StatusICMPQuoteNotTCP
	}
	if len(q) < ihl+quotedTCPLen {
		return StatusICMPTruncated
	}
	// The quoted packet went node (VIP) → client; the flow is the reverse.
	p.Flow.SetIPv4(q[16:20], q[12:16])
	p.Flow.Proto = ProtoTCP
	setQuotedTCP(q[ihl:], p)
	return StatusOK
}

// parseICMPv6 reads an ICMPv6 error at off and the IPv6+TCP packet it
// quotes, walking the quoted extension headers.
func parseICMPv6(frame []byte, off int, p *Packet) Status {
	p.L4Off = uint16(off)
	b := frame[off:]
	if len(b) < icmpHeaderLen {
		return StatusICMPTruncated
	}
	p.ICMPType, p.ICMPCode = b[header.ICMPTypeOffset], b[header.ICMPCodeOffset]
	switch p.ICMPType {
	case ICMPv6DestUnreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem:
	default:
		return StatusICMPNotError
	}
	if p.ICMPType == ICMPv6PacketTooBig {
		p.ICMPMTU = be32(b[header.ICMPv6MTUOffset:])
	}
	q := b[icmpHeaderLen:]
	if len(q) < header.IPv6HeaderLen {
		return StatusICMPTruncated
	}
	if q[0]>>4 != 6 {
		return StatusICMPQuoteNotTCP
	}
	nh, extLen, _, st := walkIPv6Ext(q[6], q[header.IPv6HeaderLen:])
	if st != StatusOK || nh != ProtoTCP {
		if st == StatusIPv6BadExtHeaderLength {
			return StatusICMPTruncated
		}
		return StatusICMPQuoteNotTCP
	}
	t := q[header.IPv6HeaderLen+extLen:]
	if len(t) < quotedTCPLen {
		return StatusICMPTruncated
	}
	p.Flow.SetIPv6(q[24:40], q[8:24])
	p.Flow.Proto = ProtoTCP
	setQuotedTCP(t, p)
	return StatusOK
}

// setQuotedTCP fills the ports (reversed to client → VIP) and the quoted
// sequence number from the first 8 bytes of the quoted TCP header.
func setQuotedTCP(t []byte, p *Packet) {
	p.Flow.SrcPort = be16(t[2:4])
	p.Flow.DstPort = be16(t[0:2])
	p.Seq = be32(t[4:8])
	p.ICMPError = true
}
