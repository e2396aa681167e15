package e2e

// Hostile frames for TestHostileTrafficAtTheVIP: hand-made Ethernet frames
// of every class the router must survive (truncated headers, fragments,
// long IPv6 extension-header chains, garbage TLS records, a reordered
// ClientHello, floods from random sources), a raw sender for them, and the
// router outcome each frame should have, computed with the router's own
// parser and reassembler so the test's expectations follow the code.

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/parser"
)

// IP protocol and IPv6 extension-header numbers the frames use.
const (
	protoTCP      = 6
	ipv6HopByHop  = 0
	ipv6Routing   = 43
	ipv6Fragment  = 44
	ipv6DestOpts  = 60
	tcpFlagsSYN   = testbed.TCPSyn
	tcpFlagsData  = testbed.TCPAck | testbed.TCPPsh
	tlsRecordHS   = 0x16
	tlsRecordApp  = 0x17
	tlsRecordAlrt = 0x15
)

// link is the Ethernet pair every hostile frame uses: from the client's
// MAC to the router's, as the client's own VIP traffic goes.
type link struct{ src, dst [6]byte }

// tcpSegment is a TCP header (data offset from len(opts), which must be a
// multiple of 4) with payload and a correct checksum for src → dst.
func tcpSegment(src, dst netip.AddrPort, flags byte, seq, ack uint32, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	copy(b[20:], opts)
	copy(b[hl:], payload)
	var sum uint32
	sum = testbed.ChecksumAdd(sum, src.Addr().AsSlice())
	sum = testbed.ChecksumAdd(sum, dst.Addr().AsSlice())
	sum += protoTCP + uint32(len(b))
	binary.BigEndian.PutUint16(b[16:], ^testbed.Checksum(sum, b))
	return b
}

// synOptions are a real client's SYN options (MSS 1460, SACK permitted,
// timestamps, window scale), 20 bytes, so a cut can land inside them.
var synOptions = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}

