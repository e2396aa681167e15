package offline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/internal/capture"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring"
)

// ErrBadCapture marks the errors of PcapRing caused by the capture file
// itself (not a capture, corrupt anywhere in it): the caller named the
// wrong input, as with a bad flag.
var ErrBadCapture = errors.New("bad capture file")

// PcapRing is a Ring over capture files, so the pipeline can forward a
// capture offline: Receive reads the next frames of a pcap or pcapng file
// (Ethernet, Linux cooked SLL/SLL2 or raw IP, read by package capture and
// turned into Ethernet frames), Transmit writes what the router would send
// to an Ethernet pcap file, with each frame's original timestamp. Frames
// the pipeline drops are simply not written. It is for tools and tests,
// not for speed.
type PcapRing struct {
	in        *capture.Reader
	out       *pcapgo.Writer
	flush     *bufio.Writer
	umem      []byte
	frameSize int
	free      []uint64
	stamp     []time.Time // capture time per slot
	origLen   []int       // length on the wire per slot
	eof       bool
	last      time.Time

	vips   *classify.VIPs
	onPass func(frame []byte, v classify.Verdict)
	pkt    parser.Packet

	// Read, Written and Oversize count frames read, frames written, and
	// frames skipped because they exceed the frame size. Unconvertible
	// counts packets skipped because they could not be made into an
	// Ethernet frame (a cooked or raw-IP packet too short or not IP).
	Read, Written, Oversize, Unconvertible uint64
	// Passed counts, by verdict, the frames that Classify's rule passed to
	// the kernel instead of handing them over.
	Passed [classify.NumVerdicts]uint64
}

// maxCaptureFrame caps the frame size: the parser takes at most 64 KiB,
// and larger slots would only hold frames the parser refuses.
const maxCaptureFrame = 1 << 16

// NewPcapRing reads frames from the capture of the given size in in (pcap
// or pcapng, see package capture) and writes transmitted frames to out as
// Ethernet pcap (out may be nil to discard them). frames and frameSize
// (64..64 KiB) size the UMEM; frames larger than a slot are skipped and
// counted.
func NewPcapRing(in io.ReaderAt, size int64, out io.Writer, frames, frameSize int) (*PcapRing, error) {
	if frames <= 0 || frameSize < 64 || frameSize > maxCaptureFrame {
		return nil, fmt.Errorf("offline: NewPcapRing: need frames > 0 and 64 <= frameSize <= %d, got %d, %d", maxCaptureFrame, frames, frameSize)
	}
	src, err := capture.Open(in, size)
	if err != nil {
		return nil, fmt.Errorf("offline: reading capture: %w: %w", ErrBadCapture, err)
	}
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
			return nil, fmt.Errorf("offline: writing capture header: %w", err)
		}
	}
	return r, nil
}

// Classify makes Receive apply the XDP program's rule for vips (package
// classify), so the capture is forwarded as the live router would: a
// frame the program would pass to the kernel is counted in Passed, shown
// to onPass (if not nil; the frame is valid during the call, Now is its
// capture time) and never handed over.
func (r *PcapRing) Classify(vips *classify.VIPs, onPass func(frame []byte, v classify.Verdict)) {
	r.vips, r.onPass = vips, onPass
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
func (r *PcapRing) Receive(batch []ring.Desc, timeoutMs int) (int, error) {
	n := 0
	for n < len(batch) && len(r.free) > 0 && !r.eof {
		data, ts, err := r.in.Next()
		if errors.Is(err, io.EOF) {
			r.eof = true
			break
		}
		if errors.Is(err, capture.ErrUnconvertible) {
			r.Unconvertible++
			continue
		}
		if err != nil {
			// A corrupt record ends the input: nothing after it can be
			// trusted to be where the file says.
			r.eof = true
			return n, fmt.Errorf("offline: reading capture: %w: %w", ErrBadCapture, err)
		}
		r.Read++
		if r.vips != nil {
			if v := r.vips.Frame(data, &r.pkt); v != classify.Redirect {
				r.Passed[v]++
				r.last = ts
				if r.onPass != nil {
					r.onPass(data, v)
				}
				continue
			}
		}
		if len(data) > r.frameSize {
			r.Oversize++
			continue
		}
		addr := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		copy(r.umem[addr:], data)
		s := addr / uint64(r.frameSize)
		r.stamp[s] = ts
		r.origLen[s] = r.in.WireLength()
		r.last = ts
		batch[n] = ring.Desc{Addr: addr, Len: uint32(len(data))}
		n++
	}
	if n == 0 && r.eof {
		return 0, io.EOF
	}
	return n, nil
}

// Transmit implements Ring: every frame is written at once.
func (r *PcapRing) Transmit(batch []ring.Desc) (int, error) {
	for i, d := range batch {
		if d.Addr%uint64(r.frameSize) != 0 || d.Addr >= uint64(len(r.umem)) || d.Len > uint32(r.frameSize) {
			return i, fmt.Errorf("offline: PcapRing.Transmit: bad descriptor %+v", d)
		}
		if r.out != nil {
			s := d.Addr / uint64(r.frameSize)
			ci := gopacket.CaptureInfo{
				Timestamp:     r.stamp[s],
				CaptureLength: int(d.Len),
				Length:        max(int(d.Len), r.origLen[s]),
			}
			if err := r.out.WritePacket(ci, r.umem[d.Addr:d.Addr+uint64(d.Len)]); err != nil {
				return i, fmt.Errorf("offline: writing capture: %w", err)
			}
		}
		r.Written++
		r.free = append(r.free, d.Addr)
	}
	return len(batch), nil
}

// Release implements Ring.
func (r *PcapRing) Release(batch []ring.Desc) {
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

var _ ring.Ring = (*PcapRing)(nil)
