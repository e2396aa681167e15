package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/internal/capture/capturetest"
	"github.com/anysched/anysched/parser"
)

const testdataDir = "../../parser/testdata"

// wantInspectJSON is the exact `anysched inspect --json` output for every
// committed capture (parser/testdata/captures.md describes them). Sizes and
// segment counts agree with tcpdump's view of the same files: for example
// Chromium's 1925-byte first flight is 1448 + 477 bytes, a 5-byte record
// header and a 1920-byte ClientHello.
var wantInspectJSON = []struct {
	file string
	want string
}{
	{"chromium.pcap", `
{"flow":"198.51.100.7:50872>203.0.113.10:443","client_hello":true,"complete":true,"segments":2,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":1920,"tls13":true,"psk":false,"ech":true,"grease":true}
{"flow":"198.51.100.7:50878>203.0.113.10:443","client_hello":true,"complete":true,"segments":2,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":1920,"tls13":true,"psk":false,"ech":true,"grease":true}
`},
	{"curl-any-sll2.pcap", `
{"flow":"198.51.100.7:38478>203.0.113.10:443","client_hello":true,"complete":true,"segments":1,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":512,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"curl.pcap", `
{"flow":"198.51.100.7:60136>203.0.113.10:443","client_hello":true,"complete":true,"segments":1,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":512,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"go-crypto-tls.pcap", `
{"flow":"198.51.100.7:60158>203.0.113.10:443","client_hello":true,"complete":true,"segments":2,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":1504,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"ipv6-mtu1280-go.pcapng", `
{"flow":"[2001:db8:c::7]:42080>[2001:db8:5::10]:443","client_hello":true,"complete":true,"segments":2,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":1504,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"no-clienthello.pcap", `
{"flow":"198.51.100.7:50912>203.0.113.10:443","client_hello":false,"complete":false,"segments":0,"migration_support":false,"migration_token":false,"sni":"","legacy":false,"migration_support_segment":0,"verdict":"no_payload","reason":"no payload: nothing to inspect, the flow follows the table","hello_bytes":0,"tls13":false,"psk":false,"ech":false,"grease":false}
{"flow":"198.51.100.7:50926>203.0.113.10:443","client_hello":false,"complete":false,"segments":0,"migration_support":false,"migration_token":false,"sni":"","legacy":false,"migration_support_segment":0,"verdict":"not_hello","reason":"first payload is not a TLS ClientHello: not acted on (the router cannot tell it from a later payload), the flow follows the table","hello_bytes":0,"tls13":false,"psk":false,"ech":false,"grease":false}
`},
	{"openssl-s_client.pcap", `
{"flow":"198.51.100.7:60146>203.0.113.10:443","client_hello":true,"complete":true,"segments":1,"migration_support":false,"migration_token":false,"sni":"vip.anysched.test","legacy":true,"migration_support_segment":0,"verdict":"complete","reason":"no migration_support: pinned as a legacy flow","hello_bytes":318,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"utls-record-split.pcap", `
{"flow":"198.51.100.7:48628>203.0.113.10:443","client_hello":true,"complete":true,"segments":3,"migration_support":true,"migration_token":false,"sni":"vip.anysched.test","legacy":false,"migration_support_segment":3,"verdict":"complete","reason":"migration_support: pinned while the ClientHello was incomplete, unpinned when it completed; nothing stored","hello_bytes":3018,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"utls-support-first.pcap", `
{"flow":"198.51.100.7:50894>203.0.113.10:443","client_hello":true,"complete":true,"segments":2,"migration_support":true,"migration_token":false,"sni":"vip.anysched.test","legacy":false,"migration_support_segment":1,"verdict":"complete","reason":"migration_support: pinned while the ClientHello was incomplete, unpinned when it completed; nothing stored","hello_bytes":1514,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"utls-support-second.pcap", `
{"flow":"198.51.100.7:50896>203.0.113.10:443","client_hello":true,"complete":true,"segments":2,"migration_support":true,"migration_token":false,"sni":"vip.anysched.test","legacy":false,"migration_support_segment":2,"verdict":"complete","reason":"migration_support: pinned while the ClientHello was incomplete, unpinned when it completed; nothing stored","hello_bytes":1514,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
	{"utls-support-token.pcap", `
{"flow":"198.51.100.7:50910>203.0.113.10:443","client_hello":true,"complete":true,"segments":1,"migration_support":true,"migration_token":true,"sni":"vip.anysched.test","legacy":false,"migration_support_segment":1,"verdict":"complete","reason":"migration_support: the client will move to a unicast node; nothing stored","hello_bytes":325,"tls13":true,"psk":false,"ech":false,"grease":false}
`},
}

func runInspectCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(append([]string{"inspect"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestInspectJSONEveryCapture(t *testing.T) {
	committed, err := filepath.Glob(filepath.Join(testdataDir, "*.pcap*"))
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, tc := range wantInspectJSON {
		tested[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			code, out, errb := runInspectCmd(t, "--json", "--pcap", filepath.Join(testdataDir, tc.file))
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errb)
			}
			want := strings.TrimPrefix(tc.want, "\n")
			if out != want {
				t.Errorf("output differs\n got:\n%s\nwant:\n%s", out, want)
			}
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("line %q is not one JSON object: %v", line, err)
				}
				for _, key := range []string{"flow", "client_hello", "complete", "segments",
					"migration_support", "migration_token", "sni", "legacy"} {
					if _, ok := m[key]; !ok {
						t.Errorf("line %q lacks key %q", line, key)
					}
				}
			}
		})
	}
	for _, path := range committed {
		if !tested[filepath.Base(path)] {
			t.Errorf("capture %s has no expected output in wantInspectJSON", filepath.Base(path))
		}
	}
}

func TestInspectTable(t *testing.T) {
	code, out, errb := runInspectCmd(t, "--pcap", filepath.Join(testdataDir, "no-clienthello.pcap"))
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two flows, got %d lines:\n%s", len(lines), out)
	}
	if !strings.HasPrefix(lines[0], "FLOW ") || !strings.Contains(lines[0], "ROUTER") {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{"no_payload", "not_hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runInspectCmd(t, "--pcap", filepath.Join(testdataDir, "utls-support-second.pcap"))
	if code != exitOK || !strings.Contains(out, "no pin") || strings.Contains(out, "pin (legacy)") {
		t.Errorf("utls-support-second: exit %d, want one unpinned flow:\n%s", code, out)
	}
}

func TestInspectFilters(t *testing.T) {
	file := filepath.Join(testdataDir, "chromium.pcap")
	_, all, _ := runInspectCmd(t, "--json", "--pcap", file)
	if strings.Count(all, "\n") != 2 {
		t.Fatalf("chromium.pcap: want two flows, got:\n%s", all)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		flows int
	}{
		{"matching vip", []string{"--vip", "203.0.113.10"}, 2},
		{"other vip", []string{"--vip", "192.0.2.1"}, 0},
		{"two vips", []string{"--vip", "192.0.2.1", "--vip", "203.0.113.10"}, 2},
		{"other port", []string{"--port", "8443"}, 0},
		{"two ports", []string{"--port", "8443", "--port", "443"}, 2},
		{"comma ports", []string{"--port", "8443,443"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := runInspectCmd(t, append([]string{"--json", "--pcap", file}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errb)
			}
			if got := strings.Count(out, "\n"); got != tc.flows {
				t.Fatalf("want %d flows, got %d:\n%s", tc.flows, got, out)
			}
			if tc.flows == 2 && out != all {
				t.Errorf("filtered output differs from unfiltered:\n%s", out)
			}
		})
	}
	// IPv6 VIPs compare as addresses, whatever their spelling.
	v6 := filepath.Join(testdataDir, "ipv6-mtu1280-go.pcapng")
	if code, out, _ := runInspectCmd(t, "--json", "--pcap", v6, "--vip", "2001:0db8:5:0::10"); code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("--vip 2001:0db8:5:0::10: exit %d, output:\n%s", code, out)
	}
}

// readPackets returns the frames of a committed Ethernet capture.
func readPackets(t *testing.T, name string) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	return capturetest.EthernetPackets(t, filepath.Join(testdataDir, name))
}

// writePcap writes a classic pcap of link type lt to a temporary file.
func writePcap(t *testing.T, lt uint32, frames [][]byte, infos []gopacket.CaptureInfo) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.pcap")
	if err := os.WriteFile(path, capturetest.Pcap(t, lt, frames, infos), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A capture made with tcpdump -i any (Linux cooked, SLL or SLL2) or on a
// raw IP link gives the same report as the Ethernet original.
func TestInspectOtherLinkTypes(t *testing.T) {
	frames, infos := readPackets(t, "go-crypto-tls.pcap")
	_, want, _ := runInspectCmd(t, "--json", "--pcap", filepath.Join(testdataDir, "go-crypto-tls.pcap"))
	for _, tc := range []struct {
		name   string
		lt     uint32
		frames [][]byte
	}{
		{"sll", uint32(layers.LinkTypeLinuxSLL), capturetest.Map(frames, capturetest.SLL)},
		{"raw", uint32(layers.LinkTypeRaw), capturetest.Map(frames, capturetest.RawIP)},
		{"sll2", capturetest.LinkSLL2, capturetest.Map(frames, capturetest.SLL2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writePcap(t, tc.lt, tc.frames, infos)
			code, got, errb := runInspectCmd(t, "--json", "--pcap", path)
			if code != exitOK || got != want {
				t.Errorf("exit %d (stderr %q), output\n%s\nwant\n%s", code, errb, got, want)
			}
		})
	}
}

// The same for pcapng: an interface block of link type LINUX_SLL2.
func TestInspectPcapngSLL2(t *testing.T) {
	frames, infos := readPackets(t, "utls-support-second.pcap")
	_, want, _ := runInspectCmd(t, "--json", "--pcap", filepath.Join(testdataDir, "utls-support-second.pcap"))
	path := filepath.Join(t.TempDir(), "sll2.pcapng")
	if err := os.WriteFile(path, capturetest.PcapngSLL2(t, frames, infos), 0o644); err != nil {
		t.Fatal(err)
	}
	code, got, errb := runInspectCmd(t, "--json", "--pcap", path)
	if code != exitOK || got != want {
		t.Errorf("exit %d (stderr %q), output\n%s\nwant\n%s", code, errb, got, want)
	}
}

// A second connection on the same 5-tuple (the capture recorded twice in
// a row, an hour apart) is a flow of its own, not more segments of the first.
func TestInspectPortReuse(t *testing.T) {
	frames, infos := readPackets(t, "utls-support-second.pcap")
	_, once, _ := runInspectCmd(t, "--json", "--pcap", filepath.Join(testdataDir, "utls-support-second.pcap"))
	all := append([][]byte{}, frames...)
	allInfos := append([]gopacket.CaptureInfo{}, infos...)
	for i := range frames {
		all = append(all, frames[i])
		ci := infos[i]
		ci.Timestamp = ci.Timestamp.Add(time.Hour)
		allInfos = append(allInfos, ci)
	}
	path := writePcap(t, uint32(layers.LinkTypeEthernet), all, allInfos)
	code, out, errb := runInspectCmd(t, "--json", "--pcap", path)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	if out != once+once {
		t.Errorf("got\n%s\nwant the single-connection report twice:\n%s", out, once)
	}
}

// A host name with control bytes (a terminal escape) is quoted in the
// table, never written raw; JSON escapes it by itself.
func TestInspectTableQuotesSNI(t *testing.T) {
	frames, infos := readPackets(t, "curl.pcap")
	changed := 0
	for i, fr := range frames {
		if j := bytes.Index(fr, []byte("vip.anysched.test")); j >= 0 {
			fr = bytes.Clone(fr)
			copy(fr[j+4:], "\x1b[31m") // same length as "anysc"
			// The segment as a client would send it: its checksum fits,
			// or the router would not read it.
			var p parser.Packet
			if parser.ParseFrame(fr, &p) != parser.StatusOK || !parser.SetTCPChecksum(fr, &p) {
				t.Fatal("cannot checksum the changed segment")
			}
			frames[i] = fr
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no SNI found in curl.pcap")
	}
	path := writePcap(t, uint32(layers.LinkTypeEthernet), frames, infos)
	code, out, errb := runInspectCmd(t, "--pcap", path)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("raw escape byte in the table:\n%q", out)
	}
	if !strings.Contains(out, `"vip.\x1b[31mhed.test"`) {
		t.Errorf("quoted SNI missing:\n%s", out)
	}
}

func TestInspectExit2(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(filepath.Join(testdataDir, "curl.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	goodNg, err := os.ReadFile(filepath.Join(testdataDir, "ipv6-mtu1280-go.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	frames, infos := readPackets(t, "curl.pcap")
	wifi := writePcap(t, uint32(layers.LinkTypeIEEE80211Radio), frames[:1], infos[:1])
	curl := filepath.Join(testdataDir, "curl.pcap")

	for _, tc := range []struct {
		name    string
		args    []string
		message string // must appear on stderr
	}{
		{"no flags", nil, "--pcap is required"},
		{"missing file", []string{"--pcap", filepath.Join(dir, "nope.pcap")}, "no such file"},
		{"directory", []string{"--pcap", dir}, "is a directory"},
		{"empty file", []string{"--pcap", write("empty.pcap", nil)}, "too short"},
		{"not a capture", []string{"--pcap", write("text.pcap", []byte("hello, this is not a capture file\n"))}, "not a pcap or pcapng"},
		{"truncated pcap header", []string{"--pcap", write("hdr.pcap", good[:20])}, "corrupt pcap"},
		{"truncated pcap record", []string{"--pcap", write("cut.pcap", good[:len(good)-7])}, "corrupt capture at packet"},
		{"truncated pcapng", []string{"--pcap", write("cut.pcapng", goodNg[:len(goodNg)-9])}, "corrupt pcapng"},
		{"pcapng block length lies", []string{"--pcap", write("lie.pcapng", lyingBlock(goodNg))}, "corrupt pcapng"},
		{"unsupported link type", []string{"--pcap", wifi}, "link type"},
		{"pcap record claims 1 GiB", []string{"--pcap", write("huge.pcap", capturetest.HugeRecord(good))}, "corrupt capture at packet 1"},
		{"pcapng packet claims 1 GiB", []string{"--pcap", write("huge.pcapng", hugeEPB(goodNg))}, "claims more packet bytes"},
		{"bad vip", []string{"--pcap", curl, "--vip", "vip.example"}, "--vip"},
		{"port zero", []string{"--pcap", curl, "--port", "0"}, "--port 0"},
		{"port too big", []string{"--pcap", curl, "--port", "70000"}, "--port 70000"},
		{"port not a number", []string{"--pcap", curl, "--port", "https"}, "--port"},
		{"same code points", []string{"--pcap", curl, "--migration-token-ext", "0xFE4D"}, "--migration-support-ext"},
		{"unknown flag", []string{"--pcap", curl, "--frobnicate"}, "frobnicate"},
		{"stray argument", []string{"--pcap", curl, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := runInspectCmd(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, exitUsage, out, errb)
			}
			if out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
			if !strings.Contains(errb, tc.message) {
				t.Errorf("stderr %q lacks %q", errb, tc.message)
			}
		})
	}
}

func TestInspectHelp(t *testing.T) {
	code, out, errb := runInspectCmd(t, "--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	if errb != "" {
		t.Errorf("--help wrote to stderr: %q", errb)
	}
	for _, flag := range []string{"--pcap", "--vip", "--port", "--json", "--migration-support-ext", "--migration-token-ext"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help lacks %s:\n%s", flag, out)
		}
	}
}

// The captures must show what captures.md says they show. This checks the
// placement of migration_support (0xFE4D, empty: bytes fe 4d 00 00) by a
// plain byte search on each client segment, independent of the parser, and
// then that the parser agrees.
func TestCaptureSegmentPlacement(t *testing.T) {
	supportExt := []byte{0xfe, 0x4d, 0x00, 0x00}
	for _, tc := range []struct {
		file       string
		segments   int
		supportSeg int // 1-based segment holding migration_support, 0 none
	}{
		{"utls-support-first.pcap", 2, 1},
		{"utls-support-second.pcap", 2, 2},
		{"utls-support-token.pcap", 1, 1},
		{"utls-record-split.pcap", 3, 3},
		{"go-crypto-tls.pcap", 2, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			frames, _ := readPackets(t, tc.file)
			var payloads [][]byte
			var pkt parser.Packet
			for _, fr := range frames {
				if parser.ParseFrame(fr, &pkt) != parser.StatusOK || pkt.Flow.DstPort != 443 || len(pkt.Payload) == 0 {
					continue
				}
				payloads = append(payloads, bytes.Clone(pkt.Payload))
			}
			if len(payloads) < tc.segments {
				t.Fatalf("%d client payloads, want at least %d", len(payloads), tc.segments)
			}
			for i := 0; i < tc.segments; i++ {
				has := bytes.Contains(payloads[i], supportExt)
				if has != (i+1 == tc.supportSeg) {
					t.Errorf("segment %d: migration_support bytes present = %v", i+1, has)
				}
			}
			cfg := parser.DefaultHelloConfig()
			var hello parser.ClientHello
			st := parser.ScanClientHello(payloads[0], &cfg, &hello)
			wantFirst := parser.HelloIncomplete
			if tc.segments == 1 {
				wantFirst = parser.HelloComplete
			}
			if st != wantFirst {
				t.Fatalf("first segment alone: %v, want %v", st, wantFirst)
			}
			if hello.MigrationSupport != (tc.supportSeg == 1) {
				t.Errorf("first segment alone: MigrationSupport = %v", hello.MigrationSupport)
			}
			var all []byte
			for _, p := range payloads[:tc.segments] {
				all = append(all, p...)
			}
			if st := parser.ScanClientHello(all, &cfg, &hello); st != parser.HelloComplete {
				t.Fatalf("all %d segments: %v, want complete", tc.segments, st)
			}
			if hello.MigrationSupport != (tc.supportSeg != 0) {
				t.Errorf("whole ClientHello: MigrationSupport = %v", hello.MigrationSupport)
			}
		})
	}
}

// The reassembler's timeout runs on capture time: a flow whose second
// segment comes more than the timeout after its first is given up on.
func TestInspectReassemblyTimeout(t *testing.T) {
	frames, infos := readPackets(t, "go-crypto-tls.pcap")
	var pkt parser.Packet
	late := false
	for i, fr := range frames {
		if !late && parser.ParseFrame(fr, &pkt) == parser.StatusOK && pkt.Flow.DstPort == 443 && len(pkt.Payload) > 0 && pkt.TCPFlags&parser.TCPFlagPSH != 0 {
			late = true // from the second ClientHello segment on, shift time
		}
		if late {
			infos[i].Timestamp = infos[i].Timestamp.Add(time.Minute)
		}
	}
	path := writePcap(t, uint32(layers.LinkTypeEthernet), frames, infos)
	code, out, errb := runInspectCmd(t, "--json", "--pcap", path)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if r.Verdict != "unknown" || !r.Legacy || r.Complete || !r.ClientHello || r.Segments != 2 {
		t.Errorf("late second segment: %+v", r)
	}
}

// lyingBlock returns a copy of a little-endian pcapng file whose second
// block (after the section header) claims a length that runs past the file.
func lyingBlock(ng []byte) []byte {
	b := bytes.Clone(ng)
	shb := binary.LittleEndian.Uint32(b[4:8])
	binary.LittleEndian.PutUint32(b[shb+4:], uint32(len(b))+64)
	return b
}

// hugeEPB returns a copy of a little-endian pcapng file whose first
// enhanced packet block claims a 1 GiB captured length.
func hugeEPB(ng []byte) []byte {
	b := bytes.Clone(ng)
	for off := 0; off+8 <= len(b); {
		typ := binary.LittleEndian.Uint32(b[off:])
		length := int(binary.LittleEndian.Uint32(b[off+4:]))
		if typ == 6 {
			binary.LittleEndian.PutUint32(b[off+20:], 1<<30)
			return b
		}
		off += length
	}
	panic("no enhanced packet block")
}
