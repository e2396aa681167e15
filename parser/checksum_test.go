package parser

import (
	"encoding/binary"
	"testing"

	"net"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// refSum is the textbook Internet checksum sum (RFC 1071 §4.1): 16-bit
// words, an odd last byte padded with zero, carries folded at the end.
func refSum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// refTCPChecksumOK builds the pseudo-header as bytes, the way RFC 9293
// §3.1 and RFC 8200 §8.1 draw it, and sums it with the segment.
func refTCPChecksumOK(frame []byte, p *Packet) bool {
	if p.ICMPError || p.Flags&FlagFragment != 0 || p.Flow.Proto != ProtoTCP {
		return false
	}
	l3, l4, end := int(p.L3Off), int(p.L4Off), int(p.L3End)
	seg := frame[l4:end]
	var pseudo []byte
	if p.IPVersion == 4 {
		pseudo = append(pseudo, frame[l3+12:l3+20]...)
		pseudo = append(pseudo, 0, ProtoTCP, byte(len(seg)>>8), byte(len(seg)))
	} else {
		pseudo = append(pseudo, frame[l3+8:l3+40]...)
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(seg)))
		pseudo = append(pseudo, 0, 0, 0, ProtoTCP)
	}
	return refSum(append(pseudo, seg...), 0) == 0xffff
}

