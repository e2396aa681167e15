package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/anysched/anysched/header"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// XDP return codes (enum xdp_action).
const (
	xdpPass     = 2
	xdpRedirect = 4
)

// Counter indexes the per-CPU counters the XDP program keeps.
type Counter int

// The XDP program's verdict counters.
const (
	// CounterRedirected counts frames handed to an AF_XDP socket.
	CounterRedirected Counter = iota
	// CounterPassNonIP counts frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...).
	CounterPassNonIP
	// CounterPassNotVIP counts IP frames that are not for a VIP address and port.
	CounterPassNotVIP
	// CounterPassTTL counts VIP frames whose TTL / hop limit is <= 1: a
	// forwarding kernel answers them with ICMP time exceeded.
	CounterPassTTL
	// CounterPassMalformed counts truncated frames and bad IP headers.
	CounterPassMalformed
	// CounterPassNoSocket counts VIP frames that arrived on a queue with no
	// AF_XDP socket in the XSK map.
	CounterPassNoSocket
	numCounters
)

var counterNames = [numCounters]string{
	"redirected", "pass_non_ip", "pass_not_vip", "pass_ttl", "pass_malformed", "pass_no_socket",
}

// String names the counter as metrics label values do.
func (c Counter) String() string {
	if c < 0 || c >= numCounters {
		return fmt.Sprintf("counter(%d)", int(c))
	}
	return counterNames[c]
}

// Counters are the XDP program's verdict counts, summed over CPUs.
type Counters [numCounters]uint64

// vipKeySize is the size of a key in the VIP map: 16 address bytes (IPv4 as
// v4-mapped IPv6), the port in network byte order, two bytes of padding.
const vipKeySize = 20

// A VIP map entry with port 0 marks the address itself: ICMP errors,
// non-first IPv4 fragments and IPv6 frames with extension headers carry no
// port the program can read cheaply, so they are matched on the address and
// the fast path (which parses everything) decides.
func vipKey(addr netip.Addr, port uint16) [vipKeySize]byte {
	var k [vipKeySize]byte
	a := addr.Unmap().As16() // IPv4 comes out v4-mapped
	copy(k[:16], a[:])
	binary.BigEndian.PutUint16(k[16:18], port)
	return k
}

// Program names used in the collection.
const (
	mapVIPs     = "anysched_vips"
	mapXSKs     = "anysched_xsks"
	mapCounters = "anysched_counters"
	progName    = "anysched_xdp"
)

// Stack layout of the program: the 20-byte VIP key at fp-24, the 4-byte
// counter index at fp-4.
const (
	stackKey     = -24
	stackCounter = -4
)

// Ethertypes and protocol numbers as the program sees them: a 16-bit load
// from the packet on a little-endian machine yields the bytes swapped.
const (
	ethIPv4le = 0x0008 // 0x0800
	ethIPv6le = 0xDD86 // 0x86DD
	ethVLANle = 0x0081 // 0x8100
	ethQinQle = 0xA888 // 0x88A8
	// ipv4FragOff is the fragment offset bits of the flags/fragment word.
	ipv4FragOff = header.IPv4FragmentOffsetMask>>8 | header.IPv4FragmentOffsetMask&0xff<<8
	protoTCP    = 6
	protoICMP   = 1
	protoICMPv6 = 58
	// l4Head is how much of the L4 header the program reads: the TCP
	// ports, or the ICMP type and code.
	l4Head = header.TCPDstPortOffset + 2
)

