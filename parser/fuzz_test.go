package parser

import (
	"bytes"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func frameSeeds(tb testing.TB) [][]byte {
	pq, small := goHellos(tb)
	v6ext := v6spec()
	v6ext.v6Ext = []v6Ext{{typ: ipv6HopByHop, length: 8}, {typ: ipv6Fragment, length: 8, more: true}, {typ: ipv6AuthHeader, length: 12}}
	tagged := v4spec()
	tagged.vlanTPIDs = []uint16{EtherTypeQinQ, EtherTypeVLAN}
	opts := v4spec()
	opts.ipv4Opts = []byte{1, 1, 1, 0}
	opts.padding = 10
	frag := v4spec()
	frag.fragOff = 10
	return [][]byte{
		buildFrame(v4spec()), buildFrame(v6spec()), buildFrame(v6ext), buildFrame(tagged), buildFrame(opts), buildFrame(frag),
		helloFrame(pq, 1500), helloFrame(small, 1500),
		icmpFrame(false, 3, 4, 1400, quotedFromVIP(false, 0)), icmpFrame(true, 2, 0, 1280, quotedFromVIP(true, 0)),
	}
}

// FuzzParseFrame checks that ParseFrame never panics, that its offsets are
// consistent, that it resets every field, and that a frame it accepts
// decodes to the same TCP header in gopacket.
func FuzzParseFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	for _, s := range captureFrames(f) {
		f.Add(s)
	}
	other := frameSeeds(f)[2]
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p, fresh Packet
		ParseFrame(other, &p)
		st := ParseFrame(frame, &p)
		if st2 := ParseFrame(frame, &fresh); st2 != st || !samePacket(&p, &fresh) {
			t.Fatalf("state leaks between calls: %v %+v vs %v %+v", st, p, st2, fresh)
		}
		var general Packet
		if st3 := parseFrameGeneral(frame, &general); st3 != st || !samePacket(&p, &general) {
			t.Fatalf("fast path and general path disagree: %v %+v vs %v %+v", st, p, st3, general)
		}
		if st >= NumStatus {
			t.Fatalf("status %d", st)
		}
		if st != StatusOK {
			if p.ICMPError {
				t.Fatal("ICMPError on failure")
			}
			return
		}
		if p.Flow.Proto != ProtoTCP || !(p.L3Off < p.L4Off) || int(p.L3End) > len(frame) || p.L4Off >= p.L3End {
			t.Fatalf("offsets %+v", p)
		}
		if p.IPVersion == 4 && (p.TTLOff != p.L3Off+8 || p.IPv4ChecksumOff != p.L3Off+10) ||
			p.IPVersion == 6 && (p.TTLOff != p.L3Off+7 || p.IPv4ChecksumOff != 0) {
			t.Fatalf("ttl/checksum offsets %+v", p)
		}
		if p.ICMPError {
			if p.Payload != nil || p.TCPFlags != 0 {
				t.Fatal("ICMP error with TCP payload")
			}
			return
		}
		if p.PayloadOff < p.L4Off+20 || int(p.PayloadOff)+len(p.Payload) != int(p.L3End) ||
			len(p.Payload) > 0 && &p.Payload[0] != &frame[p.PayloadOff] {
			t.Fatalf("payload %d+%d, end %d", p.PayloadOff, len(p.Payload), p.L3End)
		}
		// Differential check against gopacket for plain frames.
		if p.VLANCount != 0 || p.Flags != 0 {
			return
		}
		var (
			eth layers.Ethernet
			ip4 layers.IPv4
			ip6 layers.IPv6
			tcp layers.TCP
			pl  gopacket.Payload
		)
		dlp := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &pl)
		dlp.IgnoreUnsupported = true
		var decoded []gopacket.LayerType
		err := dlp.DecodeLayers(frame, &decoded)
		if len(decoded) < 3 || decoded[2] != layers.LayerTypeTCP {
			// The one known difference: gopacket parses TCP options and
			// rejects bad ones; ParseFrame skips them by the data offset,
			// as the router forwards them untouched.
			if err != nil && strings.Contains(err.Error(), "TCP option") {
				return
			}
			t.Fatalf("gopacket did not decode TCP: %v %v", decoded, err)
		}
		var src, dst netip.Addr
		if p.IPVersion == 4 {
			src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
		} else {
			src, _ = netip.AddrFromSlice(ip6.SrcIP)
			dst, _ = netip.AddrFromSlice(ip6.DstIP)
		}
		if uint16(tcp.SrcPort) != p.Flow.SrcPort || uint16(tcp.DstPort) != p.Flow.DstPort || tcp.Seq != p.Seq || tcp.Ack != p.Ack ||
			!bytes.Equal(tcp.Payload, p.Payload) || src != p.Flow.SrcAddr() || dst != p.Flow.DstAddr() || tcp.SYN != (p.TCPFlags&TCPFlagSYN != 0) {
			t.Fatalf("gopacket disagrees: %v:%d>%v:%d seq %d payload %d; ours %v seq %d payload %d",
				src, tcp.SrcPort, dst, tcp.DstPort, tcp.Seq, len(tcp.Payload), p.Flow, p.Seq, len(p.Payload))
		}
	})
}

