package offline

import (
	"bytes"
	"testing"

	"github.com/anysched/anysched/ring"
)

func TestMemRingQueueMode(t *testing.T) {
	r := NewMemRing(4, 128)
	var sent [][]byte
	r.OnTransmit = func(f []byte) { sent = append(sent, append([]byte(nil), f...)) }
	for i := range 4 {
		if err := r.Inject(bytes.Repeat([]byte{byte(i)}, 60+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Inject(make([]byte, 60)); err != ErrRingFull {
		t.Fatalf("inject into a full ring: %v", err)
	}
	if err := r.Inject(make([]byte, 129)); err != ErrFrameTooLarge {
		t.Fatalf("inject of an oversize frame: %v", err)
	}
	batch := make([]ring.Desc, 3)
	n, _ := r.Receive(batch, 0)
	if n != 3 {
		t.Fatalf("received %d, want 3", n)
	}
	for i, d := range batch[:n] {
		if d.Len != uint32(60+i) || r.UMEM()[d.Addr] != byte(i) {
			t.Fatalf("desc %d: %+v, first byte %d", i, d, r.UMEM()[d.Addr])
		}
	}
	r.TxLimit = 1
	if n, _ := r.Transmit(batch[:2]); n != 1 {
		t.Fatalf("transmit took %d with TxLimit 1", n)
	}
	r.Release(batch[1:3])
	if r.Free() != 2 || r.InFlight() != 1 {
		t.Fatalf("free %d in flight %d", r.Free(), r.InFlight())
	}
	if err := r.Reclaim(); err != nil || r.Free() != 3 {
		t.Fatalf("after reclaim: free %d, %v", r.Free(), err)
	}
	if len(sent) != 1 || len(sent[0]) != 60 {
		t.Fatalf("sent %d frames", len(sent))
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	// Releasing a frame twice is an ownership error the ring reports.
	r.Release(batch[1:2])
	if r.Err() == nil {
		t.Fatal("double release not reported")
	}
}

func TestMemRingReplayRestoresFrames(t *testing.T) {
	tpl := make([]byte, 200)
	for i := range tpl {
		tpl[i] = byte(i)
	}
	r := NewMemRing(8, 256)
	if err := r.Replay([][]byte{tpl, tpl[:100]}); err != nil {
		t.Fatal(err)
	}
	batch := make([]ring.Desc, 16)
	for round := range 5 {
		n, _ := r.Receive(batch, 0)
		if n != 8 {
			t.Fatalf("round %d: received %d", round, n)
		}
		for i, d := range batch[:n] {
			f := r.UMEM()[d.Addr : d.Addr+uint64(d.Len)]
			if want := tpl[:200-100*(i%2)]; !bytes.Equal(f, want) {
				t.Fatalf("round %d: frame differs from template", round)
			}
			f[0], f[50] = 0xee, 0xee
		}
		r.Transmit(batch[:n])
		r.Reclaim()
	}
	allocs := testing.AllocsPerRun(100, func() {
		n, _ := r.Receive(batch, 0)
		r.Transmit(batch[:n])
		r.Reclaim()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per replay round", allocs)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}
