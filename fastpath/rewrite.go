package fastpath

import (
	"encoding/binary"

	"github.com/anysched/anysched/header"
)

// MAC is an Ethernet hardware address as a fixed array, so rewriting a
// frame copies 6 bytes and never touches the heap.
type MAC [6]byte

// setMACs turns the frame around as a router does: the next hop's address
// becomes the destination, the router's own interface the source. VLAN
// tags follow the two addresses and are left as they are.
func setMACs(frame []byte, dst, src *MAC) bool {
	if len(frame) < header.EthernetTypeOffset {
		return false
	}
	copy(frame[header.EthernetDstOffset:header.EthernetSrcOffset], dst[:])
	copy(frame[header.EthernetSrcOffset:header.EthernetTypeOffset], src[:])
	return true
}

// decrementTTL4 lowers the TTL of the IPv4 header at ip[0:] by one and
// patches the header checksum incrementally (RFC 1624, eqn. 3), so a
// forwarded packet costs three additions instead of a checksum
// over the whole header. It returns false, changing nothing, when the
// header is too short or the TTL would reach zero: such a packet belongs to
// the kernel, which answers with ICMP time exceeded.
func decrementTTL4(ip []byte) bool {
	if len(ip) < header.IPv4MinimumHeaderLen || ip[header.IPv4TTLOffset] <= 1 {
		return false
	}
	ip[header.IPv4TTLOffset]--
	// The TTL is the high byte of the word it shares with the protocol,
	// so the word m becomes m' = m - 0x100 and ~m + m' is the constant
	// 0xfeff whatever the TTL and protocol: HC' = ~(~HC + 0xfeff). The
	// sum is at most 0x1fefe, so one fold leaves no carry.
	c := ip[header.IPv4ChecksumOffset : header.IPv4ChecksumOffset+2]
	sum := uint32(^binary.BigEndian.Uint16(c)) + 0xfeff
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(c, ^uint16(sum))
	return true
}

// decrementHopLimit6 lowers the hop limit of the IPv6 header at ip[0:] by
// one. IPv6 has no header checksum and the upper-layer checksums do not
// cover the hop limit. It returns false, changing nothing, when the header
// is too short or the hop limit would reach zero.
func decrementHopLimit6(ip []byte) bool {
	if len(ip) < header.IPv6HeaderLen || ip[header.IPv6HopLimitOffset] <= 1 {
		return false
	}
	ip[header.IPv6HopLimitOffset]--
	return true
}
