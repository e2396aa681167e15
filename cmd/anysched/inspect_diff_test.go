package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

// pinsAtEnd runs inspect over data and returns its reports with, per flow,
// what the worker's own pin table held after the flow's last packet
// before a client RST (the RST removes the pin of the connection it
// ends): the truth inspect's "legacy" must equal.
func pinsAtEnd(t *testing.T, data []byte, opts inspectOptions) (reports []inspectReport, truth []bool, ok bool) {
	t.Helper()
	held := map[parser.FlowKey]bool{}
	opts.observe = func(e *fastpath.Explanation, pinned func(*parser.FlowKey) bool) {
		if e.Forwarded && e.Packet.TCPFlags&parser.TCPFlagRST == 0 {
			held[e.Packet.Flow] = pinned(&e.Packet.Flow)
		}
	}
	flows, _, _, err := inspectCapture(bytes.NewReader(data), int64(len(data)), &opts)
	if err != nil {
		return nil, nil, false
	}
	last := map[parser.FlowKey]int{}
	for i, fl := range flows {
		last[fl.key] = i
	}
	for i, fl := range flows {
		if last[fl.key] != i {
			continue // an earlier connection on a reused 5-tuple: held is the later one's
		}
		reports = append(reports, fl.report())
		truth = append(truth, held[fl.key])
	}
	return reports, truth, true
}

// fuzzCorpus reads the []byte inputs of a `go test fuzz v1` corpus.
func fuzzCorpus(t *testing.T, dir string) [][]byte {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*"))
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if q, ok := strings.CutPrefix(line, "[]byte("); ok {
				v, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				out = append(out, []byte(v))
			}
		}
	}
	return out
}

// For every committed capture, the out-of-order one below and every input
// of the inspect fuzz corpus, inspect's "legacy" is what the fast path's
// pin table held.
func TestInspectLegacyIsTheFastPathsPin(t *testing.T) {
	inputs := map[string][]byte{}
	for _, dir := range []string{testdataDir, "testdata"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.pcap*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			inputs[filepath.Base(p)] = b
		}
	}
	if len(inputs) < 11 {
		t.Fatalf("%d committed captures", len(inputs))
	}
	inputs["out-of-order"] = reorderedHello(t)
	for i, b := range fuzzCorpus(t, filepath.Join("testdata", "fuzz", "FuzzInspectCapture")) {
		inputs["corpus-"+strconv.Itoa(i)] = b
	}
	opts := inspectOptions{ports: []uint16{443}, hello: parser.DefaultHelloConfig()}
	for name, data := range inputs {
		reports, truth, ok := pinsAtEnd(t, data, opts)
		if !ok {
			continue // not a capture: inspect exits 2
		}
		for i, r := range reports {
			if r.Legacy != truth[i] {
				t.Errorf("%s: flow %s: legacy %v, the fast path's pin table %v (%s)", name, r.Flow, r.Legacy, truth[i], r.Reason)
			}
		}
	}
}

// reorderedHello is go-crypto-tls.pcap with the two ClientHello segments
// swapped: the second arrives first.
func reorderedHello(t *testing.T) []byte {
	frames, infos := readPackets(t, "go-crypto-tls.pcap")
	var pkt parser.Packet
	var hello []int
	for i, fr := range frames {
		if parser.ParseFrame(fr, &pkt) == parser.StatusOK && pkt.Flow.DstPort == 443 && len(pkt.Payload) > 0 && len(hello) < 2 {
			hello = append(hello, i)
		}
	}
	if len(hello) != 2 {
		t.Fatalf("%d ClientHello segments", len(hello))
	}
	frames[hello[0]], frames[hello[1]] = frames[hello[1]], frames[hello[0]]
	data, err := os.ReadFile(writePcap(t, uint32(layers.LinkTypeEthernet), frames, infos))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The case that made inspect drive the worker: a ClientHello whose second
// segment arrives first. The fast path pins the flow (a ClientHello
// without migration_support, however the reassembler reads the segments);
// inspect used to report "first payload is not a TLS ClientHello … the
// flow follows the table".
func TestInspectOutOfOrderHelloIsPinned(t *testing.T) {
	reports, truth, ok := pinsAtEnd(t, reorderedHello(t), inspectOptions{ports: []uint16{443}, hello: parser.DefaultHelloConfig()})
	if !ok || len(reports) != 1 {
		t.Fatalf("reports %+v", reports)
	}
	if r := reports[0]; !r.Legacy || !truth[0] || !r.ClientHello || r.MigrationSupport {
		t.Errorf("out-of-order ClientHello: %+v (fast path pinned: %v)", r, truth[0])
	}
}

// arrival is one client segment of a scripted capture: part of a
// ClientHello variant (this flow's own, or the other one), with flags, an
// optional TTL, a broken checksum, or the ClientHello on the SYN.
type arrival struct {
	flags    uint8
	from, to int  // bytes of the hello (to -1: the end)
	other    bool // the other variant's bytes (with/without migration_support)
	isn      uint32
	ttl      uint8
	badSum   bool
	at       time.Duration // capture time of the frame
	afterEnd bool          // sequence numbers after the hello: a second one
}

// arrivalOrders are the twelve orders in which issue 11 found inspect
// and the fast path disagreeing, or that a router sees in practice, plus
// TCP Fast Open; each for a ClientHello in segments [0,300) [300,700)
// [700,end).
var arrivalOrders = []struct {
	name string
	segs []arrival
}{
	{"in order", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 300, to: -1}}},
	{"segment 2 before 1", []arrival{{flags: syn}, {from: 300, to: -1}, {from: 0, to: 300}}},
	{"no SYN seen", []arrival{{from: 0, to: 300}, {from: 300, to: -1}}},
	{"first segment twice", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 0, to: 300}, {from: 300, to: -1}}},
	{"retransmission of segment 1 after completion", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 300, to: -1}, {from: 0, to: 300, at: time.Second}}},
	{"TTL=1 copy of the other hello first", []arrival{{flags: syn}, {from: 0, to: 300, other: true, ttl: 1}, {from: 0, to: 300}, {from: 300, to: -1}}},
	{"5-tuple reused within 3 s", []arrival{{flags: syn}, {from: 0, to: 300}, {flags: rst, from: 300, to: 300},
		{flags: syn, isn: 77777, at: time.Second}, {from: 0, to: 300, isn: 77777, at: time.Second}, {from: 300, to: -1, isn: 77777, at: time.Second}}},
	{"a later ClientHello", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 300, to: -1}, {from: 0, to: -1, other: true, afterEnd: true}}},
	{"overlapping retransmission", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 200, to: 700}, {from: 700, to: -1}}},
	{"three segments, last first", []arrival{{flags: syn}, {from: 700, to: -1}, {from: 0, to: 300}, {from: 300, to: 700}}},
	{"bad-checksum copy of the other hello first", []arrival{{flags: syn}, {from: 0, to: 300, other: true, badSum: true}, {from: 0, to: 300}, {from: 300, to: -1}}},
	{"FIN on the last segment", []arrival{{flags: syn}, {from: 0, to: 300}, {from: 300, to: -1, flags: fin}}},
	{"TCP Fast Open, whole hello on the SYN", []arrival{{flags: syn, from: 0, to: -1}}},
	{"TCP Fast Open, hello continues", []arrival{{flags: syn, from: 0, to: 300}, {from: 300, to: -1}}},
}

