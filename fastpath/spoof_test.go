package fastpath

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

// corrupt flips a payload-free TCP frame's checksum (a segment the node
// would drop).
func corrupt(t *testing.T, frame []byte) []byte {
	t.Helper()
	var p parser.Packet
	if st := parser.ParseFrame(frame, &p); st != parser.StatusOK {
		t.Fatal(st)
	}
	off := int(p.L4Off) + 16
	binary.BigEndian.PutUint16(frame[off:], binary.BigEndian.Uint16(frame[off:])^0x5a5a)
	if parser.TCPChecksumOK(frame, &p) {
		t.Fatal("corrupted frame still verifies")
	}
	return frame
}

// pinnedLegacyFlow sets up a legacy TLS flow on node a that is pinned and
// talking, and returns its port.
func pinnedLegacyFlow(h *harness) uint16 {
	t := h.t
	port := h.portFor("a", 443, 40000)
	h.send(packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil)))
	h.send(packettest.Frame(t, flow(port, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 0))))
	h.send(packettest.Frame(t, flow(port, parser.TCPFlagACK, nil)))
	if st := h.w.Decider().Stats(); st.PinSize != 1 || st.PinProtected != 1 {
		t.Fatalf("legacy flow: %d pins, %d protected", st.PinSize, st.PinProtected)
	}
	return port
}

// moveA takes node a out of the table and waits out the grace period:
// from then on only a pin keeps a flow on a.
func moveA(h *harness) {
	if err := h.s.Reload(testConfig(h.t, 0)); err != nil {
		h.t.Fatal(err)
	}
	h.clk.t.Add(int64(2 * time.Second))
}

func (h *harness) ackGoesTo(port uint16) string {
	out := h.send(packettest.Frame(h.t, flow(port, parser.TCPFlagACK, nil)))
	if len(out) != 1 {
		h.t.Fatalf("port %d: %d frames out", port, len(out))
	}
	return h.nodeOf(out[0])
}

// Finding 2 of issue 11: one spoofed packet that the node ignores — an
// RST with a random sequence number, the same with a bad checksum, a SYN
// on the pinned 5-tuple, a second ClientHello with migration_support —
// must not end the pin: the connection stays on its node through a table
// change.
func TestSpoofedPacketDoesNotEndAPin(t *testing.T) {
	rstRandomSeq := func(port uint16) []byte {
		f := flow(port, parser.TCPFlagRST, nil)
		f.Seq = 0x9e3779b9
		return packettest.Frame(t, f)
	}
	for _, c := range []struct {
		name  string
		spoof func(t *testing.T, port uint16) []byte
		check func(t *testing.T, h *harness)
	}{
		{"rst_random_seq", func(t *testing.T, port uint16) []byte { return rstRandomSeq(port) },
			func(t *testing.T, h *harness) {
				if st := h.w.Decider().Stats(); st.PinRSTShortened != 1 {
					t.Fatalf("RST shortened %d pins", st.PinRSTShortened)
				}
			}},
		{"rst_bad_checksum", func(t *testing.T, port uint16) []byte { return corrupt(t, rstRandomSeq(port)) },
			func(t *testing.T, h *harness) {
				if st := h.w.Decider().Stats(); st.PinRSTShortened != 0 || st.Unverified != 1 {
					t.Fatalf("bad-checksum RST: shortened %d, refused %d", st.PinRSTShortened, st.Unverified)
				}
			}},
		{"syn_on_pinned_tuple", func(t *testing.T, port uint16) []byte {
			return packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil))
		}, func(t *testing.T, h *harness) {
			if st := h.w.Decider().Stats(); st.PinSYNsFollowed != 1 {
				t.Fatalf("SYNs followed %d", st.PinSYNsFollowed)
			}
		}},
		{"clienthello_migration_support", func(t *testing.T, port uint16) []byte {
			f := flow(port, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(true, 0))
			f.Seq = 5000
			return packettest.Frame(t, f)
		}, func(t *testing.T, h *harness) {
			if st := h.w.Decider().Stats(); st.PinFinalKept != 1 {
				t.Fatalf("final pins kept %d", st.PinFinalKept)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			port := pinnedLegacyFlow(h)
			out := h.send(c.spoof(t, port))
			if len(out) != 1 || h.nodeOf(out[0]) != "a" {
				t.Fatalf("spoofed packet: %d frames out", len(out))
			}
			c.check(t, h)
			// The real client talks again within the RST idle time.
			h.clk.t.Add(int64(time.Second))
			if n := h.ackGoesTo(port); n != "a" {
				t.Fatalf("after the spoofed packet the flow went to %s", n)
			}
			moveA(h)
			h.clk.t.Add(int64(2 * time.Minute / 3)) // past the RST idle time, within the pin idle timeout
			if n := h.ackGoesTo(port); n != "a" {
				t.Fatalf("after a table change the pinned flow went to %s", n)
			}
		})
	}
}

