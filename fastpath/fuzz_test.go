package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

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