func samePacket(a, b *Packet) bool {
	ca, cb := *a, *b
	ca.Payload, cb.Payload = nil, nil
	pa, pb := a.Payload, b.Payload
	return reflect.DeepEqual(ca, cb) && len(pa) == len(pb) && (len(pa) == 0 || &pa[0] == &pb[0]) && (pa == nil) == (pb == nil)
}

func helloSeeds(tb testing.TB) [][]byte {
	pq, small := goHellos(tb)
	mig := buildHello(migrationExts())
	return [][]byte{
		pq, small, pq[:700], records(mig), records(mig, 60, 1, 100), records(buildHello(nil)),
		records(buildHello([]ext{{typ: extServerName, body: []byte{0, 2, 0, 0}}})),
		records(buildHello(append(migrationExts()[:3], ext{typ: 0x3a3a}))),
		[]byte("GET / HTTP/1.1\r\n\r\n"), {22, 3, 1, 0, 0},
	}
}

// FuzzScanClientHello checks that the scanner never panics, that its
// outcome and fields agree, that Missing is a true lower bound, that a
// prefix of a complete hello is incomplete, and that re-framing a hello
// into two records changes nothing (the one-record fast path and the
// record-hopping reader agree).
func FuzzScanClientHello(f *testing.F) {
	for i, s := range helloSeeds(f) {
		f.Add(s, uint16(i*37))
	}
	for i, fr := range captureFrames(f) {
		var p Packet
		if ParseFrame(fr, &p) == StatusOK && len(p.Payload) > 0 {
			f.Add(append([]byte(nil), p.Payload...), uint16(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		var h ClientHello
		st := ScanClientHello(data, nil, &h)
		checkHelloConsistent(t, st, &h, data)
		switch st {
		case HelloIncomplete:
			if h.Missing > 1 && h.Missing < 1<<16 {
				longer := append(append([]byte(nil), data...), make([]byte, h.Missing-1)...)
				var h2 ClientHello
				if st2 := ScanClientHello(longer, nil, &h2); st2 == HelloComplete {
					t.Fatalf("complete with %d of %d missing bytes", h.Missing-1, h.Missing)
				}
			}
		case HelloComplete:
			end := h.End
			var h2 ClientHello
			if st2 := ScanClientHello(data[:end], nil, &h2); st2 != HelloComplete || !sameHello(&h, &h2) {
				t.Fatalf("data[:End]: %v", st2)
			}
			if n := int(cut) % end; n > 0 {
				if st2 := ScanClientHello(data[:n], nil, &h2); st2 != HelloIncomplete || h2.Missing > end-n || h2.Missing <= 0 {
					t.Fatalf("prefix %d/%d: %v missing %d", n, end, st2, h2.Missing)
				}
			}
			hs := handshakeOf(data[:end])
			if n := int(cut) % len(hs); n > 0 {
				re := records(hs, n)
				if st2 := ScanClientHello(re, nil, &h2); st2 != HelloComplete || !sameHello(&h, &h2) {
					t.Fatalf("re-framed at %d: %v %+v\nwas %+v", n, st2, h2, h)
				}
			}
		}
	})
}

func checkHelloConsistent(t *testing.T, st HelloStatus, h *ClientHello, data []byte) {
	t.Helper()
	if st >= NumHelloStatus || (st == HelloComplete) != h.Complete || (st == HelloIncomplete) != (h.Missing > 0) ||
		(st == HelloMalformed) != (h.Malformed != MalformedNone) || (st == HelloNotClientHello) == h.IsClientHello {
		t.Fatalf("status %v disagrees with %+v", st, h)
	}
	if st == HelloComplete && (h.End > len(data) || h.End < 9 || h.Length < 4) {
		t.Fatalf("End %d Length %d len %d", h.End, h.Length, len(data))
	}
	if len(h.SNI) > len(data) || len(h.MigrationTokenData) > len(data) || h.Extensions > MaxExtensions {
		t.Fatalf("%+v", h)
	}
}

// sameHello compares what two scans found, SNI by value.
func sameHello(a, b *ClientHello) bool {
	return a.Complete == b.Complete && a.Length == b.Length && a.LegacyVersion == b.LegacyVersion &&
		a.Extensions == b.Extensions && a.MigrationSupport == b.MigrationSupport && a.MigrationToken == b.MigrationToken &&
		bytes.Equal(a.SNI, b.SNI) && a.OffersTLS13 == b.OffersTLS13 && a.PreSharedKey == b.PreSharedKey &&
		a.ECH == b.ECH && a.GREASE == b.GREASE && a.Malformed == b.Malformed
}

// FuzzReassembler feeds data as segments in the order plan chooses —
// in order, anywhere (reordered), repeated, overlapping, or with a byte
// that contradicts one already held — after the flow's SYN (Open) or
// without it, and checks every verdict against a model: the bytes
// delivered, their contiguous prefix scanned as one message, the runs held
// beyond a gap, the MaxBytes bound. Each segment travels in a TCP frame
// and is fed, as the fast path does, only if TCPChecksumOK; a step with
// the high bit set sends a copy with one byte changed after the checksum
// was made (an attacker's copy the node drops): the gate must refuse it
// and the model must not see it.
func FuzzReassembler(f *testing.F) {
	for i, s := range helloSeeds(f) {
		f.Add(s, []byte{byte(i), 0, 0, 0, 200, 1, 0, 0, 7, 0, 0, 120, 50, 2, 0, 0, 9, 0, 0, 0, 255, 0, 0, 0, 255})
		// Reordered after a SYN: the second half, the first, a conflict.
		half := byte(len(s) / 2 >> 8)
		f.Add(s, []byte{1, 0, half, byte(len(s) / 2), 255, 0, 0, 0, 255, 0, 0, 0, 255, 3, 0, 0, 1})
		// A forged copy of the first bytes, then the real ones, in order.
		f.Add(s, []byte{1, 0x81, 0, 0, 255, 1, 0, 0, 255, 0x80, 0, 9, 40, 1, 0, 0, 255})
	}
	const maxBytes = 4096
	r, err := NewReassembler(ReassemblerConfig{Slots: 4, MaxBytes: maxBytes, Timeout: 1 << 40}) // time is the step number; TestReassemblerUnknown covers timeouts
	if err != nil {
		f.Fatal(err)
	}
	verdictOf := map[HelloStatus]Verdict{HelloIncomplete: VerdictPending, HelloComplete: VerdictComplete,
		HelloMalformed: VerdictMalformed, HelloNotClientHello: VerdictNotHello}
	f.Fuzz(func(t *testing.T, data []byte, plan []byte) {
		if len(plan) == 0 {
			return
		}
		k := flowN(len(data))
		defer r.Forget(&k)
		var isn uint32 = 0xffffff00 - uint32(len(plan)) // the flight's first byte; wraps for most inputs
		opened := plan[0]&1 == 1
		if opened && !r.Open(&k, isn-1, 0) {
			t.Fatal("no slot for the SYN")
		}
		held := make([]bool, min(len(data), maxBytes)) // the model: bytes held
		prefix := 0
		tracked := opened
		var h ClientHello
		// gate frames seq/payload, corrupted at byte at (of the frame's
		// TCP segment) when forged, and returns what the checksum lets
		// through.
		gate := func(seq uint32, payload []byte, forged bool, at int) ([]byte, bool) {
			spec := v4spec()
			spec.flags, spec.seq, spec.payload = TCPFlagACK, seq, payload
			fr := buildFrame(spec)
			var p Packet
			if ParseFrame(fr, &p) != StatusOK || !SetTCPChecksum(fr, &p) {
				t.Fatal("test frame")
			}
			if forged {
				seg := fr[p.L4Off:p.L3End]
				seg[at%len(seg)] ^= 0x81
			}
			if !TCPChecksumOK(fr, &p) {
				return nil, false
			}
			return p.Payload, true
		}
		for i := 1; i+3 < len(plan); i += 4 {
			forged := plan[i]&0x80 != 0
			op, from, n := plan[i]%4, int(plan[i+1])<<8|int(plan[i+2]), int(plan[i+3])+1
			from %= len(data) + 1
			switch op {
			case 0: // anywhere
			case 1: // in order
				from, n = prefix, n*8
			case 2: // a retransmission of what is held, and a little more
				from = max(0, prefix-n)
			}
			if !tracked {
				from = 0 // without a SYN, the flight starts with the first segment seen
			}
			to := min(from+n, len(data))
			payload, ok := gate(isn+uint32(from), data[from:to], forged, int(plan[i+2]))
			if forged {
				if ok {
					t.Fatalf("step %d: a segment changed after its checksum passed the gate", i)
				}
				continue // the node drops it; so does the router, before the reassembler
			}
			if !ok {
				t.Fatalf("step %d: a good checksum refused", i)
			}
			if op == 3 {
				// A byte that contradicts one held at or after from.
				p := slices.Index(held[min(from, len(held)):], true)
				if !tracked || p < 0 {
					continue
				}
				p += min(from, len(held))
				bad, ok := gate(isn+uint32(p), []byte{data[p] ^ 0xa5}, false, 0)
				if !ok {
					t.Fatal("a good checksum refused")
				}
				if v := r.Feed(&k, isn+uint32(p), bad, int64(i), nil, &h); v != VerdictUnknown {
					t.Fatalf("step %d: byte %d contradicted: %v", i, p, v)
				}
				return
			}
			v := r.Feed(&k, isn+uint32(from), payload, int64(i), nil, &h)
			if !tracked {
				st := ScanClientHello(payload, nil, new(ClientHello))
				exp := verdictOf[st]
				if len(payload) == 0 {
					exp = VerdictNotHello
				} else if st == HelloIncomplete && len(payload) >= maxBytes {
					exp = VerdictUnknown
				}
				if v != exp {
					t.Fatalf("first segment [0,%d): %v, want %v", to, v, exp)
				}
				if v != VerdictPending {
					return
				}
				tracked = true
				for j := range held[:to] {
					held[j] = true
				}
				prefix = to
				continue
			}
			lo, hi := min(from, maxBytes), min(to, maxBytes)
			for j := lo; j < hi; j++ {
				held[j] = true
			}
			grown := prefix
			for grown < len(held) && held[grown] {
				grown++
			}
			if grown == prefix {
				exp := VerdictPending
				if runs(held[prefix:]) > reasmGaps {
					exp = VerdictUnknown
				}
				if v != exp {
					t.Fatalf("step %d: [%d,%d) adds nothing to the prefix %d (%d runs held): %v, want %v", i, from, to, prefix, runs(held[prefix:]), v, exp)
				}
				if v != VerdictPending {
					return
				}
				continue
			}
			prefix = grown
			var want ClientHello
			st := ScanClientHello(data[:prefix], nil, &want)
			exp := verdictOf[st]
			if st == HelloIncomplete && prefix == maxBytes {
				exp = VerdictUnknown
			}
			if v != exp {
				t.Fatalf("step %d: [%d,%d) makes the prefix %d of %d: %v, scan %v", i, from, to, prefix, len(data), v, st)
			}
			if v != VerdictUnknown && !sameHello(&h, &want) {
				t.Fatalf("step %d: hello differs: %+v vs %+v", i, h, want)
			}
			if v != VerdictPending {
				return
			}
		}
	})
}

// runs counts the runs of held bytes.
func runs(held []bool) int {
	n := 0
	for i, b := range held {
		if b && (i == 0 || !held[i-1]) {
			n++
		}
	}
	return n
}
