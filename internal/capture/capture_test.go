package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/anysched/anysched/internal/capture/capturetest"
)

const testdataDir = "../../parser/testdata"

type packet struct {
	frame []byte
	ts    time.Time
	wire  int
}

// readAll reads every packet of a capture through Open and Next.
func readAll(t testing.TB, data []byte) ([]packet, error) {
	t.Helper()
	r, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	var pkts []packet
	for {
		frame, ts, err := r.Next()
		if errors.Is(err, io.EOF) {
			return pkts, nil
		}
		if err != nil {
			return pkts, err
		}
		pkts = append(pkts, packet{bytes.Clone(frame), ts, r.WireLength()})
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ethernetPackets reads an Ethernet pcap with gopacket alone: what Next
// must return for it and for its conversions to other link types.
func ethernetPackets(t testing.TB, name string) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	return capturetest.EthernetPackets(t, filepath.Join(testdataDir, name))
}

// writePcap writes a little-endian classic pcap of link type lt.
func writePcap(t testing.TB, lt LinkType, frames [][]byte, infos []gopacket.CaptureInfo) []byte {
	t.Helper()
	return capturetest.Pcap(t, uint32(lt), frames, infos)
}

// Every committed capture reads to the end; the Ethernet ones give exactly
// gopacket's frames and timestamps.
func TestOpenCommittedCaptures(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(testdataDir, "*.pcap*"))
	if len(paths) < 5 {
		t.Fatalf("only %d captures in %s", len(paths), testdataDir)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			pkts, err := readAll(t, readFile(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) == 0 {
				t.Fatal("no packets")
			}
			for i, p := range pkts {
				if et := binary.BigEndian.Uint16(p.frame[12:]); et != etherTypeIPv4 && et != etherTypeIPv6 {
					t.Fatalf("packet %d: EtherType %#04x", i+1, et)
				}
			}
			if strings.HasSuffix(name, ".pcapng") || name == "curl-any-sll2.pcap" {
				return
			}
			frames, infos := ethernetPackets(t, name)
			if len(frames) != len(pkts) {
				t.Fatalf("%d packets, gopacket reads %d", len(pkts), len(frames))
			}
			for i := range frames {
				if !bytes.Equal(pkts[i].frame, frames[i]) || !pkts[i].ts.Equal(infos[i].Timestamp) || pkts[i].wire != infos[i].Length {
					t.Fatalf("packet %d differs from gopacket's", i+1)
				}
			}
		})
	}
}

// SLL, SLL2 and raw-IP packets become the Ethernet frames they were
// captured from, apart from the MAC addresses (zero), with the wire
// length adjusted to the Ethernet header.
func TestLinkTypesBecomeEthernet(t *testing.T) {
	frames, infos := ethernetPackets(t, "go-crypto-tls.pcap")
	sll := capturetest.Map(frames, capturetest.SLL)
	sll2 := capturetest.Map(frames, capturetest.SLL2)
	raw := capturetest.Map(frames, capturetest.RawIP)
	for _, tc := range []struct {
		name   string
		lt     LinkType
		frames [][]byte
	}{
		{"sll", LinkSLL, sll}, {"sll2", LinkSLL2, sll2}, {"raw", LinkRaw, raw},
		{"ipv4", LinkIPv4, raw}, {"ethernet", LinkEthernet, frames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wireInfos := make([]gopacket.CaptureInfo, len(infos))
			for i, ci := range infos {
				ci.Length = len(tc.frames[i]) + 7 // as if cut by a snap length
				wireInfos[i] = ci
			}
			pkts, err := readAll(t, writePcap(t, tc.lt, tc.frames, wireInfos))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != len(frames) {
				t.Fatalf("%d packets, want %d", len(pkts), len(frames))
			}
			for i, p := range pkts {
				want := frames[i]
				if !bytes.Equal(p.frame[12:], want[12:]) || !p.ts.Equal(infos[i].Timestamp) || p.wire != len(want)+7 {
					t.Fatalf("packet %d: %x at %v (wire %d), want %x at %v (wire %d)", i+1,
						p.frame, p.ts, p.wire, want, infos[i].Timestamp, len(want)+7)
				}
				if tc.lt != LinkEthernet && !bytes.Equal(p.frame[:12], make([]byte, 12)) {
					t.Fatalf("packet %d: converted MACs %x, want zeros", i+1, p.frame[:12])
				}
			}
		})
	}
}

