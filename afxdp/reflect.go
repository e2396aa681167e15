package afxdp

import (
	"context"
	"sync/atomic"

	"github.com/anysched/anysched/ring"
)

// ReflectStats counts a reflector's work; it may be read while Reflect runs.
type ReflectStats struct {
	Received  atomic.Uint64 // frames taken from the ring
	Reflected atomic.Uint64 // frames handed back for sending
	Released  atomic.Uint64 // frames too short to hold two MACs, or that did not fit on the TX ring
	Batches   atomic.Uint64 // non-empty receive batches
}

// ReflectBatch is the reflector's batch size.
const ReflectBatch = 64

// reflectPollMs bounds how long a receive waits, so cancellation is seen.
const reflectPollMs = 50

// Reflect sends every frame it receives back out of the ring with source
// and destination MAC swapped, parsing nothing else: the I/O ceiling of a
// test bed. It runs until ctx is done (returning nil) or the ring fails.
// stats may be nil. It allocates nothing per batch.
func Reflect(ctx context.Context, q ring.Ring, stats *ReflectStats) error {
	if stats == nil {
		stats = new(ReflectStats)
	}
	var batch [ReflectBatch]ring.Desc
	umem := q.UMEM()
	done := ctx.Done()
	for {
		select {
		case <-done:
			return nil
		default:
		}
		n, err := q.Receive(batch[:], reflectPollMs)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := q.Reclaim(); err != nil {
				return err
			}
			continue
		}
		if err := reflectBatch(q, umem, batch[:n], stats); err != nil {
			return err
		}
		if err := q.Reclaim(); err != nil {
			return err
		}
	}
}

// reflectBatch swaps the MACs of a received batch and sends it back; short
// frames and frames the TX ring has no room for are released.
func reflectBatch(q ring.Ring, umem []byte, batch []ring.Desc, stats *ReflectStats) error {
	n := len(batch)
	stats.Batches.Add(1)
	stats.Received.Add(uint64(n))
	// Short frames are moved to the tail of the batch and released.
	keep := n
	for i := 0; i < keep; {
		d := batch[i]
		if d.Len < 12 || d.Addr+uint64(d.Len) > uint64(len(umem)) {
			keep--
			batch[i], batch[keep] = batch[keep], batch[i]
			continue
		}
		swapMACs(umem[d.Addr : d.Addr+12])
		i++
	}
	if keep < n {
		q.Release(batch[keep:n])
		stats.Released.Add(uint64(n - keep))
	}
	sent, err := q.Transmit(batch[:keep])
	stats.Reflected.Add(uint64(sent))
	if sent < keep {
		// The TX ring is full: drop the rest rather than stall reception.
		q.Release(batch[sent:keep])
		stats.Released.Add(uint64(keep - sent))
	}
	return err
}

// swapMACs exchanges the destination and source addresses of an Ethernet
// header (the first 12 bytes).
func swapMACs(h []byte) {
	_ = h[11]
	var tmp [6]byte
	copy(tmp[:], h[0:6])
	copy(h[0:6], h[6:12])
	copy(h[6:12], tmp[:])
}