const (
	syn = parser.TCPFlagSYN
	rst = parser.TCPFlagRST | parser.TCPFlagACK
	fin = parser.TCPFlagFIN | parser.TCPFlagACK
)

// scriptedCapture writes the arrivals of one flow as a pcap.
func scriptedCapture(t *testing.T, port uint16, migration bool, segs []arrival) []byte {
	t.Helper()
	hellos := map[bool][]byte{migration: packettest.ClientHello(migration, 700), !migration: packettest.ClientHello(!migration, 700)}
	var frames [][]byte
	var infos []gopacket.CaptureInfo
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, a := range segs {
		hello := hellos[migration != a.other]
		isn := uint32(1000)
		if a.isn != 0 {
			isn = a.isn
		}
		to := a.to
		if to < 0 {
			to = len(hello)
		}
		s := packettest.TCP{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.10"),
			SrcPort: port, DstPort: 443, Flags: a.flags, Seq: isn + 1 + uint32(a.from), TTL: a.ttl, Payload: hello[a.from:to]}
		if a.flags&parser.TCPFlagSYN != 0 {
			s.Seq = isn
		} else if s.Flags == 0 {
			s.Flags = parser.TCPFlagACK | parser.TCPFlagPSH
		}
		if a.afterEnd {
			s.Seq = isn + 1 + uint32(len(hellos[migration]))
		}
		f := packettest.Frame(t, s)
		if a.badSum {
			var p parser.Packet
			parser.ParseFrame(f, &p)
			f[p.L4Off+16] ^= 0x5a
		}
		frames = append(frames, f)
		infos = append(infos, gopacket.CaptureInfo{Timestamp: start.Add(a.at + time.Duration(i)*time.Millisecond), CaptureLength: len(f), Length: len(f)})
	}
	data, err := os.ReadFile(writePcap(t, uint32(layers.LinkTypeEthernet), frames, infos))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The differential test of issue 11 finding 7: in every arrival order,
// for a ClientHello with and without migration_support, inspect's
// "legacy" is what the fast path's pin table held at the flow's end, and
// that is what the node saw: legacy pinned, migration_support not.
func TestInspectEveryArrivalOrder(t *testing.T) {
	opts := inspectOptions{ports: []uint16{443}, hello: parser.DefaultHelloConfig()}
	for i, order := range arrivalOrders {
		for _, migration := range []bool{false, true} {
			data := scriptedCapture(t, uint16(41000+i), migration, order.segs)
			reports, truth, ok := pinsAtEnd(t, data, opts)
			if !ok || len(reports) != 1 {
				t.Fatalf("%s: %d reports", order.name, len(reports))
			}
			r := reports[0]
			t.Logf("%s mig=%v: legacy=%v verdict=%s segs=%d reason=%s", order.name, migration, r.Legacy, r.Verdict, r.Segments, r.Reason)
			if r.Legacy != truth[0] {
				t.Errorf("%s, migration_support %v: inspect says legacy %v, the fast path's pin table %v (%s)", order.name, migration, r.Legacy, truth[0], r.Reason)
			}
			if truth[0] == migration {
				t.Errorf("%s, migration_support %v: the fast path pinned %v (%s)", order.name, migration, truth[0], r.Reason)
			}
			if r.MigrationSupport != migration || !r.ClientHello {
				t.Errorf("%s, migration_support %v: inspect reports %+v", order.name, migration, r)
			}
		}
	}
}

// Segments with a bad TCP checksum are not read, and inspect says so on
// stderr, naming the usual cause.
func TestInspectReportsBadChecksums(t *testing.T) {
	data := scriptedCapture(t, 42000, false, []arrival{{flags: syn}, {from: 0, to: 300, badSum: true}, {from: 300, to: -1}})
	path := filepath.Join(t.TempDir(), "bad.pcap")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errb := runInspectCmd(t, "--pcap", path)
	if code != exitOK || !strings.Contains(errb, "1 segment(s) with a bad TCP checksum not read") || !strings.Contains(errb, "checksum offload") {
		t.Errorf("exit %d, stderr %q", code, errb)
	}
}
