package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader reads arbitrary bytes as a capture: Open and Next must return
// an error or well-formed frames, never panic, never loop, and never
// allocate what a corrupt header claims. The committed captures and their
// corrupt variants seed it, besides testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(testdataDir, "*.pcap*"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range corruptCaptures(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		// Every record has a header of at least 12 bytes (a simple packet
		// block), so a capture cannot hold more packets than this.
		limit := len(data)/12 + 1
		for n := 0; ; n++ {
			if n > limit {
				t.Fatalf("more than %d packets from %d bytes", limit, len(data))
			}
			frame, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if errors.Is(err, ErrUnconvertible) {
				continue
			}
			if err != nil {
				return
			}
			if len(frame) > len(data)+ethernetHdrLen {
				t.Fatalf("frame of %d bytes from %d bytes of capture", len(frame), len(data))
			}
			if r.WireLength() < len(frame) {
				t.Fatalf("wire length %d below the frame's %d", r.WireLength(), len(frame))
			}
		}
	})
}
