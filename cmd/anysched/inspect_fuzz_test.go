package main

import (
	"bytes"
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
	// A few reassembly slots instead of 1024 x 16 KiB keep each run cheap.
	opts := inspectOptions{ports: []uint16{443}, hello: parser.DefaultHelloConfig(),
		reasm: parser.ReassemblerConfig{Slots: 4, MaxBytes: 4096}}
	f.Fuzz(func(t *testing.T, data []byte) {
		flows, _, err := inspectCapture(bytes.NewReader(data), int64(len(data)), &opts)
		if err != nil {
			return
		}
		for _, fl := range flows {
			r := fl.report()
			// Pinned: every ClientHello except a complete one with
			// migration_support; nothing else is acted on.
			if r.Legacy != (r.ClientHello && !(r.Complete && r.MigrationSupport)) {
				t.Fatalf("legacy %v with client_hello %v, complete %v, migration_support %v",
					r.Legacy, r.ClientHello, r.Complete, r.MigrationSupport)
			}
			if r.Complete && !r.ClientHello {
				t.Fatalf("complete without client_hello: %+v", r)
			}
			if r.Segments < 0 || r.Segments > fl.payloads {
				t.Fatalf("segments %d of %d payloads", r.Segments, fl.payloads)
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
