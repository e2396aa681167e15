package afxdp

import (
	"context"
	"testing"

	"github.com/anysched/anysched/ring"
)

// fakeRing hands out the same frames again and again and takes at most
// txRoom frames per Transmit.
type fakeRing struct {
	umem               []byte
	frames             []ring.Desc
	txRoom             int
	sent, released     int
	receives, maxCalls int
	cancel             func()
}

func (f *fakeRing) UMEM() []byte   { return f.umem }
func (f *fakeRing) FrameSize() int { return 2048 }
func (f *fakeRing) Receive(b []ring.Desc, _ int) (int, error) {
	f.receives++
	if f.maxCalls > 0 && f.receives >= f.maxCalls && f.cancel != nil {
		f.cancel()
	}
	return copy(b, f.frames), nil
}
func (f *fakeRing) Transmit(b []ring.Desc) (int, error) {
	n := min(len(b), f.txRoom)
	f.sent += n
	return n, nil
}
func (f *fakeRing) Release(b []ring.Desc) { f.released += len(b) }
func (f *fakeRing) Reclaim() error        { return nil }

func newFakeRing(n int) *fakeRing {
	f := &fakeRing{umem: make([]byte, n*2048), txRoom: 1 << 30}
	for i := 0; i < n; i++ {
		a := uint64(i * 2048)
		copy(f.umem[a:], []byte{1, 1, 1, 1, 1, byte(i), 2, 2, 2, 2, 2, byte(i)})
		f.frames = append(f.frames, ring.Desc{Addr: a, Len: 60})
	}
	return f
}

func TestReflectBatchSwapsAndReleases(t *testing.T) {
	f := newFakeRing(4)
	f.frames[2].Len = 11                       // too short for two MACs
	f.frames[3].Addr = uint64(len(f.umem)) - 8 // runs past the UMEM
	var st ReflectStats
	batch := append([]ring.Desc(nil), f.frames...)
	if err := reflectBatch(f, f.umem, batch, &st); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		h := f.umem[i*2048 : i*2048+12]
		want := []byte{2, 2, 2, 2, 2, byte(i), 1, 1, 1, 1, 1, byte(i)}
		if string(h) != string(want) {
			t.Errorf("frame %d header %x, want %x", i, h, want)
		}
	}
	if f.sent != 2 || f.released != 2 || st.Reflected.Load() != 2 || st.Released.Load() != 2 {
		t.Errorf("sent %d released %d stats %d/%d, want 2/2", f.sent, f.released, st.Reflected.Load(), st.Released.Load())
	}

	// A full TX ring: what does not fit is released, not lost.
	f = newFakeRing(8)
	f.txRoom = 3
	st = ReflectStats{}
	if err := reflectBatch(f, f.umem, append([]ring.Desc(nil), f.frames...), &st); err != nil {
		t.Fatal(err)
	}
	if f.sent != 3 || f.released != 5 {
		t.Errorf("sent %d released %d, want 3 and 5", f.sent, f.released)
	}
}

func TestReflectStopsOnCancel(t *testing.T) {
	f := newFakeRing(64)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.maxCalls = cancel, 10
	var st ReflectStats
	if err := Reflect(ctx, f, &st); err != nil {
		t.Fatal(err)
	}
	if st.Batches.Load() != 10 || st.Reflected.Load() != 640 {
		t.Errorf("batches %d reflected %d, want 10 and 640", st.Batches.Load(), st.Reflected.Load())
	}
}

func TestReflectBatchAllocatesNothing(t *testing.T) {
	f := newFakeRing(ReflectBatch)
	var st ReflectStats
	batch := make([]ring.Desc, ReflectBatch)
	allocs := testing.AllocsPerRun(200, func() {
		copy(batch, f.frames)
		reflectBatch(f, f.umem, batch, &st)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

func BenchmarkReflectBatch(b *testing.B) {
	f := newFakeRing(ReflectBatch)
	var st ReflectStats
	batch := make([]ring.Desc, ReflectBatch)
	b.ReportAllocs()
	for b.Loop() {
		copy(batch, f.frames)
		reflectBatch(f, f.umem, batch, &st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ReflectBatch), "ns/frame")
}
