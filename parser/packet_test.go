package parser

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func mustParse(t *testing.T, f []byte) *Packet {
	t.Helper()
	var p Packet
	if st := ParseFrame(f, &p); st != StatusOK {
		t.Fatalf("ParseFrame = %v, want ok", st)
	}
	return &p
}

func checkFlow(t *testing.T, p *Packet, src, dst netip.Addr, sport, dport uint16) {
	t.Helper()
	if p.Flow.SrcAddr() != src || p.Flow.DstAddr() != dst || p.Flow.SrcPort != sport || p.Flow.DstPort != dport || p.Flow.Proto != ProtoTCP {
		t.Fatalf("flow = %v proto %d, want %v:%d>%v:%d", p.Flow, p.Flow.Proto, src, sport, dst, dport)
	}
}

func TestParseIPv4SYN(t *testing.T) {
	s := v4spec()
	s.tcpOpts = []byte{2, 4, 5, 0xb4, 1, 1, 4, 2} // MSS, NOP, NOP, SACK-permitted
	s.padding = 6
	f := buildFrame(s)
	p := mustParse(t, f)
	checkFlow(t, p, clientV4, vipV4, 40000, 443)
	if p.Flow.Family != FamilyIPv4 || p.IPVersion != 4 || p.EtherType != EtherTypeIPv4 {
		t.Fatalf("family %d version %d ethertype %#x", p.Flow.Family, p.IPVersion, p.EtherType)
	}
	if p.L3Off != 14 || p.L4Off != 34 || p.PayloadOff != 62 || p.L3End != 62 || len(p.Payload) != 0 {
		t.Fatalf("offsets l3 %d l4 %d payload %d end %d len %d", p.L3Off, p.L4Off, p.PayloadOff, p.L3End, len(p.Payload))
	}
	if p.TCPFlags != TCPFlagSYN || p.Seq != 1000 || p.Ack != 0 {
		t.Fatalf("flags %#x seq %d ack %d", p.TCPFlags, p.Seq, p.Ack)
	}
	if p.TTLOff != 22 || f[p.TTLOff] != 64 || p.IPv4ChecksumOff != 24 {
		t.Fatalf("ttl off %d checksum off %d", p.TTLOff, p.IPv4ChecksumOff)
	}
	if p.Flags != 0 || p.VLANCount != 0 || p.ICMPError {
		t.Fatalf("flags %#x vlans %d icmp %v", p.Flags, p.VLANCount, p.ICMPError)
	}
}

func TestParseIPv4PayloadAndPadding(t *testing.T) {
	s := v4spec()
	s.flags = TCPFlagACK | TCPFlagPSH
	s.ack = 77
	s.payload = []byte("hello")
	s.padding = 9 // short frame padded to the Ethernet minimum and more
	s.ipv4Opts = []byte{1, 1, 1, 0}
	f := buildFrame(s)
	p := mustParse(t, f)
	if string(p.Payload) != "hello" || int(p.PayloadOff)+len(p.Payload) != int(p.L3End) || int(p.L3End) != len(f)-9 {
		t.Fatalf("payload %q off %d end %d framelen %d", p.Payload, p.PayloadOff, p.L3End, len(f))
	}
	if p.Flags != FlagIPv4Options || p.L4Off != 38 || p.Ack != 77 || p.TCPFlags != TCPFlagACK|TCPFlagPSH {
		t.Fatalf("flags %#x l4 %d ack %d tcpflags %#x", p.Flags, p.L4Off, p.Ack, p.TCPFlags)
	}
	if &p.Payload[0] != &f[p.PayloadOff] {
		t.Fatal("payload is not a sub-slice of the frame")
	}
}

func TestParseVLAN(t *testing.T) {
	for _, tpids := range [][]uint16{
		{EtherTypeVLAN},
		{EtherTypeQinQ, EtherTypeVLAN},
		{EtherTypeQinQv1, EtherTypeVLAN},
	} {
		for _, s := range []frameSpec{v4spec(), v6spec()} {
			s.vlanTPIDs = tpids
			f := buildFrame(s)
			p := mustParse(t, f)
			if int(p.VLANCount) != len(tpids) || int(p.L3Off) != 14+4*len(tpids) {
				t.Fatalf("tags %d l3 %d", p.VLANCount, p.L3Off)
			}
			for i := range tpids {
				if binary.BigEndian.Uint16(f[p.VLANOff[i]:]) != tpids[i] || p.VLANTCI[i] != uint16(100+i) {
					t.Fatalf("tag %d at %d: tci %d", i, p.VLANOff[i], p.VLANTCI[i])
				}
			}
			checkFlow(t, p, s.src, s.dst, s.sport, s.dport)
		}
	}
}

