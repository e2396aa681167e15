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
	// The pseudo-header: the addresses as they lie in the IP header
	// (whole 16-bit words), then protocol and segment length, each a
	// 16-bit big-endian word; byte-swapped, as sumWords's lanes are.
	var addrs []byte
	if p.IPVersion == 4 {
		if l3+20 > l4 {
			return false
		}
		addrs = frame[l3+12 : l3+20]
	} else {
		if l3+40 > l4 {
			return false
		}
		addrs = frame[l3+8 : l3+40]
	}
	sum := uint64(bits.ReverseBytes16(6)) + uint64(bits.ReverseBytes16(uint16(end-l4)))
	return foldChecksum(sumWords(sumWords(sum, addrs), frame[l4:end])) == 0xffff
}

// sumWords adds b to a one's complement sum. It adds 32-bit words into
// two 64-bit accumulators, which cannot overflow for any frame (2^32
// words), so there is no carry chain between iterations; folding modulo
// 0xffff at the end gives the 16-bit sum. Words are loaded little-endian:
// the sum of byte-swapped 16-bit lanes is the byte-swapped sum, and a
// correct checksum folds to 0xffff either way.
func sumWords(sum uint64, b []byte) uint64 {
	var s1 uint64
	for len(b) >= 16 {
		sum += uint64(binary.LittleEndian.Uint32(b[0:4])) + uint64(binary.LittleEndian.Uint32(b[8:12]))
		s1 += uint64(binary.LittleEndian.Uint32(b[4:8])) + uint64(binary.LittleEndian.Uint32(b[12:16]))
		b = b[16:]
	}
	if len(b) > 0 {
		var last [16]byte
		copy(last[:], b)
		sum += uint64(binary.LittleEndian.Uint32(last[0:4])) + uint64(binary.LittleEndian.Uint32(last[8:12]))
		s1 += uint64(binary.LittleEndian.Uint32(last[4:8])) + uint64(binary.LittleEndian.Uint32(last[12:16]))
	}
	return foldTo32(sum) + foldTo32(s1)
}

func foldTo32(s uint64) uint64 {
	s = (s >> 32) + (s & 0xffffffff)
	return (s >> 32) + (s & 0xffffffff)
}

// foldChecksum folds a 64-bit one's complement sum to 16 bits.
func foldChecksum(sum uint64) uint16 {
	s := (sum >> 32) + (sum & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}
