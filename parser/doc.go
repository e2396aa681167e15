// Package parser owns reading packets in place: Ethernet with 802.1Q/802.1ad
// tags, IPv4, IPv6 with extension headers, TCP, ICMP/ICMPv6 errors that quote
// a TCP packet, and just enough of TLS to see a ClientHello and the
// extensions the router schedules on (migration_support, migration_token,
// SNI, ...). Nothing here allocates per packet: results are fixed structs
// with offsets and sub-slices of the frame.
//
// The three entry points are ParseFrame (one frame → Packet and a Status
// reason), ScanClientHello (the client's first payload bytes → ClientHello)
// and Reassembler (a ClientHello spread over several TCP segments, held in
// preallocated slots, its scan resumed where it stopped so no byte is
// scanned twice); TCPChecksumOK verifies a segment before it may change
// any state. ParseFrame, ScanClientHello and TCPChecksumOK are safe for
// concurrent use; a Reassembler belongs to one goroutine.
package parser
