package afxdp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/header"
	"github.com/anysched/anysched/parser"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// XDP return codes (enum xdp_action).
const (
	xdpPass     = 2
	xdpRedirect = 4
)

// Counter indexes the per-CPU counters the XDP program keeps: one per
// classify.Verdict, so the program's counters and the Go model's verdicts
// are the same numbers.
type Counter = classify.Verdict

// The XDP program's verdict counters (see classify for each reason).
const (
	CounterRedirected    = classify.Redirect
	CounterPassNonIP     = classify.PassNonIP
	CounterPassNotVIP    = classify.PassNotVIP
	CounterPassTTL       = classify.PassTTL
	CounterPassMalformed = classify.PassMalformed
	CounterPassNoSocket  = classify.PassNoSocket
	CounterPassVIPFrag   = classify.PassVIPFragment
	CounterPassVIPICMP   = classify.PassVIPICMP
	CounterPassVIPOther  = classify.PassVIPOther
	CounterPassTooLong   = classify.PassTooLong
	numCounters          = int(classify.NumVerdicts)
)

// Counters are the XDP program's verdict counts, summed over CPUs.
type Counters [numCounters]uint64

// vipKeySize is the size of a key in the VIP map (classify.Key).
const vipKeySize = classify.KeySize

// Program names used in the collection.
const (
	mapVIPs     = "anysched_vips"
	mapXSKs     = "anysched_xsks"
	mapCounters = "anysched_counters"
	progName    = "anysched_xdp"
)

// Stack layout of the program: the VIP key being built at fp-24 (20
// bytes), the counter index at fp-4, the RX queue at fp-32, and for ICMP
// errors the outer destination's key at fp-56.
const (
	stackKey      = -24
	stackCounter  = -4
	stackQueue    = -32
	stackOuterKey = -56
)

// Ethertypes and protocol numbers as the program sees them: a 16-bit load
// from the packet on a little-endian machine yields the bytes swapped.
const (
	ethIPv4le   = 0x0008 // 0x0800
	ethIPv6le   = 0xDD86 // 0x86DD
	ethVLANle   = 0x0081 // 0x8100
	ethQinQle   = 0xA888 // 0x88A8
	ethQinQv1le = 0x0091 // 0x9100
	// ipv4FragOff is the fragment offset bits of the flags/fragment word
	// (in an ICMP error's quote only a non-first fragment matters).
	ipv4FragOff = header.IPv4FragmentOffsetMask>>8 | header.IPv4FragmentOffsetMask&0xff<<8
	// ipv4Fragment is the offset and more-fragments bits: any fragment.
	ipv4Fragment = (header.IPv4FragmentOffsetMask|header.IPv4MoreFragments)>>8 | (header.IPv4FragmentOffsetMask|header.IPv4MoreFragments)&0xff<<8
	// ipv6Fragment is the offset and M bits (0xfff9) of an IPv6 fragment
	// header's offset word: any fragment; ipv6FragOff the offset bits
	// (0xfff8) alone: a non-first one, all that matters in a quote (a
	// quoted first fragment still has the ports of its flow).
	ipv6Fragment = 0xf9ff
	ipv6FragOff  = 0xf8ff
	protoTCP     = 6
	protoICMP    = 1
	protoICMPv6  = 58
	// Key words (little-endian) of the v4-mapped prefix and of port 0, the
	// family and the address kind (classify.AddressKey).
	keyV4Mapped = -65536 // bytes 00 00 ff ff
	keyAddress4 = 4<<16 | 1<<24
	keyAddress6 = 6<<16 | 1<<24
	keyService4 = 4 << 16
	// offsetMask bounds every offset into the frame for the verifier: a
	// no-op, since frames longer than classify.MaxFrameLen never get this
	// far.
	offsetMask = classify.MaxFrameLen
)

// IPv6 extension headers the parser walks (parser.walkIPv6Ext).
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6AH       = 51
	ip6DestOpts = 60
)

// progBuilder collects instructions and attaches labels to the next one.
type progBuilder struct {
	p       asm.Instructions
	pending string
}

