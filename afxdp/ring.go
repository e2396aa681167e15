package afxdp

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/anysched/anysched/ring"
	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// RingOptions size one AF_XDP socket. Zero fields take the defaults.
type RingOptions struct {
	// NumFrames is the number of UMEM frames (default 4096).
	NumFrames int
	// FrameSize is the size of one frame, a power of two from 2048 to the
	// page size (default 2048; the largest frame is FrameSize-256 bytes in
	// copy mode).
	FrameSize int
	// FillRingSize, CompletionRingSize, RxRingSize and TxRingSize are the
	// ring entry counts, powers of two (default 2048 each).
	FillRingSize, CompletionRingSize, RxRingSize, TxRingSize int
	// Copy forbids zero-copy; otherwise zero-copy is tried first.
	Copy bool
}

// Defaults for RingOptions.
const (
	DefaultNumFrames = 4096
	DefaultFrameSize = 2048
	DefaultRingSize  = 2048
)

func (o *RingOptions) applyDefaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.NumFrames, DefaultNumFrames)
	def(&o.FrameSize, DefaultFrameSize)
	def(&o.FillRingSize, DefaultRingSize)
	def(&o.CompletionRingSize, DefaultRingSize)
	def(&o.RxRingSize, DefaultRingSize)
	def(&o.TxRingSize, DefaultRingSize)
	pow2 := func(name string, v, lo, hi int) error {
		if v < lo || v > hi || v&(v-1) != 0 {
			return fmt.Errorf("afxdp: %s = %d: want a power of two in [%d, %d]", name, v, lo, hi)
		}
		return nil
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{
		{"FrameSize", o.FrameSize, 2048, unix.Getpagesize()},
		{"FillRingSize", o.FillRingSize, 64, 1 << 16},
		{"CompletionRingSize", o.CompletionRingSize, 64, 1 << 16},
		{"RxRingSize", o.RxRingSize, 64, 1 << 16},
		{"TxRingSize", o.TxRingSize, 64, 1 << 16},
	} {
		if err := pow2(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if o.NumFrames < 64 || o.NumFrames > 1<<20 {
		return fmt.Errorf("afxdp: NumFrames = %d: want 64..%d", o.NumFrames, 1<<20)
	}
	return nil
}

// Ring is a ring.Ring over one AF_XDP socket (one RX queue).
//
// Frame ownership: every UMEM frame is in exactly one place — the free
// stack, the fill ring, the RX ring, the caller's hands, the TX ring or the
// completion ring. Receive hands frames to the caller; Transmit and Release
// take them back; Reclaim moves completed transmissions to the fill ring.
// The free stack holds frames the fill ring has no room for, so none is
// ever lost. A Ring is used by one goroutine at a time.
type Ring struct {
	sock     *xdp.Socket
	opts     RingOptions
	queue    int
	zeroCopy bool
	// zeroCopyErr says why zero-copy was refused, nil if it was not tried
	// or worked.
	zeroCopyErr error
	umem        []byte

	free      []uint64   // frames owned by no ring, a stack
	fillBuf   []xdp.Desc // scratch for Fill
	txBuf     []xdp.Desc // scratch for Transmit
	compRing  []byte     // second, read-only mapping of the completion ring
	compProd  *uint32
	compCons  *uint32
	compDescs unsafe.Pointer // *[CompletionRingSize]uint64
	compMask  uint32
	pollFD    [1]unix.PollFd

	// Statistics, updated per batch.
	rxFrames, txFrames, kicks, kickErrors, badRelease, badTransmit atomic.Uint64
}

var _ ring.Ring = (*Ring)(nil)

// The library reads its bind flags from a package variable.
var socketFlagsMu sync.Mutex

// NewRing opens an AF_XDP socket on queue of the interface ifindex with
// its own UMEM, fills the fill ring and returns the Ring. It tries
// zero-copy first unless opts.Copy; the caller learns the mode from
// ZeroCopy.
func NewRing(ifindex, queue int, opts RingOptions) (*Ring, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	so := &xdp.SocketOptions{
		NumFrames:              opts.NumFrames,
		FrameSize:              opts.FrameSize,
		FillRingNumDescs:       opts.FillRingSize,
		CompletionRingNumDescs: opts.CompletionRingSize,
		RxRingNumDescs:         opts.RxRingSize,
		TxRingNumDescs:         opts.TxRingSize,
	}
	sock, zcErr, err := newSocket(ifindex, queue, so, !opts.Copy)
	if err != nil {
		return nil, err
	}
	r := &Ring{
		sock:        sock,
		opts:        opts,
		queue:       queue,
		zeroCopy:    zcErr == nil && !opts.Copy,
		zeroCopyErr: zcErr,
		free:        make([]uint64, 0, opts.NumFrames),
		fillBuf:     make([]xdp.Desc, opts.FillRingSize),
		txBuf:       make([]xdp.Desc, opts.TxRingSize),
	}
	// The UMEM starts at the address of frame 0.
	r.umem = sock.GetFrame(xdp.Desc{Addr: 0, Len: uint32(opts.NumFrames * opts.FrameSize)})
	if err := r.mapCompletionRing(); err != nil {
		sock.Close()
		return nil, err
	}
	for i := opts.NumFrames - 1; i >= 0; i-- {
		r.free = append(r.free, uint64(i)*uint64(opts.FrameSize))
	}
	r.topUpFill()
	r.pollFD[0] = unix.PollFd{Fd: int32(sock.FD()), Events: unix.POLLIN}
	return r, nil
}

// newSocket binds with zero-copy when asked and the driver has it, else in
// copy mode; need-wakeup in both. zcErr is why zero-copy was refused.
func newSocket(ifindex, queue int, so *xdp.SocketOptions, tryZeroCopy bool) (sock *xdp.Socket, zcErr, err error) {
	socketFlagsMu.Lock()
	defer socketFlagsMu.Unlock()
	defer func() { xdp.DefaultSocketFlags = 0 }()
	if tryZeroCopy {
		xdp.DefaultSocketFlags = unix.XDP_ZEROCOPY | unix.XDP_USE_NEED_WAKEUP
		sock, zcErr = xdp.NewSocket(ifindex, queue, so)
		if zcErr == nil {
			return sock, nil, nil
		}
	}
	xdp.DefaultSocketFlags = unix.XDP_COPY | unix.XDP_USE_NEED_WAKEUP
	sock, err = xdp.NewSocket(ifindex, queue, so)
	if err != nil {
		if zcErr != nil {
			return nil, nil, fmt.Errorf("afxdp: AF_XDP socket on ifindex %d queue %d: zero-copy: %v; copy: %w", ifindex, queue, zcErr, err)
		}
		return nil, nil, fmt.Errorf("afxdp: AF_XDP socket on ifindex %d queue %d (copy mode): %w", ifindex, queue, err)
	}
	return sock, zcErr, nil
}

// mapCompletionRing maps the completion ring a second time, read-only:
// the library's Complete consumes entries without telling which frames
// they held, and the Ring must know to recycle them.
func (r *Ring) mapCompletionRing() error {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(r.sock.FD()), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return fmt.Errorf("afxdp: XDP_MMAP_OFFSETS: %w", errno)
	}
	n := int(off.Cr.Desc) + r.opts.CompletionRingSize*8
	m, err := unix.Mmap(r.sock.FD(), unix.XDP_UMEM_PGOFF_COMPLETION_RING, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("afxdp: map completion ring: %w", err)
	}
	r.compRing = m
	r.compProd = (*uint32)(unsafe.Pointer(&m[off.Cr.Producer]))
	r.compCons = (*uint32)(unsafe.Pointer(&m[off.Cr.Consumer]))
	r.compDescs = unsafe.Pointer(&m[off.Cr.Desc])
	r.compMask = uint32(r.opts.CompletionRingSize - 1)
	return nil
}

// UMEM is the packet buffer all descriptors point into.
func (r *Ring) UMEM() []byte { return r.umem }

// FrameSize is the size of one UMEM frame.
func (r *Ring) FrameSize() int { return r.opts.FrameSize }

// Queue is the RX queue the socket is bound to.
func (r *Ring) Queue() int { return r.queue }

// ZeroCopy tells whether the socket runs in zero-copy mode.
func (r *Ring) ZeroCopy() bool { return r.zeroCopy }

// ZeroCopyError says why zero-copy was refused (nil when it was not tried
// or works).
func (r *Ring) ZeroCopyError() error { return r.zeroCopyErr }

// FD is the AF_XDP socket's file descriptor (the XSK map value).
func (r *Ring) FD() int { return r.sock.FD() }

// topUpFill moves frames from the free stack onto the fill ring.
func (r *Ring) topUpFill() {
	n := r.sock.NumFreeFillSlots()
	if n > len(r.free) {
		n = len(r.free)
	}
	if n == 0 {
		return
	}
	top := len(r.free) - n
	buf := r.fillBuf[:n]
	for i := range buf {
		buf[i].Addr = r.free[top+i]
	}
	filled := r.sock.Fill(buf)
	// Frames the fill ring did not take stay on the stack.
	copy(r.free[top:], r.free[top+filled:top+n])
	r.free = r.free[:top+n-filled]
}

// Receive takes up to len(batch) received frames, waiting at most
// timeoutMs (0: not at all, -1: forever) when none is ready.
func (r *Ring) Receive(batch []ring.Desc, timeoutMs int) (int, error) {
	r.topUpFill()
	if len(batch) == 0 {
		return 0, nil
	}
	if r.sock.NumReceived() == 0 {
		if timeoutMs == 0 && !r.zeroCopy {
			return 0, nil // copy mode fills in the kernel's receive path: no wakeup needed
		}
		// In zero-copy mode with need-wakeup the driver may wait for a
		// wakeup before it uses the fill ring again; poll gives it.
		r.pollFD[0].Revents = 0
		for {
			_, err := unix.Poll(r.pollFD[:], timeoutMs)
			if err == nil {
				break
			}
			if err != unix.EINTR {
				return 0, fmt.Errorf("afxdp: poll queue %d: %w", r.queue, err)
			}
		}
	}
	descs := r.sock.Receive(len(batch))
	for i, d := range descs {
		batch[i] = ring.Desc{Addr: d.Addr, Len: d.Len}
	}
	r.rxFrames.Add(uint64(len(descs)))
	r.topUpFill()
	return len(descs), nil
}

// maxKicksPerTransmit bounds the sendto calls one Transmit spends on
// draining the TX ring: in copy mode the kernel sends at most 32 frames
// per call, and a stalled device must not hold the loop forever.
const maxKicksPerTransmit = 256

// Transmit puts the frames on the TX ring and kicks the kernel until the
// ring is drained or stops moving. It returns how many frames it took; the
// rest did not fit (the TX ring is full) and stay the caller's. A
// descriptor the kernel would refuse (outside the UMEM, or crossing its
// frame's end) is taken, not sent: its frame goes back to the fill ring
// and BadTransmits counts it, so no frame is ever lost.
func (r *Ring) Transmit(batch []ring.Desc) (int, error) {
	if len(batch) == 0 && r.sock.NumFreeTxSlots() == r.opts.TxRingSize {
		r.reclaim()
		return 0, nil // nothing to send and nothing pending: no system call
	}
	fs := uint64(r.opts.FrameSize)
	umemLen := uint64(len(r.umem))
	taken := 0
	var err error
	for kicks := 0; kicks < maxKicksPerTransmit; kicks++ {
		r.reclaim() // the kernel stops sending when the completion ring is full
		free := r.sock.NumFreeTxSlots()
		n := len(batch) - taken
		if n > free {
			n = free
		}
		buf := r.txBuf[:0]
		for _, d := range batch[taken : taken+n] {
			if d.Len == 0 || d.Addr >= umemLen || d.Addr%fs+uint64(d.Len) > fs {
				r.badTransmit.Add(1)
				if d.Addr < umemLen && len(r.free) < cap(r.free) {
					r.free = append(r.free, d.Addr-d.Addr%fs)
				}
				continue
			}
			buf = append(buf, xdp.Desc{Addr: d.Addr, Len: d.Len})
		}
		// The library takes all of buf: it fits the free slots, and only
		// this goroutine produces.
		var got int
		got, err = r.submit(buf)
		taken += n
		if err != nil {
			break
		}
		after := r.sock.NumFreeTxSlots()
		if after == r.opts.TxRingSize && taken == len(batch) {
			break // all queued, and the kernel has taken everything
		}
		if consumed := after - (free - got); consumed <= 0 {
			break // the kernel took nothing: it sends later (zero-copy) or is stalled
		}
	}
	r.txFrames.Add(uint64(taken))
	r.reclaim()
	return taken, err
}

// submit queues buf and kicks once. The library panics on an unexpected
// sendto error (e.g. ENETDOWN when the link goes down): that becomes an
// error here.
func (r *Ring) submit(buf []xdp.Desc) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.kickErrors.Add(1)
			if e, ok := p.(error); ok {
				err = fmt.Errorf("afxdp: transmit on queue %d: %w", r.queue, e)
			} else {
				err = fmt.Errorf("afxdp: transmit on queue %d: %v", r.queue, p)
			}
			n = len(buf) // the library advanced the producer before the kick
		}
	}()
	r.kicks.Add(1)
	return r.sock.Transmit(buf), nil
}

