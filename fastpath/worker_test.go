package fastpath

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

type harness struct {
	t    *testing.T
	clk  *fakeClock
	s    *sched.Scheduler
	ring *offline.MemRing
	w    *Worker
	sent [][]byte
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, clk: &fakeClock{}}
	h.clk.t.Store(int64(time.Hour))
	h.s = newTestScheduler(t, h.clk)
	h.ring = offline.NewMemRing(256, 2048)
	h.ring.OnTransmit = func(f []byte) { h.sent = append(h.sent, append([]byte(nil), f...)) }
	w, err := NewWorker(h.ring, h.s, Config{SourceMAC: routerMAC, Clock: h.clk.now,
		Decider: sched.DeciderConfigFrom(h.s.Config())})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

// send runs frames through one batch and returns what was transmitted.
func (h *harness) send(frames ...[]byte) [][]byte {
	h.t.Helper()
	h.sent = nil
	for _, f := range frames {
		if err := h.ring.Inject(f); err != nil {
			h.t.Fatal(err)
		}
	}
	for h.ring.Pending() > 0 {
		if _, err := h.w.Step(0); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := h.ring.Err(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.ring.Reclaim(); err != nil {
		h.t.Fatal(err)
	}
	if h.ring.Free() != h.ring.Frames() {
		h.t.Fatalf("%d of %d frames free after a batch: frames lost", h.ring.Free(), h.ring.Frames())
	}
	return h.sent
}

// nodeOf returns the name of the node a transmitted frame goes to.
func (h *harness) nodeOf(f []byte) string {
	h.t.Helper()
	if MAC(f[6:12]) != routerMAC {
		h.t.Fatalf("source MAC % x is not the router's", f[6:12])
	}
	for _, n := range h.s.Current().Nodes {
		if MAC(f[0:6]) == n.MAC {
			return n.Name
		}
	}
	h.t.Fatalf("destination MAC % x is no node's", f[0:6])
	return ""
}

func (h *harness) counters() Counters {
	c, _ := h.w.Counters()
	return c
}

var client4 = netip.MustParseAddr("198.51.100.7")

func flow(sport uint16, flags uint8, payload []byte) packettest.TCP {
	return packettest.TCP{Src: client4, Dst: vip4, SrcPort: sport, DstPort: 443, Flags: flags, Seq: 1000, Payload: payload}
}

// portFor finds a client port whose flow the table gives to node name.
func (h *harness) portFor(name string, dport uint16, from uint16) uint16 {
	snap := h.s.Current()
	for p := from; p != 0; p++ {
		k := parser.FlowKey{SrcPort: p, DstPort: dport, Proto: 6}
		k.SetIPv4(client4.AsSlice(), vip4.AsSlice())
		if id := snap.LookupNew(&k); id != lookup.NoNode && snap.Nodes[id].Name == name {
			return p
		}
	}
	h.t.Fatalf("no port maps to %s", name)
	return 0
}

func TestForwardRewritesLikeARouter(t *testing.T) {
	h := newHarness(t)
	for _, spec := range []packettest.TCP{
		flow(40000, parser.TCPFlagSYN, nil),
		{Src: netip.MustParseAddr("2001:db8::7"), Dst: vip6, SrcPort: 40001, DstPort: 443, Flags: parser.TCPFlagSYN},
		{Src: client4, Dst: vip4, SrcPort: 40002, DstPort: 443, Flags: parser.TCPFlagACK, VLAN: 42},
	} {
		in := packettest.Frame(t, spec)
		out := h.send(in)
		if len(out) != 1 {
			t.Fatalf("%v: %d frames out", spec, len(out))
		}
		f := out[0]
		var k parser.FlowKey
		if spec.Src.Is4() {
			k.SetIPv4(spec.Src.AsSlice(), spec.Dst.AsSlice())
		} else {
			k.SetIPv6(spec.Src.AsSlice(), spec.Dst.AsSlice())
		}
		k.SrcPort, k.DstPort, k.Proto = spec.SrcPort, spec.DstPort, 6
		want := h.s.Current().Nodes[h.s.Current().LookupNew(&k)].Name
		if got := h.nodeOf(f); got != want {
			t.Fatalf("%v went to %s, table says %s", spec, got, want)
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if spec.VLAN != 0 {
			d, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
			if !ok || d.VLANIdentifier != spec.VLAN {
				t.Fatalf("VLAN tag lost: %v", pkt)
			}
		}
		if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			if ip.TTL != 63 {
				t.Fatalf("TTL %d", ip.TTL)
			}
			l3 := 14
			if spec.VLAN != 0 {
				l3 = 18
			}
			hdr := f[l3:]
			if got, want := binary.BigEndian.Uint16(hdr[10:12]), ipv4HeaderChecksum(hdr[:20]); got != want {
				t.Fatalf("IPv4 checksum %#x, want %#x", got, want)
			}
		} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			if ip6.HopLimit != 63 {
				t.Fatalf("hop limit %d", ip6.HopLimit)
			}
		} else {
			t.Fatalf("no IP layer in %v", pkt)
		}
		if string(f[12:]) == string(in[12:]) {
			t.Fatal("nothing after the MACs changed")
		}
	}
	c := h.counters()
	if c.RxPackets != 3 || c.TxPackets != 3 || c.Routed[RouteSYN] != 2 || c.Routed[RouteTable] != 1 {
		t.Fatalf("counters: rx %d tx %d routed %v", c.RxPackets, c.TxPackets, c.Routed)
	}
}

func TestDropsAreCountedByReason(t *testing.T) {
	h := newHarness(t)
	other := netip.MustParseAddr("10.200.0.2")
	arp := make([]byte, 60)
	copy(arp, packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil))[:12])
	arp[12], arp[13] = 0x08, 0x06
	out := h.send(
		packettest.Frame(t, packettest.TCP{Src: client4, Dst: other, SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagSYN}), // not a VIP
		packettest.Frame(t, packettest.TCP{Src: client4, Dst: vip4, SrcPort: 1, DstPort: 444, Flags: parser.TCPFlagSYN}),  // VIP address, other port
		packettest.Frame(t, packettest.TCP{Src: client4, Dst: vip4, SrcPort: 2, DstPort: 443, Flags: parser.TCPFlagSYN, TTL: 1}),
		arp,
		[]byte{1, 2, 3},
	)
	if len(out) != 0 {
		t.Fatalf("%d frames forwarded", len(out))
	}
	c := h.counters()
	if c.Dropped[DropNotVIP] != 2 || c.Dropped[DropTTLExpired] != 1 ||
		c.ParseStatus[parser.StatusNotIP] != 1 || c.ParseStatus[parser.StatusTruncatedEthernet] != 1 {
		t.Fatalf("drops %v, parse %v", c.Dropped, c.ParseStatus)
	}
}