func (b *progBuilder) label(name string) {
	if b.pending != "" {
		// Two labels on one instruction: chain them with a jump.
		b.add(asm.Ja.Label(name))
	}
	b.pending = name
}

func (b *progBuilder) add(ins ...asm.Instruction) {
	if b.pending != "" && len(ins) > 0 {
		ins[0] = ins[0].WithSymbol(b.pending)
		b.pending = ""
	}
	b.p = append(b.p, ins...)
}

// pass ends with XDP_PASS counted under v.
func (b *progBuilder) pass(v classify.Verdict) {
	b.add(
		asm.Mov.Imm(asm.R6, xdpPass),
		asm.Mov.Imm(asm.R7, int32(v)),
		asm.Ja.Label("count"),
	)
}

// needOff jumps to fail unless offset register off plus n is within the
// end offset in end (a semantic bound: the IP packet's end).
func (b *progBuilder) needOff(off asm.Register, n int32, end asm.Register, fail string) {
	b.add(
		asm.Mov.Reg(asm.R0, off),
		asm.Add.Imm(asm.R0, n),
		asm.JGT.Reg(asm.R0, end, fail),
	)
}

// pointAt sets R1 to data + off and jumps to fail unless n bytes from
// there are in the frame (what the verifier needs before a load).
func (b *progBuilder) pointAt(off asm.Register, n int32, fail string) {
	b.add(
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.Add.Reg(asm.R1, off),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Imm(asm.R0, n),
		asm.JGT.Reg(asm.R0, asm.R3, fail),
	)
}

// lookup looks the key at fp+key up in the VIP map; R0 is the result.
func (b *progBuilder) lookup(key int16) {
	b.add(
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapVIPs),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
	)
}

// walkIPv6Ext emits parser.walkIPv6Ext: R5 the next header, R8 the offset
// of the first extension header, R7 the end of the IP packet. It ends at
// done with R5 the upper-layer protocol and R8 its offset, at frag for a
// fragment header with any of fragBits set, at fail for a bad chain (misplaced hop-by-hop, a
// header past the end, more than parser.MaxIPv6ExtHeaders). Each header is
// one unrolled step; R8 is masked at every step so the verifier sees
// bounded offsets and equal states it can prune.
func (b *progBuilder) walkIPv6Ext(prefix, done, frag, fail string, fragBits int32) {
	for i := 0; i <= parser.MaxIPv6ExtHeaders; i++ {
		step := func(s string) string { return fmt.Sprintf("%s_%s%d", prefix, s, i) }
		hop := step("opt")
		if i != 0 {
			hop = fail // hop-by-hop only right after the IPv6 header
		}
		b.add(
			asm.And.Imm(asm.R8, offsetMask),
			asm.JEq.Imm(asm.R5, ip6HopByHop, hop),
			asm.JEq.Imm(asm.R5, ip6Routing, step("opt")),
			asm.JEq.Imm(asm.R5, ip6DestOpts, step("opt")),
			asm.JEq.Imm(asm.R5, ip6AH, step("ah")),
			asm.JEq.Imm(asm.R5, ip6Fragment, step("frag")),
			asm.Ja.Label(done),
		)
		header8 := func(name string) {
			b.label(name)
			b.needOff(asm.R8, 8, asm.R7, fail)
			b.pointAt(asm.R8, 8, fail)
		}
		header8(step("opt"))
		b.add(
			asm.LoadMem(asm.R4, asm.R1, 1, asm.Byte),
			asm.Add.Imm(asm.R4, 1),
			asm.LSh.Imm(asm.R4, 3),
			asm.Ja.Label(step("next")),
		)
		header8(step("ah"))
		b.add(
			asm.LoadMem(asm.R4, asm.R1, 1, asm.Byte),
			asm.Add.Imm(asm.R4, 2),
			asm.LSh.Imm(asm.R4, 2),
			asm.Ja.Label(step("next")),
		)
		header8(step("frag"))
		b.add(
			asm.LoadMem(asm.R4, asm.R1, 2, asm.Half),
			asm.And.Imm(asm.R4, fragBits),
			asm.JNE.Imm(asm.R4, 0, frag),
			asm.Mov.Imm(asm.R4, 8),
		)
		b.label(step("next"))
		if i == parser.MaxIPv6ExtHeaders {
			b.add(asm.Ja.Label(fail))
			continue
		}
		b.add(
			asm.Mov.Reg(asm.R0, asm.R8),
			asm.Add.Reg(asm.R0, asm.R4),
			asm.JGT.Reg(asm.R0, asm.R7, fail),
			asm.LoadMem(asm.R5, asm.R1, 0, asm.Byte),
			asm.Mov.Reg(asm.R8, asm.R0),
		)
	}
}

