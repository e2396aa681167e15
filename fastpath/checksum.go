package fastpath

import (
	"encoding/binary"
	"math/bits"

	"github.com/anysched/anysched/parser"
)

// tcpChecksumOK reports whether the TCP segment of a parsed frame (p from
// ParseFrame of frame) has a correct checksum: the one's complement sum
// of the pseudo-header and the segment, checksum field included, is all
// ones. The fast path checks it only on packets that would change its
// state (see lookup.Decider.DecidePacket): a segment the node will drop
// must not end, move or make an entry.
func tcpChecksumOK(frame []byte, p *parser.Packet) bool {
	l3, l4, end := int(p.L3Off), int(p.L4Off), int(p.L3End)
	if l4 < l3 || end < l4+20 || end > len(frame) {
		return false
	}
	var pseudo [40]byte
	n := 0
	if p.IPVersion == 4 {
		if l3+20 > l4 {
			return false
		}
		n += copy(pseudo[:], frame[l3+12:l3+20])
		pseudo[n+1] = 6
		binary.BigEndian.PutUint16(pseudo[n+2:], uint16(end-l4))
		n += 4
	} else {
		if l3+40 > l4 {
			return false
		}
		n += copy(pseudo[:], frame[l3+8:l3+40])
		binary.BigEndian.PutUint32(pseudo[n:], uint32(end-l4))
		pseudo[n+7] = 6
		n += 8
	}
	return foldChecksum(sumWords(sumWords(0, pseudo[:n]), frame[l4:end])) == 0xffff
}

// sumWords adds b to a one's complement sum kept in 64 bits, eight bytes
// at a time. Words are loaded little-endian: the sum of byte-swapped
// 16-bit lanes is the byte-swapped sum, and a correct checksum folds to
// 0xffff either way.
func sumWords(sum uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) > 0 {
		var last [8]byte
		copy(last[:], b)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(last[:]), carry)
	}
	sum, carry = bits.Add64(sum, 0, carry)
	return sum + carry
}

// foldChecksum folds a 64-bit one's complement sum to 16 bits.
func foldChecksum(sum uint64) uint16 {
	s := (sum >> 32) + (sum & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}
