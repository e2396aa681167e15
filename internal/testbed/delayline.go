package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A delayLine stands in for tc netem on kernels without sch_netem: the
// node's veth peer is not on the bridge; two AF_PACKET sockets in the
// fabric namespace copy frames between it and a second veth pair whose
// other end is on the bridge, holding frames from the node for the
// configured delay (like netem on the node's egress) and passing frames
// to the node at once.
//
//	node eth0 — pnI ⇄ (delay line) ⇄ rnI — qnI — br0
//
// It is a test tool: every frame costs two system calls, so it carries
// probes and handshakes well and is not for throughput runs.
type delayLine struct {
	delay   atomic.Int64 // nanoseconds
	node    *os.File     // on pnI
	fabric  *os.File     // on rnI
	queue   chan *heldFrame
	pool    sync.Pool
	dropped atomic.Uint64
	wg      sync.WaitGroup
}

type heldFrame struct {
	due time.Time
	n   int
	buf [2048]byte
}

// delayQueueLen bounds the frames held at once (like netem's limit).
const delayQueueLen = 4096

func packetFile(ifname string) (*os.File, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	// Frames this socket sends must not come back to it.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "packet:"+ifname), nil
}

// startDelayLine opens the sockets inside namespace ns and starts copying.
func startDelayLine(ns, nodeSide, fabricSide string) (*delayLine, error) {
	d := &delayLine{queue: make(chan *heldFrame, delayQueueLen)}
	d.pool.New = func() any { return new(heldFrame) }
	err := DoIn(ns, func() (err error) {
		if d.node, err = packetFile(nodeSide); err != nil {
			return err
		}
		d.fabric, err = packetFile(fabricSide)
		return err
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("testbed: delay line %s/%s: %w", nodeSide, fabricSide, err)
	}
	d.wg.Add(3)
	go d.toFabric()
	go d.release()
	go d.toNode()
	return d, nil
}

func (d *delayLine) set(delay time.Duration) { d.delay.Store(int64(delay)) }

// toFabric reads the node's frames and queues them with their due time.
func (d *delayLine) toFabric() {
	defer d.wg.Done()
	defer close(d.queue)
	for {
		h := d.pool.Get().(*heldFrame)
		n, err := d.node.Read(h.buf[:])
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			d.pool.Put(h)
			continue
		}
		h.n = n
		h.due = time.Now().Add(time.Duration(d.delay.Load()))
		select {
		case d.queue <- h:
		default:
			d.dropped.Add(1)
			d.pool.Put(h)
		}
	}
}

// release sends queued frames when they are due.
func (d *delayLine) release() {
	defer d.wg.Done()
	for h := range d.queue {
		if wait := time.Until(h.due); wait > 0 {
			time.Sleep(wait) // this is the delay itself
		}
		d.fabric.Write(h.buf[:h.n])
		d.pool.Put(h)
	}
}

// toNode passes frames for the node on without delay.
func (d *delayLine) toNode() {
	defer d.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := d.fabric.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		d.node.Write(buf[:n])
	}
}

func (d *delayLine) close() {
	if d.node != nil {
		d.node.Close()
	}
	if d.fabric != nil {
		d.fabric.Close()
	}
	if d.node != nil && d.fabric != nil {
		d.wg.Wait()
	}
}
