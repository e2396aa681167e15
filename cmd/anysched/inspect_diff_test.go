package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/anysched/anysched/fastpath"
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
	flows, _, err := inspectCapture(bytes.NewReader(data), int64(len(data)), &opts)
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