// programInstructions builds the XDP program. Registers:
//
//	r9 rx_queue_index, r2 data, r3 data_end, r7 L3 header, r8 L4 header,
//	r6 TTL / hop limit until the VIP matched,
//	r6 verdict and r7 counter index on the way out.
func programInstructions() asm.Instructions {
	pass := func(c Counter) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Imm(asm.R6, xdpPass),
			asm.Mov.Imm(asm.R7, int32(c)),
			asm.Ja.Label("count"),
		}
	}
	var p asm.Instructions
	pending := ""
	// label names the next instruction added.
	label := func(name string) { pending = name }
	add := func(ins ...asm.Instruction) {
		if pending != "" && len(ins) > 0 {
			ins[0] = ins[0].WithSymbol(pending)
			pending = ""
		}
		p = append(p, ins...)
	}

	// struct xdp_md: data @0, data_end @4, rx_queue_index @16.
	add(
		asm.LoadMem(asm.R9, asm.R1, 16, asm.Word),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		// Ethernet header.
		asm.Mov.Reg(asm.R7, asm.R2),
		asm.Add.Imm(asm.R7, header.EthernetHeaderLen),
		asm.JGT.Reg(asm.R7, asm.R3, "malformed"),
		asm.LoadMem(asm.R5, asm.R2, header.EthernetTypeOffset, asm.Half),
	)
	// Up to two 802.1Q / 802.1ad tags: r7 is just past the tag's TPID,
	// the inner ethertype follows the TCI.
	for i := 0; i < 2; i++ {
		next := fmt.Sprintf("vlan%d_done", i)
		add(
			asm.JEq.Imm(asm.R5, ethVLANle, fmt.Sprintf("vlan%d", i)),
			asm.JNE.Imm(asm.R5, ethQinQle, next),
			asm.Mov.Reg(asm.R1, asm.R7).WithSymbol(fmt.Sprintf("vlan%d", i)),
			asm.Add.Imm(asm.R1, header.VLANTagLen),
			asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
			asm.LoadMem(asm.R5, asm.R7, header.VLANTCILen, asm.Half),
			asm.Mov.Reg(asm.R7, asm.R1),
		)
		label(next)
	}
	add(
		asm.JEq.Imm(asm.R5, ethIPv4le, "ipv4"),
		asm.JEq.Imm(asm.R5, ethIPv6le, "ipv6"),
	)
	add(pass(CounterPassNonIP)...)

	// IPv4: version, header length, TTL, fragment offset, destination.
	add(
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R1, header.IPv4MinimumHeaderLen),
		asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
		asm.LoadMem(asm.R4, asm.R7, header.IPv4VersionIHLOffset, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R4),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, header.IPv4Version, "malformed"),
		asm.And.Imm(asm.R4, 0x0f),
		asm.LSh.Imm(asm.R4, 2),
		asm.JLT.Imm(asm.R4, header.IPv4MinimumHeaderLen, "malformed"),
		// v4-mapped destination into the key.
		asm.StoreImm(asm.R10, stackKey, 0, asm.Word),
		asm.StoreImm(asm.R10, stackKey+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stackKey+8, -65536, asm.Word), // bytes 00 00 ff ff
		asm.LoadMem(asm.R1, asm.R7, header.IPv4DstAddrOffset, asm.Word),
		asm.StoreMem(asm.R10, stackKey+12, asm.R1, asm.Word),
		asm.StoreImm(asm.R10, stackKey+16, 0, asm.Word),             // port 0 + padding
		asm.LoadMem(asm.R6, asm.R7, header.IPv4TTLOffset, asm.Byte), // checked once the VIP matched
		asm.LoadMem(asm.R1, asm.R7, header.IPv4FlagsFragOffset, asm.Half),
		asm.And.Imm(asm.R1, ipv4FragOff),
		asm.JNE.Imm(asm.R1, 0, "lookup"), // non-first fragment: address only
		asm.LoadMem(asm.R5, asm.R7, header.IPv4ProtocolOffset, asm.Byte),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Reg(asm.R8, asm.R4),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, l4Head),
		asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
		asm.JEq.Imm(asm.R5, protoTCP, "tcp"),
		asm.JNE.Imm(asm.R5, protoICMP, "notvip"),
		asm.LoadMem(asm.R1, asm.R8, header.ICMPTypeOffset, asm.Byte),
		asm.JEq.Imm(asm.R1, 3, "lookup"),  // destination unreachable (incl. frag needed)
		asm.JEq.Imm(asm.R1, 11, "lookup"), // time exceeded
		asm.Ja.Label("notvip"),
	)

	// IPv6: version, hop limit, destination, next header.
	add(
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R1, header.IPv6HeaderLen),
		asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, header.IPv6Version, "malformed"),
	)
	for i := int16(0); i < header.IPv6AddrLen; i += 4 {
		add(
			asm.LoadMem(asm.R1, asm.R7, header.IPv6DstAddrOffset+i, asm.Word),
			asm.StoreMem(asm.R10, stackKey+i, asm.R1, asm.Word),
		)
	}
	// A v4-mapped destination would alias an IPv4 VIP's key: not ours.
	add(
		asm.LoadMem(asm.R1, asm.R7, header.IPv6DstAddrOffset+8, asm.Word),
		asm.JNE.Imm32(asm.R1, -65536, "v6_not_mapped"), // bytes 00 00 ff ff
		asm.LoadMem(asm.R1, asm.R7, header.IPv6DstAddrOffset, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "notvip"),
	)
	label("v6_not_mapped")
	add(
		asm.StoreImm(asm.R10, stackKey+16, 0, asm.Word),
		asm.LoadMem(asm.R6, asm.R7, header.IPv6HopLimitOffset, asm.Byte),
		asm.LoadMem(asm.R5, asm.R7, header.IPv6NextHeaderOffset, asm.Byte),
		// Extension headers: hop-by-hop, routing, fragment, destination
		// options. The fast path walks them; the program matches the address.
		asm.JEq.Imm(asm.R5, 0, "lookup"),
		asm.JEq.Imm(asm.R5, 43, "lookup"),
		asm.JEq.Imm(asm.R5, 44, "lookup"),
		asm.JEq.Imm(asm.R5, 60, "lookup"),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Imm(asm.R8, header.IPv6HeaderLen),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, l4Head),
		asm.JGT.Reg(asm.R1, asm.R3, "malformed"),
		asm.JEq.Imm(asm.R5, protoTCP, "tcp"),
		asm.JNE.Imm(asm.R5, protoICMPv6, "notvip"),
		asm.LoadMem(asm.R1, asm.R8, header.ICMPTypeOffset, asm.Byte),
		// destination unreachable, packet too big, time exceeded
		asm.JEq.Imm(asm.R1, 1, "lookup"),
		asm.JEq.Imm(asm.R1, 2, "lookup"),
		asm.JEq.Imm(asm.R1, 3, "lookup"),
		asm.Ja.Label("notvip"),
	)

	// TCP: the destination port completes the key.
	add(
		asm.LoadMem(asm.R1, asm.R8, header.TCPDstPortOffset, asm.Half).WithSymbol("tcp"),
		asm.StoreMem(asm.R10, stackKey+16, asm.R1, asm.Half),
	)

	// Look the key up; a hit goes to the socket of this RX queue.
	add(
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapVIPs).WithSymbol("lookup"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "notvip"),
		asm.JLE.Imm(asm.R6, 1, "ttl"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapXSKs),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.Mov.Imm(asm.R7, int32(CounterRedirected)),
		asm.JEq.Imm(asm.R0, xdpRedirect, "count"),
		asm.Mov.Imm(asm.R7, int32(CounterPassNoSocket)),
		asm.Ja.Label("count"),
	)

	label("notvip")
	add(pass(CounterPassNotVIP)...)
	label("ttl")
	add(pass(CounterPassTTL)...)
	label("malformed")
	add(pass(CounterPassMalformed)...)

	// count: counters[r7]++, return r6.
	add(
		asm.StoreMem(asm.R10, stackCounter, asm.R7, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounters),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackCounter),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R6).WithSymbol("out"),
		asm.Return(),
	)
	return p
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
	current  map[[vipKeySize]byte]bool
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
		current:  map[[vipKeySize]byte]bool{},
	}, nil
}

// SetVIPs makes vips the complete set of TCP services the program
// redirects: entries not in vips are removed, new ones added. It is safe to
// call while traffic flows (a reload): each key changes atomically.
// It is not safe for concurrent use.
func (p *Program) SetVIPs(vips []netip.AddrPort) error {
	want := make(map[[vipKeySize]byte]bool, 2*len(vips))
	for i, v := range vips {
		if !v.Addr().IsValid() {
			return fmt.Errorf("afxdp: VIP %d: invalid address", i)
		}
		if v.Port() == 0 {
			return fmt.Errorf("afxdp: VIP %s: port 0 is not a TCP service", v)
		}
		want[vipKey(v.Addr(), v.Port())] = true
		want[vipKey(v.Addr(), 0)] = true
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

// FD is the program's file descriptor (for attaching by other means).
func (p *Program) FD() int { return p.prog.FD() }

// Close unloads the program and its maps (an attached link keeps the
// program alive until the link closes).
func (p *Program) Close() error {
	p.coll.Close()
	return nil
}