// Release returns frames that will not be sent to the fill ring.
func (r *Ring) Release(batch []ring.Desc) {
	for _, d := range batch {
		if len(r.free) == cap(r.free) || d.Addr >= uint64(len(r.umem)) {
			r.badRelease.Add(1) // released twice, or not a frame of this ring
			continue
		}
		r.free = append(r.free, d.Addr-d.Addr%uint64(r.opts.FrameSize))
	}
	r.topUpFill()
}

// Reclaim moves completed transmissions to the fill ring.
func (r *Ring) Reclaim() error {
	r.reclaim()
	r.topUpFill()
	return nil
}

func (r *Ring) reclaim() {
	prod := atomic.LoadUint32(r.compProd)
	cons := atomic.LoadUint32(r.compCons)
	n := int(prod - cons)
	if n <= 0 {
		return
	}
	if n > r.opts.CompletionRingSize {
		n = r.opts.CompletionRingSize
	}
	for i := 0; i < n; i++ {
		addr := *(*uint64)(unsafe.Add(r.compDescs, 8*uintptr((cons+uint32(i))&r.compMask)))
		if len(r.free) < cap(r.free) {
			r.free = append(r.free, addr-addr%uint64(r.opts.FrameSize))
		}
	}
	r.sock.Complete(n)
}