// A packet with a bad TCP checksum changes no state: a SYN in a grace
// period records nothing, a SYN to a non-TLS VIP pins nothing, and a
// later packet of a new pin does not promote it.
func TestBadChecksumChangesNothing(t *testing.T) {
	h := newHarness(t)
	if err := h.s.Reload(testConfig(t, 0)); err != nil { // a's slots move to b
		t.Fatal(err)
	}
	port := h.portFor("b", 443, 50000)
	for h.s.Current().Slots[h.s.Current().SlotOf(h.hashOf(port, 443))].Prev == h.s.Current().Slots[h.s.Current().SlotOf(h.hashOf(port, 443))].Owner {
		port = h.portFor("b", 443, port+1)
	}
	h.send(corrupt(t, packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil))))
	plain := packettest.TCP{Src: client4, Dst: vip4, SrcPort: 5555, DstPort: 80, Flags: parser.TCPFlagSYN}
	h.send(corrupt(t, packettest.Frame(t, plain)))
	st := h.w.Decider().Stats()
	if st.TransInserts != 0 || st.PinInserts != 0 || st.Unverified != 2 {
		t.Fatalf("bad-checksum SYNs: %d records, %d pins, %d refused", st.TransInserts, st.PinInserts, st.Unverified)
	}
	h.send(packettest.Frame(t, plain))
	plain.Flags = parser.TCPFlagACK
	h.send(corrupt(t, packettest.Frame(t, plain)))
	if st := h.w.Decider().Stats(); st.PinSize != 1 || st.PinProtected != 0 {
		t.Fatalf("bad-checksum ACK: %d pins, %d protected", st.PinSize, st.PinProtected)
	}
	h.send(packettest.Frame(t, plain))
	if st := h.w.Decider().Stats(); st.PinProtected != 1 {
		t.Fatalf("good ACK: %d protected", st.PinProtected)
	}
}

func (h *harness) hashOf(sport, dport uint16) uint64 {
	k := parser.FlowKey{SrcPort: sport, DstPort: dport, Proto: 6}
	k.SetIPv4(client4.AsSlice(), vip4.AsSlice())
	return h.s.Current().Hash(&k)
}

// tcpChecksumOK agrees with the checksums packettest (gopacket) writes,
// for IPv4 and IPv6, odd and even lengths, and refuses any one-bit
// change of the segment or the pseudo-header's addresses.
func TestTCPChecksumOK(t *testing.T) {
	for _, s := range []packettest.TCP{
		flow(1, parser.TCPFlagSYN, nil),
		flow(2, parser.TCPFlagACK, []byte{0x16}),
		flow(3, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 333)),
		{Src: packettest.TCP{}.Src, Dst: vip6, SrcPort: 4, DstPort: 443, Flags: parser.TCPFlagSYN},
	} {
		if !s.Src.IsValid() {
			s.Src = vip6.Prev()
		}
		frame := packettest.Frame(t, s)
		var p parser.Packet
		if st := parser.ParseFrame(frame, &p); st != parser.StatusOK {
			t.Fatal(st)
		}
		if !parser.TCPChecksumOK(frame, &p) {
			t.Fatalf("%+v: good checksum refused", s)
		}
		srcOff := int(p.L3Off) + 12
		if p.IPVersion == 6 {
			srcOff = int(p.L3Off) + 8
		}
		for _, off := range []int{srcOff, int(p.L4Off), int(p.L4Off) + 13, int(p.L3End) - 1} {
			for bit := range 8 {
				frame[off] ^= 1 << bit
				if parser.TCPChecksumOK(frame, &p) {
					t.Fatalf("%+v: flipped bit %d of byte %d accepted", s, bit, off)
				}
				frame[off] ^= 1 << bit
			}
		}
	}
}

