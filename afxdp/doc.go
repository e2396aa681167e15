// Package afxdp owns the router's packet I/O on Linux: the XDP program that
// steers VIP traffic into AF_XDP sockets (everything else goes on to the
// kernel with XDP_PASS), attaching it with a bpf_link, one AF_XDP socket per
// RX queue (github.com/asavie/xdp), a ring.Ring over each socket, the
// MAC-swapping reflector that measures the I/O ceiling, and node MAC
// addresses from the kernel's neighbour table.
//
// The XDP program is written with cilium/ebpf's asm package rather than C
// and bpf2go: CI has no clang, and an asm program is built at run time
// from Go code that is reviewed, diffed and tested like the rest of the
// module, with no generated object files to keep in step with their
// source.
//
// The program redirects exactly what fastpath.Worker forwards and passes
// everything else to the kernel, counted by reason: package classify is
// that rule in Go (built on parser.ParseFrame), and the program is held to
// it frame by frame with BPF_PROG_TEST_RUN (TestProgramVerdicts,
// FuzzProgramVerdict) and to the worker itself
// (TestProgramRedirectsWhatTheWorkerForwards). It redirects, to the XSK
// map slot of the frame's RX queue (bpf_redirect_map, XDP_PASS as the
// fallback when the slot is empty):
//
//   - IPv4 and IPv6 TCP to a VIP address:port of its own family (key: 16
//     address bytes, IPv4 v4-mapped, the port and the family; filled by
//     SetVIPs), behind up to two 802.1Q/802.1ad/0x9100 tags and, for IPv6,
//     up to eight extension headers (hop-by-hop, routing, destination
//     options, AH, a first fragment), with every header check the parser
//     makes (IPv4 header checksum, lengths, TCP data offset);
//   - ICMP errors (destination unreachable, time exceeded, parameter
//     problem; ICMPv6 also packet too big) quoting a VIP TCP flow, so the
//     fast path can send them to the node that owns it (path-MTU discovery
//     through the router).
//
// It passes (pass_*): non-IP frames, traffic to other addresses, VIP
// traffic with TTL or hop limit <= 1 (the kernel answers with ICMP time
// exceeded), headers the parser refuses, and to a VIP address: non-first
// fragments, ICMP that is not an error quoting a VIP TCP flow (QUIC's
// PMTUD quotes UDP), other protocols and unconfigured ports. Nothing is
// dropped in XDP: the kernel had all of these before the router did.
//
// The program is attached with link.AttachXDP and never pinned, so the
// bpf_link dies with the process, even after SIGKILL, and the interface is
// left without a program.
//
// # Use
//
//	port, err := afxdp.Open(afxdp.Config{Interface: "eth0", VIPs: vips})
//	defer port.Close()                // detach, close sockets
//	for _, r := range port.Rings { … } // one ring.Ring per RX queue
//	port.SetVIPs(newVIPs)             // on reload
//	port.Counters()                   // the program's verdict counters
//	afxdp.Reflect(ctx, ring, &stats)  // the I/O ceiling
//
// Open loads the program, fills the VIP map, opens the sockets (zero-copy
// tried first; one slog line when it falls back to copy mode), puts them
// into the XSK map, and attaches last. Everything that names an interface
// (Open, RxQueueCount, NeighborMAC, WatchNeighbors) works in the network
// namespace of the calling OS thread.
//
// # Ring
//
// Each Ring owns its UMEM (default 4096 frames of 2048 bytes, 2048-entry
// rings). Every frame is always in exactly one place: a free stack, the
// fill ring, the RX ring, the caller, the TX ring or the completion ring.
// asavie/xdp does the socket set-up and ring bookkeeping; where it falls
// short the Ring fills in: its Complete does not say which frames
// completed, so the completion ring is mapped a second time, read-only;
// its Transmit kicks once and the kernel sends at most 32 frames per kick
// in copy mode, so Transmit kicks until the TX ring drains or stops
// moving; it panics on unexpected sendto errors (ENETDOWN), which Transmit
// turns into an error; its Detach hangs in generic mode and its built-in
// program is not used at all. Receive, Transmit, Release and Reclaim
// allocate nothing.
//
// # Gotchas
//
//   - In copy mode a frame longer than FrameSize-256 bytes cannot be
//     received (XDP headroom): keep the MTU at or below that.
//   - A veth sender with TX checksum offload leaves a partial TCP checksum
//     in the frame; AF_XDP hands it over as is. internal/testbed turns the
//     offload off.
//   - XDP_ZEROCOPY on veth fails with EOPNOTSUPP; copy mode works in both
//     native and generic attach modes.
//   - Frames with TTL or hop limit <= 1 reach the kernel, which answers
//     with ICMP time exceeded only if it forwards (ip_forward and a route
//     for the VIP).
package afxdp
