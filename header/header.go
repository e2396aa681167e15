// Package header names the byte layout of the headers the router reads and
// rewrites — Ethernet, 802.1Q/802.1ad tags, IPv4, IPv6, TCP, ICMP — once,
// in the style of gVisor's pkg/tcpip/header: sizes and field offsets from
// the start of each header, as RFC 791, 8200, 9293, 792 and 4443 lay them
// out. The parser, the fast path's rewrite, the XDP program's assembly and
// the test bed's packet builder use these names instead of raw numbers, so
// a reader (and a grep) finds every place that touches a field. It has no
// dependencies and no code.
package header

// Ethernet II.
const (
	EthernetDstOffset  = 0
	EthernetSrcOffset  = 6
	EthernetTypeOffset = 12
	// EthernetHeaderLen is the untagged header: two addresses and the
	// EtherType.
	EthernetHeaderLen = 14
	EthernetAddrLen   = 6
)

// An 802.1Q or 802.1ad tag takes the place of the EtherType: the tag's
// TPID (an EtherType of its own), then its TCI, then the next EtherType.
const (
	VLANTagLen = 4
	// VLANTCILen is the TCI's length: the next EtherType follows it.
	VLANTCILen = 2
)

// IPv4 (RFC 791).
const (
	IPv4Version          = 4
	IPv4VersionIHLOffset = 0
	IPv4TotalLenOffset   = 2
	IPv4FlagsFragOffset  = 6
	IPv4TTLOffset        = 8
	IPv4ProtocolOffset   = 9
	IPv4ChecksumOffset   = 10
	IPv4SrcAddrOffset    = 12
	IPv4DstAddrOffset    = 16
	IPv4AddrLen          = 4
	IPv4MinimumHeaderLen = 20
	// Bits of the flags/fragment-offset word.
	IPv4DontFragment       = 0x4000
	IPv4MoreFragments      = 0x2000
	IPv4FragmentOffsetMask = 0x1fff
)

// IPv6 (RFC 8200).
const (
	IPv6Version          = 6
	IPv6PayloadLenOffset = 4
	IPv6NextHeaderOffset = 6
	IPv6HopLimitOffset   = 7
	IPv6SrcAddrOffset    = 8
	IPv6DstAddrOffset    = 24
	IPv6AddrLen          = 16
	IPv6HeaderLen        = 40
)

// TCP (RFC 9293).
const (
	TCPSrcPortOffset    = 0
	TCPDstPortOffset    = 2
	TCPSeqNumOffset     = 4
	TCPAckNumOffset     = 8
	TCPDataOffsetOffset = 12 // high nibble: header length in 32-bit words
	TCPFlagsOffset      = 13
	TCPWindowOffset     = 14
	TCPChecksumOffset   = 16
	TCPMinimumHeaderLen = 20
)

// ICMP and ICMPv6 (RFC 792, 4443): type, code, checksum, then four bytes
// whose meaning depends on the type (the MTU of "fragmentation needed" in
// the low two, of "packet too big" in all four), then the quoted packet.
const (
	ICMPTypeOffset  = 0
	ICMPCodeOffset  = 1
	ICMPv4MTUOffset = 6
	ICMPv6MTUOffset = 4
	ICMPHeaderLen   = 8
)