// checksumFrames are TCP segments serialized by gopacket, checksums
// computed: IPv4 and IPv6, even and odd lengths.
func checksumFrames(tb testing.TB) [][]byte {
	var out [][]byte
	for _, c := range []struct {
		v6      bool
		flags   string
		payload []byte
	}{{false, "S", nil}, {false, "PA", []byte("odd length!")}, {true, "PA", make([]byte, 1201)}, {true, "R", nil}} {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Window: 65535, SYN: c.flags == "S", RST: c.flags == "R", PSH: c.flags == "PA", ACK: c.flags == "PA"}
		var ip gopacket.NetworkLayer
		if c.v6 {
			eth.EthernetType = layers.EthernetTypeIPv6
			ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: clientV6.AsSlice(), DstIP: vipV6.AsSlice()}
		} else {
			ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: clientV4.AsSlice(), DstIP: vipV4.AsSlice()}
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			tb.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(c.payload)); err != nil {
			tb.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

func TestTCPChecksum(t *testing.T) {
	frames := checksumFrames(t)
	for i, fr := range frames {
		var p Packet
		if st := ParseFrame(fr, &p); st != StatusOK {
			t.Fatalf("frame %d: %v", i, st)
		}
		if !TCPChecksumOK(fr, &p) {
			t.Errorf("frame %d: a correct checksum is refused", i)
		}
		// Every single-bit error in the segment is caught.
		for at := int(p.L4Off); at < int(p.L3End); at++ {
			for bit := range 8 {
				fr[at] ^= 1 << bit
				if TCPChecksumOK(fr, &p) {
					t.Fatalf("frame %d: bit %d of byte %d flipped, checksum still OK", i, bit, at)
				}
				fr[at] ^= 1 << bit
			}
		}
	}
	// SetTCPChecksum repairs a changed segment.
	fr := append([]byte(nil), frames[2]...)
	var q Packet
	ParseFrame(fr, &q)
	fr[len(fr)-1] ^= 0x42
	if TCPChecksumOK(fr, &q) || !SetTCPChecksum(fr, &q) || !TCPChecksumOK(fr, &q) {
		t.Error("SetTCPChecksum did not repair the segment")
	}
	// Fail closed: a fragment, an ICMP error, offsets past the frame.
	var p Packet
	ParseFrame(frames[1], &p)
	for name, mod := range map[string]func(*Packet){
		"fragment":   func(p *Packet) { p.Flags |= FlagFragment },
		"icmp error": func(p *Packet) { p.ICMPError = true },
		"past end":   func(p *Packet) { p.L3End = uint16(len(frames[1]) + 1) },
		"l4 > end":   func(p *Packet) { p.L4Off = p.L3End + 1 },
		"no ip":      func(p *Packet) { p.IPVersion = 0 },
	} {
		q := p
		mod(&q)
		if TCPChecksumOK(frames[1], &q) {
			t.Errorf("%s: checksum OK", name)
		}
	}
}

// The committed captures were taken with TX checksum offload off, so
// their checksums are the wire's: every TCP segment in them verifies.
func TestTCPChecksumCaptures(t *testing.T) {
	n := 0
	for _, fr := range captureFrames(t) {
		var p Packet
		if ParseFrame(fr, &p) != StatusOK || p.ICMPError {
			continue
		}
		n++
		if !TCPChecksumOK(fr, &p) {
			t.Errorf("%s: bad checksum", p.Flow.String())
		}
	}
	if n == 0 {
		t.Fatal("no TCP segments in the captures")
	}
}

func TestTCPChecksumNoAllocs(t *testing.T) {
	fr := checksumFrames(t)[2]
	var p Packet
	ParseFrame(fr, &p)
	if a := testing.AllocsPerRun(100, func() { TCPChecksumOK(fr, &p) }); a != 0 {
		t.Fatalf("%v allocs", a)
	}
}

// FuzzTCPChecksum checks the fast sum against refSum on any bytes at any
// offset and initial value, and TCPChecksumOK against the byte-built
// pseudo-header reference on any frame: as found, with its checksum field
// set by the reference, and with one byte of the segment changed.
func FuzzTCPChecksum(f *testing.F) {
	for _, fr := range checksumFrames(f) {
		f.Add(fr, uint16(0), uint32(0))
	}
	for _, fr := range frameSeeds(f) {
		f.Add(fr, uint16(3), uint32(0xffff))
	}
	f.Fuzz(func(t *testing.T, data []byte, at uint16, initial uint32) {
		initial &= 0xffff
		if got, want := foldChecksum(sumWords(data, uint64(initial))), refSum(data, initial); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			// 0 and 0xffff are the two one's-complement zeros.
			t.Fatalf("sum %#04x, reference %#04x", got, want)
		}
		var p Packet
		if ParseFrame(data, &p) != StatusOK {
			return
		}
		if TCPChecksumOK(data, &p) != refTCPChecksumOK(data, &p) {
			t.Fatalf("TCPChecksumOK %v, reference %v", TCPChecksumOK(data, &p), refTCPChecksumOK(data, &p))
		}
		if p.ICMPError || p.Flags&FlagFragment != 0 {
			return
		}
		fr := append([]byte(nil), data...)
		csum := int(p.L4Off) + 16
		fr[csum], fr[csum+1] = 0, 0
		var pseudo uint32
		if p.IPVersion == 4 {
			pseudo = uint32(refSum(fr[p.L3Off+12:p.L3Off+20], 0))
		} else {
			pseudo = uint32(refSum(fr[p.L3Off+8:p.L3Off+40], 0))
		}
		seg := fr[p.L4Off:p.L3End]
		pseudo += uint32(ProtoTCP) + uint32(len(seg))&0xffff + uint32(len(seg))>>16
		binary.BigEndian.PutUint16(fr[csum:], ^refSum(seg, pseudo))
		if !TCPChecksumOK(fr, &p) {
			t.Fatal("checksum set by the reference refused")
		}
		i := int(p.L4Off) + int(at)%len(seg)
		fr[i] ^= 0x5a
		if TCPChecksumOK(fr, &p) {
			t.Fatalf("byte %d changed, checksum still OK", i)
		}
	})
}

func BenchmarkTCPChecksumOK(b *testing.B) {
	for i, name := range []string{"syn", "small", "1200B_v6"} {
		fr := checksumFrames(b)[i]
		var p Packet
		ParseFrame(fr, &p)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(p.L3End - p.L4Off))
			defer reportCPU(b)()
			for b.Loop() {
				if !TCPChecksumOK(fr, &p) {
					b.Fatal("bad")
				}
			}
		})
	}
}
