// Package capture owns reading packet captures: classic pcap and pcapng
// files, detected by their magic number, turned into Ethernet frames with
// their capture timestamps. Linux cooked captures (SLL, SLL2: tcpdump -i
// any) and raw-IP captures get an Ethernet header in front of their network
// layer. Every length a file claims is bounded before anything is
// allocated for it, so a hostile or corrupt header yields an error naming
// what is wrong, never a multi-gigabyte allocation or a panic.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// LinkType is a capture's LINKTYPE_ value. gopacket v1.1.19 keeps link
// types in a uint8 (layers.LinkType), which turns LINKTYPE_LINUX_SLL2 (276,
// what tcpdump -i any writes nowadays) into 20; this package reads the real
// value from the file headers itself.
type LinkType uint16

// The link types a Reader converts to Ethernet.
const (
	LinkEthernet LinkType = 1
	LinkRaw      LinkType = 101
	LinkSLL      LinkType = 113
	LinkIPv4     LinkType = 228
	LinkIPv6     LinkType = 229
	LinkSLL2     LinkType = 276
)

// Supported reports whether a Reader converts frames of link type lt.
func (lt LinkType) Supported() bool {
	switch lt {
	case LinkEthernet, LinkSLL, LinkSLL2, LinkRaw, LinkIPv4, LinkIPv6:
		return true
	}
	return false
}

// MaxFrameLen is the longest Ethernet frame a Reader returns for a cooked
// or raw-IP packet (the largest IP packet plus an Ethernet header fits).
const MaxFrameLen = 0xffff

// ErrUnconvertible marks a packet that is readable but cannot be made into
// an Ethernet frame (a cooked or raw-IP packet too short, of an unknown IP
// version, or too long). The Reader stays usable: the caller skips the
// packet and calls Next again.
var ErrUnconvertible = errors.New("packet cannot be converted to an Ethernet frame")

// Reader reads the packets of one capture as Ethernet frames.
type Reader struct {
	// One of pcap and ng is set.
	pcap         *pcapgo.Reader
	pcapLinkType LinkType
	ng           *pcapgo.NgReader
	widened      *linkTypeTable // from checkPcapngBlocks
	scratch      []byte
	packets      int // read so far, for error messages
	wireLen      int
}

// Open checks the capture of the given size held by r (for pcapng, every
// block's lengths, before gopacket's reader allocates what they claim) and
// opens it.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	widened, err := checkPcapngBlocks(r, size)
	if err != nil {
		return nil, err
	}
	return openCapture(io.NewSectionReader(r, 0, size), widened)
}

// Next returns the next packet as an Ethernet frame and its capture time.
// The frame is valid until the next call. At the end of the capture it
// returns io.EOF. A packet that cannot be converted gives an error wrapping
// ErrUnconvertible and the Reader goes on with the next one; every other
// error (a corrupt record, a link type it does not convert) is final.
func (r *Reader) Next() (frame []byte, ts time.Time, err error) {
	var (
		data []byte
		ci   gopacket.CaptureInfo
	)
	if r.pcap != nil {
		// The zero-copy read reuses one buffer of the (capped) snap
		// length: no allocation per packet.
		data, ci, err = r.pcap.ZeroCopyReadPacketData()
	} else {
		// Not the zero-copy read: that one allocates the interface's snap
		// length, which the file may set to 4 GiB.
		data, ci, err = r.ng.ReadPacketData()
	}
	if errors.Is(err, io.EOF) {
		return nil, time.Time{}, io.EOF
	}
	r.packets++
	n := r.packets
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("corrupt capture at packet %d: %w", n, err)
	}
	lt := r.pcapLinkType
	if r.ng != nil {
		intf, err := r.ng.Interface(ci.InterfaceIndex)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("packet on interface %d: %w", ci.InterfaceIndex, err)
		}
		lt = r.widened.widen(intf.LinkType)
	}
	if !lt.Supported() {
		return nil, time.Time{}, fmt.Errorf("packet %d: link type %d is not supported (Ethernet, Linux SLL/SLL2 and raw IP are); capture on an Ethernet interface", n, lt)
	}
	frame, ok := toEthernet(lt, data, r.scratch)
	if !ok {
		return nil, ci.Timestamp, fmt.Errorf("packet %d (link type %d, %d bytes): %w", n, lt, len(data), ErrUnconvertible)
	}
	// The wire length grows or shrinks with the link-layer header swapped.
	r.wireLen = max(ci.Length+len(frame)-len(data), len(frame))
	return frame, ci.Timestamp, nil
}

