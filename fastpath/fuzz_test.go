package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
)

// FuzzPipeline feeds arbitrary frames (and pairs of frames on one flow,
// the second as a continuation) through a worker. A frame is either
// dropped and counted, or forwarded with its length kept, the router's
// source MAC, a node's destination MAC and the TTL / hop limit one lower
// with a valid IPv4 header checksum.
func FuzzPipeline(f *testing.F) {
	f.Add(packettest.Frame(f, flow(1, parser.TCPFlagSYN, nil)))
	f.Add(packettest.Frame(f, flow(2, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 0))))
	f.Add(packettest.Frame(f, flow(3, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(true, 600)[:300])))
	f.Add(packettest.Frame(f, packettest.TCP{Src: netip.MustParseAddr("2001:db8::1"), Dst: vip6, SrcPort: 4, DstPort: 443, Flags: parser.TCPFlagSYN}))
	f.Add(packettest.ICMPFragNeeded(f, client4, vip4, 5, 443))
	f.Add(packettest.Frame(f, packettest.TCP{Src: client4, Dst: vip4, SrcPort: 6, DstPort: 80, Flags: parser.TCPFlagSYN, VLAN: 7}))
	f.Add([]byte{})
	clk := &fakeClock{}
	s := newTestScheduler(f, clk)
	ring := offline.NewMemRing(64, 2048)
	var out []byte
	ring.OnTransmit = func(fr []byte) { out = append(out[:0], fr...) }
	w, err := NewWorker(ring, s, Config{SourceMAC: routerMAC, Clock: clk.now})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 2048 {
			return
		}
		clk.t.Add(1e6)
		in := append([]byte(nil), frame...)
		out = out[:0]
		if err := ring.Inject(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Step(0); err != nil {
			t.Fatal(err)
		}
		ring.Reclaim()
		if ring.Err() != nil || ring.Free() != 64 {
			t.Fatalf("ring: %v, %d free", ring.Err(), ring.Free())
		}
		if len(out) == 0 {
			return
		}
		if len(out) != len(in) {
			t.Fatalf("length %d -> %d", len(in), len(out))
		}
		if MAC(out[6:12]) != routerMAC {
			t.Fatalf("source MAC % x", out[6:12])
		}
		var p parser.Packet
		if st := parser.ParseFrame(in, &p); st != parser.StatusOK {
			t.Fatalf("forwarded a frame that does not parse: %v", st)
		}
		if out[p.TTLOff] != in[p.TTLOff]-1 {
			t.Fatalf("TTL %d -> %d", in[p.TTLOff], out[p.TTLOff])
		}
		if p.IPVersion == 4 {
			hdr := out[p.L3Off : p.L3Off+uint16(out[p.L3Off]&0x0f)*4]
			if got, want := binary.BigEndian.Uint16(hdr[10:12]), ipv4HeaderChecksum(hdr); got != want {
				t.Fatalf("IPv4 checksum %#x, want %#x", got, want)
			}
		}
		if !bytes.Equal(out[12:p.TTLOff], in[12:p.TTLOff]) {
			t.Fatal("bytes between the MACs and the TTL changed")
		}
	})
}

// FuzzPinnedFlowSurvivesOnePacket: a legacy flow is pinned by its
// complete ClientHello and is talking; then one arbitrary client segment
// on its 5-tuple (any flags, sequence number and payload, a good or a
// bad checksum) arrives. No single packet may end or move the pin: the
// flow is still pinned, and after a table change its next packet still
// reaches its node. One worker serves every input, each on a new flow,
// and the table is changed back after each.
func FuzzPinnedFlowSurvivesOnePacket(f *testing.F) {
	f.Add(uint8(parser.TCPFlagRST), uint32(0x9e3779b9), []byte{}, false)
	f.Add(uint8(parser.TCPFlagRST|parser.TCPFlagACK), uint32(1), []byte{}, true)
	f.Add(uint8(parser.TCPFlagSYN), uint32(7), []byte{}, false)
	f.Add(uint8(parser.TCPFlagACK|parser.TCPFlagPSH), uint32(5000), packettest.ClientHello(true, 0), false)
	f.Add(uint8(parser.TCPFlagACK|parser.TCPFlagPSH), uint32(1000), packettest.ClientHello(true, 0), false)
	f.Add(uint8(parser.TCPFlagFIN|parser.TCPFlagACK), uint32(3000), []byte{0x16}, false)
	var h *harness
	next := uint16(1024)
	f.Fuzz(func(t *testing.T, flags uint8, seq uint32, payload []byte, bad bool) {
		if len(payload) > 1400 {
			return
		}
		if h == nil {
			h = newHarness(t)
		}
		h.t = t
		port := h.portFor("a", 443, next)
		next = port + 1
		if next < 1024 {
			next = 1024
		}
		k := parser.FlowKey{SrcPort: port, DstPort: 443, Proto: 6}
		k.SetIPv4(client4.AsSlice(), vip4.AsSlice())
		hello := packettest.ClientHello(false, 0)
		h.send(packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil)))
		h.send(packettest.Frame(t, flow(port, parser.TCPFlagACK|parser.TCPFlagPSH, hello)))
		ack := flow(port, parser.TCPFlagACK, nil)
		ack.Seq = 1000 + uint32(len(hello))
		h.send(packettest.Frame(t, ack))
		s := flow(port, flags, payload)
		s.Seq = seq
		frame := packettest.Frame(t, s)
		if bad {
			var p parser.Packet
			if parser.ParseFrame(frame, &p) != parser.StatusOK {
				return
			}
			frame[p.L4Off+16] ^= 0x01
		}
		h.clk.t.Add(int64(time.Millisecond))
		for _, out := range h.send(frame) {
			if n := h.nodeOf(out); n != "a" {
				t.Fatalf("the packet went to %s, not the pin's node", n)
			}
		}
		if !h.w.Decider().Pinned(&k, h.s.Current().Hash(&k), h.clk.now()) {
			t.Fatalf("one packet (flags %#x, %d payload bytes, bad checksum %v) ended the pin", flags, len(payload), bad)
		}
		h.clk.t.Add(int64(time.Second))
		if n := h.ackGoesTo(port); n != "a" {
			t.Fatalf("the flow went to %s", n)
		}
		moveA(h)
		if n := h.ackGoesTo(port); n != "a" {
			t.Fatalf("after a table change the flow went to %s", n)
		}
		// Back to the first table, past its grace period, for the next
		// input.
		if err := h.s.Reload(testConfig(t, -1)); err != nil {
			t.Fatal(err)
		}
		h.clk.t.Add(int64(2 * time.Second))
	})
}
