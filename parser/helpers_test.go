package parser

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// frameSpec describes a test frame; buildFrame turns it into bytes with
// correct lengths and checksums, so tests break exactly one thing at a time.
type frameSpec struct {
	dstMAC, srcMAC [6]byte
	vlanTPIDs      []uint16 // outermost first
	etherType      uint16   // 0: from the addresses
	src, dst       netip.Addr
	ttl            uint8
	ipv4Opts       []byte // multiple of 4
	fragOff        uint16 // in 8-byte units
	moreFrags      bool
	v6Ext          []v6Ext
	proto          uint8  // 0: TCP
	l4             []byte // when set, replaces the TCP header and payload
	sport, dport   uint16
	seq, ack       uint32
	flags          uint8
	tcpOpts        []byte // multiple of 4
	payload        []byte
	padding        int // Ethernet trailer bytes after the IP packet
}

// v6Ext is one IPv6 extension header: typ and total length in bytes (a
// multiple of 8, or of 4 for AH); for fragments fragOff/more are used.
type v6Ext struct {
	typ     uint8
	length  int
	fragOff uint16
	more    bool
}

var (
	clientV4 = netip.MustParseAddr("198.51.100.7")
	vipV4    = netip.MustParseAddr("203.0.113.10")
	clientV6 = netip.MustParseAddr("2001:db8:1::7")
	vipV6    = netip.MustParseAddr("2001:db8:ff::10")
)

func (s frameSpec) tcp() []byte {
	if s.l4 != nil {
		return s.l4
	}
	h := make([]byte, 20+len(s.tcpOpts))
	binary.BigEndian.PutUint16(h[0:], s.sport)
	binary.BigEndian.PutUint16(h[2:], s.dport)
	binary.BigEndian.PutUint32(h[4:], s.seq)
	binary.BigEndian.PutUint32(h[8:], s.ack)
	h[12] = byte(len(h)/4) << 4
	h[13] = s.flags
	binary.BigEndian.PutUint16(h[14:], 64240)
	copy(h[20:], s.tcpOpts)
	return append(h, s.payload...)
}

// ipPacket builds the IP packet (no Ethernet).
func (s frameSpec) ipPacket() []byte {
	l4 := s.tcp()
	proto := s.proto
	if proto == 0 {
		proto = ProtoTCP
	}
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	if s.src.Is4() {
		ihl := 20 + len(s.ipv4Opts)
		h := make([]byte, ihl, ihl+len(l4))
		h[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(h[2:], uint16(ihl+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		fo := s.fragOff & 0x1fff
		if s.moreFrags {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		h[8] = ttl
		h[9] = proto
		a, b := s.src.As4(), s.dst.As4()
		copy(h[12:], a[:])
		copy(h[16:], b[:])
		copy(h[20:], s.ipv4Opts)
		binary.BigEndian.PutUint16(h[10:], IPv4HeaderChecksum(h))
		return append(h, l4...)
	}
	var ext []byte
	nh := proto
	for i := len(s.v6Ext) - 1; i >= 0; i-- {
		e := s.v6Ext[i]
		b := make([]byte, e.length)
		b[0] = nh
		switch e.typ {
		case ipv6Fragment:
			fo := e.fragOff << 3
			if e.more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(b[2:], fo)
		case ipv6AuthHeader:
			b[1] = byte(e.length/4 - 2)
		default:
			b[1] = byte(e.length/8 - 1)
		}
		ext = append(b, ext...)
		nh = e.typ
	}
	h := make([]byte, 40, 40+len(ext)+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(l4)))
	h[6] = nh
	h[7] = ttl
	a, b := s.src.As16(), s.dst.As16()
	copy(h[8:], a[:])
	copy(h[24:], b[:])
	return append(append(h, ext...), l4...)
}

func buildFrame(s frameSpec) []byte {
	f := make([]byte, 12, 64)
	copy(f[0:], s.dstMAC[:])
	copy(f[6:], s.srcMAC[:])
	for i, tpid := range s.vlanTPIDs {
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, uint16(100+i))
	}
	et := s.etherType
	if et == 0 {
		et = EtherTypeIPv4
		if s.src.Is6() {
			et = EtherTypeIPv6
		}
	}
	f = binary.BigEndian.AppendUint16(f, et)
	f = append(f, s.ipPacket()...)
	return append(f, make([]byte, s.padding)...)
}

func v4spec() frameSpec {
	return frameSpec{src: clientV4, dst: vipV4, sport: 40000, dport: 443, seq: 1000, ack: 0, flags: TCPFlagSYN}
}

func v6spec() frameSpec {
	return frameSpec{src: clientV6, dst: vipV6, sport: 40001, dport: 443, seq: 2000, flags: TCPFlagSYN}
}

// icmpFrame builds an ICMP (IPv4) or ICMPv6 error from the router to the
// VIP quoting quoted, an IP packet the VIP sent.
func icmpFrame(v6 bool, typ, code uint8, rest uint32, quoted []byte) []byte {
	msg := make([]byte, 8, 8+len(quoted))
	msg[0], msg[1] = typ, code
	binary.BigEndian.PutUint32(msg[4:], rest)
	msg = append(msg, quoted...)
	s := frameSpec{src: netip.MustParseAddr("192.0.2.1"), dst: vipV4, proto: ProtoICMP, l4: msg}
	if v6 {
		s.src, s.dst, s.proto = netip.MustParseAddr("2001:db8::1"), vipV6, ProtoICMPv6
	}
	return buildFrame(s)
}

// --- ClientHellos ---

// goClientHello returns the TLS records Go's crypto/tls client writes
// first, captured over net.Pipe.
func goClientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(c, cfg).Handshake() // fails once s is closed
	}()
	var out []byte
	hdr := make([]byte, 5)
	need := -1
	for need < 0 || len(out)-recordOverhead(out) < need {
		if _, err := io.ReadFull(s, hdr); err != nil {
			tb.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(s, body); err != nil {
			tb.Fatal(err)
		}
		out = append(append(out, hdr...), body...)
		if need < 0 && len(body) >= 4 {
			need = 4 + (int(body[1])<<16 | int(body[2])<<8 | int(body[3]))
		}
	}
	s.Close()
	c.Close()
	<-done
	return out
}

// recordOverhead counts the 5-byte headers of the records in b.
func recordOverhead(b []byte) int {
	n := 0
	for len(b) >= 5 {
		l := int(binary.BigEndian.Uint16(b[3:]))
		n += 5
		if len(b) < 5+l {
			break
		}
		b = b[5+l:]
	}
	return n
}

var (
	helloOnce           sync.Once
	helloPQ, helloSmall []byte
)

// goHellos returns a Go 1.26 default ClientHello (X25519MLKEM768 key share,
// about 1.8 KB) and a small one (X25519 only), both for example.com.
func goHellos(tb testing.TB) (pq, small []byte) {
	helloOnce.Do(func() {
		helloPQ = goClientHello(tb, &tls.Config{ServerName: "example.com"})
		helloSmall = goClientHello(tb, &tls.Config{ServerName: "example.com", CurvePreferences: []tls.CurveID{tls.X25519}})
	})
	return helloPQ, helloSmall
}

type ext struct {
	typ  uint16
	body []byte
}

func sniBody(host string) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(0)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(host)) })
	})
	return b.BytesOrPanic()
}