func TestParseIPv6(t *testing.T) {
	s := v6spec()
	s.payload = []byte{22, 3, 1}
	f := buildFrame(s)
	p := mustParse(t, f)
	checkFlow(t, p, clientV6, vipV6, 40001, 443)
	if p.Flow.Family != FamilyIPv6 || p.IPVersion != 6 || p.L4Off != 54 || p.TTLOff != 21 || p.IPv4ChecksumOff != 0 || len(p.Payload) != 3 {
		t.Fatalf("family %d l4 %d ttl %d csum %d payload %d", p.Flow.Family, p.L4Off, p.TTLOff, p.IPv4ChecksumOff, len(p.Payload))
	}
}

func TestParseIPv6ExtHeaders(t *testing.T) {
	s := v6spec()
	s.v6Ext = []v6Ext{
		{typ: ipv6HopByHop, length: 8},
		{typ: ipv6DestOpts, length: 16},
		{typ: ipv6Routing, length: 24},
		{typ: ipv6Fragment, length: 8, more: true},
		{typ: ipv6AuthHeader, length: 12},
		{typ: ipv6DestOpts, length: 8},
	}
	s.payload = []byte("x")
	f := buildFrame(s)
	p := mustParse(t, f)
	checkFlow(t, p, clientV6, vipV6, 40001, 443)
	if p.L4Off != 14+40+76 || p.Flags != FlagIPv6ExtHeaders|FlagFragment || string(p.Payload) != "x" {
		t.Fatalf("l4 %d flags %#x payload %q", p.L4Off, p.Flags, p.Payload)
	}
	// An atomic fragment (offset 0, no more fragments) is whole.
	s.v6Ext = []v6Ext{{typ: ipv6Fragment, length: 8}}
	p = mustParse(t, buildFrame(s))
	if p.Flags != FlagIPv6ExtHeaders {
		t.Fatalf("atomic fragment flags %#x", p.Flags)
	}
}

func TestParseFragments(t *testing.T) {
	s := v4spec()
	s.moreFrags = true
	p := mustParse(t, buildFrame(s))
	if p.Flags != FlagFragment {
		t.Fatalf("first fragment flags %#x", p.Flags)
	}
	for _, v6 := range []bool{false, true} {
		s := v4spec()
		if v6 {
			s = v6spec()
			s.v6Ext = []v6Ext{{typ: ipv6Fragment, length: 8, fragOff: 185}}
		} else {
			s.fragOff = 185
		}
		var p Packet
		if st := ParseFrame(buildFrame(s), &p); st != StatusNonFirstFragment {
			t.Fatalf("v6=%v: status %v", v6, st)
		}
		if p.Flags&(FlagFragment|FlagNonFirstFragment) != FlagFragment|FlagNonFirstFragment || p.Flow.SrcAddr() != s.src || p.Flow.SrcPort != 0 {
			t.Fatalf("v6=%v: flags %#x flow %v", v6, p.Flags, p.Flow)
		}
		if v6 && p.Flow.Proto != ProtoTCP {
			t.Fatalf("fragment next header %d", p.Flow.Proto)
		}
	}
}

// quotedFromVIP is the IP packet the VIP sent to the client (as a node in
// direct server return does), for ICMP errors to quote.
func quotedFromVIP(v6 bool, n int) []byte {
	s := frameSpec{src: vipV4, dst: clientV4, sport: 443, dport: 40000, seq: 0xdeadbeef, flags: TCPFlagACK, payload: make([]byte, 100)}
	if v6 {
		s.src, s.dst = vipV6, clientV6
		s.v6Ext = []v6Ext{{typ: ipv6DestOpts, length: 8}}
	}
	q := s.ipPacket()
	if n > 0 && n < len(q) {
		q = q[:n]
	}
	return q
}