// WireLength is the length on the wire of the frame Next returned last, as
// an Ethernet frame: more than its length when the capture cut it short.
func (r *Reader) WireLength() int { return r.wireLen }

// openCapture detects pcap or pcapng by the magic number and opens the
// matching pcapgo reader. widened holds the link types of the pcapng
// interface description blocks, from checkPcapngBlocks.
func openCapture(r io.Reader, widened *linkTypeTable) (*Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, errors.New("too short for a pcap or pcapng header")
	}
	scratch := make([]byte, MaxFrameLen)
	switch m := binary.LittleEndian.Uint32(magic); m {
	case pcapngSectionHeader: // the same in both byte orders
		// Without WantMixedLinkType pcapgo silently drops packets of
		// interfaces whose link type differs from the first one's.
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("corrupt pcapng: %w", err)
		}
		return &Reader{ng: ng, widened: widened, scratch: scratch}, nil
	case 0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1:
		hdr, err := br.Peek(24)
		if err != nil {
			return nil, errors.New("corrupt pcap: file header cut short")
		}
		var order binary.ByteOrder = binary.LittleEndian
		if m == 0xD4C3B2A1 || m == 0x4D3CB2A1 {
			order = binary.BigEndian
		}
		// The low 16 bits are the link type; the high ones may carry the
		// FCS length.
		lt := LinkType(order.Uint32(hdr[20:24]))
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("corrupt pcap: %w", err)
		}
		// pcapgo allocates each record's captured length (checked only
		// against the header's snap length) before reading it; a corrupt
		// header must not make it ask for gigabytes.
		pr.SetSnaplen(min(pr.Snaplen(), maxSnaplen))
		return &Reader{pcap: pr, pcapLinkType: lt, scratch: scratch}, nil
	}
	return nil, fmt.Errorf("not a pcap or pcapng file (magic %x)", magic)
}

// linkTypeTable undoes gopacket's uint8 truncation of pcapng interface
// link types: for each truncated value, the 16-bit link type of the first
// interface block that truncates to it. A table, not a list searched per
// packet, so a file with many interface blocks costs one lookup a packet
// (a list made reading 100k interfaces quadratic).
type linkTypeTable struct {
	full [256]LinkType
	set  [256]bool
}

// add records an interface block's link type unless an earlier block
// with the same truncated value did.
func (t *linkTypeTable) add(lt LinkType) {
	if !t.set[uint8(lt)] {
		t.full[uint8(lt)], t.set[uint8(lt)] = lt, true
	}
}

// widen returns the 16-bit link type behind a truncated one; a value no
// interface block had is returned as it is. A nil table widens nothing.
func (t *linkTypeTable) widen(truncated layers.LinkType) LinkType {
	if t != nil && t.set[uint8(truncated)] {
		return t.full[uint8(truncated)]
	}
	return LinkType(truncated)
}

const (
	pcapngSectionHeader        = 0x0A0D0D0A
	pcapngInterfaceDescription = 1
	// maxSnaplen is libpcap's MAXIMUM_SNAPLEN, the largest snap length
	// tcpdump writes.
	maxSnaplen = 262144
)

