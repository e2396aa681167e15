package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/anysched/anysched/codepoint"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/parser"
)

// TCP flags of the templates.
const (
	flagSYN = 0x02
	flagPSH = 0x08
	flagACK = 0x10
)

// Frame sizes on the wire without the FCS: 60 bytes is a minimum Ethernet
// frame (64 with the FCS), 1514 a full 1500-byte MTU.
const (
	smallFrame = 60
	largeFrame = 1514
	mss        = 1460
)

// Addresses names the frame's Ethernet and IP endpoints.
type Addresses struct {
	SrcMAC, DstMAC [6]byte
	Src, Dst       netip.Addr // IPv4; the generator rewrites Src's last 16 bits
	DstPort        uint16
}

// Template is one frame the generator sends, varied per frame.
type Template struct {
	Name  string
	Frame []byte
}

// Part is a template and how many frames of it a round sends.
type Part struct {
	Template Template
	Weight   int
}

// Workload is a frame mix: per round, each part's Weight frames, in order.
// Two segments of one ClientHello are consecutive parts of equal weight,
// so segment 2 of flow f follows segment 1 of flow f.
type Workload struct {
	Name  string
	Parts []Part
}

// Frames is how many frames one round sends.
func (w Workload) Frames() int {
	n := 0
	for _, p := range w.Parts {
		n += p.Weight
	}
	return n
}

// segment describes one TCP segment of a template.
type segment struct {
	flags   byte
	seq     uint32
	ack     uint32
	payload []byte
	options []byte
	size    int // pad the frame to this many bytes (Ethernet padding)
}

// buildFrame makes an untagged IPv4 TCP frame with correct checksums; slot
// goes into the IP ID's low four bits, where the generator finds its
// counter.
func buildFrame(a Addresses, sport uint16, slot int, s segment) ([]byte, error) {
	if !a.Src.Is4() || !a.Dst.Is4() {
		return nil, errors.New("bench: template addresses must be IPv4")
	}
	if slot < 0 || slot >= maxTemplates {
		return nil, fmt.Errorf("bench: template slot %d: want 0..%d", slot, maxTemplates-1)
	}
	if len(s.options)%4 != 0 || len(s.options) > 40 {
		return nil, errors.New("bench: TCP options must be a multiple of 4 bytes, at most 40")
	}
	tcpLen := 20 + len(s.options) + len(s.payload)
	if 14+20+tcpLen > largeFrame {
		return nil, fmt.Errorf("bench: segment of %d bytes does not fit a %d-byte frame", tcpLen, largeFrame)
	}
	f := make([]byte, 14+20+tcpLen, max(14+20+tcpLen, s.size))
	copy(f[0:6], a.DstMAC[:])
	copy(f[6:12], a.SrcMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen))
	binary.BigEndian.PutUint16(ip[4:], uint16(0x5a00|slot))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 64, protoTCP
	src, dst := a.Src.As4(), a.Dst.As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^testbed.Checksum(0, ip))
	tcp := f[34:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], a.DstPort)
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = byte((20+len(s.options))/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], s.options)
	copy(tcp[20+len(s.options):], s.payload)
	pseudo := testbed.ChecksumAdd(0, src[:])
	pseudo = testbed.ChecksumAdd(pseudo, dst[:])
	pseudo += protoTCP + uint32(tcpLen)
	binary.BigEndian.PutUint16(tcp[16:], ^testbed.Checksum(pseudo, tcp))
	if s.size > len(f) {
		f = f[:s.size] // zero padding after the IP datagram
	}
	return f, nil
}