// gopacket keeps a pcapng interface's link type in 8 bits; a LINUX_SLL2
// interface (276) must still read as SLL2, not as link type 20.
func TestPcapngSLL2Interface(t *testing.T) {
	frames, infos := ethernetPackets(t, "utls-support-second.pcap")
	b := capturetest.PcapngSLL2(t, frames, infos)
	pkts, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != len(frames) {
		t.Fatalf("%d packets, want %d", len(pkts), len(frames))
	}
	for i, p := range pkts {
		if !bytes.Equal(p.frame[12:], frames[i][12:]) || !p.ts.Equal(infos[i].Timestamp) {
			t.Fatalf("packet %d differs", i+1)
		}
	}
}

// A packet that cannot be converted is reported as ErrUnconvertible and
// the reader goes on; an unsupported link type is an error naming it.
func TestUnconvertibleAndUnsupported(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	infos := []gopacket.CaptureInfo{{Timestamp: ts}, {Timestamp: ts}, {Timestamp: ts}, {Timestamp: ts.Add(time.Second)}}
	ipv4 := append([]byte{0x45}, make([]byte, 19)...)
	data := writePcap(t, LinkRaw, [][]byte{ipv4, {0x50, 1, 2}, nil, ipv4}, infos)
	r, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	wantErr := []error{nil, ErrUnconvertible, ErrUnconvertible, nil, io.EOF}
	for i, want := range wantErr {
		frame, _, err := r.Next()
		if !errors.Is(err, want) || (want == nil) != (frame != nil) {
			t.Fatalf("call %d: frame %x, err %v; want err %v", i+1, frame, err, want)
		}
	}

	wifi := writePcap(t, LinkType(layers.LinkTypeIEEE80211Radio), [][]byte{make([]byte, 40)}, infos[:1])
	_, err = readAll(t, wifi)
	if err == nil || !strings.Contains(err.Error(), "packet 1: link type 127 is not supported") {
		t.Fatalf("802.11 capture: %v", err)
	}
}

// pcapngBlock returns the offset of the first block of type typ.
func pcapngBlock(t testing.TB, ng []byte, typ uint32) int {
	for off := 0; off+8 <= len(ng); off += int(binary.LittleEndian.Uint32(ng[off+4:])) {
		if binary.LittleEndian.Uint32(ng[off:]) == typ {
			return off
		}
	}
	t.Fatalf("no block of type %d", typ)
	return 0
}

// corruptCaptures are the malformed inputs and the error each must give;
// they also seed FuzzReader.
func corruptCaptures(t testing.TB) []struct {
	name, want string
	data       []byte
} {
	good := readFile(t, "curl.pcap")
	ng := readFile(t, "ipv6-mtu1280-go.pcapng")
	lying := bytes.Clone(ng)
	shb := binary.LittleEndian.Uint32(lying[4:8])
	binary.LittleEndian.PutUint32(lying[shb+4:], uint32(len(lying))+64)
	hugeEPB := bytes.Clone(ng)
	binary.LittleEndian.PutUint32(hugeEPB[pcapngBlock(t, ng, 6)+20:], 1<<30)
	badTrailer := bytes.Clone(ng)
	epb := pcapngBlock(t, ng, 6)
	epbLen := int(binary.LittleEndian.Uint32(ng[epb+4:]))
	binary.LittleEndian.PutUint32(badTrailer[epb+epbLen-4:], 12)
	badOrder := bytes.Clone(ng)
	binary.LittleEndian.PutUint32(badOrder[8:], 0x12345678)
	shortIDB := bytes.Clone(ng)
	idb := pcapngBlock(t, ng, pcapngInterfaceDescription)
	binary.LittleEndian.PutUint32(shortIDB[idb+4:], 16)
	binary.LittleEndian.PutUint32(shortIDB[idb+12:], 16)
	return []struct {
		name, want string
		data       []byte
	}{
		{"empty", "too short for a pcap or pcapng header", nil},
		{"text", "not a pcap or pcapng file", []byte("hello, this is not a capture file\n")},
		{"pcap header cut", "corrupt pcap: file header cut short", good[:20]},
		{"pcap record cut", "corrupt capture at packet 19", good[:len(good)-7]},
		{"pcap record claims 1 GiB", "corrupt capture at packet 1", capturetest.HugeRecord(good)},
		{"pcapng cut", "corrupt pcapng: block at offset", ng[:len(ng)-9]},
		{"pcapng block length lies", "corrupt pcapng: block at offset", lying},
		{"pcapng packet claims 1 GiB", "claims more packet bytes", hugeEPB},
		{"pcapng trailer differs", "trailing length does not match", badTrailer},
		{"pcapng byte order", "bad byte-order magic", badOrder},
		{"pcapng interface block too short", "interface block at offset", shortIDB},
		{"pcapng header cut", "corrupt pcapng: block header at offset 0 cut short", ng[:6]},
	}
}