// ipv4Frame wraps an L4 payload in Ethernet and IPv4 (TTL 64, header
// checksum set). frag is the flags/fragment-offset field (0x4000: DF).
func (l link) ipv4Frame(src, dst netip.Addr, proto byte, id, frag uint16, l4 []byte) []byte {
	f := make([]byte, 14+20+len(l4))
	copy(f[0:], l.dst[:])
	copy(f[6:], l.src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[8], ip[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^testbed.Checksum(0, ip))
	copy(f[34:], l4)
	return f
}

// ipv6Frame wraps a payload (extension headers and L4) in Ethernet and
// IPv6 (hop limit 64); next is the first next-header value.
func (l link) ipv6Frame(src, dst netip.Addr, next byte, payload []byte) []byte {
	f := make([]byte, 14+40+len(payload))
	copy(f[0:], l.dst[:])
	copy(f[6:], l.src[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(payload)))
	ip[6], ip[7] = next, 64
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	copy(f[54:], payload)
	return f
}

// tcpFrame is one TCP segment in IPv4 (DF) or IPv6 by dst's family.
func (l link) tcpFrame(src, dst netip.AddrPort, flags byte, seq, ack uint32, opts, payload []byte) []byte {
	seg := tcpSegment(src, dst, flags, seq, ack, opts, payload)
	if dst.Addr().Is4() {
		return l.ipv4Frame(src.Addr(), dst.Addr(), protoTCP, uint16(seq), 0x4000, seg)
	}
	return l.ipv6Frame(src.Addr(), dst.Addr(), protoTCP, seg)
}

// extHeader is one IPv6 extension header of kind (hop-by-hop, routing,
// destination options or fragment) with next header next, 8·(units+1)
// bytes long (a fragment header is always 8: units is its offset in
// 8-byte units, with more-fragments set). Options are PadN; a routing
// header is type 4 with no segments left.
func extHeader(kind, next byte, units int) []byte {
	if kind == ipv6Fragment {
		h := make([]byte, 8)
		h[0] = next
		binary.BigEndian.PutUint16(h[2:], uint16(units)<<3|1)
		binary.BigEndian.PutUint32(h[4:], 0x5eed)
		return h
	}
	h := make([]byte, 8*(units+1))
	h[0], h[1] = next, byte(units)
	if kind == ipv6Routing {
		h[2] = 4 // segment routing, segments left 0: the node ignores it
		return h
	}
	h[2], h[3] = 1, byte(len(h)-4) // PadN over the rest
	return h
}

// extChain chains extension headers of the given kinds (in order) in
// front of an upper-layer header of protocol upper, each of size units
// (see extHeader), and returns the first next-header value and the bytes.
func extChain(kinds []byte, units int, upper byte, l4 []byte) (byte, []byte) {
	var out []byte
	for i, k := range kinds {
		next := upper
		if i+1 < len(kinds) {
			next = kinds[i+1]
		}
		out = append(out, extHeader(k, next, units)...)
	}
	if len(kinds) == 0 {
		return upper, l4
	}
	return kinds[0], append(out, l4...)
}

// expectation is what the router should do with a set of frames, by the
// code the router runs: parser.ParseFrame's status for each frame, and for
// those that parse the fast path's ClientHello handling (a SYN opens a
// reassembly slot on a TLS VIP; a segment with payload goes through the
// reassembler when one is in use or it starts with a handshake record).
type expectation struct {
	frames int
	// byStatus counts ParseFrame outcomes; byStatus[StatusOK] frames are
	// forwarded (the VIPs are TLS VIPs with nodes up), but for fragments:
	// of those, first fragments that parse.
	byStatus  map[parser.Status]int
	fragments int
	syns      int
	// byVerdict counts the reassembler's verdicts on the payloads.
	byVerdict map[parser.Verdict]int
	// migrationSupport counts complete ClientHellos carrying it.
	migrationSupport int

	reasm *parser.Reassembler
	hello parser.HelloConfig
	ch    parser.ClientHello
	pkt   parser.Packet
}

func newExpectation() (*expectation, error) {
	r, err := parser.NewReassembler(parser.ReassemblerConfig{})
	if err != nil {
		return nil, err
	}
	return &expectation{byStatus: map[parser.Status]int{}, byVerdict: map[parser.Verdict]int{}, reasm: r, hello: parser.DefaultHelloConfig()}, nil
}

// add records frame's expected outcome (frames are parsed in a copy: the
// caller sends the original).
func (x *expectation) add(frame []byte) {
	x.frames++
	buf := append([]byte(nil), frame...)
	p := &x.pkt
	st := parser.ParseFrame(buf, p)
	x.byStatus[st]++
	if st != parser.StatusOK || p.ICMPError {
		return
	}
	if p.Flags&parser.FlagFragment != 0 {
		// A router may forward a first fragment or give it to its kernel
		// (it cannot forward the rest of the packet with it): either is
		// right, so neither is expected of it.
		x.fragments++
		return
	}
	now := time.Now().UnixNano()
	if p.TCPFlags&(parser.TCPFlagSYN|parser.TCPFlagACK) == parser.TCPFlagSYN {
		x.syns++
		x.reasm.Open(&p.Flow, p.Seq, now)
		return
	}
	if len(p.Payload) == 0 || (x.reasm.InUse() == 0 && p.Payload[0] != tlsRecordHS) {
		return
	}
	v := x.reasm.Feed(&p.Flow, p.Seq, p.Payload, now, &x.hello, &x.ch)
	x.byVerdict[v]++
	if v == parser.VerdictComplete && x.ch.MigrationSupport {
		x.migrationSupport++
	}
}

// rejected is how many frames should not parse.
func (x *expectation) rejected() int { return x.frames - x.byStatus[parser.StatusOK] }

// forwarded is how many frames should be forwarded (parsed, not fragments).
func (x *expectation) forwarded() int { return x.byStatus[parser.StatusOK] - x.fragments }

// helloPartial is what the router counts as ClientHellos not (yet)
// decided: segments held while incomplete and hellos given up
// (clienthellos_total{outcome="partial"}, or "pending" and "unknown").
func (x *expectation) helloPartial() int {
	return x.byVerdict[parser.VerdictPending] + x.byVerdict[parser.VerdictUnknown]
}

// helloPins is what the router counts as clienthello_pin_changes{change="pin"}:
// every hello decided as legacy, malformed or unknown.
func (x *expectation) helloPins() int {
	return x.byVerdict[parser.VerdictComplete] - x.migrationSupport + x.byVerdict[parser.VerdictMalformed] + x.byVerdict[parser.VerdictUnknown]
}

func (x *expectation) String() string {
	var parts []string
	for st := parser.Status(0); st < parser.NumStatus; st++ {
		if n := x.byStatus[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, n))
		}
	}
	if x.fragments > 0 {
		parts = append(parts, fmt.Sprintf("of which first_fragments=%d", x.fragments))
	}
	for v := parser.Verdict(0); v < parser.NumVerdict; v++ {
		if n := x.byVerdict[v]; n > 0 {
			parts = append(parts, fmt.Sprintf("hello_%s=%d", v, n))
		}
	}
	return strings.Join(parts, " ")
}

