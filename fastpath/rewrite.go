package fastpath

import "encoding/binary"

// MAC is an Ethernet hardware address as a fixed array, so rewriting a
// frame copies 6 bytes and never touches the heap.
type MAC [6]byte

// setMACs turns the frame around as a router does: the next hop's address
// becomes the destination, the router's own interface the source. VLAN
// tags follow the two addresses and are left as they are.
func setMACs(frame []byte, dst, src *MAC) bool {
	if len(frame) < 12 {
		return false
	}
	copy(frame[0:6], dst[:])
	copy(frame[6:12], src[:])
	return true
}

// decrementTTL4 lowers the TTL of the IPv4 header at ip[0:] by one and
// patches the header checksum incrementally (RFC 1624, eqn. 3), so a
// forwarded packet costs three additions instead of a checksum
// over the whole header. It returns false, changing nothing, when the
// header is too short or the TTL would reach zero: such a packet belongs to
// the kernel, which answers with ICMP time exceeded.
func decrementTTL4(ip []byte) bool {
	if len(ip) < 20 || ip[8] <= 1 {
		return false
	}
	ip[8]--
	// The TTL is the high byte of the word it shares with the protocol,
	// so the word m becomes m' = m - 0x100 and ~m + m' is the constant
	// 0xfeff whatever the TTL and protocol: HC' = ~(~HC + 0xfeff). The
	// sum is at most 0x1fefe, so one fold leaves no carry.
	sum := uint32(^binary.BigEndian.Uint16(ip[10:12])) + 0xfeff
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	return true
}

// decrementHopLimit6 lowers the hop limit of the IPv6 header at ip[0:] by
// one. IPv6 has no header checksum and the upper-layer checksums do not
// cover the hop limit. It returns false, changing nothing, when the header
// is too short or the hop limit would reach zero.
func decrementHopLimit6(ip []byte) bool {
	if len(ip) < 40 {
		return false
	}
	if ip[7] <= 1 {
		return false
	}
	ip[7]--
	return true
}

// ipv4HeaderChecksum computes the IPv4 header checksum from scratch over
// hdr with its checksum field taken as zero. The fast path never calls it;
// tests and the pcap tools use it as the reference for the incremental
// update.
func ipv4HeaderChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(hdr[i : i+2]))
	}
	if len(hdr)%2 == 1 {
		sum += uint32(hdr[len(hdr)-1]) << 8
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}