func versionsBody(vs ...uint16) []byte {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(v)
		}
	})
	return b.BytesOrPanic()
}

// migrationExts is the extension list of a browser-like TLS 1.3
// ClientHello that sends migration_support and a migration_token, with
// GREASE, ECH GREASE and a pre_shared_key (last).
func migrationExts() []ext {
	keyShare := make([]byte, 2+4+32)
	binary.BigEndian.PutUint16(keyShare, 36)
	binary.BigEndian.PutUint16(keyShare[2:], 0x001d)
	binary.BigEndian.PutUint16(keyShare[4:], 32)
	psk := []byte{0, 7, 0, 1, 0xaa, 0, 0, 0, 1, 0, 33, 32}
	psk = append(psk, make([]byte, 32)...)
	return []ext{
		{0x3a3a, nil},
		{extServerName, sniBody("svc.example.net")},
		{extSupportedVersions, versionsBody(0x2a2a, tlsVersion13, 0x0303)},
		{10, []byte{0, 4, 0, 0x1d, 0, 0x17}},
		{51, keyShare},
		{13, []byte{0, 4, 4, 3, 8, 4}},
		{45, []byte{1, 1}},
		{DefaultMigrationSupport, nil},
		{extEncryptedClientHello, []byte{0, 0, 1, 0, 1, 0x42, 0, 32}},
		{DefaultMigrationToken, []byte("token-bytes-from-the-node")},
		{0xdada, []byte{0}},
		{extPreSharedKey, psk},
	}
}

// buildHello builds a ClientHello handshake message (with its 4-byte
// header) with the given extensions in order; exts nil means no
// extensions block at all.
func buildHello(exts []ext) []byte {
	var b cryptobyte.Builder
	b.AddUint8(tlsHandshakeClientHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(0x0303)
		b.AddBytes(make([]byte, 32))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, cs := range []uint16{0x4a4a, 0x1301, 0x1302, 0x1303} {
				b.AddUint16(cs)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		if exts == nil {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.body) })
			}
		})
	})
	return b.BytesOrPanic()
}

// records frames the handshake bytes hs into TLS handshake records of the
// given fragment sizes (the last record takes the rest).
func records(hs []byte, sizes ...int) []byte {
	var out []byte
	for i := 0; len(hs) > 0; i++ {
		n := len(hs)
		if i < len(sizes) && sizes[i] < n {
			n = sizes[i]
		}
		out = append(out, tlsRecordHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

// handshakeOf strips the record headers of well-formed records.
func handshakeOf(recs []byte) []byte {
	var hs []byte
	for len(recs) >= 5 {
		l := int(binary.BigEndian.Uint16(recs[3:]))
		hs = append(hs, recs[5:5+l]...)
		recs = recs[5+l:]
	}
	return hs
}
