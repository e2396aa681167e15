// Package packettest builds what the packet-path tests feed the router:
// flow keys and Ethernet frames (IPv4/IPv6, VLAN, TCP, ICMP errors) with
// correct lengths and checksums, so parser, fastpath and cmd/anysched
// tests describe a packet once instead of each packing bytes by hand. It
// is for tests only.
package packettest
