package parser

import "github.com/anysched/anysched/header"

// IPv6 next-header values walked as extension headers.
const (
	ipv6HopByHop   uint8 = 0
	ipv6Routing    uint8 = 43
	ipv6Fragment   uint8 = 44
	ipv6AuthHeader uint8 = 51
	ipv6DestOpts   uint8 = 60
)

// parseIPv6 reads the IPv6 header at off, walks the extension headers and
// hands the upper-layer bytes (bounded by the payload length) on.
func parseIPv6(frame []byte, off int, p *Packet) Status {
	b := frame[off:]
	if len(b) < header.IPv6HeaderLen {
		return StatusTruncatedIPv6
	}
	if b[0]>>4 != header.IPv6Version {
		return StatusIPv6BadVersion
	}
	p.IPVersion = 6
	p.L3Off = uint16(off)
	p.TTLOff = uint16(off + header.IPv6HopLimitOffset)
	plen := int(be16(b[header.IPv6PayloadLenOffset:]))
	if plen == 0 || header.IPv6HeaderLen+plen > len(b) {
		return StatusIPv6BadPayloadLength
	}
	end := off + header.IPv6HeaderLen + plen
	p.L3End = uint16(end)
	p.Flow.SetIPv6(b[header.IPv6SrcAddrOffset:header.IPv6DstAddrOffset], b[header.IPv6DstAddrOffset:header.IPv6HeaderLen])
	nh, extLen, frag, st := walkIPv6Ext(b[header.IPv6NextHeaderOffset], frame[off+header.IPv6HeaderLen:end])
	p.Flow.Proto = nh
	if extLen > 0 {
		p.Flags |= FlagIPv6ExtHeaders
	}
	p.Flags |= frag
	if st != StatusOK {
		return st
	}
	l4off := off + header.IPv6HeaderLen + extLen
	switch nh {
	case ProtoTCP:
		return parseTCP(frame[:end], l4off, p)
	case ProtoICMPv6:
		return parseICMPv6(frame[:end], l4off, p)
	}
	return StatusNotTCP
}

// walkIPv6Ext skips the extension headers at the start of b, the IPv6
// payload, beginning with next-header value nh. It returns the upper-layer
// protocol, how many bytes the extension headers took and the fragment
// flags. At most MaxIPv6ExtHeaders are walked.
func walkIPv6Ext(nh uint8, b []byte) (uint8, int, PacketFlags, Status) {
	pos := 0
	var flags PacketFlags
	for i := 0; ; i++ {
		var hlen int
		switch nh {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6AuthHeader:
			if nh == ipv6HopByHop && i != 0 {
				return nh, pos, flags, StatusIPv6MisplacedHopByHop
			}
			if len(b)-pos < 8 {
				return nh, pos, flags, StatusIPv6BadExtHeaderLength
			}
			if nh == ipv6AuthHeader {
				hlen = (int(b[pos+1]) + 2) * 4
			} else {
				hlen = (int(b[pos+1]) + 1) * 8
			}
		case ipv6Fragment:
			hlen = 8
			if len(b)-pos < hlen {
				return nh, pos, flags, StatusIPv6BadExtHeaderLength
			}
			fo := be16(b[pos+2 : pos+4])
			if fo&0xfff9 != 0 { // an offset, or more-fragments
				flags |= FlagFragment
			}
			if fo&0xfff8 != 0 {
				flags |= FlagNonFirstFragment
				return b[pos], pos + hlen, flags, StatusNonFirstFragment
			}
		default:
			return nh, pos, flags, StatusOK
		}
		if i == MaxIPv6ExtHeaders {
			return nh, pos, flags, StatusIPv6TooManyExtHeaders
		}
		if len(b)-pos < hlen {
			return nh, pos, flags, StatusIPv6BadExtHeaderLength
		}
		nh = b[pos]
		pos += hlen
	}
}