// RingStats are a Ring's frame counts.
type RingStats struct {
	RxFrames, TxFrames, Kicks, KickErrors, BadReleases, BadTransmits uint64
	// Kernel holds the socket's drop counters (rx_dropped, rx_ring_full,
	// fill ring empty, invalid descriptors...).
	Kernel unix.XDPStatistics
}

// Stats reads the Ring's counters and the kernel's socket statistics. It
// may be called from any goroutine.
func (r *Ring) Stats() (RingStats, error) {
	s := RingStats{
		RxFrames: r.rxFrames.Load(), TxFrames: r.txFrames.Load(), Kicks: r.kicks.Load(),
		KickErrors: r.kickErrors.Load(), BadReleases: r.badRelease.Load(), BadTransmits: r.badTransmit.Load(),
	}
	size := uint32(unsafe.Sizeof(s.Kernel))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(r.sock.FD()), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&s.Kernel)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return s, fmt.Errorf("afxdp: XDP_STATISTICS: %w", errno)
	}
	return s, nil
}

// Close closes the socket and frees its UMEM.
func (r *Ring) Close() error {
	var errs []error
	if r.compRing != nil {
		if err := unix.Munmap(r.compRing); err != nil {
			errs = append(errs, err)
		}
		r.compRing = nil
	}
	if err := r.sock.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
