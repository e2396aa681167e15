package offline

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/anysched/anysched/ring"
)

// ErrFrameTooLarge is returned by MemRing.Inject for a frame that does not
// fit in one frame slot.
var ErrFrameTooLarge = errors.New("offline: frame larger than the ring's frame size")

// ErrRingFull is returned by MemRing.Inject when every frame slot is in use.
var ErrRingFull = errors.New("offline: no free frame in the ring")

// MemRing is a Ring in ordinary memory for tests and benchmarks. It has a
// UMEM of fixed-size frame slots and keeps the same ownership rules as an
// AF_XDP socket: a slot is free, waiting for reception, handed to the
// caller, or transmitted and waiting for Reclaim. Ownership mistakes (a
// descriptor released twice, a foreign address) are reported by Err, not
// hidden.
//
// It runs in one of two modes. Queue mode (the default): Inject copies a
// frame in, Receive hands it out, Transmit passes each sent frame to the
// OnTransmit hook. Replay mode (Replay): Receive writes the next of a set
// of template frames into each free slot, so a benchmark can run the
// pipeline forever without allocation.
type MemRing struct {
	umem       []byte
	frameSize  int
	frameShift uint // frameSize == 1 << frameShift
	frames     int

	// free is a FIFO of free slot addresses.
	free                 []uint64
	freeHead, freeLen    int
	pending              []ring.Desc // injected, not yet received
	pendingHead, pendLen int
	completed            []ring.Desc // transmitted, not yet reclaimed
	state                []slotState

	// Replay mode: the frames to hand out in turn, stored back to back.
	templates    []replayTemplate
	templateData []byte
	nextTemplate int

	// OnTransmit, when set, sees every transmitted frame before the ring
	// takes it back. The slice is only valid during the call.
	OnTransmit func(frame []byte)
	// TxLimit, when positive, caps how many frames one Transmit takes, to
	// exercise the caller's handling of partial transmits.
	TxLimit int

	// Counters of what passed through the ring.
	Received, Transmitted, Released, Reclaimed uint64

	err error
}

type replayTemplate struct {
	off, length uint32
}

type slotState uint8

const (
	slotFree slotState = iota
	slotPending
	slotWithCaller
	slotTransmitted
)

// NewMemRing returns a MemRing of frames slots of frameSize bytes each;
// frameSize is a power of two of at least 64, as AF_XDP frame sizes are.
func NewMemRing(frames, frameSize int) *MemRing {
	if frames <= 0 || frameSize < 64 || frameSize&(frameSize-1) != 0 {
		panic(fmt.Sprintf("offline: NewMemRing(%d, %d): need frames > 0 and a power-of-two frameSize >= 64", frames, frameSize))
	}
	r := &MemRing{
		umem:       make([]byte, frames*frameSize),
		frameSize:  frameSize,
		frameShift: uint(bits.TrailingZeros(uint(frameSize))),
		frames:     frames,
		free:       make([]uint64, frames),
		pending:    make([]ring.Desc, frames),
		completed:  make([]ring.Desc, 0, frames),
		state:      make([]slotState, frames),
	}
	for i := range frames {
		r.free[i] = uint64(i * frameSize)
	}
	r.freeLen = frames
	return r
}

// UMEM implements Ring.
func (r *MemRing) UMEM() []byte { return r.umem }

// FrameSize implements Ring.
func (r *MemRing) FrameSize() int { return r.frameSize }

// Err returns the first ownership violation the ring saw, or nil.
func (r *MemRing) Err() error { return r.err }

// Free returns the number of free slots.
func (r *MemRing) Free() int { return r.freeLen }

// Pending returns the number of injected frames not yet received.
func (r *MemRing) Pending() int { return r.pendLen }

// Frames returns the number of frame slots.
func (r *MemRing) Frames() int { return r.frames }

// InFlight returns the number of slots that are transmitted but not yet
// reclaimed.
func (r *MemRing) InFlight() int { return len(r.completed) }

func (r *MemRing) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("offline: MemRing: "+format, args...)
	}
}

func (r *MemRing) popFree() (uint64, bool) {
	if r.freeLen == 0 {
		return 0, false
	}
	a := r.free[r.freeHead]
	r.freeHead++
	if r.freeHead == r.frames {
		r.freeHead = 0
	}
	r.freeLen--
	return a, true
}

func (r *MemRing) pushFree(addr uint64) {
	i := r.freeHead + r.freeLen
	if i >= r.frames {
		i -= r.frames
	}
	r.free[i] = addr
	r.freeLen++
}

// slot validates a descriptor handed back by the caller and returns its
// slot index, or -1; badSlot says what was wrong.
func (r *MemRing) slot(d ring.Desc, want slotState) int {
	i := d.Addr >> r.frameShift
	if d.Addr&uint64(r.frameSize-1) != 0 || i >= uint64(len(r.state)) || r.state[i] != want || d.Len > uint32(r.frameSize) {
		r.badSlot(d, want)
		return -1
	}
	return int(i)
}