func TestParseICMPErrors(t *testing.T) {
	cases := []struct {
		name       string
		v6         bool
		typ, code  uint8
		rest       uint32
		wantMTU    uint32
		quoteBytes int
	}{
		{"v4 frag needed", false, ICMPv4DestUnreachable, ICMPv4CodeFragNeeded, 1400, 1400, 0},
		{"v4 port unreachable", false, ICMPv4DestUnreachable, 3, 0, 0, 28},
		{"v4 time exceeded", false, ICMPv4TimeExceeded, 0, 0, 0, 0},
		{"v4 param problem", false, ICMPv4ParamProblem, 0, 0, 0, 0},
		{"v6 packet too big", true, ICMPv6PacketTooBig, 0, 1280, 1280, 0},
		{"v6 dest unreachable", true, ICMPv6DestUnreachable, 4, 0, 0, 56},
		{"v6 time exceeded", true, ICMPv6TimeExceeded, 0, 0, 0, 0},
		{"v6 param problem", true, ICMPv6ParamProblem, 0, 0, 0, 0},
	}
	for _, c := range cases {
		f := icmpFrame(c.v6, c.typ, c.code, c.rest, quotedFromVIP(c.v6, c.quoteBytes))
		var p Packet
		if st := ParseFrame(f, &p); st != StatusOK {
			t.Fatalf("%s: %v", c.name, st)
		}
		src, dst := clientV4, vipV4
		if c.v6 {
			src, dst = clientV6, vipV6
		}
		if !p.ICMPError || p.ICMPType != c.typ || p.ICMPCode != c.code || p.ICMPMTU != c.wantMTU || p.Seq != 0xdeadbeef || p.Payload != nil {
			t.Fatalf("%s: icmp %v type %d code %d mtu %d seq %#x", c.name, p.ICMPError, p.ICMPType, p.ICMPCode, p.ICMPMTU, p.Seq)
		}
		checkFlow(t, &p, src, dst, 40000, 443)
	}
}

func TestParseICMPBad(t *testing.T) {
	udp := frameSpec{src: vipV4, dst: clientV4, proto: 17, l4: make([]byte, 8)}.ipPacket()
	udp6 := frameSpec{src: vipV6, dst: clientV6, proto: 17, l4: make([]byte, 8)}.ipPacket()
	fragQuote := frameSpec{src: vipV4, dst: clientV4, fragOff: 3, sport: 1, dport: 2}.ipPacket()
	cases := []struct {
		name string
		f    []byte
		want Status
	}{
		{"echo request", icmpFrame(false, 8, 0, 0, nil), StatusICMPNotError},
		{"v6 echo request", icmpFrame(true, 128, 0, 0, nil), StatusICMPNotError},
		{"v6 neighbour solicitation", icmpFrame(true, 135, 0, 0, make([]byte, 16)), StatusICMPNotError},
		{"short icmp header", buildFrame(frameSpec{src: vipV4, dst: clientV4, proto: ProtoICMP, l4: []byte{3, 4, 0, 0}}), StatusICMPTruncated},
		{"short icmpv6 header", buildFrame(frameSpec{src: vipV6, dst: clientV6, proto: ProtoICMPv6, l4: []byte{2, 0, 0, 0}}), StatusICMPTruncated},
		{"quote shorter than ip", icmpFrame(false, 3, 1, 0, quotedFromVIP(false, 19)), StatusICMPTruncated},
		{"quote without ports", icmpFrame(false, 3, 1, 0, quotedFromVIP(false, 27)), StatusICMPTruncated},
		{"v6 quote shorter than ip", icmpFrame(true, 1, 0, 0, quotedFromVIP(true, 39)), StatusICMPTruncated},
		{"v6 quote cut in ext header", icmpFrame(true, 1, 0, 0, quotedFromVIP(true, 44)), StatusICMPTruncated},
		{"v6 quote without ports", icmpFrame(true, 1, 0, 0, quotedFromVIP(true, 55)), StatusICMPTruncated},
		{"quote is udp", icmpFrame(false, 3, 3, 0, udp), StatusICMPQuoteNotTCP},
		{"v6 quote is udp", icmpFrame(true, 1, 4, 0, udp6), StatusICMPQuoteNotTCP},
		{"quote is a non-first fragment", icmpFrame(false, 11, 0, 0, fragQuote), StatusICMPQuoteNotTCP},
		{"quote is not ipv4", icmpFrame(false, 3, 1, 0, udp6), StatusICMPQuoteNotTCP},
		{"v6 quote is not ipv6", icmpFrame(true, 1, 0, 0, append(udp, make([]byte, 40)...)), StatusICMPQuoteNotTCP},
	}
	for _, c := range cases {
		var p Packet
		if st := ParseFrame(c.f, &p); st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
		if p.ICMPError {
			t.Errorf("%s: ICMPError set", c.name)
		}
	}
}