// copyKey copies the 20-byte key at fp+from to fp+to.
func (b *progBuilder) copyKey(from, to int16) {
	for w := int16(0); w < vipKeySize; w += 4 {
		b.add(
			asm.LoadMem(asm.R0, asm.R10, from+w, asm.Word),
			asm.StoreMem(asm.R10, to+w, asm.R0, asm.Word),
		)
	}
}

// programInstructions builds the XDP program: package classify's Frame,
// instruction for instruction in its outcomes (the tests hold it to that).
// Registers: R2 data, R3 data_end (until the first map lookup); R6 the L3
// offset, R7 the offset where the IP packet ends, R8 the offset being
// read, R9 the TTL / hop limit, R5 the protocol; all offsets are scalars
// from data. On the way out R6 is the verdict and R7 the counter index.
func programInstructions() asm.Instructions {
	b := &progBuilder{}

	// struct xdp_md: data @0, data_end @4, rx_queue_index @16.
	b.add(
		asm.LoadMem(asm.R4, asm.R1, 16, asm.Word),
		asm.StoreMem(asm.R10, stackQueue, asm.R4, asm.Word),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.Add.Imm(asm.R1, classify.MaxFrameLen),
		asm.JLT.Reg(asm.R1, asm.R3, "toolong"),
		// Ethernet header.
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.Add.Imm(asm.R1, header.EthernetHeaderLen),
		asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
		asm.LoadMem(asm.R5, asm.R2, header.EthernetTypeOffset, asm.Half),
		asm.Mov.Imm(asm.R6, header.EthernetHeaderLen),
	)
	// Up to parser.MaxVLANTags tags (802.1Q, 802.1ad, pre-standard 0x9100);
	// tag i's TCI is at 14+4i, the ethertype after it at 16+4i.
	for i := int32(0); i < parser.MaxVLANTags; i++ {
		tag := fmt.Sprintf("vlan%d", i)
		off := int16(header.EthernetHeaderLen + 4*i)
		b.add(
			asm.JEq.Imm(asm.R5, ethVLANle, tag),
			asm.JEq.Imm(asm.R5, ethQinQle, tag),
			asm.JNE.Imm(asm.R5, ethQinQv1le, "vlan_done"),
		)
		b.label(tag)
		b.add(
			asm.Mov.Reg(asm.R1, asm.R2),
			asm.Add.Imm(asm.R1, int32(off)+header.VLANTagLen),
			asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
			asm.LoadMem(asm.R5, asm.R2, off+header.VLANTCILen, asm.Half),
			asm.Mov.Imm(asm.R6, int32(off)+header.VLANTagLen),
		)
	}
	b.label("vlan_done")
	b.add(
		// One verifier state for the three tag counts.
		asm.And.Imm(asm.R6, 0x1f),
		asm.JEq.Imm(asm.R5, ethIPv4le, "ipv4"),
		asm.JEq.Imm(asm.R5, ethIPv6le, "ipv6"),
	)
	b.pass(classify.PassNonIP) // a third tag too

	// IPv4 (parser.parseIPv4): lengths, header checksum, then the key of
	// the destination address.
	b.label("ipv4")
	b.pointAt(asm.R6, header.IPv4MinimumHeaderLen, "malformed")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, header.IPv4VersionIHLOffset, asm.Byte),
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.RSh.Imm(asm.R5, 4),
		asm.JNE.Imm(asm.R5, header.IPv4Version, "malformed"),
		asm.And.Imm(asm.R4, 0x0f),
		asm.LSh.Imm(asm.R4, 2), // R4 = header length
		asm.JLT.Imm(asm.R4, header.IPv4MinimumHeaderLen, "malformed"),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Reg(asm.R5, asm.R4),
		asm.JGT.Reg(asm.R5, asm.R3, "malformed"),
		asm.LoadMem(asm.R7, asm.R1, header.IPv4TotalLenOffset, asm.Half),
		asm.HostTo(asm.BE, asm.R7, asm.Half), // R7 = total length
		asm.JLT.Reg(asm.R7, asm.R4, "malformed"),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Reg(asm.R5, asm.R7),
		asm.JGT.Reg(asm.R5, asm.R3, "malformed"),
		asm.Mov.Imm(asm.R0, 0),
	)
	// Header checksum: the sum of the header's 32-bit words folded to 16
	// bits is 0xffff in either byte order (RFC 1071).
	for w := int16(0); w < 60; w += 4 {
		if w >= header.IPv4MinimumHeaderLen {
			b.add(
				asm.JLE.Imm(asm.R4, int32(w), "ipv4_sum"),
				asm.Mov.Reg(asm.R5, asm.R1),
				asm.Add.Imm(asm.R5, int32(w)+4),
				asm.JGT.Reg(asm.R5, asm.R3, "malformed"),
			)
		}
		b.add(
			asm.LoadMem(asm.R5, asm.R1, w, asm.Word),
			asm.Add.Reg(asm.R0, asm.R5),
		)
	}
	b.label("ipv4_sum")
	b.add(
		asm.Mov.Reg(asm.R5, asm.R0),
		asm.RSh.Imm(asm.R5, 32),
		asm.Mov.Reg32(asm.R0, asm.R0),
		asm.Add.Reg(asm.R0, asm.R5),
	)
	for i := 0; i < 3; i++ {
		b.add(
			asm.Mov.Reg(asm.R5, asm.R0),
			asm.RSh.Imm(asm.R5, 16),
			asm.And.Imm(asm.R0, 0xffff),
			asm.Add.Reg(asm.R0, asm.R5),
		)
	}
	b.add(
		asm.JNE.Imm(asm.R0, 0xffff, "malformed"),
		asm.LoadMem(asm.R9, asm.R1, header.IPv4TTLOffset, asm.Byte),
		asm.StoreImm(asm.R10, stackKey, 0, asm.Word),
		asm.StoreImm(asm.R10, stackKey+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stackKey+8, keyV4Mapped, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, header.IPv4DstAddrOffset, asm.Word),
		asm.StoreMem(asm.R10, stackKey+12, asm.R5, asm.Word),
		asm.StoreImm(asm.R10, stackKey+16, keyAddress4, asm.Word),
		asm.Add.Reg(asm.R7, asm.R6), // R7 = end of the IP packet
		asm.LoadMem(asm.R5, asm.R1, header.IPv4FlagsFragOffset, asm.Half),
		asm.And.Imm(asm.R5, ipv4Fragment),
		asm.JNE.Imm(asm.R5, 0, "fragment"),
		asm.LoadMem(asm.R5, asm.R1, header.IPv4ProtocolOffset, asm.Byte),
		asm.Mov.Reg(asm.R8, asm.R6),
		asm.Add.Reg(asm.R8, asm.R4), // R8 = L4 offset
		asm.JEq.Imm(asm.R5, protoTCP, "tcp"),
		asm.JEq.Imm(asm.R5, protoICMP, "icmp4"),
		asm.Ja.Label("other"),
	)

	// IPv6 (parser.parseIPv6): lengths, the destination's key, then the
	// extension headers.
	b.label("ipv6")
	b.pointAt(asm.R6, header.IPv6HeaderLen, "malformed")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, 0, asm.Byte),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, header.IPv6Version, "malformed"),
		asm.LoadMem(asm.R7, asm.R1, header.IPv6PayloadLenOffset, asm.Half),
		asm.HostTo(asm.BE, asm.R7, asm.Half),
		asm.JEq.Imm(asm.R7, 0, "malformed"),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.Add.Imm(asm.R4, header.IPv6HeaderLen),
		asm.Add.Reg(asm.R4, asm.R7),
		asm.JGT.Reg(asm.R4, asm.R3, "malformed"),
		asm.Add.Imm(asm.R7, header.IPv6HeaderLen),
		asm.Add.Reg(asm.R7, asm.R6),
		asm.And.Imm(asm.R7, offsetMask), // R7 = end of the IP packet
		asm.LoadMem(asm.R9, asm.R1, header.IPv6HopLimitOffset, asm.Byte),
	)
	for i := int16(0); i < header.IPv6AddrLen; i += 4 {
		b.add(
			asm.LoadMem(asm.R5, asm.R1, header.IPv6DstAddrOffset+i, asm.Word),
			asm.StoreMem(asm.R10, stackKey+i, asm.R5, asm.Word),
		)
	}
	b.add(
		asm.StoreImm(asm.R10, stackKey+16, keyAddress6, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, header.IPv6NextHeaderOffset, asm.Byte),
		asm.Mov.Reg(asm.R8, asm.R6),
		asm.Add.Imm(asm.R8, header.IPv6HeaderLen),
	)
	b.walkIPv6Ext("ext", "ipv6_l4", "fragment", "malformed", ipv6Fragment)
	b.label("ipv6_l4")
	b.add(
		asm.JEq.Imm(asm.R5, protoTCP, "tcp"),
		asm.JEq.Imm(asm.R5, protoICMPv6, "icmp6"),
		asm.Ja.Label("other"),
	)

	// TCP (parser.parseTCP): the header and its data offset within the IP
	// packet; the destination port completes the key.
	b.label("tcp")
	b.needOff(asm.R8, header.TCPMinimumHeaderLen, asm.R7, "malformed")
	b.pointAt(asm.R8, header.TCPMinimumHeaderLen, "malformed")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, header.TCPDataOffsetOffset, asm.Byte),
		asm.RSh.Imm(asm.R4, 4),
		asm.LSh.Imm(asm.R4, 2),
		asm.JLT.Imm(asm.R4, header.TCPMinimumHeaderLen, "malformed"),
		asm.Add.Reg(asm.R4, asm.R8),
		asm.JGT.Reg(asm.R4, asm.R7, "malformed"),
		asm.LoadMem(asm.R5, asm.R1, header.TCPDstPortOffset, asm.Half),
		asm.StoreMem(asm.R10, stackKey+classify.KeyPortOffset, asm.R5, asm.Half),
		asm.StoreImm(asm.R10, stackKey+classify.KeyKindOffset, 0, asm.Byte),
	)
	b.lookup(stackKey)
	b.add(
		asm.JNE.Imm(asm.R0, 0, "service"),
		// Not a service: is the address a VIP's at all?
		asm.StoreImm(asm.R10, stackKey+classify.KeyPortOffset, 0, asm.Half),
		asm.StoreImm(asm.R10, stackKey+classify.KeyKindOffset, 1, asm.Byte),
		asm.Ja.Label("other"),
	)

	// ICMP error (parser.parseICMPv4): type, the quoted IPv4 header and 8
	// bytes of its TCP header. The key becomes the quoted flow's source.
	b.label("icmp4")
	b.needOff(asm.R8, 8+header.IPv4MinimumHeaderLen, asm.R7, "icmp")
	b.pointAt(asm.R8, 8+header.IPv4MinimumHeaderLen, "icmp")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, header.ICMPTypeOffset, asm.Byte),
		asm.JEq.Imm(asm.R4, int32(parser.ICMPv4DestUnreachable), "icmp4_error"),
		asm.JEq.Imm(asm.R4, int32(parser.ICMPv4TimeExceeded), "icmp4_error"),
		asm.JNE.Imm(asm.R4, int32(parser.ICMPv4ParamProblem), "icmp"),
	)
	b.label("icmp4_error")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, 8+header.IPv4VersionIHLOffset, asm.Byte),
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.RSh.Imm(asm.R5, 4),
		asm.JNE.Imm(asm.R5, header.IPv4Version, "icmp"),
		asm.And.Imm(asm.R4, 0x0f),
		asm.LSh.Imm(asm.R4, 2),
		asm.JLT.Imm(asm.R4, header.IPv4MinimumHeaderLen, "icmp"),
		asm.LoadMem(asm.R5, asm.R1, 8+header.IPv4ProtocolOffset, asm.Byte),
		asm.JNE.Imm(asm.R5, protoTCP, "icmp"),
		asm.LoadMem(asm.R5, asm.R1, 8+header.IPv4FlagsFragOffset, asm.Half),
		asm.And.Imm(asm.R5, ipv4FragOff),
		asm.JNE.Imm(asm.R5, 0, "icmp"),
		asm.Mov.Reg(asm.R0, asm.R8),
		asm.Add.Imm(asm.R0, 8+8),
		asm.Add.Reg(asm.R0, asm.R4),
		asm.JGT.Reg(asm.R0, asm.R7, "icmp"),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Reg(asm.R5, asm.R4),
		asm.Mov.Reg(asm.R0, asm.R5),
		asm.Add.Imm(asm.R0, 8+8),
		asm.JGT.Reg(asm.R0, asm.R3, "icmp"),
	)
	b.copyKey(stackKey, stackOuterKey)
	b.add(
		asm.LoadMem(asm.R0, asm.R1, 8+header.IPv4SrcAddrOffset, asm.Word),
		asm.StoreMem(asm.R10, stackKey+12, asm.R0, asm.Word),
		asm.StoreImm(asm.R10, stackKey+16, keyService4, asm.Word),
		asm.LoadMem(asm.R0, asm.R5, 8+header.TCPSrcPortOffset, asm.Half),
		asm.StoreMem(asm.R10, stackKey+classify.KeyPortOffset, asm.R0, asm.Half),
		asm.Ja.Label("icmp_service"),
	)

	// ICMPv6 error (parser.parseICMPv6): type, the quoted IPv6 header, its
	// extension headers, 8 bytes of TCP.
	b.label("icmp6")
	b.needOff(asm.R8, 8+header.IPv6HeaderLen, asm.R7, "icmp")
	b.pointAt(asm.R8, 8+header.IPv6HeaderLen, "icmp")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, header.ICMPTypeOffset, asm.Byte),
		asm.JLT.Imm(asm.R4, int32(parser.ICMPv6DestUnreachable), "icmp"),
		asm.JGT.Imm(asm.R4, int32(parser.ICMPv6ParamProblem), "icmp"),
		asm.LoadMem(asm.R4, asm.R1, 8, asm.Byte),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, header.IPv6Version, "icmp"),
		asm.LoadMem(asm.R5, asm.R1, 8+header.IPv6NextHeaderOffset, asm.Byte),
		asm.Mov.Reg(asm.R6, asm.R8),
		asm.Add.Imm(asm.R6, 8), // R6 = the quoted header
		asm.Mov.Reg(asm.R8, asm.R6),
		asm.Add.Imm(asm.R8, header.IPv6HeaderLen),
	)
	b.walkIPv6Ext("quote", "quote_l4", "icmp", "icmp", ipv6FragOff)
	b.label("quote_l4")
	b.add(asm.JNE.Imm(asm.R5, protoTCP, "icmp"))
	b.needOff(asm.R8, 8, asm.R7, "icmp")
	b.pointAt(asm.R8, 8, "icmp")
	b.add(
		asm.LoadMem(asm.R4, asm.R1, header.TCPSrcPortOffset, asm.Half),
		asm.And.Imm(asm.R6, offsetMask),
	)
	b.pointAt(asm.R6, header.IPv6DstAddrOffset, "icmp")
	b.copyKey(stackKey, stackOuterKey)
	for i := int16(0); i < header.IPv6AddrLen; i += 4 {
		b.add(
			asm.LoadMem(asm.R0, asm.R1, header.IPv6SrcAddrOffset+i, asm.Word),
			asm.StoreMem(asm.R10, stackKey+i, asm.R0, asm.Word),
		)
	}
	b.add(
		asm.StoreMem(asm.R10, stackKey+classify.KeyPortOffset, asm.R4, asm.Half),
		asm.StoreImm(asm.R10, stackKey+classify.KeyKindOffset, 0, asm.Byte),
		asm.Ja.Label("icmp_service"),
	)

	// An ICMP error quoting a flow: the quoted flow's service, else the
	// outer destination's address.
	b.label("icmp_service")
	b.lookup(stackKey)
	b.add(asm.JNE.Imm(asm.R0, 0, "service"))
	b.lookup(stackOuterKey)
	b.add(asm.JEq.Imm(asm.R0, 0, "notvip"))
	b.pass(classify.PassVIPICMP)

	// A VIP service: TTL, then the socket of this RX queue.
	b.label("service")
	b.add(
		asm.JLE.Imm(asm.R9, 1, "ttl"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapXSKs),
		asm.LoadMem(asm.R2, asm.R10, stackQueue, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.Mov.Imm(asm.R7, int32(classify.Redirect)),
		asm.JEq.Imm(asm.R0, xdpRedirect, "count"),
		asm.Mov.Imm(asm.R7, int32(classify.PassNoSocket)),
		asm.Ja.Label("count"),
	)

	// Not for the fast path: the reason depends on whether the address
	// (the key with port 0) is a VIP's.
	for _, r := range []struct {
		label string
		v     classify.Verdict
	}{{"fragment", classify.PassVIPFragment}, {"other", classify.PassVIPOther}, {"icmp", classify.PassVIPICMP}} {
		b.label(r.label)
		b.add(
			asm.Mov.Imm(asm.R6, int32(r.v)),
			asm.Ja.Label("address"),
		)
	}
	b.label("address")
	b.lookup(stackKey)
	b.add(
		asm.JEq.Imm(asm.R0, 0, "notvip"),
		asm.Mov.Reg(asm.R7, asm.R6),
		asm.Mov.Imm(asm.R6, xdpPass),
		asm.Ja.Label("count"),
	)

	b.label("notvip")
	b.pass(classify.PassNotVIP)
	b.label("ttl")
	b.pass(classify.PassTTL)
	b.label("malformed")
	b.pass(classify.PassMalformed)
	b.label("toolong")
	b.pass(classify.PassTooLong)

	// count: counters[R7]++, return R6.
	b.label("count")
	b.add(
		asm.StoreMem(asm.R10, stackCounter, asm.R7, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounters),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackCounter),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.label("out")
	b.add(
		asm.Mov.Reg(asm.R0, asm.R6),
		asm.Return(),
	)
	return b.p
}

