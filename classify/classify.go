// Package classify owns the router's first decision about a frame: does it
// go to the fast path (the XDP program redirects it into an AF_XDP
// socket) or on to the kernel (XDP_PASS), and for which reason. It is the
// Go model of afxdp's XDP program, and the program is held to it frame by
// frame (afxdp's BPF_PROG_TEST_RUN tests and fuzz target). Offline tools
// (ring/offline's PcapRing, so anysched run --pcap-in) apply it so that
// what they forward is what the live router forwards.
//
// The rule: redirect exactly what fastpath.Worker forwards, given the same
// VIP set and a node to send to. The worker forwards a frame that
// parser.ParseFrame reads as TCP to a VIP address:port of the same family,
// or as an ICMP error quoting such a flow, with a TTL / hop limit above 1;
// everything else it could only drop, so the program passes it to the
// kernel, which the router had before there was an XDP program: fragments,
// UDP (QUIC) and its ICMP errors, IPv6 whose extension headers lead to
// anything else, the router's own traffic. Nothing is dropped in XDP: a
// frame the fast path cannot forward is one the kernel may still answer
// (ICMP time exceeded, reassembly, a local socket), and the kernel counts
// what it discards itself.
package classify

import (
	"net/netip"

	"github.com/anysched/anysched/header"
	"github.com/anysched/anysched/parser"
)

// Verdict is what happens to a frame at the XDP hook: Redirect or a pass
// reason. It is dense so counters are arrays indexed by it; afxdp's
// per-CPU counter map uses the same indexes.
type Verdict uint8

// Verdicts. Only the XDP program can return PassNoSocket (a redirected
// frame on a queue without a socket); the model never does.
const (
	// Redirect: to the fast path.
	Redirect Verdict = iota
	// PassNonIP: neither IPv4 nor IPv6 (ARP, LLDP, a third VLAN tag).
	PassNonIP
	// PassNotVIP: IP whose destination is not a VIP address (for an ICMP
	// error: neither the quoted flow nor the outer destination).
	PassNotVIP
	// PassTTL: VIP traffic whose TTL / hop limit is 1 or 0: the kernel
	// answers with ICMP time exceeded.
	PassTTL
	// PassMalformed: a header the fast path's parser refuses (truncated,
	// bad lengths or IPv4 checksum, bad extension header chain).
	PassMalformed
	// PassNoSocket: redirected, but no AF_XDP socket on that queue.
	PassNoSocket
	// PassVIPFragment: an IPv4 or IPv6 fragment to a VIP address, first
	// or not: the later ones have no ports, so the fast path cannot place
	// them, and a first one sent without the rest never reaches a node
	// whole; the kernel reassembles or forwards them all.
	PassVIPFragment
	// PassVIPICMP: ICMP to a VIP address that is not an error quoting a VIP
	// TCP flow (echo, or quoting UDP: QUIC path-MTU discovery).
	PassVIPICMP
	// PassVIPOther: a VIP address, but not a VIP service: another protocol
	// (UDP, ESP, ...) or a TCP port that is not configured.
	PassVIPOther
	// PassTooLong: longer than MaxFrameLen. No AF_XDP frame holds it (UMEM
	// frames are at most a page), so a redirect would only lose it.
	PassTooLong

	// NumVerdicts sizes arrays indexed by Verdict.
	NumVerdicts
)

var verdictNames = [NumVerdicts]string{
	Redirect:        "redirected",
	PassNonIP:       "pass_non_ip",
	PassNotVIP:      "pass_not_vip",
	PassTTL:         "pass_ttl",
	PassMalformed:   "pass_malformed",
	PassNoSocket:    "pass_no_socket",
	PassVIPFragment: "pass_vip_fragment",
	PassVIPICMP:     "pass_vip_icmp",
	PassVIPOther:    "pass_vip_other",
	PassTooLong:     "pass_too_long",
}

// MaxFrameLen is the longest frame the program redirects. It is above any
// UMEM frame size (a page), and low enough that every offset into the
// frame fits the BPF verifier's packet range with room for a header.
const MaxFrameLen = 0x3fff

// String names the verdict as metric labels do.
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "unknown_verdict"
}

// KeySize is the size of a VIP map key: 16 address bytes (IPv4 as
// v4-mapped IPv6, as parser.FlowKey stores it), the port in network byte
// order, the address family (parser.FamilyIPv4 / FamilyIPv6) and the kind:
// 0 for a service (address and port), 1 for the address itself, which
// only chooses a pass reason. The family is part of the key so an IPv6
// packet to ::ffff:a.b.c.d never matches the IPv4 VIP a.b.c.d; the kind,
// so TCP to port 0 is no service.
const KeySize = 20

// Key is a VIP map key.
type Key [KeySize]byte

// Offsets in a Key.
const (
	KeyPortOffset   = 16
	KeyFamilyOffset = 18
	KeyKindOffset   = 19
)

