// Package ring is the boundary between a fast-path worker and the packet
// I/O of one queue: a Ring of frames in a shared buffer (UMEM), named by
// descriptors, handed over a batch at a time. package afxdp implements it
// over an AF_XDP socket; package ring/offline over memory and capture
// files. It has no dependencies, so the worker and every I/O back end can
// import it without importing each other.
package ring

// Desc names one frame in a Ring's packet buffer (UMEM): its offset and its
// length. It has the layout of an AF_XDP descriptor, so an AF_XDP Ring can
// pass descriptors through without conversion.
type Desc struct {
	Addr uint64
	Len  uint32
}

// Ring is the packet I/O of one queue. Its calls are per batch, never per
// packet: a frame is read and rewritten in place as
// UMEM()[d.Addr : d.Addr+uint64(d.Len)].
type Ring interface {
	// UMEM returns the packet buffer that every Desc points into. It does
	// not change for the life of the Ring.
	UMEM() []byte
	// FrameSize is the size of one frame slot in the UMEM.
	FrameSize() int
	// Receive waits at most timeoutMs milliseconds (0: do not wait, -1:
	// forever) for frames and stores up to len(batch) descriptors in batch.
	Receive(batch []Desc, timeoutMs int) (n int, err error)
	// Transmit queues frames for sending and returns how many it took; the
	// caller retries the rest. Frames it took belong to the Ring again.
	Transmit(batch []Desc) (n int, err error)
	// Release gives back frames that will not be sent (dropped) so they can
	// be filled with new packets.
	Release(batch []Desc)
	// Reclaim makes completed transmissions available for reception again.
	Reclaim() error
}