func TestLegacyFlowIsPinnedAcrossATableChange(t *testing.T) {
	h := newHarness(t)
	legacy := h.portFor("a", 443, 10000)
	modern := h.portFor("a", 443, legacy+1)
	plain := h.portFor("a", 443, modern+1)
	for _, p := range []uint16{legacy, modern, plain} {
		h.send(packettest.Frame(t, flow(p, parser.TCPFlagSYN, nil)))
	}
	h.send(packettest.Frame(t, flow(legacy, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(false, 0))))
	h.send(packettest.Frame(t, flow(modern, parser.TCPFlagACK|parser.TCPFlagPSH, packettest.ClientHello(true, 0))))
	st := h.w.Decider().Stats()
	if st.PinSize != 1 {
		t.Fatalf("%d pins after one legacy and one migrating ClientHello", st.PinSize)
	}
	// Take a out of the table; wait out the grace period.
	if err := h.s.Reload(testConfig(t, 0)); err != nil {
		t.Fatal(err)
	}
	h.clk.t.Add(int64(2 * time.Second))
	ack := func(p uint16) string {
		out := h.send(packettest.Frame(t, flow(p, parser.TCPFlagACK, nil)))
		if len(out) != 1 {
			t.Fatalf("port %d: %d frames out", p, len(out))
		}
		return h.nodeOf(out[0])
	}
	if n := ack(legacy); n != "a" {
		t.Fatalf("legacy flow moved to %s", n)
	}
	if n := ack(modern); n != "b" {
		t.Fatalf("migrating flow went to %s after its slot moved, want b", n)
	}
	if n := ack(plain); n != "b" {
		t.Fatalf("flow without ClientHello went to %s, want b", n)
	}
	c := h.counters()
	if c.ClientHellos != 2 || c.ClientHelloMigrationSupport != 1 || c.ClientHelloPins != 1 || c.Routed[RoutePin] != 1 {
		t.Fatalf("hellos %d support %d pins %d pin-routed %d", c.ClientHellos, c.ClientHelloMigrationSupport, c.ClientHelloPins, c.Routed[RoutePin])
	}
	// A client RST only shortens the pin: it ends after the RST idle
	// time unless the flow sends again.
	h.send(packettest.Frame(t, flow(legacy, parser.TCPFlagRST|parser.TCPFlagACK, nil)))
	if st := h.w.Decider().Stats(); st.PinSize != 1 || st.PinRSTShortened != 1 {
		t.Fatalf("after RST: %d pins, %d shortened", st.PinSize, st.PinRSTShortened)
	}
	h.clk.t.Add(int64(sched.DefaultPinRSTIdleTimeout))
	h.w.Decider().Sweep(h.clk.now(), int(h.w.Decider().Stats().PinCapacity))
	if st := h.w.Decider().Stats(); st.PinSize != 0 {
		t.Fatalf("%d pins after the RST idle time", st.PinSize)
	}
}

