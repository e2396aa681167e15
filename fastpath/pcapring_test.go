package fastpath

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

var fuzzStart = time.Unix(1700000000, 0)

func writeCapture(t testing.TB, frames [][]byte, start time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: start.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestPcapRingRoundTrip(t *testing.T) {
	start := time.Unix(1700000000, 0).UTC()
	frames := [][]byte{
		bytes.Repeat([]byte{1}, 60),
		bytes.Repeat([]byte{2}, 300), // larger than a slot: skipped
		bytes.Repeat([]byte{3}, 100),
		bytes.Repeat([]byte{4}, 64),
	}
	var out bytes.Buffer
	r, err := NewPcapRing(bytes.NewReader(writeCapture(t, frames, start)), &out, 2, 128)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]Desc, 8)
	var got int
	for {
		n, err := r.Receive(batch, 0)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no frames and no EOF")
		}
		got += n
		// Drop frames starting with 3, send the rest.
		tx := batch[:0:0]
		for _, d := range batch[:n] {
			if r.UMEM()[d.Addr] == 3 {
				r.Release([]Desc{d})
				continue
			}
			tx = append(tx, d)
		}
		if _, err := r.Transmit(tx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got != 3 || r.Oversize != 1 || r.Written != 2 {
		t.Fatalf("received %d, oversize %d, written %d", got, r.Oversize, r.Written)
	}
	rd, err := pcapgo.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		first byte
		ts    time.Time
	}{{1, start}, {4, start.Add(3 * time.Millisecond)}}
	for _, w := range want {
		data, ci, err := rd.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != w.first || !ci.Timestamp.Equal(w.ts) {
			t.Fatalf("frame starting %d at %v, want %d at %v", data[0], ci.Timestamp, w.first, w.ts)
		}
	}
}

func TestPcapRingRejectsBadInput(t *testing.T) {
	if _, err := NewPcapRing(bytes.NewReader([]byte("not a capture file")), nil, 4, 128); err == nil {
		t.Fatal("garbage accepted")
	}
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeRaw)
	if _, err := NewPcapRing(&buf, nil, 4, 128); err == nil {
		t.Fatal("raw IP link type accepted")
	}
}