// truncatedFrames cuts a SYN with options (IPv4 and IPv6) at every byte:
// each cut twice, once as cut (the IP length fields still claim the
// whole packet) and once with the IP lengths (and IPv4 checksum) made to
// agree with the cut, so the parser meets a short TCP header rather than
// a short IP packet. Cuts below the Ethernet header are in short (the
// kernel refuses to send them on an Ethernet device).
func (l link) truncatedFrames(src4, vip4, src6, vip6 netip.AddrPort) (frames, short [][]byte) {
	for _, full := range [][]byte{
		l.tcpFrame(src4, vip4, tcpFlagsSYN, 7, 0, synOptions, nil),
		l.tcpFrame(src6, vip6, tcpFlagsSYN, 7, 0, synOptions, nil),
	} {
		for n := 0; n < len(full); n++ {
			cut := append([]byte(nil), full[:n]...)
			if n < 14 {
				short = append(short, cut)
				continue
			}
			frames = append(frames, cut)
			fixed := append([]byte(nil), cut...)
			switch binary.BigEndian.Uint16(full[12:]) {
			case 0x0800:
				if n < 34 {
					continue // the header itself is cut: nothing to agree with
				}
				binary.BigEndian.PutUint16(fixed[16:], uint16(n-14))
				fixed[24], fixed[25] = 0, 0
				binary.BigEndian.PutUint16(fixed[24:], ^testbed.Checksum(0, fixed[14:34]))
			case 0x86dd:
				if n < 54 {
					continue
				}
				binary.BigEndian.PutUint16(fixed[18:], uint16(n-54))
			}
			frames = append(frames, fixed)
		}
	}
	return frames, short
}

// fragmentFrames are IPv4 fragments to the VIP: first fragments (offset
// 0, more-fragments) carrying a SYN or the start of a ClientHello, and
// non-first ones (TCP bytes at offsets 8 and 185·8, the last without
// more-fragments), n of each kind from src with distinct ports.
func (l link) fragmentFrames(src, vip netip.AddrPort, hello []byte, n int) [][]byte {
	var out [][]byte
	for i := range n {
		s := netip.AddrPortFrom(src.Addr(), src.Port()+uint16(i))
		id := uint16(0xf000 + i)
		syn := tcpSegment(s, vip, tcpFlagsSYN, 100, 0, synOptions, nil)
		out = append(out, l.ipv4Frame(s.Addr(), vip.Addr(), protoTCP, id, 0x2000, syn[:16]))
		data := tcpSegment(s, vip, tcpFlagsData, 101, 1, nil, hello[:600])
		out = append(out, l.ipv4Frame(s.Addr(), vip.Addr(), protoTCP, id+0x800, 0x2000, data[:512]))
		out = append(out, l.ipv4Frame(s.Addr(), vip.Addr(), protoTCP, id+0x800, 64, data[512:]))
		out = append(out, l.ipv4Frame(s.Addr(), vip.Addr(), protoTCP, id, 185, hello[:64]))
	}
	return out
}

