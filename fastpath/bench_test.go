package fastpath

import (
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

const benchFlows = 1024

func benchFlow(i int, flags uint8, payload []byte) packettest.TCP {
	// Clients spread over a /16 and ports, as real traffic is.
	src := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
	return packettest.TCP{Src: src, Dst: vip4, SrcPort: uint16(20000 + i), DstPort: 443, Flags: flags, Seq: 1000, Payload: payload}
}

func synTemplates(t testing.TB) [][]byte {
	var out [][]byte
	for i := range benchFlows {
		out = append(out, packettest.Frame(t, benchFlow(i, parser.TCPFlagSYN, nil)))
	}
	return out
}

// appData is a TLS application_data record header and a few bytes: what a
// mid-flow client segment starts with (or not, mid-record; either way it
// is not a handshake record).
var appData = []byte{0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

func midFlowTemplates(t testing.TB) [][]byte {
	var out [][]byte
	for i := range benchFlows {
		var payload []byte
		if i%2 == 0 {
			payload = appData
		}
		out = append(out, packettest.Frame(t, benchFlow(i, parser.TCPFlagACK, payload)))
	}
	return out
}

func helloTemplates(t testing.TB) [][]byte {
	legacy, modern := packettest.ClientHello(false, 0), packettest.ClientHello(true, 0)
	var out [][]byte
	for i := range benchFlows {
		ch := legacy
		if i%2 == 0 {
			ch = modern
		}
		out = append(out, packettest.Frame(t, benchFlow(i, parser.TCPFlagACK|parser.TCPFlagPSH, ch)))
	}
	return out
}

// mixTemplates is, per 20 frames: 2 SYNs, 16 mid-flow segments (half pure
// ACKs, half application data), 1 legacy and 1 migration_support
// ClientHello.
func mixTemplates(t testing.TB) [][]byte {
	legacy, modern := packettest.ClientHello(false, 0), packettest.ClientHello(true, 0)
	var out [][]byte
	for i := range benchFlows {
		var s packettest.TCP
		switch i % 20 {
		case 0, 10:
			s = benchFlow(i, parser.TCPFlagSYN, nil)
		case 5:
			s = benchFlow(i, parser.TCPFlagACK|parser.TCPFlagPSH, legacy)
		case 15:
			s = benchFlow(i, parser.TCPFlagACK|parser.TCPFlagPSH, modern)
		default:
			var payload []byte
			if i%2 == 1 {
				payload = appData
			}
			s = benchFlow(i, parser.TCPFlagACK, payload)
		}
		out = append(out, packettest.Frame(t, s))
	}
	return out
}

func benchSetup(t testing.TB, templates [][]byte) (*offline.MemRing, *Worker) {
	t.Helper()
	cfg := testConfig(t, -1)
	s, err := sched.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Few slots, many flows: frame data stays in cache as it would after
	// the NIC's DMA (DDIO); the flows' table entries do not.
	ring := offline.NewMemRing(4*DefaultBatch, 2048)
	if err := ring.Replay(templates); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(ring, s, Config{SourceMAC: routerMAC, Decider: sched.DeciderConfigFrom(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return ring, w
}

// BenchmarkPipeline runs whole 64-frame batches through the worker over a
// replaying memory Ring: Reclaim, Receive (which copies each frame in
// from its template, as a NIC would; BenchmarkMemRingReplay is that share),
// parse, decide, rewrite, Transmit, Sweep, over 1024 flows. One op is one
// batch.
func BenchmarkPipeline(b *testing.B) {
	for _, bc := range []struct {
		name      string
		templates func(testing.TB) [][]byte
	}{
		{"syn", synTemplates},
		{"mid_flow", midFlowTemplates},
		{"clienthello", helloTemplates},
		{"mix", mixTemplates},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ring, w := benchSetup(b, bc.templates(b))
			// Warm up: pins and transition state as in steady traffic.
			for range 64 {
				w.Step(0)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := threadCPU(b)
			for b.Loop() {
				if n, _ := w.Step(0); n != DefaultBatch {
					b.Fatalf("batch of %d", n)
				}
			}
			cpu := threadCPU(b) - cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBatch), "ns/pkt")
			// The machine is shared: CPU time of this thread per packet
			// is the steadier figure when other work competes for it.
			b.ReportMetric(float64(cpu)/float64(b.N*DefaultBatch), "cpu-ns/pkt")
			if ring.Err() != nil {
				b.Fatal(ring.Err())
			}
			c, _ := w.Counters()
			if c.TxPackets != c.RxPackets {
				b.Fatalf("rx %d tx %d: dropped %v parse %v", c.RxPackets, c.TxPackets, c.Dropped, c.ParseStatus)
			}
		})
	}
}

// threadCPU returns the calling OS thread's CPU time in nanoseconds.
func threadCPU(tb testing.TB) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		tb.Fatal(err)
	}
	return ts.Nano()
}

// BenchmarkMemRingReplay is the memory Ring's own share of
// BenchmarkPipeline: Reclaim, Receive (restoring headers) and Transmit of
// 64-frame batches with no processing. One op is one batch.
func BenchmarkMemRingReplay(b *testing.B) {
	mr := offline.NewMemRing(4*DefaultBatch, 2048)
	if err := mr.Replay(mixTemplates(b)); err != nil {
		b.Fatal(err)
	}
	batch := make([]ring.Desc, DefaultBatch)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU(b)
	for b.Loop() {
		mr.Reclaim()
		n, _ := mr.Receive(batch, 0)
		mr.Transmit(batch[:n])
	}
	cpu := threadCPU(b) - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBatch), "ns/pkt")
	b.ReportMetric(float64(cpu)/float64(b.N*DefaultBatch), "cpu-ns/pkt")
}