// TestParseBad breaks one thing at a time and expects exactly that reason.
func TestParseBad(t *testing.T) {
	v4 := buildFrame(v4spec())
	v6 := buildFrame(v6spec())
	mod := func(f []byte, fn func(f []byte) []byte) []byte {
		return fn(append([]byte(nil), f...))
	}
	fixsum := func(f []byte) []byte {
		ihl := int(f[14]&0xf) * 4
		f[24], f[25] = 0, 0
		if 14+ihl <= len(f) {
			binary.BigEndian.PutUint16(f[24:], IPv4HeaderChecksum(f[14:14+ihl]))
		}
		return f
	}
	withExt := func(exts ...v6Ext) []byte {
		s := v6spec()
		s.v6Ext = exts
		return buildFrame(s)
	}
	tooMany := make([]v6Ext, MaxIPv6ExtHeaders+1)
	for i := range tooMany {
		tooMany[i] = v6Ext{typ: ipv6DestOpts, length: 8}
	}
	okMany := tooMany[:MaxIPv6ExtHeaders]
	threeTags := v4spec()
	threeTags.vlanTPIDs = []uint16{EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN}
	oneTag := v4spec()
	oneTag.vlanTPIDs = []uint16{EtherTypeVLAN}
	cases := []struct {
		name string
		f    []byte
		want Status
	}{
		{"empty", nil, StatusTruncatedEthernet},
		{"13 bytes", v4[:13], StatusTruncatedEthernet},
		{"too long", make([]byte, MaxFrameLen+1), StatusFrameTooLong},
		{"arp", mod(v4, func(f []byte) []byte { f[12], f[13] = 0x08, 0x06; return f }), StatusNotIP},
		{"three vlan tags", buildFrame(threeTags), StatusTooManyVLANTags},
		{"vlan tag cut", buildFrame(oneTag)[:17], StatusTruncatedVLAN},
		{"ipv4 19 bytes", v4[:14+19], StatusTruncatedIPv4},
		{"ipv4 version 6", mod(v4, func(f []byte) []byte { f[14] = 0x65; return f }), StatusIPv4BadVersion},
		{"ipv4 ihl 4", mod(v4, func(f []byte) []byte { f[14] = 0x44; return f }), StatusIPv4BadHeaderLength},
		{"ipv4 ihl past frame", mod(v4, func(f []byte) []byte { f[14] = 0x4f; return f[:14+40] }), StatusTruncatedIPv4},
		{"ipv4 total below ihl", mod(v4, func(f []byte) []byte { f[16], f[17] = 0, 19; return fixsum(f) }), StatusIPv4BadTotalLength},
		{"ipv4 total past frame", mod(v4, func(f []byte) []byte { f[16], f[17] = 0, 41; return fixsum(f) }), StatusIPv4BadTotalLength},
		{"ipv4 frame cut", v4[:len(v4)-1], StatusIPv4BadTotalLength},
		{"ipv4 checksum", mod(v4, func(f []byte) []byte { f[25] ^= 1; return f }), StatusIPv4BadChecksum},
		{"ipv4 udp", mod(v4, func(f []byte) []byte { f[23] = 17; return fixsum(f) }), StatusNotTCP},
		{"ipv4 tcp 19 bytes", mod(v4, func(f []byte) []byte { f[16], f[17] = 0, 39; return fixsum(f) }), StatusTruncatedTCP},
		{"tcp data offset 4", mod(v4, func(f []byte) []byte { f[46] = 0x40; return f }), StatusTCPBadDataOffset},
		{"tcp data offset past end", mod(v4, func(f []byte) []byte { f[46] = 0x60; return f }), StatusTCPBadDataOffset},
		{"ipv6 39 bytes", v6[:14+39], StatusTruncatedIPv6},
		{"ipv6 version 4", mod(v6, func(f []byte) []byte { f[14] = 0x40; return f }), StatusIPv6BadVersion},
		{"ipv6 payload length 0", mod(v6, func(f []byte) []byte { f[18], f[19] = 0, 0; return f }), StatusIPv6BadPayloadLength},
		{"ipv6 payload past frame", v6[:len(v6)-1], StatusIPv6BadPayloadLength},
		{"ipv6 udp", mod(v6, func(f []byte) []byte { f[20] = 17; return f }), StatusNotTCP},
		{"ipv6 no next header", mod(v6, func(f []byte) []byte { f[20] = 59; return f }), StatusNotTCP},
		{"ipv6 tcp 19 bytes", mod(v6, func(f []byte) []byte { f[18], f[19] = 0, 19; return f }), StatusTruncatedTCP},
		{"ipv6 8 ext headers ok", withExt(okMany...), StatusOK},
		{"ipv6 9 ext headers", withExt(tooMany...), StatusIPv6TooManyExtHeaders},
		{"ipv6 hop-by-hop second", withExt(v6Ext{typ: ipv6DestOpts, length: 8}, v6Ext{typ: ipv6HopByHop, length: 8}), StatusIPv6MisplacedHopByHop},
		{"ipv6 ext header past payload", mod(withExt(v6Ext{typ: ipv6DestOpts, length: 8}), func(f []byte) []byte { f[55] = 200; return f }), StatusIPv6BadExtHeaderLength},
		{"ipv6 ext header cut", mod(withExt(v6Ext{typ: ipv6DestOpts, length: 8}), func(f []byte) []byte { f[18], f[19] = 0, 7; return f[:14+47] }), StatusIPv6BadExtHeaderLength},
		{"ipv6 fragment header cut", mod(withExt(v6Ext{typ: ipv6Fragment, length: 8}), func(f []byte) []byte { f[18], f[19] = 0, 7; return f[:14+47] }), StatusIPv6BadExtHeaderLength},
		{"ipv6 ah past payload", mod(withExt(v6Ext{typ: ipv6AuthHeader, length: 12}), func(f []byte) []byte { f[55] = 100; return f }), StatusIPv6BadExtHeaderLength},
	}
	for _, c := range cases {
		var p Packet
		if st := ParseFrame(c.f, &p); st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
}

func TestUpdateChecksum16(t *testing.T) {
	// RFC 1624 §4: HC 0xDD2F, m 0x5555 → m' 0x3285 gives HC' 0x0000 by
	// equation 3 (equation 2 would give the wrong 0xFFFF).
	if got := UpdateChecksum16(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Fatalf("RFC 1624 example: %#x", got)
	}
}

func TestStatusNames(t *testing.T) {
	seen := map[string]bool{}
	for s := Status(0); s < NumStatus; s++ {
		n := s.String()
		if n == "" || seen[n] {
			t.Fatalf("status %d name %q empty or repeated", s, n)
		}
		seen[n] = true
	}
	if NumStatus.String() != "unknown_status" {
		t.Fatal(NumStatus.String())
	}
}

func TestParseFrameNoAllocs(t *testing.T) {
	pq, _ := goHellos(t)
	frames := [][]byte{buildFrame(v4spec()), buildFrame(v6spec()), helloFrame(pq, 1500), icmpFrame(false, 3, 4, 1400, quotedFromVIP(false, 0))}
	var p Packet
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { ParseFrame(f, &p) }); n != 0 {
			t.Fatalf("%v allocations", n)
		}
	}
}

// helloFrame puts the first mss bytes of hello into an IPv4 ACK|PSH frame.
func helloFrame(hello []byte, mss int) []byte {
	s := v4spec()
	s.flags = TCPFlagACK | TCPFlagPSH
	s.seq, s.ack = 1001, 5001
	s.tcpOpts = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	s.payload = hello[:min(len(hello), mss-32)]
	return buildFrame(s)
}

func TestFlowKeyStringReverse(t *testing.T) {
	p := mustParse(t, buildFrame(v6spec()))
	if got := p.Flow.String(); got != "[2001:db8:1::7]:40001>[2001:db8:ff::10]:443" {
		t.Fatal(got)
	}
	p = mustParse(t, buildFrame(v4spec()))
	r := p.Flow.Reverse()
	if got := r.String(); got != "203.0.113.10:443>198.51.100.7:40000" || r.Reverse() != p.Flow {
		t.Fatal(got)
	}
}