// clientHello builds a TLS 1.3 ClientHello record. postQuantum adds an
// X25519MLKEM768 key share (1216 bytes), as Go 1.26 and Chromium send,
// which makes the hello span two 1460-byte segments; migration adds the
// empty migration_support extension.
func clientHello(postQuantum, migration bool) []byte {
	var ext []byte
	add := func(typ uint16, body []byte) {
		ext = binary.BigEndian.AppendUint16(ext, typ)
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(body)))
		ext = append(ext, body...)
	}
	host := []byte("service.example")
	sni := binary.BigEndian.AppendUint16(nil, uint16(len(host)+3))
	sni = append(sni, 0)
	sni = binary.BigEndian.AppendUint16(sni, uint16(len(host)))
	add(0, append(sni, host...))
	add(10, []byte{0, 4, 0x11, 0xec, 0x00, 0x1d}) // supported_groups
	add(13, []byte{0, 4, 0x04, 0x03, 0x08, 0x04}) // signature_algorithms
	add(16, []byte{0, 3, 2, 'h', '2'})            // ALPN
	add(43, []byte{2, 0x03, 0x04})                // supported_versions
	add(45, []byte{1, 1})                         // psk_key_exchange_modes
	var shares []byte
	if postQuantum {
		shares = binary.BigEndian.AppendUint16(shares, 0x11ec)
		shares = binary.BigEndian.AppendUint16(shares, 1216)
		shares = append(shares, patterned(1216, 0x3c)...)
	}
	shares = binary.BigEndian.AppendUint16(shares, 0x001d)
	shares = binary.BigEndian.AppendUint16(shares, 32)
	shares = append(shares, patterned(32, 0x5a)...)
	add(51, append(binary.BigEndian.AppendUint16(nil, uint16(len(shares))), shares...))
	if postQuantum {
		// Chromium's hello also carries an ECH GREASE extension of about
		// this size; with it the hello is ~1.75 KB, two segments, and
		// migration_support (last) is in segment 2: the router must
		// reassemble to see it.
		add(0xfe0d, patterned(300, 0x44))
	}
	if migration {
		add(codepoint.MigrationSupport, nil)
	}
	body := []byte{0x03, 0x03}
	body = append(body, patterned(32, 0x11)...) // random
	body = append(body, 32)
	body = append(body, patterned(32, 0x22)...)                   // legacy_session_id
	body = append(body, 0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03) // cipher suites
	body = append(body, 1, 0)                                     // compression
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	hs := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	hs = append(hs, body...)
	return append([]byte{0x16, 0x03, 0x01, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// patterned returns n bytes that are not all zero (a key share of zeros
// would look like padding to a reader).
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// synOptions is MSS 1460: a 24-byte SYN, 58-byte frame, padded to 60.
var synOptions = []byte{2, 4, 0x05, 0xb4}

// appData starts a mid-flow client segment: a TLS application_data record.
func appData(n int) []byte {
	b := patterned(n, 0x77)
	if n >= 5 {
		b[0], b[1], b[2] = 0x17, 0x03, 0x03
		binary.BigEndian.PutUint16(b[3:], uint16(n-5))
	}
	return b
}

// The template kinds, one generator counter slot each.
const (
	slotSYN = iota
	slotACK
	slotData
	slotHelloLegacy
	slotHelloMigrating
	slotPQLegacy1
	slotPQLegacy2
	slotPQMigrating1
	slotPQMigrating2
)

// reassemblySlots is parser.DefaultReassemblySlots, what `anysched run`
// uses.
const reassemblySlots = parser.DefaultReassemblySlots

const (
	isn = 0x10000000
	ack = 0x20000000
)

// Templates builds every template kind for a.
func Templates(a Addresses) (map[int]Template, error) {
	out := map[int]Template{}
	put := func(slot int, name string, s segment) error {
		a := a
		if s.flags == flagSYN {
			a.Src = synBase
		}
		f, err := buildFrame(a, genPortBase, slot, s)
		if err != nil {
			return err
		}
		out[slot] = Template{Name: name, Frame: f}
		return nil
	}
	hello := func(slot int, name string, pq, migration bool) error {
		ch := clientHello(pq, migration)
		if len(ch) <= mss {
			return put(slot, name, segment{flags: flagACK | flagPSH, seq: isn + 1, ack: ack, payload: ch})
		}
		if err := put(slot, name+"/1", segment{flags: flagACK, seq: isn + 1, ack: ack, payload: ch[:mss]}); err != nil {
			return err
		}
		return put(slot+1, name+"/2", segment{flags: flagACK | flagPSH, seq: isn + 1 + mss, ack: ack, payload: ch[mss:]})
	}
	errs := []error{
		put(slotSYN, "syn", segment{flags: flagSYN, seq: isn, options: synOptions, size: smallFrame}),
		put(slotACK, "ack", segment{flags: flagACK, seq: isn + 1, ack: ack, size: smallFrame}),
		put(slotData, "data", segment{flags: flagACK, seq: isn + 5000, ack: ack, payload: appData(mss)}),
		hello(slotHelloLegacy, "hello", false, false),
		hello(slotHelloMigrating, "hello+ms", false, true),
		hello(slotPQLegacy1, "hello-pq", true, false),
		hello(slotPQMigrating1, "hello-pq+ms", true, true),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Workloads are the frame mixes every scenario is measured with: 64-byte
// frames (SYNs and pure ACKs), 1514-byte mid-flow segments, and a mix of,
// per unit, 2 SYNs, 12 ACKs, 2 full segments, one one-segment ClientHello
// with and one without migration_support, and two-segment (post-quantum)
// ClientHellos with and without it.
//
// One BPF_PROG_RUN call sends one part (one template), and a call costs
// about a millisecond of set-up here, so parts are large: unit frames
// each. The two-segment hellos go in runs of at most reassemblySlots (the
// router's default reassembly slots), so segment 2 of a flow finds the
// slot segment 1 opened; their share of the mix shrinks as unit grows
// beyond that (Workload.Parts says exactly what was sent).
func Workloads(a Addresses, unit int) ([]Workload, error) {
	t, err := Templates(a)
	if err != nil {
		return nil, err
	}
	if unit < 1 || unit > 1<<24 {
		return nil, fmt.Errorf("bench: workload unit %d: want 1..2^24", unit)
	}
	p := func(slot, w int) Part { return Part{Template: t[slot], Weight: w * unit} }
	pq := func(slot int) Part { return Part{Template: t[slot], Weight: min(unit, reassemblySlots)} }
	return []Workload{
		{Name: "64B", Parts: []Part{p(slotSYN, 1), p(slotACK, 1)}},
		{Name: "1514B", Parts: []Part{p(slotData, 1)}},
		{Name: "mix", Parts: []Part{
			p(slotSYN, 2), p(slotACK, 12), p(slotData, 2),
			p(slotHelloLegacy, 1), p(slotHelloMigrating, 1),
			pq(slotPQLegacy1), pq(slotPQLegacy2),
			pq(slotPQMigrating1), pq(slotPQMigrating2),
		}},
	}, nil
}

// clientBase is the generator's source network: 10.98.0.0/16, outside
// the bed's fabric; the generator writes the last 16 bits. SYNs come from
// synBase, 10.97.0.0/16: a stateful middlebox that sees no replies (the
// nodes answer nothing here) would call a flow's ACK after its SYN
// invalid (conntrack: SYN_SENT + ACK), so SYNs open flows of their own
// and the other templates' flows are picked up mid-stream, as
// established.
var (
	clientBase = netip.MustParseAddr("10.98.0.0")
	synBase    = netip.MustParseAddr("10.97.0.0")
)
