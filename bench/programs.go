package bench

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// XDP return codes (enum xdp_action).
const (
	xdpAborted = 0
	xdpDrop    = 1
	xdpPass    = 2
	xdpTX      = 3
)

// Offsets in an untagged IPv4 frame with a 20-byte IP header, the only
// shape the generator's templates have (Template checks it).
const (
	offIPID      = 14 + 4
	offIPCsum    = 14 + 10
	offSrcLow    = 14 + 14 // last two bytes of the source address
	offIPProto   = 14 + 9
	offIPVerIHL  = 14
	offSrcPort   = 34
	offDstPort   = 36
	offTCPCsum   = 34 + 16
	minGenFrame  = 34 + 20
	ethIPv4le    = 0x0008 // 0x0800 as a little-endian 16-bit load sees it
	port443le    = 0xBB01 // 443 in network byte order, little-endian load
	protoTCP     = 6
	maxTemplates = 16 // slots of the generator's counter map: IP ID & 15
)

// Generated flows: source port genPortBase + flow%genPorts, source address
// the template's with its last two bytes set to flow/genPorts.
const (
	genPortBase = 10000
	genPortBits = 14
	genPorts    = 1 << genPortBits
)

// MaxFlows bounds GeneratorOptions.Flows: 2^16 addresses × 2^14 ports.
const MaxFlows = 1 << 30

// generatorInstructions builds the generator's XDP program. For each frame
// it takes the template slot from the low four bits of the IP ID, bumps the
// slot's per-CPU counter c, and writes flow = c mod flows into the frame
// as source port and the source address's last 16 bits, fixing the IPv4
// and TCP checksums incrementally (RFC 1624: HC' = ~(~HC + ~m + m')). The
// arithmetic runs on byte-swapped 16-bit words throughout: the one's
// complement sum does not depend on byte order.
//
//	r7 data, r8 counter value / flow, r4 new port, r5 new address half,
//	r1 old port, r2 old address half.
func generatorInstructions(flows int32) asm.Instructions {
	fold := func(r asm.Register) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R9, r),
			asm.RSh.Imm(asm.R9, 16),
			asm.And.Imm(r, 0xffff),
			asm.Add.Reg(r, asm.R9),
		}
	}
	var p asm.Instructions
	p = append(p,
		asm.LoadMem(asm.R7, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Add.Imm(asm.R4, minGenFrame),
		asm.JGT.Reg(asm.R4, asm.R3, "abort"),
		asm.LoadMem(asm.R1, asm.R7, offIPID+1, asm.Byte), // low byte of the ID
		asm.And.Imm(asm.R1, maxTemplates-1),
		asm.StoreMem(asm.R10, -4, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("bench_gen_counters"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "abort"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mod.Imm(asm.R8, flows),
		// Restore the template's headers: live-frame mode recycles pages,
		// and a kernel that forwarded the frame in place rewrote them
		// (MACs, TTL, a DNAT'd destination).
		asm.LoadMapPtr(asm.R1, 0).WithReference("bench_gen_headers"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "abort"),
	)
	for off := int16(0); off+4 <= minGenFrame; off += 4 {
		p = append(p,
			asm.LoadMem(asm.R1, asm.R0, off, asm.Word),
			asm.StoreMem(asm.R7, off, asm.R1, asm.Word),
		)
	}
	p = append(p,
		asm.LoadMem(asm.R1, asm.R0, minGenFrame-2, asm.Half),
		asm.StoreMem(asm.R7, minGenFrame-2, asm.R1, asm.Half),
		// New port and address half, in network byte order.
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.And.Imm(asm.R4, genPorts-1),
		asm.Add.Imm(asm.R4, genPortBase),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.Mov.Reg(asm.R5, asm.R8),
		asm.RSh.Imm(asm.R5, genPortBits),
		asm.And.Imm(asm.R5, 0xffff),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.LoadMem(asm.R1, asm.R7, offSrcPort, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, offSrcLow, asm.Half),
		asm.StoreMem(asm.R7, offSrcPort, asm.R4, asm.Half),
		asm.StoreMem(asm.R7, offSrcLow, asm.R5, asm.Half),
		// ~m for the two old words.
		asm.Xor.Imm(asm.R1, 0xffff),
		asm.Xor.Imm(asm.R2, 0xffff),
		// IPv4 header checksum: the address half changed.
		asm.LoadMem(asm.R0, asm.R7, offIPCsum, asm.Half),
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.Add.Reg(asm.R0, asm.R2),
		asm.Add.Reg(asm.R0, asm.R5),
	)
	p = append(p, fold(asm.R0)...)
	p = append(p, fold(asm.R0)...)
	p = append(p,
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.StoreMem(asm.R7, offIPCsum, asm.R0, asm.Half),
		// TCP checksum: the pseudo-header's address half and the port.
		asm.LoadMem(asm.R0, asm.R7, offTCPCsum, asm.Half),
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.Add.Reg(asm.R0, asm.R2),
		asm.Add.Reg(asm.R0, asm.R5),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.Add.Reg(asm.R0, asm.R4),
	)
	p = append(p, fold(asm.R0)...)
	p = append(p, fold(asm.R0)...)
	p = append(p,
		asm.Xor.Imm(asm.R0, 0xffff),
		asm.StoreMem(asm.R7, offTCPCsum, asm.R0, asm.Half),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpAborted).WithSymbol("abort"),
		asm.Return(),
	)
	return p
}

// headerSlot is a value of the generator's header map: a template's first
// minGenFrame bytes, padded to 8.
const headerSlot = (minGenFrame + 7) &^ 7

// countInstructions builds the counting program (on the nodes, and on the
// router for the generator's ceiling): it counts (packets, bytes) of IPv4
// TCP to port 443 for mac in a per-CPU array and drops what it counts. The
// rest passes: ARP keeps neighbour entries alive, and a frame for another
// MAC (flooded by the bridge) is not counted twice.
func countInstructions(mac [6]byte) asm.Instructions {
	var p asm.Instructions
	p = append(p,
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R6, asm.R3),
		asm.Sub.Reg(asm.R6, asm.R2), // frame length
	)
	p = append(p,
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, offDstPort+2),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 0, asm.Word),
		asm.JNE.Imm32(asm.R4, int32(binary.LittleEndian.Uint32(mac[0:4])), "pass"),
		asm.LoadMem(asm.R4, asm.R2, 4, asm.Half),
		asm.JNE.Imm(asm.R4, int32(binary.LittleEndian.Uint16(mac[4:6])), "pass"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R4, ethIPv4le, "pass"),
		asm.LoadMem(asm.R4, asm.R2, offIPVerIHL, asm.Byte),
		asm.JNE.Imm(asm.R4, 0x45, "pass"),
		asm.LoadMem(asm.R4, asm.R2, offIPProto, asm.Byte),
		asm.JNE.Imm(asm.R4, protoTCP, "pass"),
		asm.LoadMem(asm.R4, asm.R2, offDstPort, asm.Half),
		asm.JNE.Imm(asm.R4, port443le, "pass"),
	)
	p = append(p,
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("bench_counts"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R6),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	return append(p,
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
}

// xdpProgram is a loaded XDP program and its one per-CPU array.
type xdpProgram struct {
	coll *ebpf.Collection
	prog *ebpf.Program
	m    *ebpf.Map
}

func loadXDP(name, mapName string, ins asm.Instructions, valueSize, entries uint32) (*xdpProgram, error) {
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			mapName: {Name: mapName, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: valueSize, MaxEntries: entries},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			name: {Name: name, Type: ebpf.XDP, Instructions: ins, License: "Dual MIT/GPL"},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("bench: load %s: %w", name, err)
	}
	return &xdpProgram{coll: coll, prog: coll.Programs[name], m: coll.Maps[mapName]}, nil
}

