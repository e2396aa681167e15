package parser

import (
	"encoding/binary"
	"net/netip"
)

// Address families of a FlowKey.
const (
	FamilyIPv4 uint8 = 4
	FamilyIPv6 uint8 = 6
)

// FlowKey is the 5-tuple of a flow as the client sent it. It is a fixed-size,
// comparable value so the fast path can hash it and store it in preallocated
// tables without allocating. IPv4 addresses are stored in their IPv4-mapped
// IPv6 form (::ffff:a.b.c.d), so one layout serves both families and Family
// says which one the packet carried.
type FlowKey struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	Family           uint8
}

// SetIPv4 fills the addresses from 4-byte IPv4 addresses.
func (k *FlowKey) SetIPv4(src, dst []byte) {
	k.Src = [16]byte{10: 0xff, 11: 0xff}
	k.Dst = [16]byte{10: 0xff, 11: 0xff}
	copy(k.Src[12:], src[:4])
	copy(k.Dst[12:], dst[:4])
	k.Family = FamilyIPv4
}

// setIPv4LE fills the addresses from IPv4 addresses loaded as
// little-endian words (the frame's bytes in memory order): one 8-byte store
// per half address instead of byte copies.
func (k *FlowKey) setIPv4LE(src, dst uint32) {
	const mapped = 0xffff << 16 // bytes 10 and 11 of ::ffff:a.b.c.d
	binary.LittleEndian.PutUint64(k.Src[0:8], 0)
	binary.LittleEndian.PutUint64(k.Src[8:16], mapped|uint64(src)<<32)
	binary.LittleEndian.PutUint64(k.Dst[0:8], 0)
	binary.LittleEndian.PutUint64(k.Dst[8:16], mapped|uint64(dst)<<32)
	k.Family = FamilyIPv4
}

// SetIPv6 fills the addresses from 16-byte IPv6 addresses.
func (k *FlowKey) SetIPv6(src, dst []byte) {
	copy(k.Src[:], src[:16])
	copy(k.Dst[:], dst[:16])
	k.Family = FamilyIPv6
}

// SrcAddr returns the source address in its own family.
func (k *FlowKey) SrcAddr() netip.Addr { return k.addr(&k.Src) }

// DstAddr returns the destination address in its own family.
func (k *FlowKey) DstAddr() netip.Addr { return k.addr(&k.Dst) }

func (k *FlowKey) addr(a *[16]byte) netip.Addr {
	ip := netip.AddrFrom16(*a)
	if k.Family == FamilyIPv4 {
		return ip.Unmap()
	}
	return ip
}

// String formats the key as "srcip:srcport>dstip:dstport", with IPv6
// addresses in brackets. It allocates; it is for logs and tools, not the
// fast path.
func (k FlowKey) String() string {
	return netip.AddrPortFrom(k.SrcAddr(), k.SrcPort).String() + ">" +
		netip.AddrPortFrom(k.DstAddr(), k.DstPort).String()
}

// Reverse returns the key of the opposite direction.
func (k FlowKey) Reverse() FlowKey {
	k.Src, k.Dst = k.Dst, k.Src
	k.SrcPort, k.DstPort = k.DstPort, k.SrcPort
	return k
}
