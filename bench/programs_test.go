package bench

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

// needRoot fails (does not skip) the test without root: the programs are
// the bench's real dependency.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("bench tests need root: they load XDP programs and build network namespaces")
	}
}

func runOnce(t *testing.T, p *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := p.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	return ret, out[:len(frame)]
}

func TestGeneratorRewritesFlows(t *testing.T) {
	needRoot(t)
	const flows = 5
	g, err := NewGenerator(GeneratorOptions{Flows: flows})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tm, err := Templates(testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	var all Workload
	for _, tpl := range tm {
		all.Parts = append(all.Parts, Part{Template: tpl, Weight: 1})
	}
	if err := g.SetHeaders(all); err != nil {
		t.Fatal(err)
	}
	// Every template, several flows: checksums stay right and the flow
	// follows the template's own counter; headers a forwarding kernel
	// rewrote in a recycled page (MACs, TTL, destination) are restored.
	runs := 0
	for slot, tpl := range tm {
		used := append([]byte(nil), tpl.Frame...)
		copy(used[0:12], []byte{9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8})
		used[14+8] = 3      // TTL
		used[14+16] ^= 0x55 // destination address
		used[14+10] ^= 0x11 // and a checksum to match nothing
		if ret, out := runOnce(t, g.prog.prog, used); ret != xdpTX || string(out[:offSrcPort]) != string(tpl.Frame[:offSrcPort]) {
			t.Errorf("%s: headers not restored", tpl.Name)
		} else {
			checksumsOK(t, out)
		}
		if err := g.prog.m.Put(uint32(slot), perCPU(0)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2*flows+1; i++ {
			ret, out := runOnce(t, g.prog.prog, tpl.Frame)
			runs++
			if ret != xdpTX {
				t.Fatalf("%s: verdict %d, want XDP_TX", tpl.Name, ret)
			}
			checksumsOK(t, out)
			flow := i % flows
			if got := binary.BigEndian.Uint16(out[offSrcPort:]); got != uint16(genPortBase+flow%genPorts) {
				t.Errorf("%s run %d: source port %d", tpl.Name, i, got)
			}
			if got := binary.BigEndian.Uint16(out[offSrcLow:]); got != uint16(flow>>genPortBits) {
				t.Errorf("%s run %d: address half %d", tpl.Name, i, got)
			}
			if out[offSrcLow-2] != tpl.Frame[offSrcLow-2] || out[offSrcLow-1] != tpl.Frame[offSrcLow-1] {
				t.Errorf("%s: the source network changed", tpl.Name)
			}
			if int(out[offIPID+1]&(maxTemplates-1)) != slot {
				t.Errorf("%s: slot changed", tpl.Name)
			}
		}
	}
	sent, err := g.Sent()
	if err != nil {
		t.Fatal(err)
	}
	if sent != uint64(runs) {
		t.Errorf("Sent %d, want %d", sent, runs)
	}
	// A frame too short to rewrite is refused.
	if ret, _ := runOnce(t, g.prog.prog, tm[slotSYN].Frame[:40]); ret != xdpAborted {
		t.Errorf("short frame: verdict %d", ret)
	}
}

func TestGeneratorFlowsAcrossAddresses(t *testing.T) {
	needRoot(t)
	// With more flows than ports, the address half carries the rest.
	g, err := NewGenerator(GeneratorOptions{Flows: MaxFlows})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	key := uint32(slotACK)
	start := uint64(3*genPorts + 7)
	if err := g.prog.m.Put(key, perCPU(start)); err != nil {
		t.Fatal(err)
	}
	tm, err := Templates(testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetHeaders(Workload{Parts: []Part{{Template: tm[slotACK], Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, out := runOnce(t, g.prog.prog, tm[slotACK].Frame)
	checksumsOK(t, out)
	if port, half := binary.BigEndian.Uint16(out[offSrcPort:]), binary.BigEndian.Uint16(out[offSrcLow:]); port != genPortBase+7 || half != 3 {
		t.Errorf("flow %d: port %d half %d", start, port, half)
	}
	for _, bad := range []int{0, -1, MaxFlows + 1} {
		if _, err := NewGenerator(GeneratorOptions{Flows: bad}); err == nil {
			t.Errorf("Flows %d accepted", bad)
		}
	}
}

func perCPU(v uint64) []uint64 {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		n = 1
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestCounterCountsOnlyItsOwnTraffic(t *testing.T) {
	needRoot(t)
	own := testAddrs.DstMAC
	c, err := LoadCounter(own)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tm, err := Templates(testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	mine := tm[slotData].Frame
	other := append([]byte(nil), mine...)
	other[5] ^= 1 // another host's MAC (flooded)
	port80 := append([]byte(nil), tm[slotACK].Frame...)
	binary.BigEndian.PutUint16(port80[offDstPort:], 80)
	arp := append([]byte(nil), mine[:60]...)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	cases := []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"own TCP 443", mine, xdpDrop},
		{"other MAC", other, xdpPass},
		{"port 80", port80, xdpPass},
		{"ARP", arp, xdpPass},
		{"short", mine[:20], xdpPass},
	}
	for _, tc := range cases {
		if ret, _ := runOnce(t, c.prog, tc.frame); ret != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, ret, tc.want)
		}
	}
	packets, bytes, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if packets != 1 || bytes != uint64(len(mine)) {
		t.Errorf("counted %d packets %d bytes, want 1, %d", packets, bytes, len(mine))
	}
}