func (r *MemRing) badSlot(d ring.Desc, want slotState) {
	switch i := d.Addr >> r.frameShift; {
	case d.Addr&uint64(r.frameSize-1) != 0 || d.Addr >= uint64(len(r.umem)):
		r.fail("descriptor address %d is not a frame slot", d.Addr)
	case r.state[i] != want:
		r.fail("descriptor %d in state %d, expected %d", d.Addr, r.state[i], want)
	default:
		r.fail("descriptor %d length %d exceeds the frame size", d.Addr, d.Len)
	}
}

// Inject copies frame into a free slot and queues it for Receive. It is
// for queue mode only.
func (r *MemRing) Inject(frame []byte) error {
	if r.templates != nil {
		return errors.New("offline: MemRing.Inject in replay mode")
	}
	if len(frame) > r.frameSize {
		return ErrFrameTooLarge
	}
	addr, ok := r.popFree()
	if !ok {
		return ErrRingFull
	}
	copy(r.umem[addr:], frame)
	r.state[addr>>r.frameShift] = slotPending
	i := r.pendingHead + r.pendLen
	if i >= r.frames {
		i -= r.frames
	}
	r.pending[i] = ring.Desc{Addr: addr, Len: uint32(len(frame))}
	r.pendLen++
	return nil
}

// Replay switches the ring to replay mode: Receive hands out as many
// frames as asked while free slots last, each a fresh copy of the next
// template in turn (as a NIC writes each packet), so a benchmark can run
// the pipeline forever, over as many flows as there are templates, without
// allocation. Every template must fit in a frame slot.
func (r *MemRing) Replay(templates [][]byte) error {
	if len(templates) == 0 {
		return errors.New("offline: MemRing.Replay with no templates")
	}
	if r.freeLen != r.frames {
		return errors.New("offline: MemRing.Replay on a ring in use")
	}
	r.templates = make([]replayTemplate, len(templates))
	r.templateData = nil
	for i, tpl := range templates {
		if len(tpl) > r.frameSize {
			return ErrFrameTooLarge
		}
		r.templates[i] = replayTemplate{off: uint32(len(r.templateData)), length: uint32(len(tpl))}
		r.templateData = append(r.templateData, tpl...)
	}
	return nil
}

// Receive implements Ring. It never waits: an empty ring returns 0.
func (r *MemRing) Receive(batch []ring.Desc, timeoutMs int) (int, error) {
	n := 0
	if r.templates != nil {
		// The FIFO and template cursors live in registers for the batch.
		head, next := r.freeHead, r.nextTemplate
		n = min(len(batch), r.freeLen)
		for i := range batch[:n] {
			addr := r.free[head]
			if head++; head == r.frames {
				head = 0
			}
			tpl := r.templates[next]
			if next++; next == len(r.templates) {
				next = 0
			}
			copy(r.umem[addr:addr+uint64(tpl.length)], r.templateData[tpl.off:tpl.off+tpl.length])
			r.state[addr>>r.frameShift] = slotWithCaller
			batch[i] = ring.Desc{Addr: addr, Len: tpl.length}
		}
		r.freeHead, r.freeLen, r.nextTemplate = head, r.freeLen-n, next
	} else {
		for n < len(batch) && r.pendLen > 0 {
			d := r.pending[r.pendingHead]
			r.pendingHead++
			if r.pendingHead == r.frames {
				r.pendingHead = 0
			}
			r.pendLen--
			r.state[d.Addr>>r.frameShift] = slotWithCaller
			batch[n] = d
			n++
		}
	}
	r.Received += uint64(n)
	return n, nil
}

// Transmit implements Ring.
func (r *MemRing) Transmit(batch []ring.Desc) (int, error) {
	n := len(batch)
	if r.TxLimit > 0 && n > r.TxLimit {
		n = r.TxLimit
	}
	// completed has room for every frame and a frame is in it at most
	// once (its state says so), so append never grows it.
	completed := r.completed
	align, frameSize, state := uint64(r.frameSize-1), uint32(r.frameSize), r.state
	for _, d := range batch[:n] {
		// slot's checks, written out: the call does not inline.
		s := d.Addr >> r.frameShift
		if d.Addr&align != 0 || s >= uint64(len(state)) || state[s] != slotWithCaller || d.Len > frameSize {
			r.badSlot(d, slotWithCaller)
			continue
		}
		if r.OnTransmit != nil {
			r.OnTransmit(r.umem[d.Addr : d.Addr+uint64(d.Len)])
		}
		r.state[s] = slotTransmitted
		completed = append(completed, d)
	}
	r.completed = completed
	r.Transmitted += uint64(n)
	return n, nil
}

// Release implements Ring.
func (r *MemRing) Release(batch []ring.Desc) {
	for _, d := range batch {
		s := r.slot(d, slotWithCaller)
		if s < 0 {
			continue
		}
		r.state[s] = slotFree
		r.pushFree(d.Addr)
	}
	r.Released += uint64(len(batch))
}

// Reclaim implements Ring.
func (r *MemRing) Reclaim() error {
	tail := r.freeHead + r.freeLen
	for _, d := range r.completed {
		r.state[d.Addr>>r.frameShift] = slotFree
		if tail >= r.frames {
			tail -= r.frames
		}
		r.free[tail] = d.Addr
		tail++
	}
	r.freeLen += len(r.completed)
	r.Reclaimed += uint64(len(r.completed))
	r.completed = r.completed[:0]
	return nil
}

var _ ring.Ring = (*MemRing)(nil)