// ProgramOptions size the program's maps.
type ProgramOptions struct {
	// MaxVIPs bounds the VIP map: one entry per address:port plus one per
	// distinct address. 0 means 4096.
	MaxVIPs int
	// MaxQueues is the number of XSK map slots (RX queue indexes). 0 means 256.
	MaxQueues int
}

// Program is the loaded XDP program and its maps. It is not attached
// anywhere until Attach.
type Program struct {
	coll     *ebpf.Collection
	prog     *ebpf.Program
	vips     *ebpf.Map
	xsks     *ebpf.Map
	counters *ebpf.Map
	current  map[classify.Key]bool
}

// LoadProgram builds the XDP program and loads it into the kernel; the
// verifier's log is part of the error when it refuses.
func LoadProgram(opts ProgramOptions) (*Program, error) {
	if opts.MaxVIPs < 0 || opts.MaxQueues < 0 {
		return nil, errors.New("afxdp: MaxVIPs and MaxQueues must not be negative")
	}
	if opts.MaxVIPs == 0 {
		opts.MaxVIPs = 4096
	}
	if opts.MaxQueues == 0 {
		opts.MaxQueues = 256
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			mapVIPs:     {Name: mapVIPs, Type: ebpf.Hash, KeySize: vipKeySize, ValueSize: 4, MaxEntries: uint32(opts.MaxVIPs)},
			mapXSKs:     {Name: mapXSKs, Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(opts.MaxQueues)},
			mapCounters: {Name: mapCounters, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(numCounters)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			progName: {
				Name:         progName,
				Type:         ebpf.XDP,
				Instructions: programInstructions(),
				License:      "Dual MIT/GPL",
			},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("afxdp: load XDP program: %w", err)
	}
	return &Program{
		coll:     coll,
		prog:     coll.Programs[progName],
		vips:     coll.Maps[mapVIPs],
		xsks:     coll.Maps[mapXSKs],
		counters: coll.Maps[mapCounters],
		current:  map[classify.Key]bool{},
	}, nil
}

// SetVIPs makes vips the complete set of TCP services the program
// redirects: entries not in vips are removed, new ones added. It is safe to
// call while traffic flows (a reload): each key changes atomically.
// It is not safe for concurrent use.
func (p *Program) SetVIPs(vips []netip.AddrPort) error {
	want := make(map[classify.Key]bool, 2*len(vips))
	for i, v := range vips {
		if !v.Addr().IsValid() {
			return fmt.Errorf("afxdp: VIP %d: invalid address", i)
		}
		if v.Port() == 0 {
			return fmt.Errorf("afxdp: VIP %s: port 0 is not a TCP service", v)
		}
	}
	for _, k := range classify.NewVIPs(vips).Keys() {
		want[k] = true
	}
	// Remove first, so a full map has room for what is added.
	for k := range p.current {
		if want[k] {
			continue
		}
		if err := p.vips.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("afxdp: remove VIP: %w", err)
		}
		delete(p.current, k)
	}
	for k := range want {
		if p.current[k] {
			continue
		}
		if err := p.vips.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("afxdp: add VIP: %w", err)
		}
		p.current[k] = true
	}
	return nil
}