// ServiceKey is the key of a service: family, a 16-byte address, a port.
func ServiceKey(family uint8, addr *[16]byte, port uint16) Key {
	var k Key
	copy(k[:16], addr[:])
	k[KeyPortOffset], k[KeyPortOffset+1] = byte(port>>8), byte(port)
	k[KeyFamilyOffset] = family
	return k
}

// AddressKey is the key of a VIP address itself.
func AddressKey(family uint8, addr *[16]byte) Key {
	k := ServiceKey(family, addr, 0)
	k[KeyKindOffset] = 1
	return k
}

// AddrPortKey is the key of a VIP service, or with port 0 of its address.
// An IPv4-mapped IPv6 address is taken as the IPv4 address, as the config
// does.
func AddrPortKey(addr netip.Addr, port uint16) Key {
	a := addr.Unmap()
	fam := parser.FamilyIPv6
	if a.Is4() {
		fam = parser.FamilyIPv4
	}
	b := a.As16()
	if port == 0 {
		return AddressKey(fam, &b)
	}
	return ServiceKey(fam, &b, port)
}

// VIPs is a set of VIP services and their addresses, as the XDP program's
// VIP map holds them.
type VIPs struct {
	keys map[Key]bool
}

// NewVIPs makes the set of the given TCP services; invalid addresses and
// port 0 are ignored (afxdp.Program.SetVIPs refuses them).
func NewVIPs(services []netip.AddrPort) *VIPs {
	v := &VIPs{keys: make(map[Key]bool, 2*len(services))}
	for _, s := range services {
		if !s.Addr().IsValid() || s.Port() == 0 {
			continue
		}
		v.keys[AddrPortKey(s.Addr(), s.Port())] = true
		v.keys[AddrPortKey(s.Addr(), 0)] = true
	}
	return v
}

// Keys lists the map keys: each service and each distinct address.
func (v *VIPs) Keys() []Key {
	out := make([]Key, 0, len(v.keys))
	for k := range v.keys {
		out = append(out, k)
	}
	return out
}

func (v *VIPs) hasService(family uint8, addr *[16]byte, port uint16) bool {
	return v.keys[ServiceKey(family, addr, port)]
}

func (v *VIPs) hasAddress(family uint8, addr *[16]byte) bool {
	return v.keys[AddressKey(family, addr)]
}

// Frame classifies one Ethernet frame; p is scratch space (its contents
// afterwards are ParseFrame's). It does not allocate.
func (v *VIPs) Frame(frame []byte, p *parser.Packet) Verdict {
	if len(frame) > MaxFrameLen {
		return PassTooLong
	}
	st := parser.ParseFrame(frame, p)
	fl := &p.Flow
	// addrOnly gives reason if the destination address is a VIP's.
	addrOnly := func(fam uint8, dst *[16]byte, reason Verdict) Verdict {
		if v.hasAddress(fam, dst) {
			return reason
		}
		return PassNotVIP
	}
	if p.Flags&parser.FlagFragment != 0 {
		// Any fragment, whatever follows its IP header (the program
		// looks no further): a first one has ports, but the rest of its
		// packet does not, so all of them go to the kernel, or the node
		// gets none whole.
		fam, outer := outerDst(frame, p)
		return addrOnly(fam, &outer, PassVIPFragment)
	}
	switch st {
	case parser.StatusOK:
	case parser.StatusNotIP, parser.StatusTooManyVLANTags:
		return PassNonIP
	case parser.StatusNotTCP:
		return addrOnly(fl.Family, &fl.Dst, PassVIPOther)
	case parser.StatusICMPTruncated, parser.StatusICMPNotError, parser.StatusICMPQuoteNotTCP:
		// The flow still holds the outer addresses.
		return addrOnly(fl.Family, &fl.Dst, PassVIPICMP)
	default:
		return PassMalformed
	}
	if v.hasService(fl.Family, &fl.Dst, fl.DstPort) {
		if frame[p.TTLOff] <= 1 {
			return PassTTL
		}
		return Redirect
	}
	if !p.ICMPError {
		return addrOnly(fl.Family, &fl.Dst, PassVIPOther)
	}
	// An ICMP error whose quote is not a VIP flow: judged by its outer
	// destination.
	fam, outer := outerDst(frame, p)
	return addrOnly(fam, &outer, PassVIPICMP)
}

// outerDst is the destination of the frame's own IP header (for an ICMP
// error, p.Flow holds the quoted flow's).
func outerDst(frame []byte, p *parser.Packet) (uint8, [16]byte) {
	var outer [16]byte
	if p.IPVersion == 4 {
		outer[10], outer[11] = 0xff, 0xff
		copy(outer[12:], frame[int(p.L3Off)+header.IPv4DstAddrOffset:][:4])
		return parser.FamilyIPv4, outer
	}
	copy(outer[:], frame[int(p.L3Off)+header.IPv6DstAddrOffset:][:16])
	return parser.FamilyIPv6, outer
}
