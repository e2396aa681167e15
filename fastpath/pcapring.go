package fastpath

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// PcapRing is a Ring over capture files, so the pipeline can forward a
// capture offline: Receive reads the next frames of a pcap file (Ethernet
// link type only; tcpdump's default format), Transmit writes what the router would send to
// a pcap file, with each frame's original timestamp. Frames the pipeline
// drops are simply not written. It is for tools and tests, not for speed.
type PcapRing struct {
	in        *pcapgo.Reader
	out       *pcapgo.Writer
	flush     *bufio.Writer
	umem      []byte
	frameSize int
	free      []uint64
	stamp     []time.Time // capture time per slot
	origLen   []int       // length on the wire per slot
	eof       bool
	last      time.Time

	// Read, Written and Oversize count frames read, frames written, and
	// frames skipped because they exceed the frame size.
	Read, Written, Oversize uint64
}

// maxCaptureFrame caps the frame length read from a capture: the parser
// takes at most 64 KiB, and a hostile file header must not make the
// reader allocate more.
const maxCaptureFrame = 1 << 16

// NewPcapRing reads frames from in (pcap) and writes transmitted
// frames to out as pcap (out may be nil to discard them). frames and
// frameSize size the UMEM; frames larger than a slot are skipped and
// counted.
func NewPcapRing(in io.Reader, out io.Writer, frames, frameSize int) (*PcapRing, error) {
	if frames <= 0 || frameSize < 64 {
		return nil, fmt.Errorf("fastpath: NewPcapRing: need frames > 0 and frameSize >= 64, got %d, %d", frames, frameSize)
	}
	br := bufio.NewReader(in)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("fastpath: reading capture header: %w", err)
	}
	if magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a {
		// gopacket's pcapng reader allocates what a block claims before
		// checking it, so a crafted file could ask for gigabytes.
		return nil, errors.New("fastpath: pcapng is not supported; convert with: editcap -F pcap IN OUT")
	}
	src, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("fastpath: reading capture header: %w", err)
	}
	if lt := src.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("fastpath: capture link type %v, only Ethernet is supported", lt)
	}
	src.SetSnaplen(min(src.Snaplen(), maxCaptureFrame))
	r := &PcapRing{
		in:        src,
		umem:      make([]byte, frames*frameSize),
		frameSize: frameSize,
		free:      make([]uint64, 0, frames),
		stamp:     make([]time.Time, frames),
		origLen:   make([]int, frames),
	}
	for i := frames - 1; i >= 0; i-- {
		r.free = append(r.free, uint64(i*frameSize))
	}
	if out != nil {
		r.flush = bufio.NewWriter(out)
		r.out = pcapgo.NewWriterNanos(r.flush)
		if err := r.out.WriteFileHeader(uint32(frameSize), layers.LinkTypeEthernet); err != nil {
			return nil, fmt.Errorf("fastpath: writing capture header: %w", err)
		}
	}
	return r, nil
}

// UMEM implements Ring.
func (r *PcapRing) UMEM() []byte { return r.umem }

// FrameSize implements Ring.
func (r *PcapRing) FrameSize() int { return r.frameSize }

// Done reports whether the input is exhausted.
func (r *PcapRing) Done() bool { return r.eof }

// Now returns the capture time of the frame most recently received, so the
// pipeline's timeouts run on capture time when it replays a file.
func (r *PcapRing) Now() time.Time { return r.last }

// FrameTime returns the capture time of the frame in the slot at addr.
func (r *PcapRing) FrameTime(addr uint64) time.Time {
	return r.stamp[addr/uint64(r.frameSize)]
}

// Receive implements Ring. At the end of the input it returns 0, io.EOF.
func (r *PcapRing) Receive(batch []Desc, timeoutMs int) (int, error) {
	n := 0
	for n < len(batch) && len(r.free) > 0 && !r.eof {
		data, ci, err := r.in.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			r.eof = true
			break
		}
		if err != nil {
			return n, fmt.Errorf("fastpath: reading capture: %w", err)
		}
		r.Read++
		if len(data) > r.frameSize {
			r.Oversize++
			continue
		}
		addr := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		copy(r.umem[addr:], data)
		s := addr / uint64(r.frameSize)
		r.stamp[s] = ci.Timestamp
		r.origLen[s] = ci.Length
		r.last = ci.Timestamp
		batch[n] = Desc{Addr: addr, Len: uint32(len(data))}
		n++
	}
	if n == 0 && r.eof {
		return 0, io.EOF
	}
	return n, nil
}

// Transmit implements Ring: every frame is written at once.
func (r *PcapRing) Transmit(batch []Desc) (int, error) {
	for i, d := range batch {
		if d.Addr%uint64(r.frameSize) != 0 || d.Addr >= uint64(len(r.umem)) || d.Len > uint32(r.frameSize) {
			return i, fmt.Errorf("fastpath: PcapRing.Transmit: bad descriptor %+v", d)
		}
		if r.out != nil {
			s := d.Addr / uint64(r.frameSize)
			ci := gopacket.CaptureInfo{
				Timestamp:     r.stamp[s],
				CaptureLength: int(d.Len),
				Length:        max(int(d.Len), r.origLen[s]),
			}
			if err := r.out.WritePacket(ci, r.umem[d.Addr:d.Addr+uint64(d.Len)]); err != nil {
				return i, fmt.Errorf("fastpath: writing capture: %w", err)
			}
		}
		r.Written++
		r.free = append(r.free, d.Addr)
	}
	return len(batch), nil
}

// Release implements Ring.
func (r *PcapRing) Release(batch []Desc) {
	for _, d := range batch {
		r.free = append(r.free, d.Addr)
	}
}

// Reclaim implements Ring; written frames are free at once.
func (r *PcapRing) Reclaim() error { return nil }

// Close flushes the output. It does not close the underlying files.
func (r *PcapRing) Close() error {
	if r.flush != nil {
		return r.flush.Flush()
	}
	return nil
}

var _ Ring = (*PcapRing)(nil)