// setSocket puts an AF_XDP socket into the XSK map slot of its queue.
func (p *Program) setSocket(queue, fd int) error {
	if err := p.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("afxdp: XSK map slot %d: %w", queue, err)
	}
	return nil
}

// Counters sums the verdict counters over all CPUs.
func (p *Program) Counters() (Counters, error) {
	var out Counters
	var perCPU []uint64
	for i := range out {
		if err := p.counters.Lookup(uint32(i), &perCPU); err != nil {
			return out, fmt.Errorf("afxdp: read counter %s: %w", Counter(i), err)
		}
		for _, v := range perCPU {
			out[i] += v
		}
	}
	return out, nil
}

// TestRun runs the program once on frame with BPF_PROG_TEST_RUN and
// returns the verdict it counted (a redirect without a socket in the XSK
// map counts as PassNoSocket). It is for tests and tools comparing the
// program with classify; on an attached program live traffic moves the
// counters too, so the answer would be ambiguous: it returns an error
// when more than one counter moved.
func (p *Program) TestRun(frame []byte) (Counter, error) {
	before, err := p.Counters()
	if err != nil {
		return 0, err
	}
	if _, err := p.prog.Run(&ebpf.RunOptions{Data: frame}); err != nil {
		return 0, fmt.Errorf("afxdp: test run: %w", err)
	}
	after, err := p.Counters()
	if err != nil {
		return 0, err
	}
	moved, n := Counter(0), uint64(0)
	for i := range after {
		if d := after[i] - before[i]; d != 0 {
			moved, n = Counter(i), n+d
		}
	}
	if n != 1 {
		return 0, fmt.Errorf("afxdp: test run moved the counters by %d, want 1", n)
	}
	return moved, nil
}

// FD is the program's file descriptor (for attaching by other means).
func (p *Program) FD() int { return p.prog.FD() }

// Close unloads the program and its maps (an attached link keeps the
// program alive until the link closes).
func (p *Program) Close() error {
	p.coll.Close()
	return nil
}
