package fastpath

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

// The flood tests reproduce the state-table flush of issue 11 (findings 1
// and 4) through the real worker: a thousand legitimate flows that are
// still talking, then a flood of spoofed one-shot flows of 0.5× to 4× the
// table's capacity, each with a valid checksum (a spoofer can compute
// one). They print the curve (flood size → legitimate entries lost) and
// require that nothing is lost.
//
// The same tests on the code before the segmented LRU (main at aa9d7ac,
// oldest-deadline eviction) lost, of 1000, at 0.5× / 1× / 2× / 4×:
// pins at capacity 65536: 51 / 564 / 995 / 1000 (0x16 segments) and
// 54 / 583 / 993 / 1000 (non-TLS SYNs); transition records at 16384:
// 2 / 45 / 449 / 778. At the default capacities (262144 pins, 65536
// records): 54 / 546 / 989 / 1000, 39 / 548 / 989 / 1000 and
// 2 / 51 / 535 / 928. Now: 0 everywhere.

const (
	floodLegit       = 1000
	floodPinCapacity = 1 << 16
	floodTransCap    = 1 << 14
)

var floodMultiples = []float64{0.5, 1, 2, 4}

func floodConfig(t testing.TB, weightA string) *sched.Config {
	t.Helper()
	y := strings.Replace(strings.Replace(testConfigYAMLFor(t, weightA),
		"pins:\n  capacity: 4096", fmt.Sprintf("pins:\n  capacity: %d", floodPinCapacity), 1),
		"transitions:\n  capacity: 4096", fmt.Sprintf("transitions:\n  capacity: %d", floodTransCap), 1)
	cfg, err := sched.ParseConfig([]byte(y), "flood.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testConfigYAMLFor is testConfig's YAML (node a's weight line given).
func testConfigYAMLFor(t testing.TB, weightA string) string {
	t.Helper()
	w := ""
	if weightA != "" {
		w = "        weight: " + weightA + "\n"
	}
	return `vips:
  - address: 10.200.0.1
    port: 443
    tls: true
  - address: 10.200.0.1
    port: 80
    tls: false
pools:
  - name: p
    nodes:
      - name: a
        address: 10.201.0.11
        mac: "02:00:00:00:00:0a"
` + w + `      - name: b
        address: 10.201.0.12
        mac: "02:00:00:00:00:0b"
table:
  size: 1009
  seed: "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64"
grace_period: 10s
pins:
  capacity: 4096
  idle_timeout: 1m
transitions:
  capacity: 4096
`
}

// floodBed is a worker over a memory ring with a fake clock; it counts
// where forwarded frames went.
type floodBed struct {
	t    *testing.T
	clk  *fakeClock
	s    *sched.Scheduler
	ring *offline.MemRing
	w    *Worker
	last []byte // destination MAC of the last forwarded frame
}

func newFloodBed(t *testing.T) *floodBed {
	b := &floodBed{t: t, clk: &fakeClock{}}
	b.clk.t.Store(int64(time.Hour))
	s, err := sched.New(floodConfig(t, ""), sched.WithClock(b.clk.now))
	if err != nil {
		t.Fatal(err)
	}
	b.s = s
	b.ring = offline.NewMemRing(256, 2048)
	b.ring.OnTransmit = func(f []byte) { b.last = append(b.last[:0], f[:6]...) }
	w, err := NewWorker(b.ring, s, Config{SourceMAC: routerMAC, Clock: b.clk.now, Decider: sched.DeciderConfigFrom(s.Config())})
	if err != nil {
		t.Fatal(err)
	}
	b.w = w
	return b
}

// send runs one frame through the worker and returns the name of the node
// it went to ("" when dropped).
func (b *floodBed) send(frame []byte) string {
	b.t.Helper()
	b.last = b.last[:0]
	b.inject(frame)
	b.drain()
	if len(b.last) == 0 {
		return ""
	}
	for _, n := range b.s.Current().Nodes {
		if MAC(b.last) == n.MAC {
			return n.Name
		}
	}
	b.t.Fatalf("frame went to MAC % x", b.last)
	return ""
}

func (b *floodBed) inject(frame []byte) {
	if b.ring.Free() == 0 {
		b.drain()
	}
	if err := b.ring.Inject(frame); err != nil {
		b.t.Fatal(err)
	}
}

func (b *floodBed) drain() {
	for b.ring.Pending() > 0 {
		if _, err := b.w.Step(0); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := b.ring.Reclaim(); err != nil {
		b.t.Fatal(err)
	}
	if err := b.ring.Err(); err != nil {
		b.t.Fatal(err)
	}
}

// spoofer rewrites a template frame's source address and port and fixes
// its IPv4 and TCP checksums, as an attacker's packet generator would.
type spoofer struct {
	frame []byte
	p     parser.Packet
}

func newSpoofer(t testing.TB, tmpl packettest.TCP) *spoofer {
	sp := &spoofer{frame: packettest.Frame(t, tmpl)}
	if st := parser.ParseFrame(sp.frame, &sp.p); st != parser.StatusOK {
		t.Fatalf("template: %v", st)
	}
	return sp
}

// at returns the template from src:sport (the returned slice is reused).
func (sp *spoofer) at(src [4]byte, sport uint16) []byte {
	f := sp.frame
	l3, l4 := int(sp.p.L3Off), int(sp.p.L4Off)
	copy(f[l3+12:l3+16], src[:])
	binary.BigEndian.PutUint16(f[l4:], sport)
	binary.BigEndian.PutUint16(f[l3+10:], 0)
	binary.BigEndian.PutUint16(f[l3+10:], onesComplement(0, f[l3:l4]))
	end := int(sp.p.L3End)
	var pseudo [12]byte
	copy(pseudo[0:8], f[l3+12:l3+20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(end-l4))
	binary.BigEndian.PutUint16(f[l4+16:], 0)
	binary.BigEndian.PutUint16(f[l4+16:], onesComplement(sum16(0, pseudo[:]), f[l4:end]))
	return f
}

func sum16(s uint32, b []byte) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func onesComplement(s uint32, b []byte) uint16 {
	s = sum16(s, b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// legitSource is the address and port of legitimate flow i.
func legitSource(i int) ([4]byte, uint16) {
	return [4]byte{203, 0, 113, byte(i % 250)}, uint16(10000 + i)
}

// flood sends n one-shot spoofed flows built from tmpl, from random
// sources outside the legitimate range, advancing the clock by 1 µs per
// packet (a 1 Mpps flood).
func (b *floodBed) flood(tmpl packettest.TCP, n int, seed uint64) {
	sp := newSpoofer(b.t, tmpl)
	r := rand.New(rand.NewPCG(seed, 11))
	for range n {
		src := [4]byte{byte(1 + r.IntN(200)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		b.inject(sp.at(src, uint16(1024+r.IntN(64000))))
		if b.ring.Free() == 0 {
			b.clk.t.Add(int64(256 * time.Microsecond))
			b.drain()
		}
	}
	b.drain()
}

func (b *floodBed) key(src [4]byte, sport, dport uint16) parser.FlowKey {
	var k parser.FlowKey
	k.SrcPort, k.DstPort, k.Proto = sport, dport, 6
	k.SetIPv4(src[:], vip4.AsSlice())
	return k
}

// pinFloodCurve: legitimate flows pinned (a legacy ClientHello on the TLS
// VIP, or the SYN of the non-TLS VIP), each sending one more packet (they
// are talking), then the flood; it returns how many legitimate pins are
// lost at each flood size.
func pinFloodCurve(t *testing.T, dport uint16, floodTmpl packettest.TCP) []int {
	var lost []int
	for mi, mult := range floodMultiples {
		b := newFloodBed(t)
		tcp := func(i int, flags uint8, seq uint32, payload []byte) []byte {
			src, sport := legitSource(i)
			return packettest.Frame(t, packettest.TCP{Src: netip.AddrFrom4(src), Dst: vip4, SrcPort: sport, DstPort: dport, Flags: flags, Seq: seq, Payload: payload})
		}
		hello := packettest.ClientHello(false, 0)
		for i := range floodLegit {
			b.send(tcp(i, parser.TCPFlagSYN, 999, nil))
			if dport == 443 {
				b.send(tcp(i, parser.TCPFlagACK|parser.TCPFlagPSH, 1000, hello))
			}
			b.send(tcp(i, parser.TCPFlagACK, 1000+uint32(len(hello)), nil))
		}
		snap := b.s.Current()
		count := func() int {
			n := 0
			for i := range floodLegit {
				src, sport := legitSource(i)
				k := b.key(src, sport, dport)
				if !b.w.Decider().Pinned(&k, snap.Hash(&k), b.clk.now()) {
					n++
				}
			}
			return n
		}
		if n := count(); n != 0 {
			t.Fatalf("%d legitimate flows not pinned before the flood", n)
		}
		b.flood(floodTmpl, int(mult*floodPinCapacity), uint64(mi))
		lost = append(lost, count())
		// The flood did fill the table: it cost capacity, not pins.
		if st := b.w.Decider().Stats(); mult >= 1 && st.PinEvictionsProbation == 0 {
			t.Fatalf("a flood of %g× the capacity evicted nothing: %+v", mult, st)
		}
	}
	return lost
}

func reportCurve(t *testing.T, what string, capacity int, lost []int) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (capacity %d, %d legitimate):", what, capacity, floodLegit)
	for i, m := range floodMultiples {
		fmt.Fprintf(&sb, " %gx=%d packets: %d lost;", m, int(m*float64(capacity)), lost[i])
	}
	t.Log(sb.String())
	for i, n := range lost {
		if n != 0 {
			t.Errorf("a flood of %g× the capacity removed %d of %d talking entries", floodMultiples[i], n, floodLegit)
		}
	}
}

// Finding 1: one-byte 0x16 payloads on spoofed 5-tuples (each would make
// a pin) must not flush the pins of legacy TLS flows that are talking.
func TestPinFloodKeepsTalkingPins(t *testing.T) {
	tmpl := packettest.TCP{Src: netip.AddrFrom4([4]byte{1, 1, 1, 1}), Dst: vip4, SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagACK, Seq: 5, Payload: []byte{0x16}}
	reportCurve(t, "pin flood, TLS VIP, 1-byte 0x16 segments", floodPinCapacity, pinFloodCurve(t, 443, tmpl))
}

// Finding 1, non-TLS VIP: flows are pinned at the SYN, so a plain SYN
// flood is the same attack.
func TestSYNFloodKeepsTalkingNonTLSPins(t *testing.T) {
	tmpl := packettest.TCP{Src: netip.AddrFrom4([4]byte{1, 1, 1, 1}), Dst: vip4, SrcPort: 1, DstPort: 80, Flags: parser.TCPFlagSYN, Seq: 5}
	reportCurve(t, "SYN flood, non-TLS VIP", floodPinCapacity, pinFloodCurve(t, 80, tmpl))
}

// Finding 4: during a grace period, new flows on moved slots are recorded
// at their SYN; a SYN flood must not evict the records of flows that sent
// a later packet, or their next packets go to the old owner.
func TestSYNFloodKeepsTalkingTransitionRecords(t *testing.T) {
	var lost []int
	for mi, mult := range floodMultiples {
		b := newFloodBed(t)
		// Drain a: its slots move to b, with a 10 s grace period.
		t0 := b.clk.now()
		if err := b.s.Reload(floodConfig(t, "0")); err != nil {
			t.Fatal(err)
		}
		snap := b.s.Current()
		var legit []int
		for i := 0; len(legit) < floodLegit; i++ {
			src, sport := legitSource(i)
			k := b.key(src, sport, 443)
			if sl := snap.Slots[snap.SlotOf(snap.Hash(&k))]; sl.Prev != sl.Owner {
				legit = append(legit, i)
			}
		}
		tcp := func(i int, flags uint8) []byte {
			src, sport := legitSource(i)
			return packettest.Frame(t, packettest.TCP{Src: netip.AddrFrom4(src), Dst: vip4, SrcPort: sport, DstPort: 443, Flags: flags, Seq: 1000})
		}
		for _, i := range legit {
			if n := b.send(tcp(i, parser.TCPFlagSYN)); n != "b" {
				t.Fatalf("SYN of a new flow on a moved slot went to %q", n)
			}
			if n := b.send(tcp(i, parser.TCPFlagACK)); n != "b" {
				t.Fatalf("ACK of a new flow on a moved slot went to %q before the flood", n)
			}
		}
		tmpl := packettest.TCP{Src: netip.AddrFrom4([4]byte{1, 1, 1, 1}), Dst: vip4, SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagSYN, Seq: 5}
		b.flood(tmpl, int(mult*floodTransCap), uint64(100+mi))
		if st := b.w.Decider().Stats(); mult >= 2 && st.TransEvictionsProbation == 0 {
			t.Fatalf("a flood of %g× the capacity evicted no record: %+v", mult, st)
		}
		if b.clk.now()-t0 >= int64(10*time.Second) {
			t.Fatal("the flood outlasted the grace period")
		}
		n := 0
		for _, i := range legit {
			if b.send(tcp(i, parser.TCPFlagACK)) != "b" {
				n++
			}
		}
		lost = append(lost, n)
	}
	reportCurve(t, "SYN flood in a grace period, transition records", floodTransCap, lost)
}