func TestSplitClientHelloPinnedUntilMigrationSupportShows(t *testing.T) {
	h := newHarness(t)
	for _, migration := range []bool{true, false} {
		port := uint16(20000)
		if !migration {
			port = 20001
		}
		ch := packettest.ClientHello(migration, 1500)
		h.send(packettest.Frame(t, flow(port, parser.TCPFlagSYN, nil)))
		h.send(packettest.Frame(t, packettest.TCP{Src: client4, Dst: vip4, SrcPort: port, DstPort: 443, Flags: parser.TCPFlagACK, Seq: 1000, Payload: ch[:1000]}))
		if st := h.w.Decider().Stats(); st.PinSize == 0 {
			t.Fatalf("migration %v: not pinned while the ClientHello is pending", migration)
		}
		h.send(packettest.Frame(t, packettest.TCP{Src: client4, Dst: vip4, SrcPort: port, DstPort: 443, Flags: parser.TCPFlagACK, Seq: 2000, Payload: ch[1000:]}))
		st := h.w.Decider().Stats()
		if migration && st.PinSize != 0 {
			t.Fatalf("migration_support after a split: %d pins remain", st.PinSize)
		}
		if !migration && st.PinSize != 1 {
			t.Fatalf("legacy split ClientHello: %d pins", st.PinSize)
		}
	}
	c := h.counters()
	if c.ClientHelloPending != 2 || c.ClientHelloUnknown != 0 || c.ClientHellos != 2 || c.ClientHelloUnpins != 1 {
		t.Fatalf("pending %d unknown %d hellos %d unpins %d", c.ClientHelloPending, c.ClientHelloUnknown, c.ClientHellos, c.ClientHelloUnpins)
	}
}

func TestNonTLSVIPPinnedAtSYN(t *testing.T) {
	h := newHarness(t)
	h.send(packettest.Frame(t, packettest.TCP{Src: client4, Dst: vip4, SrcPort: 5555, DstPort: 80, Flags: parser.TCPFlagSYN}))
	if st := h.w.Decider().Stats(); st.PinSize != 1 {
		t.Fatalf("%d pins after a SYN to a non-TLS VIP", st.PinSize)
	}
}

func TestICMPErrorFollowsTheQuotedFlow(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"a", "b"} {
		p := h.portFor(name, 443, 30000)
		out := h.send(packettest.ICMPFragNeeded(t, client4, vip4, p, 443))
		if len(out) != 1 {
			t.Fatalf("ICMP error: %d frames out", len(out))
		}
		if n := h.nodeOf(out[0]); n != name {
			t.Fatalf("ICMP error about a flow of %s went to %s", name, n)
		}
	}
	// ICMPv6 packet too big, quoting an IPv6 flow.
	client6 := netip.MustParseAddr("2001:db8::7")
	snap := h.s.Current()
	for _, name := range []string{"a", "b"} {
		var port uint16
		for p := uint16(30000); port == 0; p++ {
			k := parser.FlowKey{SrcPort: p, DstPort: 443, Proto: 6}
			k.SetIPv6(client6.AsSlice(), vip6.AsSlice())
			if snap.Nodes[snap.LookupNew(&k)].Name == name {
				port = p
			}
		}
		out := h.send(packettest.ICMPv6TooBig(t, client6, vip6, port, 443, 1280))
		if len(out) != 1 {
			t.Fatalf("ICMPv6 packet too big: %d frames out", len(out))
		}
		if n := h.nodeOf(out[0]); n != name {
			t.Fatalf("ICMPv6 error about a flow of %s went to %s", name, n)
		}
		if out[0][14+7] != 59 {
			t.Fatalf("hop limit %d after forwarding, want 59", out[0][14+7])
		}
	}
	if c := h.counters(); c.Routed[RouteICMP] != 4 {
		t.Fatalf("icmp routed %d", c.Routed[RouteICMP])
	}
}

