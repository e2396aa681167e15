package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/anysched/anysched/parser"
)

// FuzzInspectCapture feeds arbitrary bytes to the capture reading of
// `anysched inspect` (format detection, the pcapng block check, pcapgo,
// link-layer conversion, the parser and the reassembler): it must return an
// error or a consistent report, never panic. The committed captures seed it.
func FuzzInspectCapture(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(testdataDir, "*.pcap*"))
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// A few reassembly slots instead of 1024 x 16 KiB, and a small pin
	// table, keep each run cheap.
	opts := inspectOptions{ports: []uint16{443}, hello: parser.DefaultHelloConfig(),
		reasm: parser.ReassemblerConfig{Slots: 4, MaxBytes: 4096}, pinCapacity: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		reports, truth, ok := pinsAtEnd(t, data, opts)
		if !ok {
			return
		}
		for i, r := range reports {
			// Legacy is the fast path's pin, whatever the flow did.
			if r.Legacy != truth[i] {
				t.Fatalf("legacy %v, the fast path's pin table %v: %+v", r.Legacy, truth[i], r)
			}
			if r.Complete && !r.ClientHello {
				t.Fatalf("complete without client_hello: %+v", r)
			}
			if r.Segments < 0 || (r.Segments > 0 && r.Verdict == "no_payload") {
				t.Fatalf("segments %d, verdict %s", r.Segments, r.Verdict)
			}
			if r.Complete && r.MigrationSupport && (r.SupportSegment < 1 || r.SupportSegment > r.Segments) {
				t.Fatalf("migration_support in segment %d of %d", r.SupportSegment, r.Segments)
			}
			if r.Flow == "" || r.Reason == "" {
				t.Fatalf("empty flow or reason: %+v", r)
			}
		}
	})
}
