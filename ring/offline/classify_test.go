package offline

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring"
)

var classifyVIPs = []netip.AddrPort{netip.MustParseAddrPort("10.200.0.1:443")}

// receiveAll drains r, checking that every frame handed over is one the
// XDP program redirects, and returns how many were.
func receiveAll(t *testing.T, r *PcapRing, vips *classify.VIPs) int {
	t.Helper()
	batch := make([]ring.Desc, 4)
	var pkt parser.Packet
	handed := 0
	for range 10000 {
		n, err := r.Receive(batch, 0)
		for _, d := range batch[:n] {
			if v := vips.Frame(r.UMEM()[d.Addr:d.Addr+uint64(d.Len)], &pkt); v != classify.Redirect {
				t.Fatalf("handed over a frame the program passes (%s)", v)
			}
		}
		handed += n
		if _, terr := r.Transmit(batch[:n]); terr != nil {
			t.Fatal(terr)
		}
		if err != nil {
			return handed // the end, or a corrupt record ends the input
		}
	}
	t.Fatal("the capture does not end")
	return 0
}

// With Classify, PcapRing hands over only what the XDP program redirects;
// the rest is counted by reason and shown to onPass at its capture time.
func TestPcapRingClassifies(t *testing.T) {
	vip := netip.MustParseAddr("10.200.0.1")
	client := netip.MustParseAddr("10.99.0.2")
	syn := packettest.Frame(t, packettest.TCP{Src: client, Dst: vip, SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagSYN})
	other := packettest.Frame(t, packettest.TCP{Src: client, Dst: vip, SrcPort: 1, DstPort: 80, Flags: parser.TCPFlagSYN})
	mapped := packettest.Frame(t, packettest.TCP{Src: netip.MustParseAddr("fd00::2"), Dst: netip.AddrFrom16(vip.As16()), SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagSYN})
	data := writeCapture(t, [][]byte{syn, other, {1, 2, 3}, mapped, syn}, fuzzStart)
	r, err := NewPcapRing(bytes.NewReader(data), int64(len(data)), io.Discard, 4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	vips := classify.NewVIPs(classifyVIPs)
	var passed []classify.Verdict
	r.Classify(vips, func(_ []byte, v classify.Verdict) {
		passed = append(passed, v)
		if r.Now().IsZero() {
			t.Error("Now is not the passed frame's capture time")
		}
	})
	if got := receiveAll(t, r, vips); got != 2 {
		t.Fatalf("%d frames handed over, want the 2 SYNs", got)
	}
	want := []classify.Verdict{classify.PassVIPOther, classify.PassMalformed, classify.PassNotVIP}
	if len(passed) != len(want) {
		t.Fatalf("passed %v, want %v", passed, want)
	}
	for i := range want {
		if passed[i] != want[i] || r.Passed[want[i]] != 1 {
			t.Errorf("pass %d: %s (count %d), want %s", i, passed[i], r.Passed[want[i]], want[i])
		}
	}
	if r.Read != 5 {
		t.Errorf("Read %d, want 5", r.Read)
	}
}

// FuzzPcapRingClassify reads arbitrary bytes as a capture with the XDP
// rule applied: never a panic, only redirected frames handed over, and
// every frame read is handed over, passed or oversize.
func FuzzPcapRingClassify(f *testing.F) {
	f.Add(writeCapture(f, [][]byte{packettest.Frame(f, packettest.TCP{Src: netip.MustParseAddr("10.99.0.2"), Dst: netip.MustParseAddr("10.200.0.1"), SrcPort: 1, DstPort: 443, Flags: parser.TCPFlagSYN})}, fuzzStart))
	f.Add(writeCapture(f, [][]byte{bytes.Repeat([]byte{1}, 60)}, fuzzStart))
	vips := classify.NewVIPs(classifyVIPs)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewPcapRing(bytes.NewReader(data), int64(len(data)), io.Discard, 4, 2048)
		if err != nil {
			return
		}
		r.Classify(vips, nil)
		handed := receiveAll(t, r, vips)
		var passed uint64
		for _, n := range r.Passed {
			passed += n
		}
		if r.Read != uint64(handed)+passed+r.Oversize {
			t.Fatalf("read %d = handed %d + passed %d + oversize %d?", r.Read, handed, passed, r.Oversize)
		}
	})
}
