// Package parser owns reading packets in place: Ethernet with 802.1Q/802.1ad
// tags, IPv4, IPv6 with extension headers, TCP, and just enough of TLS to see
// a ClientHello and the extensions the router schedules on
// (migration_support, migration_token, SNI, ...). Nothing here allocates per
// packet: results are fixed structs with offsets and sub-slices of the frame.
package parser
