// Package afxdp owns the router's packet I/O on Linux: the XDP program that
// steers VIP traffic into AF_XDP sockets (everything else goes on to the
// kernel with XDP_PASS), attaching it with a bpf_link, one AF_XDP socket per
// RX queue (github.com/asavie/xdp), a fastpath.Ring over each socket, the
// MAC-swapping reflector that measures the I/O ceiling, and node MAC
// addresses from the kernel's neighbour table.
//
// The XDP program is written with cilium/ebpf's asm package rather than C
// and bpf2go: it is about a hundred instructions, CI has no clang, and an
// asm program is built at run time from Go code that is reviewed, diffed and
// tested like the rest of the module, with no generated object files to keep
// in step with their source.
//
// What the program redirects, to the XSK map slot of the frame's RX queue
// (bpf_redirect_map with XDP_PASS as the fallback when the slot is empty):
//
//   - IPv4 and IPv6 TCP to a VIP address:port in the VIP hash map (key: 16
//     address bytes, IPv4 v4-mapped, and the port; filled by SetVIPs);
//   - ICMP destination unreachable / time exceeded and ICMPv6 destination
//     unreachable / packet too big / time exceeded addressed to a VIP
//     address, so the fast path can send them to the node that owns the
//     quoted flow (path-MTU discovery through the router);
//   - non-first IPv4 fragments and IPv6 frames with extension headers to a
//     VIP address: they carry no port the program can read cheaply, so the
//     fast path, which parses them fully, counts and decides.
//
// Everything else passes: ARP, ND, the router's own traffic, and any VIP
// frame whose TTL or hop limit is 1 or less (the kernel answers with ICMP
// time exceeded). One or two 802.1Q/802.1ad tags are understood.
//
// The program is attached with link.AttachXDP and never pinned, so the
// bpf_link dies with the process, even after SIGKILL, and the interface is
// left without a program.
package afxdp
