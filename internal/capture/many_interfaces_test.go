package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

// pcapngManyInterfaces builds a little-endian pcapng section with n
// interface blocks, all Ethernet but the last, which is Linux SLL2 (276,
// truncated to 20 by gopacket), and pkts SLL2 packets on that last one: the
// packet whose link type the old per-packet list search found last.
func pcapngManyInterfaces(n, pkts int) []byte {
	le := binary.LittleEndian
	var b bytes.Buffer
	shb := make([]byte, 28)
	le.PutUint32(shb[0:], pcapngSectionHeader)
	le.PutUint32(shb[4:], 28)
	le.PutUint32(shb[8:], 0x1A2B3C4D)
	le.PutUint16(shb[12:], 1)
	le.PutUint64(shb[16:], ^uint64(0)) // section length unknown
	le.PutUint32(shb[24:], 28)
	b.Write(shb)
	for i := 0; i < n; i++ {
		idb := make([]byte, 20)
		le.PutUint32(idb[0:], pcapngInterfaceDescription)
		le.PutUint32(idb[4:], 20)
		lt := LinkEthernet
		if i == n-1 {
			lt = LinkSLL2
		}
		le.PutUint16(idb[8:], uint16(lt))
		le.PutUint32(idb[12:], 65535)
		le.PutUint32(idb[16:], 20)
		b.Write(idb)
	}
	// An SLL2 header (protocol IPv4) and a minimal IPv4 header.
	pkt := make([]byte, sll2HeaderLen+20)
	binary.BigEndian.PutUint16(pkt[sll2ProtoOff:], etherTypeIPv4)
	pkt[sll2HeaderLen] = 0x45
	for i := 0; i < pkts; i++ {
		blen := 32 + len(pkt)
		epb := make([]byte, blen)
		le.PutUint32(epb[0:], 6)
		le.PutUint32(epb[4:], uint32(blen))
		le.PutUint32(epb[8:], uint32(n-1))
		le.PutUint32(epb[16:], uint32(i))
		le.PutUint32(epb[20:], uint32(len(pkt)))
		le.PutUint32(epb[24:], uint32(len(pkt)))
		copy(epb[28:], pkt)
		le.PutUint32(epb[blen-4:], uint32(blen))
		b.Write(epb)
	}
	return b.Bytes()
}

// countingReaderAt counts the reads checkPcapngBlocks makes.
type countingReaderAt struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// TestManyInterfaceBlocksReadLinearly is the regression test of a pcapng
// with 100k interface description blocks: widening a packet's link type
// searched the list of every block per packet (100k × packets). Now the
// block walk reads a constant number of times per block and the link type
// of the last interface comes from a table: every packet converts as SLL2.
// BenchmarkNextManyInterfaces shows the per-packet cost does not grow with
// the number of blocks.
func TestManyInterfaceBlocksReadLinearly(t *testing.T) {
	const blocks, pkts = 100_000, 1000
	data := pcapngManyInterfaces(blocks, pkts)
	cr := &countingReaderAt{r: bytes.NewReader(data)}
	r, err := Open(cr, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The magic and the section header: 5 reads; every other block:
	// header, trailer and at most one field.
	if max := 5 + 3*(blocks+pkts); cr.reads > max {
		t.Errorf("%d reads of the file for %d blocks, want at most %d", cr.reads, blocks+pkts+1, max)
	}
	if got := r.widened.widen(20); got != LinkSLL2 {
		t.Errorf("truncated link type 20 widened to %d, want %d", got, LinkSLL2)
	}
	n := 0
	for {
		frame, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", n+1, err)
		}
		if len(frame) != ethernetHdrLen+20 || binary.BigEndian.Uint16(frame[12:]) != etherTypeIPv4 {
			t.Fatalf("packet %d: not converted from SLL2: %x", n+1, frame)
		}
		n++
	}
	if n != pkts {
		t.Fatalf("read %d packets, want %d", n, pkts)
	}
}

// BenchmarkNextManyInterfaces reads packets of the last of many interface
// blocks: ns/packet must stay flat from 1k to 100k blocks.
func BenchmarkNextManyInterfaces(b *testing.B) {
	for _, blocks := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("idbs=%d", blocks), func(b *testing.B) {
			const pkts = 2000
			data := pcapngManyInterfaces(blocks, pkts)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r, err := Open(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				// Reading the interface blocks is part of the first Next;
				// skip it so only per-packet work is timed.
				if _, _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for {
					if _, _, err := r.Next(); err != nil {
						break
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(pkts-1)), "ns/packet")
		})
	}
}
