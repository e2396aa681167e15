package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/asavie/xdp"
)

// PktgenConfig describes a burst of TCP frames.
type PktgenConfig struct {
	// Iface sends the frames; it is looked up in the calling thread's
	// namespace (run Pktgen inside Host.Do).
	Iface string
	// Queue is the TX queue (default 0).
	Queue int
	// SrcMAC and DstMAC are the Ethernet addresses (DstMAC: the router's).
	SrcMAC, DstMAC [6]byte
	// Src is the source address; Dst the destination address and port.
	Src netip.Addr
	Dst netip.AddrPort
	// Flows is the number of distinct source ports (default 256).
	Flows int
	// Payload is the TCP payload length (default 0: 54-byte IPv4 frames).
	Payload int
	// Flags are the TCP flags (default SYN).
	Flags byte
	// Count stops after this many frames (0: only Duration bounds).
	Count uint64
	// Duration stops after this long (0: only Count bounds).
	Duration time.Duration
}

// PktgenResult reports a burst.
type PktgenResult struct {
	// Sent counts frames the kernel completed (handed to the device).
	Sent    uint64
	Elapsed time.Duration
}

// PPS is the send rate.
func (r PktgenResult) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

const (
	pktgenFrameSize = 2048
	pktgenRing      = 2048
	// pktgenBatch matches what the kernel sends per kick in copy mode.
	pktgenBatch = 32
)

// Pktgen sends TCP frames as fast as it can from an AF_XDP socket (copy
// mode works on veth and needs no XDP program on the interface). The
// frames are built once in the UMEM, one per flow, and sent round-robin.
// It is bounded by Count, Duration and ctx; at least one bound is required.
//
// It binds with asavie/xdp's package-level flags: do not run it while
// another goroutine of the process opens AF_XDP sockets.
func Pktgen(ctx context.Context, cfg PktgenConfig) (PktgenResult, error) {
	if cfg.Count == 0 && cfg.Duration <= 0 {
		return PktgenResult{}, errors.New("testbed: pktgen needs Count or Duration")
	}
	if cfg.Flows == 0 {
		cfg.Flows = 256
	}
	if cfg.Flows < 1 || cfg.Flows > 4096 {
		return PktgenResult{}, fmt.Errorf("testbed: pktgen Flows = %d: want 1..4096", cfg.Flows)
	}
	if cfg.Payload < 0 || cfg.Payload > 1400 {
		return PktgenResult{}, fmt.Errorf("testbed: pktgen Payload = %d: want 0..1400", cfg.Payload)
	}
	if !cfg.Src.IsValid() || !cfg.Dst.IsValid() || cfg.Src.Unmap().Is4() != cfg.Dst.Addr().Unmap().Is4() {
		return PktgenResult{}, errors.New("testbed: pktgen Src and Dst must be valid and of one family")
	}
	if cfg.Flags == 0 {
		cfg.Flags = TCPSyn
	}
	ifi, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return PktgenResult{}, err
	}
	numFrames := 64
	for numFrames < cfg.Flows {
		numFrames *= 2
	}
	sock, err := xdp.NewSocket(ifi.Index, cfg.Queue, &xdp.SocketOptions{
		NumFrames: numFrames, FrameSize: pktgenFrameSize,
		FillRingNumDescs: 64, CompletionRingNumDescs: pktgenRing,
		RxRingNumDescs: 0, TxRingNumDescs: pktgenRing,
	})
	if err != nil {
		return PktgenResult{}, fmt.Errorf("testbed: pktgen socket on %s: %w", cfg.Iface, err)
	}
	defer sock.Close()

	payload := make([]byte, cfg.Payload)
	var frameLen uint32
	for i := 0; i < cfg.Flows; i++ {
		src := netip.AddrPortFrom(cfg.Src, uint16(10000+i))
		f := TCPFrame(cfg.SrcMAC, cfg.DstMAC, src, cfg.Dst, cfg.Flags, payload)
		frameLen = uint32(len(f))
		copy(sock.GetFrame(xdp.Desc{Addr: uint64(i) * pktgenFrameSize, Len: frameLen}), f)
	}

	descs := make([]xdp.Desc, pktgenBatch)
	var queued, completed uint64
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	next := 0
	for loops := 0; ; loops++ {
		if n := sock.NumCompleted(); n > 0 {
			sock.Complete(n)
			completed += uint64(n)
		}
		if loops%64 == 0 {
			if ctx.Err() != nil || (cfg.Duration > 0 && time.Now().After(deadline)) {
				break
			}
		}
		k := pktgenBatch
		if cfg.Count > 0 {
			if queued >= cfg.Count {
				break
			}
			k = int(min(uint64(k), cfg.Count-queued))
		}
		k = min(k, sock.NumFreeTxSlots())
		for i := 0; i < k; i++ {
			descs[i] = xdp.Desc{Addr: uint64(next) * pktgenFrameSize, Len: frameLen}
			next++
			if next == cfg.Flows {
				next = 0
			}
		}
		got, err := transmit(sock, descs[:k]) // k == 0 only kicks
		if err != nil {
			return PktgenResult{Sent: completed, Elapsed: time.Since(start)}, err
		}
		queued += uint64(got)
	}
	// Let the kernel finish what is queued, a bounded number of kicks.
	for i := 0; i < 1000 && completed < queued; i++ {
		if _, err := transmit(sock, nil); err != nil {
			break
		}
		if n := sock.NumCompleted(); n > 0 {
			sock.Complete(n)
			completed += uint64(n)
		}
	}
	return PktgenResult{Sent: completed, Elapsed: time.Since(start)}, nil
}

// transmit wraps the library's Transmit, which panics on unexpected
// sendto errors (e.g. ENETDOWN).
func transmit(sock *xdp.Socket, d []xdp.Desc) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("testbed: pktgen transmit: %v", p)
		}
	}()
	return sock.Transmit(d), nil
}
