package parser

// Status is the outcome of ParseFrame: StatusOK or the one reason the frame
// could not be read as a TCP packet (or an ICMP error quoting one). It is a
// small dense integer so the fast path can count reasons in a fixed array
// indexed by Status, of length NumStatus.
type Status uint8

// Outcomes of ParseFrame.
const (
	// StatusOK: the frame is a TCP segment, or an ICMP/ICMPv6 error quoting
	// one (then Packet.ICMPError is set).
	StatusOK Status = iota
	// StatusFrameTooLong: longer than MaxFrameLen; offsets would not fit.
	StatusFrameTooLong
	// StatusTruncatedEthernet: shorter than an Ethernet II header.
	StatusTruncatedEthernet
	// StatusTruncatedVLAN: an 802.1Q/802.1ad tag is cut off.
	StatusTruncatedVLAN
	// StatusTooManyVLANTags: more than MaxVLANTags tags.
	StatusTooManyVLANTags
	// StatusNotIP: the EtherType is neither IPv4 nor IPv6 (ARP, LLDP, ...).
	StatusNotIP
	// StatusTruncatedIPv4: fewer bytes than the IPv4 header needs.
	StatusTruncatedIPv4
	// StatusIPv4BadVersion: EtherType IPv4 but the version nibble is not 4.
	StatusIPv4BadVersion
	// StatusIPv4BadHeaderLength: IHL below 5 (20 bytes).
	StatusIPv4BadHeaderLength
	// StatusIPv4BadTotalLength: total length below the header length or
	// beyond the end of the frame.
	StatusIPv4BadTotalLength
	// StatusIPv4BadChecksum: the header checksum does not verify.
	StatusIPv4BadChecksum
	// StatusTruncatedIPv6: fewer than 40 bytes for the IPv6 header.
	StatusTruncatedIPv6
	// StatusIPv6BadVersion: EtherType IPv6 but the version nibble is not 6.
	StatusIPv6BadVersion
	// StatusIPv6BadPayloadLength: payload length zero (jumbogram) or beyond
	// the end of the frame.
	StatusIPv6BadPayloadLength
	// StatusIPv6TooManyExtHeaders: more than MaxIPv6ExtHeaders extension
	// headers before the upper-layer header.
	StatusIPv6TooManyExtHeaders
	// StatusIPv6BadExtHeaderLength: an extension header runs past the
	// payload.
	StatusIPv6BadExtHeaderLength
	// StatusIPv6MisplacedHopByHop: a hop-by-hop header that does not
	// immediately follow the IPv6 header (RFC 8200 §4.1).
	StatusIPv6MisplacedHopByHop
	// StatusNonFirstFragment: an IPv4 or IPv6 fragment with a non-zero
	// offset; it carries no L4 header. Flow addresses are set, ports are not.
	StatusNonFirstFragment
	// StatusNotTCP: the upper-layer protocol is neither TCP nor ICMP/ICMPv6
	// (UDP, ESP, no next header, ...).
	StatusNotTCP
	// StatusTruncatedTCP: fewer than 20 bytes of TCP header.
	StatusTruncatedTCP
	// StatusTCPBadDataOffset: data offset below 5 or beyond the segment.
	StatusTCPBadDataOffset
	// StatusICMPTruncated: an ICMP error too short to hold its header, the
	// quoted IP header and the quoted first 8 bytes of TCP.
	StatusICMPTruncated
	// StatusICMPNotError: ICMP/ICMPv6 that is not an error quoting a packet
	// (echo, neighbour discovery, ...).
	StatusICMPNotError
	// StatusICMPQuoteNotTCP: the quoted packet is not TCP, is a non-first
	// fragment, or its IP header is malformed.
	StatusICMPQuoteNotTCP

	// NumStatus is the number of Status values; size counter arrays with it.
	NumStatus
)

var statusNames = [NumStatus]string{
	StatusOK:                     "ok",
	StatusFrameTooLong:           "frame_too_long",
	StatusTruncatedEthernet:      "truncated_ethernet",
	StatusTruncatedVLAN:          "truncated_vlan",
	StatusTooManyVLANTags:        "too_many_vlan_tags",
	StatusNotIP:                  "not_ip",
	StatusTruncatedIPv4:          "truncated_ipv4",
	StatusIPv4BadVersion:         "ipv4_bad_version",
	StatusIPv4BadHeaderLength:    "ipv4_bad_header_length",
	StatusIPv4BadTotalLength:     "ipv4_bad_total_length",
	StatusIPv4BadChecksum:        "ipv4_bad_checksum",
	StatusTruncatedIPv6:          "truncated_ipv6",
	StatusIPv6BadVersion:         "ipv6_bad_version",
	StatusIPv6BadPayloadLength:   "ipv6_bad_payload_length",
	StatusIPv6TooManyExtHeaders:  "ipv6_too_many_ext_headers",
	StatusIPv6BadExtHeaderLength: "ipv6_bad_ext_header_length",
	StatusIPv6MisplacedHopByHop:  "ipv6_misplaced_hop_by_hop",
	StatusNonFirstFragment:       "non_first_fragment",
	StatusNotTCP:                 "not_tcp",
	StatusTruncatedTCP:           "truncated_tcp",
	StatusTCPBadDataOffset:       "tcp_bad_data_offset",
	StatusICMPTruncated:          "icmp_truncated",
	StatusICMPNotError:           "icmp_not_error",
	StatusICMPQuoteNotTCP:        "icmp_quote_not_tcp",
}

// String returns a short snake_case name, suitable as a metric label.
func (s Status) String() string {
	if s < NumStatus {
		return statusNames[s]
	}
	return "unknown_status"
}
