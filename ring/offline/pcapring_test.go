package offline

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/ring"
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
	in := writeCapture(t, frames, start)
	r, err := NewPcapRing(bytes.NewReader(in), int64(len(in)), &out, 2, 128)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]ring.Desc, 8)
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
				r.Release([]ring.Desc{d})
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
	garbage := []byte("not a capture file")
	if _, err := NewPcapRing(bytes.NewReader(garbage), int64(len(garbage)), nil, 4, 128); err == nil {
		t.Fatal("garbage accepted")
	}
	good := writeCapture(t, [][]byte{bytes.Repeat([]byte{1}, 60)}, fuzzStart)
	for _, size := range []int{63, 1<<16 + 1} {
		if _, err := NewPcapRing(bytes.NewReader(good), int64(len(good)), nil, 4, size); err == nil {
			t.Errorf("frame size %d accepted", size)
		}
	}
	// A link type the reader cannot convert fails at the first frame,
	// with an error naming it.
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeIEEE80211Radio)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: fuzzStart, CaptureLength: 60, Length: 60}, make([]byte, 60))
	r, err := NewPcapRing(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil, 4, 128)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Receive(make([]ring.Desc, 4), 0); err == nil || !strings.Contains(err.Error(), "link type 127") {
		t.Fatalf("802.11 frame: err %v, want one naming link type 127", err)
	}
}

// Raw-IP and Linux cooked (SLL2) captures come out as Ethernet frames with
// the same network layer, and the output capture says Ethernet.
func TestPcapRingConvertsLinkTypes(t *testing.T) {
	ipPacket := append([]byte{0x45, 0, 0, 20}, make([]byte, 16)...)
	sll2 := append(make([]byte, 20), ipPacket...)
	binary.BigEndian.PutUint16(sll2, 0x0800)
	for _, tc := range []struct {
		name string
		lt   layers.LinkType
		data []byte
	}{{"raw", layers.LinkTypeRaw, ipPacket}, {"sll2", 0, sll2}} {
		t.Run(tc.name, func(t *testing.T) {
			var in bytes.Buffer
			w := pcapgo.NewWriter(&in)
			w.WriteFileHeader(65535, tc.lt)
			w.WritePacket(gopacket.CaptureInfo{Timestamp: fuzzStart, CaptureLength: len(tc.data), Length: len(tc.data) + 100}, tc.data)
			w.WritePacket(gopacket.CaptureInfo{Timestamp: fuzzStart, CaptureLength: 1, Length: 1}, []byte{0x10}) // not IP
			b := in.Bytes()
			if tc.name == "sll2" {
				binary.LittleEndian.PutUint32(b[20:], 276) // gopacket cannot write a 16-bit link type
			}
			var out bytes.Buffer
			r, err := NewPcapRing(bytes.NewReader(b), int64(len(b)), &out, 4, 128)
			if err != nil {
				t.Fatal(err)
			}
			batch := make([]ring.Desc, 4)
			n, err := r.Receive(batch, 0)
			if err != nil || n != 1 {
				t.Fatalf("received %d, %v; want 1 frame", n, err)
			}
			frame := r.UMEM()[batch[0].Addr : batch[0].Addr+uint64(batch[0].Len)]
			if binary.BigEndian.Uint16(frame[12:]) != 0x0800 || !bytes.Equal(frame[14:], ipPacket) {
				t.Fatalf("frame %x, want an IPv4 Ethernet frame around %x", frame, ipPacket)
			}
			if _, err := r.Transmit(batch[:1]); err != nil {
				t.Fatal(err)
			}
			if n, err := r.Receive(batch, 0); n != 0 || err != io.EOF || r.Unconvertible != 1 {
				t.Fatalf("after the last frame: %d, %v, unconvertible %d", n, err, r.Unconvertible)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			rd, err := pcapgo.NewReader(&out)
			if err != nil {
				t.Fatal(err)
			}
			if rd.LinkType() != layers.LinkTypeEthernet {
				t.Fatalf("output link type %v", rd.LinkType())
			}
			data, ci, err := rd.ReadPacketData()
			if err != nil || !bytes.Equal(data, frame) || ci.Length != len(frame)+100 {
				t.Fatalf("written %x (wire length %d), %v", data, ci.Length, err)
			}
		})
	}
}
