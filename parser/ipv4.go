package parser

import "github.com/anysched/anysched/header"

// parseIPv4 reads the IPv4 header at off, checks its lengths and checksum,
// and hands the L4 bytes (bounded by the total length) on.
func parseIPv4(frame []byte, off int, p *Packet) Status {
	b := frame[off:]
	if len(b) < header.IPv4MinimumHeaderLen {
		return StatusTruncatedIPv4
	}
	if b[header.IPv4VersionIHLOffset]>>4 != header.IPv4Version {
		return StatusIPv4BadVersion
	}
	p.IPVersion = 4
	p.L3Off = uint16(off)
	ihl := int(b[header.IPv4VersionIHLOffset]&0x0f) * 4
	if ihl < header.IPv4MinimumHeaderLen {
		return StatusIPv4BadHeaderLength
	}
	if ihl > len(b) {
		return StatusTruncatedIPv4
	}
	total := int(be16(b[header.IPv4TotalLenOffset:]))
	if total < ihl || total > len(b) {
		return StatusIPv4BadTotalLength
	}
	if ipv4HeaderSum(b[:ihl]) != 0xffff {
		return StatusIPv4BadChecksum
	}
	if ihl > header.IPv4MinimumHeaderLen {
		p.Flags |= FlagIPv4Options
	}
	p.L3End = uint16(off + total)
	p.TTLOff = uint16(off + header.IPv4TTLOffset)
	p.IPv4ChecksumOff = uint16(off + header.IPv4ChecksumOffset)
	p.Flow.SetIPv4(b[header.IPv4SrcAddrOffset:header.IPv4SrcAddrOffset+header.IPv4AddrLen], b[header.IPv4DstAddrOffset:header.IPv4DstAddrOffset+header.IPv4AddrLen])
	proto := b[header.IPv4ProtocolOffset]
	p.Flow.Proto = proto
	frag := be16(b[header.IPv4FlagsFragOffset:])
	if frag&(header.IPv4MoreFragments|header.IPv4FragmentOffsetMask) != 0 {
		p.Flags |= FlagFragment
		if frag&header.IPv4FragmentOffsetMask != 0 {
			p.Flags |= FlagNonFirstFragment
			return StatusNonFirstFragment
		}
	}
	l4off := off + ihl
	switch proto {
	case ProtoTCP:
		return parseTCP(frame[:off+total], l4off, p)
	case ProtoICMP:
		return parseICMPv4(frame[:off+total], l4off, p)
	}
	return StatusNotTCP
}

// ipv4HeaderSum is the one's-complement sum of the header's 16-bit words,
// folded; a correct header sums to 0xffff. len(h) is a multiple of 4.
func ipv4HeaderSum(h []byte) uint16 {
	var sum uint64
	if len(h) >= header.IPv4MinimumHeaderLen { // the usual header, unrolled
		sum = uint64(be32(h[0:4])) + uint64(be32(h[4:8])) + uint64(be32(h[8:12])) +
			uint64(be32(h[12:16])) + uint64(be32(h[16:20]))
		h = h[header.IPv4MinimumHeaderLen:]
	}
	for len(h) >= 4 {
		sum += uint64(be32(h))
		h = h[4:]
	}
	sum = (sum & 0xffffffff) + (sum >> 32)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	return uint16(sum)
}

// IPv4HeaderChecksum computes the checksum field value for an IPv4 header
// whose checksum field (header.IPv4ChecksumOffset) is zero. Tests and tools use it to build
// frames.
func IPv4HeaderChecksum(h []byte) uint16 {
	return ^ipv4HeaderSum(h[:len(h)&^3])
}
