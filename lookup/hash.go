package lookup

import (
	"encoding/binary"
	"math/bits"

	"github.com/anysched/anysched/parser"
)

// Seed is the 128-bit secret key of the flow hash and of the Maglev
// permutations. Every router of a site must use the same seed.
type Seed [16]byte

// HashKey is a Seed split into the two SipHash key words.
type HashKey struct{ K0, K1 uint64 }

// Key returns the SipHash key words of the seed (little-endian, as in the
// SipHash reference).
func (s Seed) Key() HashKey {
	return HashKey{binary.LittleEndian.Uint64(s[0:8]), binary.LittleEndian.Uint64(s[8:16])}
}

const (
	sipInit0 = 0x736f6d6570736575
	sipInit1 = 0x646f72616e646f6d
	sipInit2 = 0x6c7967656e657261
	sipInit3 = 0x7465646279746573
)

// The hashed message is the whole 5-tuple: source address, destination
// address, source port, destination port (little-endian), protocol: 13
// bytes for IPv4, 37 for IPv6 (the length, in SipHash's last block, keeps
// the families apart). Every bit of the tuple is under the key, so no one
// without the seed can build a flow that collides with another (same
// slot, same pin bucket, same tag). IPv4 takes one block and the final
// one (5 rounds in all), IPv6 four and the final one (8 rounds).
const (
	flowMessageLenV4 = 4 + 4 + 2 + 2 + 1
	flowMessageLenV6 = 16 + 16 + 2 + 2 + 1
)

// HashFlow is the keyed flow hash: SipHash-1-3 with key k over the
// 5-tuple described above. It does not allocate.
func HashFlow(k HashKey, key *parser.FlowKey) uint64 {
	v0 := k.K0 ^ sipInit0
	v1 := k.K1 ^ sipInit1
	v2 := k.K0 ^ sipInit2
	v3 := k.K1 ^ sipInit3
	tail := uint64(key.SrcPort) | uint64(key.DstPort)<<16 | uint64(key.Proto)<<32
	if key.Family == parser.FamilyIPv4 {
		m := uint64(binary.LittleEndian.Uint32(key.Src[12:16])) | uint64(binary.LittleEndian.Uint32(key.Dst[12:16]))<<32
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, m)
		tail |= flowMessageLenV4 << 56
	} else {
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, binary.LittleEndian.Uint64(key.Src[0:8]))
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, binary.LittleEndian.Uint64(key.Src[8:16]))
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, binary.LittleEndian.Uint64(key.Dst[0:8]))
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, binary.LittleEndian.Uint64(key.Dst[8:16]))
		tail |= flowMessageLenV6 << 56
	}
	v3 ^= tail
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= tail
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ v1 ^ v2 ^ v3
}

// flowMessage is the byte encoding that HashFlow hashes. HashFlow never
// builds it; tests use it to check HashFlow against the generic SipHash.
func flowMessage(key *parser.FlowKey) []byte {
	var b []byte
	if key.Family == parser.FamilyIPv4 {
		b = append(append(b, key.Src[12:16]...), key.Dst[12:16]...)
	} else {
		b = append(append(b, key.Src[:]...), key.Dst[:]...)
	}
	b = binary.LittleEndian.AppendUint16(b, key.SrcPort)
	b = binary.LittleEndian.AppendUint16(b, key.DstPort)
	return append(b, key.Proto)
}

// sipBlock absorbs one message word with one compression round
// (SipHash-1-x).
func sipBlock(v0, v1, v2, v3, m uint64) (uint64, uint64, uint64, uint64) {
	v3 ^= m
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ m, v1, v2, v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sipHash is generic SipHash-c-d over msg. It is the reference the
// specialised HashFlow is tested against, and hashes node names for the
// Maglev permutations (c=2, d=4).
func sipHash(k HashKey, c, d int, msg []byte) uint64 {
	v0 := k.K0 ^ sipInit0
	v1 := k.K1 ^ sipInit1
	v2 := k.K0 ^ sipInit2
	v3 := k.K1 ^ sipInit3
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		for range c {
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		}
		v0 ^= m
		msg = msg[8:]
	}
	last := uint64(n) << 56
	for i := len(msg) - 1; i >= 0; i-- {
		last |= uint64(msg[i]) << (8 * uint(i))
	}
	v3 ^= last
	for range c {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	v0 ^= last
	v2 ^= 0xff
	for range d {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// hashFlow24 is HashFlow with SipHash-2-4 through the generic code, kept
// to benchmark the choice.
func hashFlow24(k HashKey, key *parser.FlowKey) uint64 {
	var buf [flowMessageLenV6]byte
	n := 0
	if key.Family == parser.FamilyIPv4 {
		n += copy(buf[n:], key.Src[12:16])
		n += copy(buf[n:], key.Dst[12:16])
	} else {
		n += copy(buf[n:], key.Src[:])
		n += copy(buf[n:], key.Dst[:])
	}
	binary.LittleEndian.PutUint16(buf[n:], key.SrcPort)
	binary.LittleEndian.PutUint16(buf[n+2:], key.DstPort)
	buf[n+4] = key.Proto
	return sipHash(k, 2, 4, buf[:n+5])
}

// reduce maps a flow hash to a slot in [0, m) from its top 32 bits.
func reduce(h uint64, m uint32) uint32 {
	return uint32((h >> 32) * uint64(m) >> 32)
}
