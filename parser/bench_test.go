package parser

import (
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// benchFrames are the frames every frame benchmark uses, so ParseFrame and
// gopacket see the same bytes.
func benchFrames(b *testing.B) map[string][]byte {
	pq, small := goHellos(b)
	syn := v4spec()
	syn.tcpOpts = []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7} // MSS, SACK-perm, TS, WS: Linux's SYN
	ack := v4spec()
	ack.flags = TCPFlagACK
	ack.seq, ack.ack = 1001, 5001
	ack.tcpOpts = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	v6 := v6spec()
	v6.tcpOpts = syn.tcpOpts
	tagged := syn
	tagged.vlanTPIDs = []uint16{EtherTypeVLAN}
	return map[string][]byte{
		"ipv6_syn":            buildFrame(v6),
		"vlan_syn":            buildFrame(tagged),
		"syn":                 buildFrame(syn),
		"ack":                 buildFrame(ack),
		"clienthello_small":   helloFrame(small, 1500),
		"clienthello_pq_seg1": helloFrame(pq, 1500),
	}
}

func BenchmarkParseFrame(b *testing.B) {
	frames := benchFrames(b)
	for _, name := range []string{"syn", "ack", "clienthello_small", "clienthello_pq_seg1", "ipv6_syn", "vlan_syn"} {
		f := frames[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f)))
			var p Packet
			defer reportCPU(b)()
			for b.Loop() {
				if ParseFrame(f, &p) != StatusOK {
					b.Fatal("parse failed")
				}
			}
		})
	}
}

func BenchmarkScanClientHello(b *testing.B) {
	pq, small := goHellos(b)
	for _, c := range []struct {
		name  string
		hello []byte
	}{{"small", small}, {"pq", pq}, {"migration_split_records", records(buildHello(migrationExts()), 100, 100)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.hello)))
			var h ClientHello
			defer reportCPU(b)()
			for b.Loop() {
				if ScanClientHello(c.hello, nil, &h) != HelloComplete {
					b.Fatal("scan failed")
				}
			}
		})
	}
}

// BenchmarkGopacketDLP decodes the same frames with gopacket's
// DecodingLayerParser (its fastest API) as the yardstick.
func BenchmarkGopacketDLP(b *testing.B) {
	frames := benchFrames(b)
	for _, name := range []string{"syn", "ack", "clienthello_small"} {
		f := frames[name]
		b.Run(name, func(b *testing.B) {
			var (
				eth     layers.Ethernet
				dot1q   layers.Dot1Q
				ip4     layers.IPv4
				ip6     layers.IPv6
				tcp     layers.TCP
				payload gopacket.Payload
			)
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6, &tcp, &payload)
			parser.IgnoreUnsupported = true // TCP port 443 asks for a TLS layer
			decoded := make([]gopacket.LayerType, 0, 8)
			b.ReportAllocs()
			b.SetBytes(int64(len(f)))
			defer reportCPU(b)()
			for b.Loop() {
				if err := parser.DecodeLayers(f, &decoded); err != nil || tcp.DstPort != 443 {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReassemblerFeed(b *testing.B) {
	pq, _ := goHellos(b)
	r := newReasm(b, ReassemblerConfig{})
	k := flowN(1)
	var h ClientHello
	b.ReportAllocs()
	b.SetBytes(int64(len(pq)))
	defer reportCPU(b)()
	for b.Loop() {
		r.Feed(&k, 1, pq[:1448], 0, nil, &h)
		if r.Feed(&k, 1449, pq[1448:], 0, nil, &h) != VerdictComplete {
			b.Fatal("not complete")
		}
		r.Forget(&k) // the connection's FIN: the next one starts over
	}
}

// reportCPU adds a cpu-ns/op metric: the process's CPU time per operation.
// The machine is shared, so wall-clock ns/op includes time spent waiting
// for a core; CPU time does not. Use as: defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tinyRecordSegments frames hs into 1-byte TLS records, one record per TCP
// segment: the shape that made a rescanning reassembler quadratic.
func tinyRecordSegments(hs []byte) (stream []byte, segs [][2]int) {
	ones := make([]int, len(hs))
	for i := range ones {
		ones[i] = 1
	}
	stream = records(hs, ones...)
	for at := 0; at < len(stream); at += tlsRecordHeaderLen + 1 {
		segs = append(segs, [2]int{at, at + tlsRecordHeaderLen + 1})
	}
	return stream, segs
}

// BenchmarkReassemblerTinyRecords feeds Go's default ClientHello (about
// 1.8 KB) in 1-byte TLS records, one per segment, after the flow's SYN; ns
// per segment is the figure (ns/op divided by the segments metric).
func BenchmarkReassemblerTinyRecords(b *testing.B) {
	pq, _ := goHellos(b)
	stream, segs := tinyRecordSegments(handshakeOf(pq))
	r := newReasm(b, ReassemblerConfig{})
	k := flowN(1)
	var h ClientHello
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	defer reportCPU(b)()
	for b.Loop() {
		r.Open(&k, 0, 0)
		var v Verdict
		for _, s := range segs {
			v = r.Feed(&k, 1+uint32(s[0]), stream[s[0]:s[1]], 0, nil, &h)
		}
		if v != VerdictComplete {
			b.Fatalf("verdict %v", v)
		}
		r.Forget(&k)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(segs)), "ns/segment")
	b.ReportMetric(float64(len(segs)), "segments")
}