// extChainFrames are IPv6 segments to the VIP behind extension-header
// chains: 12 and 16 destination-options headers, hop-by-hop then 11
// destination options, 8 (the parser's limit) and 9 headers, a chain with
// a routing header in it, a hop-by-hop header out of place, a chain that
// runs past the payload, and a chain ending in a non-first fragment.
// Each shape carries a SYN and a data segment, n flows each.
func (l link) extChainFrames(src, vip netip.AddrPort, n int) [][]byte {
	rep := func(k byte, c int) []byte {
		out := make([]byte, c)
		for i := range out {
			out[i] = k
		}
		return out
	}
	shapes := []struct {
		kinds []byte
		units int
	}{
		{rep(ipv6DestOpts, 12), 0},
		{rep(ipv6DestOpts, 16), 1},
		{append([]byte{ipv6HopByHop}, rep(ipv6DestOpts, 11)...), 0},
		{append([]byte{ipv6HopByHop}, rep(ipv6DestOpts, 7)...), 0},
		{rep(ipv6DestOpts, 9), 0},
		{[]byte{ipv6HopByHop, ipv6DestOpts, ipv6Routing, ipv6DestOpts}, 2},
		{[]byte{ipv6DestOpts, ipv6HopByHop, ipv6DestOpts}, 0},
	}
	var out [][]byte
	port := src.Port()
	for range n {
		for _, sh := range shapes {
			for _, data := range []bool{false, true} {
				s := netip.AddrPortFrom(src.Addr(), port)
				port++
				var seg []byte
				if data {
					seg = tcpSegment(s, vip, tcpFlagsData, 1, 1, nil, []byte("GET / HTTP/1.1\r\n\r\n"))
				} else {
					seg = tcpSegment(s, vip, tcpFlagsSYN, 0, 0, synOptions, nil)
				}
				next, payload := extChain(sh.kinds, sh.units, protoTCP, seg)
				out = append(out, l.ipv6Frame(s.Addr(), vip.Addr(), next, payload))
			}
		}
		// A chain whose last header claims more bytes than the packet has.
		s := netip.AddrPortFrom(src.Addr(), port)
		port++
		seg := tcpSegment(s, vip, tcpFlagsSYN, 0, 0, nil, nil)
		next, payload := extChain(rep(ipv6DestOpts, 10), 0, protoTCP, seg)
		payload[len(payload)-len(seg)-8+1] = 200
		out = append(out, l.ipv6Frame(s.Addr(), vip.Addr(), next, payload))
		// Ten destination options, then a non-first fragment.
		next, payload = extChain(append(rep(ipv6DestOpts, 10), ipv6Fragment), 0, protoTCP, nil)
		binary.BigEndian.PutUint16(payload[len(payload)-6:], 93<<3)
		out = append(out, l.ipv6Frame(s.Addr(), vip.Addr(), next, append(payload, seg...)))
	}
	return out
}

// garbageTLSFrames are single data segments (ACK|PSH, random sequence
// numbers: flows that look established) carrying TLS records that are not
// a usable ClientHello: application data and alerts of random bytes, a
// bare handshake record type byte, handshake records of random bytes, a
// ServerHello, a ClientHello whose body is garbage after its first bytes,
// an empty record, a record longer than TLS allows, and a real hello
// under record version 0x0300. n flows of each kind, from random sources.
func (l link) garbageTLSFrames(rng *rand.Rand, vip netip.AddrPort, hello []byte, n int) [][]byte {
	random := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	record := func(typ byte, version uint16, body []byte) []byte {
		r := []byte{typ, byte(version >> 8), byte(version), byte(len(body) >> 8), byte(len(body))}
		return append(r, body...)
	}
	kinds := []func() []byte{
		func() []byte { return record(tlsRecordApp, 0x0303, random(200)) },
		func() []byte { return record(tlsRecordAlrt, 0x0303, random(2)) },
		func() []byte { return []byte{tlsRecordHS} },
		func() []byte { return record(tlsRecordHS, 0x0303, random(300)) },
		func() []byte { return record(tlsRecordHS, 0x0303, append([]byte{2, 0, 0, 70}, random(70)...)) },
		func() []byte {
			body := append([]byte(nil), hello[5:]...)
			copy(body[40:], random(len(body)-40))
			return record(tlsRecordHS, 0x0303, body[:min(len(body), 1200)])
		},
		func() []byte { return record(tlsRecordHS, 0x0303, nil) },
		func() []byte {
			r := record(tlsRecordHS, 0x0303, append([]byte{1, 0, 0xff, 0xff}, random(400)...))
			binary.BigEndian.PutUint16(r[3:], 0xffff)
			return r
		},
		func() []byte {
			r := append([]byte(nil), hello[:min(len(hello), 1400)]...)
			binary.BigEndian.PutUint16(r[1:], 0x0300)
			return r
		},
	}
	var out [][]byte
	for range n {
		for _, k := range kinds {
			src := randomSource4(rng)
			out = append(out, l.tcpFrame(src, vip, tcpFlagsData, rng.Uint32(), rng.Uint32(), nil, k()))
		}
	}
	return out
}

