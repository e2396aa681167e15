package offline

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/anysched/anysched/ring"
)

// FuzzPcapRing reads arbitrary bytes as a capture file: every outcome is
// an error or frames, never a panic.
func FuzzPcapRing(f *testing.F) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	f.Add(append([]byte(nil), buf.Bytes()...))
	f.Add(writeCapture(f, [][]byte{bytes.Repeat([]byte{1}, 60)}, fuzzStart))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewPcapRing(bytes.NewReader(data), int64(len(data)), io.Discard, 4, 256)
		if err != nil {
			return
		}
		batch := make([]ring.Desc, 4)
		for range 1000 {
			n, err := r.Receive(batch, 0)
			if err != nil {
				return
			}
			if _, err := r.Transmit(batch[:n]); err != nil {
				t.Fatal(err)
			}
		}
	})
}