// checkPcapngBlocks walks the block structure of a pcapng file of the given
// size (type, length, body, repeated length), reports a block that is cut
// short or whose lengths disagree, and returns the link types of the
// interface description blocks. Its work is linear in the number of
// blocks: a constant number of small reads each. pcapgo's NgReader reports a file that
// ends inside a block as a clean end of file, which would hide a corrupt
// capture. For anything else it does nothing (pcapgo reports a cut classic
// pcap record itself).
func checkPcapngBlocks(f io.ReaderAt, size int64) (*linkTypeTable, error) {
	var hdr [12]byte
	if n, _ := f.ReadAt(hdr[:4], 0); n < 4 || binary.LittleEndian.Uint32(hdr[:4]) != pcapngSectionHeader {
		return nil, nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	widened := new(linkTypeTable)
	for off := int64(0); off < size; {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			return nil, fmt.Errorf("corrupt pcapng: block header at offset %d cut short", off)
		}
		if binary.LittleEndian.Uint32(hdr[:4]) == pcapngSectionHeader {
			if _, err := f.ReadAt(hdr[8:12], off+8); err != nil {
				return nil, fmt.Errorf("corrupt pcapng: section header at offset %d cut short", off)
			}
			switch {
			case binary.LittleEndian.Uint32(hdr[8:12]) == 0x1A2B3C4D:
				order = binary.LittleEndian
			case binary.BigEndian.Uint32(hdr[8:12]) == 0x1A2B3C4D:
				order = binary.BigEndian
			default:
				return nil, fmt.Errorf("corrupt pcapng: bad byte-order magic at offset %d", off)
			}
		}
		length := int64(order.Uint32(hdr[4:8]))
		if length < 12 || length%4 != 0 || off+length > size {
			return nil, fmt.Errorf("corrupt pcapng: block at offset %d has length %d (file size %d)", off, length, size)
		}
		var trailer [4]byte
		if _, err := f.ReadAt(trailer[:], off+length-4); err != nil || int64(order.Uint32(trailer[:])) != length {
			return nil, fmt.Errorf("corrupt pcapng: block at offset %d: trailing length does not match %d", off, length)
		}
		// pcapgo allocates a packet's captured length before reading it:
		// check it against the block so a lying field cannot ask for GBs.
		if lenOff, overhead, ok := pcapngCaptureLengthField(order.Uint32(hdr[:4])); ok {
			var field [4]byte
			if length < overhead {
				return nil, fmt.Errorf("corrupt pcapng: packet block at offset %d is %d bytes, shorter than its header", off, length)
			}
			if _, err := f.ReadAt(field[:], off+lenOff); err != nil || int64(order.Uint32(field[:])) > length-overhead {
				return nil, fmt.Errorf("corrupt pcapng: packet block at offset %d claims more packet bytes than its length %d", off, length)
			}
		}
		if order.Uint32(hdr[:4]) == pcapngInterfaceDescription {
			var lt [2]byte
			if length < 20 {
				return nil, fmt.Errorf("corrupt pcapng: interface block at offset %d is %d bytes", off, length)
			}
			if _, err := f.ReadAt(lt[:], off+8); err != nil {
				return nil, fmt.Errorf("corrupt pcapng: interface block at offset %d cut short", off)
			}
			widened.add(LinkType(order.Uint16(lt[:])))
		}
		off += length
	}
	return widened, nil
}

// pcapngCaptureLengthField returns, for a block type that carries packet
// data, the offset of the field pcapgo takes as the captured length and the
// bytes of the block that are not packet data. A simple packet block's
// field is the original length (pcapgo caps it by the snap length only
// when one is set), so a simple packet block cut by a snap length is
// rejected too; tcpdump and dumpcap write enhanced packet blocks.
func pcapngCaptureLengthField(blockType uint32) (off, overhead int64, ok bool) {
	switch blockType {
	case 6: // enhanced packet block
		return 20, 32, true
	case 2: // obsolete packet block
		return 20, 32, true
	case 3: // simple packet block
		return 8, 16, true
	}
	return 0, 0, false
}

// The Linux cooked capture (SLL, SLL2) header lengths and the offsets of
// their protocol (EtherType) field.
const (
	sllHeaderLen   = 16
	sllProtoOff    = 14
	sll2HeaderLen  = 20
	sll2ProtoOff   = 0
	ethernetHdrLen = 14
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86DD
)

// toEthernet returns the packet as an Ethernet frame, rewriting the
// link-layer header of cooked and raw-IP captures into scratch. ok is
// false for frames it cannot convert.
func toEthernet(lt LinkType, data, scratch []byte) (frame []byte, ok bool) {
	var proto uint16
	var l3 []byte
	switch lt {
	case LinkEthernet:
		return data, true
	case LinkSLL:
		if len(data) < sllHeaderLen {
			return nil, false
		}
		proto, l3 = binary.BigEndian.Uint16(data[sllProtoOff:]), data[sllHeaderLen:]
	case LinkSLL2:
		if len(data) < sll2HeaderLen {
			return nil, false
		}
		proto, l3 = binary.BigEndian.Uint16(data[sll2ProtoOff:]), data[sll2HeaderLen:]
	case LinkRaw, LinkIPv4, LinkIPv6:
		if len(data) == 0 {
			return nil, false
		}
		l3 = data
		switch data[0] >> 4 {
		case 4:
			proto = etherTypeIPv4
		case 6:
			proto = etherTypeIPv6
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	if ethernetHdrLen+len(l3) > len(scratch) {
		return nil, false
	}
	clear(scratch[:12])
	binary.BigEndian.PutUint16(scratch[12:], proto)
	n := copy(scratch[ethernetHdrLen:], l3)
	return scratch[:ethernetHdrLen+n], true
}