func (x *xdpProgram) Close() { x.coll.Close() }

// sum adds up a uint64 field of every per-CPU value of slot key.
func (x *xdpProgram) sum(key uint32, words int) ([]uint64, error) {
	out := make([]uint64, words)
	if words == 1 {
		var per []uint64
		if err := x.m.Lookup(key, &per); err != nil {
			return nil, err
		}
		for _, v := range per {
			out[0] += v
		}
		return out, nil
	}
	var per []countValue
	if err := x.m.Lookup(key, &per); err != nil {
		return nil, err
	}
	for _, v := range per {
		out[0] += v.Packets
		out[1] += v.Bytes
	}
	return out, nil
}

// countValue is one CPU's slot of the counting program's map.
type countValue struct{ Packets, Bytes uint64 }

// Counter is a loaded counting program (attach it with attachXDP).
type Counter struct{ *xdpProgram }

// LoadCounter loads the counting program (see countInstructions); mac is
// the interface's own address.
func LoadCounter(mac [6]byte) (*Counter, error) {
	x, err := loadXDP("bench_count", "bench_counts", countInstructions(mac), 16, 1)
	if err != nil {
		return nil, err
	}
	return &Counter{x}, nil
}

// Read returns the packets and bytes counted so far, over all CPUs.
func (c *Counter) Read() (packets, bytes uint64, err error) {
	v, err := c.sum(0, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: read counter: %w", err)
	}
	return v[0], v[1], nil
}

var errFlows = errors.New("bench: Flows must be 1..2^30")