// reorderedHelloFrames are n connections that each send a SYN and then
// their ClientHello in three segments, last first (3, 2, 1), from random
// sources.
func (l link) reorderedHelloFrames(rng *rand.Rand, vip netip.AddrPort, hello []byte, n int) [][]byte {
	third := (len(hello) + 2) / 3
	var out [][]byte
	for range n {
		src := randomSource4(rng)
		isn := rng.Uint32()
		out = append(out, l.tcpFrame(src, vip, tcpFlagsSYN, isn, 0, synOptions, nil))
		for part := 2; part >= 0; part-- {
			lo, hi := part*third, min((part+1)*third, len(hello))
			out = append(out, l.tcpFrame(src, vip, tcpFlagsData, isn+1+uint32(lo), 1, nil, hello[lo:hi]))
		}
	}
	return out
}

// randomSource4 is where hostile IPv4 traffic comes from: a random
// address of 198.18.0.0/15 (the benchmarking range: no host of the bed
// has it, no node has a route back to it, so no reply reaches a real
// client) and a random port. Forged sources never take a legitimate
// client's address, so no hostile frame lands on a real connection.
func randomSource4(rng *rand.Rand) netip.AddrPort {
	v := 198<<24 | 18<<16 | rng.Uint32()&0x1ffff
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), uint16(1024+rng.IntN(64512)))
}

// randomSource6 is randomSource4's IPv6 counterpart, in 2001:db8::/32
// (the documentation prefix).
func randomSource6(rng *rand.Rand) netip.AddrPort {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	binary.BigEndian.PutUint64(a[8:], rng.Uint64())
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(1024+rng.IntN(64512)))
}

// largeClientHello is the first flight of a Go crypto/tls client that
// offers many ALPN protocols, so it needs three TCP segments: a legacy
// ClientHello (no migration_support) of about 3.6 KB in one TLS record.
func largeClientHello() ([]byte, error) {
	var protos []string
	for i := range 10 {
		protos = append(protos, fmt.Sprintf("hostile-%02d-%s", i, strings.Repeat("x", 180)))
	}
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		c := tls.Client(client, &tls.Config{ServerName: "vip.anysched.test", NextProtos: protos, InsecureSkipVerify: true})
		c.Handshake() // fails when the server side closes; only the hello is wanted
		c.Close()
	}()
	server.SetDeadline(time.Now().Add(failAfter))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		return nil, err
	}
	if hdr[0] != tlsRecordHS {
		return nil, fmt.Errorf("first record type %#x, want a handshake", hdr[0])
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(server, rec[5:]); err != nil {
		return nil, err
	}
	if len(rec) < 2800 || len(rec) > 3*1400 {
		return nil, fmt.Errorf("ClientHello of %d bytes: want 2800..4200 (three segments)", len(rec))
	}
	return rec, nil
}

// rawSender sends frames from an AF_PACKET socket on the client's
// interface.
type rawSender struct {
	sock *testbed.PacketSocket
}

func openRawSender(h *testbed.Host) (*rawSender, error) {
	var s rawSender
	err := h.Do(func() (err error) {
		s.sock, err = testbed.OpenPacketSocket(h.Iface)
		return err
	})
	return &s, err
}

// send writes every frame; it returns how many the kernel took and the
// first error.
func (s *rawSender) send(frames [][]byte) (int, error) {
	for i, f := range frames {
		if err := s.sock.Send(f); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

func (s *rawSender) close() { s.sock.Close() }