func TestCorruptCapturesNameTheProblem(t *testing.T) {
	for _, tc := range corruptCaptures(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A header that claims gigabytes must not make the reader allocate them.
func TestLyingLengthsAllocateLittle(t *testing.T) {
	good := readFile(t, "curl.pcap")
	ng := readFile(t, "ipv6-mtu1280-go.pcapng")
	hugeSnapIDB := bytes.Clone(ng)
	binary.LittleEndian.PutUint32(hugeSnapIDB[pcapngBlock(t, ng, pcapngInterfaceDescription)+12:], 0xFFFFFFFF)
	for name, data := range map[string][]byte{
		"pcap record": capturetest.HugeRecord(good),
		"pcapng snap": hugeSnapIDB,
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		readAll(t, data)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
			t.Errorf("%s: reading allocated %d bytes", name, got)
		}
	}
}

// Big-endian classic pcap and nanosecond timestamps read too.
func TestBigEndianNanosecondPcap(t *testing.T) {
	frames, infos := ethernetPackets(t, "curl.pcap")
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for i, fr := range frames {
		infos[i].Timestamp = infos[i].Timestamp.Add(123 * time.Nanosecond)
		w.WritePacket(infos[i], fr)
	}
	le := buf.Bytes()
	// Swap every 32- and 16-bit header field to big-endian.
	be := bytes.Clone(le)
	swap32 := func(off int) { binary.BigEndian.PutUint32(be[off:], binary.LittleEndian.Uint32(le[off:])) }
	swap16 := func(off int) { binary.BigEndian.PutUint16(be[off:], binary.LittleEndian.Uint16(le[off:])) }
	swap32(0)
	swap16(4)
	swap16(6)
	for _, off := range []int{8, 12, 16, 20} {
		swap32(off)
	}
	for off := 24; off < len(le); {
		capLen := int(binary.LittleEndian.Uint32(le[off+8:]))
		for i := 0; i < 16; i += 4 {
			swap32(off + i)
		}
		off += 16 + capLen
	}
	pkts, err := readAll(t, be)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != len(frames) {
		t.Fatalf("%d packets, want %d", len(pkts), len(frames))
	}
	for i := range pkts {
		if !bytes.Equal(pkts[i].frame, frames[i]) || !pkts[i].ts.Equal(infos[i].Timestamp) {
			t.Fatalf("packet %d: at %v, want %v", i+1, pkts[i].ts, infos[i].Timestamp)
		}
	}
}

func benchmarkNext(b *testing.B, name string) {
	data := readFile(b, name)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, _, err := r.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				b.Fatal(err)
			}
		}
	}
}

// Reading a whole capture, Open included (one 64 KiB conversion buffer and
// pcapgo's reader per Open).
func BenchmarkNextPcap(b *testing.B)   { benchmarkNext(b, "chromium.pcap") }
func BenchmarkNextSLL2(b *testing.B)   { benchmarkNext(b, "curl-any-sll2.pcap") }
func BenchmarkNextPcapng(b *testing.B) { benchmarkNext(b, "ipv6-mtu1280-go.pcapng") }

// A classic pcap costs no allocation per packet once open.
func TestNextPcapAllocatesNothingPerPacket(t *testing.T) {
	data := readFile(t, "chromium.pcap")
	r, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err != nil { // the first read sizes pcapgo's buffer
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet", allocs)
	}
}
