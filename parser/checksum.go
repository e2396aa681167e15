package parser

import (
	"encoding/binary"
	"math/bits"
)

// TCPChecksumOK reports whether the TCP segment that ParseFrame read from
// frame into p (StatusOK) carries a correct checksum: the Internet checksum
// (RFC 1071) over the IPv4 (RFC 9293 §3.1) or IPv6 (RFC 8200 §8.1)
// pseudo-header and the whole segment, header and payload. The router
// verifies it before a segment changes any state, because the node drops a
// segment whose checksum is wrong: state built from bytes the node never
// accepted would describe a connection that does not exist.
//
// It fails closed: false for an ICMP error (no TCP header at L4Off), for a
// fragment (the checksum covers bytes of other fragments) and for offsets
// that do not fit the frame. An IPv6 packet with a routing header is
// checked against the address in its fixed header; for one still in
// transit (segments left) that is not the final destination the node
// uses, and the segment does not verify — such a packet is not a
// connection to the VIP. It never allocates.
func TCPChecksumOK(frame []byte, p *Packet) bool {
	acc, seg, ok := tcpChecksumInput(frame, p)
	return ok && foldChecksum(sumWords(seg, acc)) == 0xffff
}

// SetTCPChecksum writes the correct TCP checksum into the segment that
// ParseFrame read from frame into p, for tools and tests that change a
// segment's bytes; false (nothing written) where TCPChecksumOK fails
// closed.
func SetTCPChecksum(frame []byte, p *Packet) bool {
	acc, seg, ok := tcpChecksumInput(frame, p)
	if !ok || len(seg) < 20 {
		return false
	}
	seg[16], seg[17] = 0, 0
	binary.BigEndian.PutUint16(seg[16:], InternetChecksum(seg, acc))
	return true
}

// tcpChecksumInput returns the pseudo-header's sum and the segment the
// checksum covers, or false when it cannot be verified.
func tcpChecksumInput(frame []byte, p *Packet) (acc uint64, seg []byte, ok bool) {
	if p.ICMPError || p.Flags&FlagFragment != 0 || p.Flow.Proto != ProtoTCP {
		return 0, nil, false
	}
	l3, l4, end := int(p.L3Off), int(p.L4Off), int(p.L3End)
	if end > len(frame) || l4 > end || l3 > l4 {
		return 0, nil, false
	}
	switch p.IPVersion {
	case 4:
		if l4-l3 < 20 {
			return 0, nil, false
		}
		h := frame[l3:]
		acc = uint64(binary.BigEndian.Uint32(h[12:16])) + uint64(binary.BigEndian.Uint32(h[16:20]))
	case 6:
		if l4-l3 < 40 {
			return 0, nil, false
		}
		acc = sumWords(frame[l3+8:l3+40], 0)
	default:
		return 0, nil, false
	}
	return acc + uint64(ProtoTCP) + uint64(end-l4), frame[l4:end], true
}

// InternetChecksum returns the checksum field value (RFC 1071) that makes
// b, with its checksum field zero, sum to 0xffff when initial is the sum of
// everything else covered (a pseudo-header, say; 0 for none). Tools and
// tests use it to build frames.
func InternetChecksum(b []byte, initial uint64) uint16 {
	return ^foldChecksum(sumWords(b, initial))
}

// sumWords adds b, as big-endian 16-bit words (an odd last byte padded
// with zero), to the one's-complement accumulator acc. It adds eight bytes
// at a time: a 64-bit one's-complement sum folds to the same 16-bit sum
// (RFC 1071 §2(B), "parallel summation").
func sumWords(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		b = b[8:]
	}
	// The tail, by words: a 16-bit word sums the same at any even offset
	// (2^16 ≡ 1 modulo 0xffff), so none needs shifting into place.
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) << 8
	}
	acc, carry = bits.Add64(acc, tail, carry)
	// End-around carry: adding it back cannot carry again, since a sum
	// that wrapped is at most 2^64-2.
	acc, carry = bits.Add64(acc, carry, 0)
	return acc + carry
}

// foldChecksum folds a 64-bit one's-complement accumulator to 16 bits.
func foldChecksum(acc uint64) uint16 {
	acc = acc&0xffffffff + acc>>32
	acc = acc&0xffffffff + acc>>32
	acc = acc&0xffff + acc>>16
	acc = acc&0xffff + acc>>16
	acc = acc&0xffff + acc>>16
	return uint16(acc)
}
