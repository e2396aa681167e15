// Package capturetest builds capture files for tests: Ethernet frames read
// from a committed capture, re-framed as Linux cooked (SLL, SLL2) or raw IP
// packets, written as classic pcap or pcapng with any link type, and
// corrupted on purpose. It owns test fixtures only; nothing in the router
// imports it.
package capturetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Link types that do not fit gopacket's 8-bit LinkType.
const LinkSLL2 = 276

const pcapngInterfaceDescription = 1

// EthernetPackets reads an Ethernet classic pcap with gopacket alone.
func EthernetPackets(t testing.TB, path string) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var frames [][]byte
	var infos []gopacket.CaptureInfo
	for {
		frame, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, infos
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame)
		infos = append(infos, ci)
	}
}

// SLL re-frames an Ethernet frame as Linux cooked v1 ("packet to us",
// ARPHRD_ETHER, the source MAC as the address).
func SLL(frame []byte) []byte {
	hdr := make([]byte, 16, 16+len(frame)-14)
	binary.BigEndian.PutUint16(hdr[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(hdr[4:], 6)
	copy(hdr[6:], frame[6:12])
	copy(hdr[14:], frame[12:14])
	return append(hdr, frame[14:]...)
}

// SLL2 re-frames an Ethernet frame as Linux cooked v2 (interface 2,
// ARPHRD_ETHER, the source MAC as the address).
func SLL2(frame []byte) []byte {
	hdr := make([]byte, 20, 20+len(frame)-14)
	copy(hdr[0:], frame[12:14])            // protocol type
	binary.BigEndian.PutUint32(hdr[4:], 2) // interface index
	binary.BigEndian.PutUint16(hdr[8:], 1) // ARPHRD_ETHER
	hdr[11] = 6
	copy(hdr[12:], frame[6:12])
	return append(hdr, frame[14:]...)
}

// RawIP strips the Ethernet header.
func RawIP(frame []byte) []byte { return frame[14:] }

// Map applies f to every frame.
func Map(frames [][]byte, f func([]byte) []byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, fr := range frames {
		out[i] = f(fr)
	}
	return out
}

// Pcap writes a little-endian classic pcap of link type lt, any 32-bit
// value (gopacket's writer cannot hold 276, so the header is patched).
// Each record's captured length is its data; its wire length is the
// larger of the info's and the data's.
func Pcap(t testing.TB, lt uint32, frames [][]byte, infos []gopacket.CaptureInfo) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, data := range frames {
		ci := infos[i]
		ci.CaptureLength = len(data)
		ci.Length = max(ci.Length, len(data))
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[20:], lt)
	return b
}

// PcapngSLL2 writes a little-endian pcapng whose one interface is of link
// type LINUX_SLL2, holding frames as SLL2 packets.
func PcapngSLL2(t testing.TB, frames [][]byte, infos []gopacket.CaptureInfo) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{LinkType: 0, SnapLength: 65535}, pcapgo.NgWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		data := SLL2(fr)
		ci := infos[i]
		ci.CaptureLength, ci.Length = len(data), len(data)
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	patched := false
	for off := 0; off+12 <= len(b); off += int(binary.LittleEndian.Uint32(b[off+4:])) {
		if binary.LittleEndian.Uint32(b[off:]) == pcapngInterfaceDescription {
			binary.LittleEndian.PutUint16(b[off+8:], LinkSLL2)
			patched = true
		}
	}
	if !patched {
		t.Fatal("no interface description block written")
	}
	return b
}

// HugeRecord returns a copy of a little-endian classic pcap whose snap
// length is 0xFFFFFFFF and whose first record claims 1 GiB: a reader must
// refuse it without allocating that much.
func HugeRecord(pcap []byte) []byte {
	b := bytes.Clone(pcap)
	binary.LittleEndian.PutUint32(b[16:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(b[24+8:], 1<<30)
	binary.LittleEndian.PutUint32(b[24+12:], 1<<30)
	return b
}