// hostileTemplates is, per flow, what the spoofing findings send: a
// legacy ClientHello (a pin), an ACK (promotes it), an RST with a random
// sequence number, a SYN on the pinned 5-tuple, a bad-checksum ACK, a
// SYN to the non-TLS VIP, a ClientHello with migration_support.
func hostileTemplates(t testing.TB) [][]byte {
	legacy, modern := packettest.ClientHello(false, 0), packettest.ClientHello(true, 0)
	var out [][]byte
	for i := range benchFlows / 8 {
		ack := packettest.Frame(t, benchFlow(i, parser.TCPFlagACK, nil))
		var p parser.Packet
		parser.ParseFrame(ack, &p)
		bad := append([]byte(nil), ack...)
		bad[p.L4Off+16] ^= 0xff
		rst := benchFlow(i, parser.TCPFlagRST, nil)
		rst.Seq = uint32(i) * 0x9e3779b9
		plain := benchFlow(i, parser.TCPFlagSYN, nil)
		plain.DstPort = 80
		out = append(out,
			packettest.Frame(t, benchFlow(i, parser.TCPFlagACK|parser.TCPFlagPSH, legacy)),
			ack,
			packettest.Frame(t, rst),
			packettest.Frame(t, benchFlow(i, parser.TCPFlagSYN, nil)),
			bad,
			packettest.Frame(t, plain),
			packettest.Frame(t, benchFlow(i, parser.TCPFlagACK|parser.TCPFlagPSH, modern)),
			ack)
	}
	return out
}

// The hostile paths (checksum checks, RST shortening, SYN on a pin,
// final pins) allocate nothing either.
func TestHostileBatchDoesNotAllocate(t *testing.T) {
	ring, w := benchSetup(t, hostileTemplates(t))
	for range 32 {
		w.Step(0)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.Step(0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
	if ring.Err() != nil {
		t.Fatal(ring.Err())
	}
	st := w.Decider().Stats()
	if st.PinRSTShortened == 0 || st.PinSYNsFollowed == 0 || st.Unverified == 0 || st.PinFinalKept == 0 {
		t.Fatalf("the hostile mix did not take its paths: %+v", st)
	}
}

// A SYN on a reused 5-tuple follows the old connection's pin; if the new
// connection's ClientHello then offers migration_support, removing the
// pin would move it (the table changed since the pin was made), so the
// pin stays and the connection keeps its node.
func TestUnpinNeverMovesAFlow(t *testing.T) {
	h := newHarness(t)
	port := h.portFor("a", 443, 41000)
	hello := packettest.ClientHello(false, 1500)
	h.send(packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil)))
	first := flow(port, parser.TCPFlagACK, hello[:700])
	h.send(packettest.Frame(t, first)) // pending: pinned, not final
	if st := h.w.Decider().Stats(); st.PinSize != 1 {
		t.Fatalf("%d pins while the ClientHello is pending", st.PinSize)
	}
	moveA(h)
	// The 5-tuple is reused by a new connection.
	syn := flow(port, parser.TCPFlagSYN, nil)
	syn.Seq = 70000
	out := h.send(packettest.Frame(t, syn))
	if len(out) != 1 || h.nodeOf(out[0]) != "a" {
		t.Fatal("the SYN did not follow the pin")
	}
	modern := flow(port, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(true, 0))
	modern.Seq = 70001
	out = h.send(packettest.Frame(t, modern))
	if len(out) != 1 || h.nodeOf(out[0]) != "a" {
		t.Fatal("the new connection's ClientHello left its node")
	}
	if n := h.ackGoesTo(port); n != "a" {
		t.Fatalf("after its migration_support ClientHello the connection moved to %s", n)
	}
	c := h.counters()
	if st := h.w.Decider().Stats(); c.ClientHelloMigrationSupport != 1 || st.PinUnpinWouldMove != 1 {
		t.Fatalf("migration_support hellos %d, unpins refused (would move) %d", c.ClientHelloMigrationSupport, st.PinUnpinWouldMove)
	}
}

// BenchmarkTCPChecksum is the cost a packet pays when it would change
// state: a pure ACK, a ClientHello, a full-size segment.
func BenchmarkTCPChecksum(b *testing.B) {
	for _, c := range []struct {
		name    string
		payload int
	}{{"ack", 0}, {"clienthello", 517}, {"mss", 1448}} {
		b.Run(c.name, func(b *testing.B) {
			frame := packettest.Frame(b, flow(1, parser.TCPFlagACK, make([]byte, c.payload)))
			var p parser.Packet
			parser.ParseFrame(frame, &p)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			ok := true
			cpu0 := threadCPU(b)
			for b.Loop() {
				ok = ok && parser.TCPChecksumOK(frame, &p)
			}
			// CPU time of this thread: the steadier figure on a shared
			// machine.
			b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			if !ok {
				b.Fatal("checksum refused")
			}
		})
	}
}