func TestPartialTransmitLosesNothing(t *testing.T) {
	h := newHarness(t)
	h.ring.TxLimit = 3
	var frames [][]byte
	for i := range 50 {
		frames = append(frames, packettest.Frame(t, flow(uint16(1000+i), parser.TCPFlagSYN, nil)))
	}
	if out := h.send(frames...); len(out) != 50 {
		t.Fatalf("%d of 50 frames sent", len(out))
	}
	if c := h.counters(); c.TxPartial == 0 || c.TxPackets != 50 {
		t.Fatalf("partial %d tx %d", c.TxPartial, c.TxPackets)
	}
}

func TestNodeWithoutMACUsesTheBook(t *testing.T) {
	y := `vips: [{address: 10.200.0.1, port: 443}]
pools: [{name: p, nodes: [{name: a, address: 10.201.0.11}]}]
table: {size: 211, seed: "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64"}
`
	cfg, err := sched.ParseConfig([]byte(y), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ring := offline.NewMemRing(8, 2048)
	sent := 0
	ring.OnTransmit = func(f []byte) {
		if MAC(f[0:6]) != (MAC{2, 0, 0, 0, 0, 0x77}) {
			t.Errorf("dst MAC % x", f[0:6])
		}
		sent++
	}
	book := NewMACBook()
	w, err := NewWorker(ring, s, Config{MACs: book})
	if err != nil {
		t.Fatal(err)
	}
	syn := packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil))
	ring.Inject(syn)
	w.Step(0)
	book.Set(0, MAC{2, 0, 0, 0, 0, 0x77})
	ring.Inject(syn)
	w.Step(0)
	c, _ := w.Counters()
	if sent != 1 || c.Dropped[DropNoMAC] != 1 {
		t.Fatalf("sent %d, no-MAC drops %d", sent, c.Dropped[DropNoMAC])
	}
}

func TestExplainReportsEveryFrame(t *testing.T) {
	h := newHarness(t)
	var lines []string
	h.w.cfg.Explain = func(e *Explanation) {
		lines = append(lines, fmt.Sprintf("%d %v %v %v", e.Frame, e.Status, e.Forwarded, e.Route))
	}
	h.send(packettest.Frame(t, flow(1, parser.TCPFlagSYN, nil)), []byte{1})
	if len(lines) != 2 {
		t.Fatalf("explained %v", lines)
	}
}

func TestBatchDoesNotAllocate(t *testing.T) {
	ring, w := benchSetup(t, mixTemplates(t))
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
	c, _ := w.Counters()
	if c.TxPackets == 0 || c.TxPackets != c.RxPackets {
		t.Fatalf("rx %d tx %d: the mix should all be forwarded", c.RxPackets, c.TxPackets)
	}
}

// TestStatsWhileRunning reads the counters of a running worker from
// another goroutine (run with -race) and gets its final counters after
// it stops.
func TestStatsWhileRunning(t *testing.T) {
	_, w := benchSetup(t, mixTemplates(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var last uint64
	deadline := time.Now().Add(10 * time.Second)
	for last < 10*DefaultBatch {
		if time.Now().After(deadline) {
			t.Fatalf("worker forwarded only %d frames", last)
		}
		c, _ := w.Stats(time.Second)
		if c.RxPackets < last {
			t.Fatalf("counter went back from %d to %d", last, c.RxPackets)
		}
		last = c.RxPackets
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, ex := w.Stats(0)
	if c.RxPackets < last || c.TxPackets != c.RxPackets || ex.Generation != 1 {
		t.Fatalf("final rx %d (last seen %d) tx %d generation %d", c.RxPackets, last, c.TxPackets, ex.Generation)
	}
}
