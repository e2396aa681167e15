// Package offline has the Rings that are not a NIC queue: MemRing, frames
// in ordinary memory with AF_XDP's ownership rules checked (for tests and
// benchmarks, which can replay template frames forever without
// allocating), and PcapRing, a capture file in and an Ethernet pcap out
// (for anysched run --pcap-in and inspect). They live apart from the fast
// path, as wireguard-go keeps conn/bindtest apart from conn, so the worker
// links neither gopacket nor the capture reader.
package offline
