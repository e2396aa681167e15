package migration

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the stores' now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockedStore(capacity int) (*MemoryReplayStore, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := NewMemoryReplayStore(capacity)
	s.now = clock.now
	return s, clock
}

func nonceN(n uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[8:], n)
	return b
}

func mustClaim(t *testing.T, s ReplayStore, nonce []byte, expiry time.Time, want bool) {
	t.Helper()
	got, err := s.Claim(context.Background(), nonce, expiry)
	if err != nil {
		t.Fatalf("Claim(%x): %v", nonce, err)
	}
	if got != want {
		t.Fatalf("Claim(%x) = %v, want %v", nonce, got, want)
	}
}

func TestMemoryReplayStoreFirstUseOnly(t *testing.T) {
	s, clock := newClockedStore(8)
	exp := clock.now().Add(time.Minute)
	mustClaim(t, s, nonceN(1), exp, true)
	mustClaim(t, s, nonceN(1), exp, false)
	mustClaim(t, s, nonceN(1), exp.Add(time.Hour), false)
	mustClaim(t, s, nonceN(2), exp, true)
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
}

func TestMemoryReplayStoreForgetsAtExpiry(t *testing.T) {
	s, clock := newClockedStore(8)
	exp := clock.now().Add(time.Minute)
	mustClaim(t, s, nonceN(1), exp, true)
	clock.advance(time.Minute - time.Nanosecond)
	mustClaim(t, s, nonceN(1), exp, false)
	clock.advance(time.Nanosecond)
	mustClaim(t, s, nonceN(2), exp.Add(time.Minute), true)
	if s.Len() != 1 {
		t.Fatalf("Len = %d after the first nonce expired, want 1", s.Len())
	}
	mustClaim(t, s, nonceN(1), exp.Add(time.Minute), true)
}

func TestMemoryReplayStorePastExpiryKeepsNothing(t *testing.T) {
	s, clock := newClockedStore(1)
	now := clock.now()
	mustClaim(t, s, nonceN(1), now, true)
	mustClaim(t, s, nonceN(1), now.Add(-time.Hour), true)
	if s.Len() != 0 {
		t.Fatalf("Len = %d after claims that lapse at once, want 0", s.Len())
	}
	mustClaim(t, s, nonceN(2), now.Add(time.Minute), true)
	// A held nonce is still refused, and a full store still answers a
	// lapsed claim (it needs no slot).
	mustClaim(t, s, nonceN(2), now.Add(-time.Hour), false)
	mustClaim(t, s, nonceN(3), now.Add(-time.Hour), true)
}

func TestMemoryReplayStoreFullFailsClosed(t *testing.T) {
	const capacity = 64
	s, clock := newClockedStore(capacity)
	for i := range capacity {
		// Expiries 1..64 s, inserted in reverse so the heap must reorder.
		mustClaim(t, s, nonceN(uint64(i)), clock.now().Add(time.Duration(capacity-i)*time.Second), true)
	}
	for _, n := range []uint64{1000, 1001} {
		ok, err := s.Claim(context.Background(), nonceN(n), clock.now().Add(time.Hour))
		if ok || !errors.Is(err, ErrReplayStoreFull) {
			t.Fatalf("Claim on a full store = %v, %v; want false, ErrReplayStoreFull", ok, err)
		}
	}
	// A held nonce is still recognised as a replay when the store is full.
	mustClaim(t, s, nonceN(5), clock.now().Add(time.Hour), false)
	if s.Len() != capacity {
		t.Fatalf("Len = %d, want %d", s.Len(), capacity)
	}
	clock.advance(3 * time.Second) // nonces 61..63 (expiry 3, 2, 1 s) lapse
	for n := uint64(1000); n < 1003; n++ {
		mustClaim(t, s, nonceN(n), clock.now().Add(time.Hour), true)
	}
	if _, err := s.Claim(context.Background(), nonceN(1003), clock.now().Add(time.Hour)); !errors.Is(err, ErrReplayStoreFull) {
		t.Fatalf("after three expired and three were added: err = %v, want ErrReplayStoreFull", err)
	}
	mustClaim(t, s, nonceN(60), clock.now().Add(time.Hour), false) // expiry 4 s: still live
	// Nonce 61 was dropped at its expiry: it is new again, and there is no
	// slot for it.
	if _, err := s.Claim(context.Background(), nonceN(61), clock.now().Add(time.Hour)); !errors.Is(err, ErrReplayStoreFull) {
		t.Fatalf("an expired nonce on a full store: err = %v, want ErrReplayStoreFull", err)
	}
}

// TestMemoryReplayStoreEvictsExactlyTheExpired checks the heap against a
// plain list over random expiries.
func TestMemoryReplayStoreEvictsExactlyTheExpired(t *testing.T) {
	s, clock := newClockedStore(10_000)
	rng := rand.New(rand.NewPCG(1, 2))
	expiries := map[uint64]time.Time{}
	var next uint64
	for round := 0; round < 200; round++ {
		for range 40 {
			exp := clock.now().Add(time.Duration(rng.IntN(30_000)) * time.Millisecond)
			mustClaim(t, s, nonceN(next), exp, true)
			expiries[next] = exp
			next++
		}
		clock.advance(time.Duration(rng.IntN(500)) * time.Millisecond)
		mustClaim(t, s, nonceN(1<<62), clock.now(), true) // triggers eviction, keeps nothing
		live := 0
		for n, exp := range expiries {
			if exp.After(clock.now()) {
				live++
			} else {
				delete(expiries, n)
			}
		}
		if s.Len() != live {
			t.Fatalf("round %d: Len = %d, want %d live nonces", round, s.Len(), live)
		}
	}
	for n := range expiries {
		mustClaim(t, s, nonceN(n), clock.now().Add(time.Hour), false)
	}
}

// TestMemoryReplayStoreFloodStaysBounded floods a small store with a
// thousand times its capacity, both with nonces that expire as the flood
// goes on and with nonces that never do, and checks that neither the count
// nor the heap grows beyond what the capacity explains.
func TestMemoryReplayStoreFloodStaysBounded(t *testing.T) {
	const capacity = 1000
	const flood = 1000 * capacity
	s, clock := newClockedStore(capacity)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	full := 0
	for i := range flood {
		// Ten new claims per millisecond, each live for 150 ms: about 1500
		// want a slot at any time, so the store is full part of the time.
		if i%10 == 0 {
			clock.advance(time.Millisecond)
		}
		_, err := s.Claim(context.Background(), nonceN(uint64(i)), clock.now().Add(150*time.Millisecond))
		if errors.Is(err, ErrReplayStoreFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
		if s.Len() > capacity {
			t.Fatalf("claim %d: Len = %d > capacity %d", i, s.Len(), capacity)
		}
	}
	if full == 0 || full == flood {
		t.Fatalf("%d of %d claims found the store full; the flood did not exercise both paths", full, flood)
	}
	for i := range flood {
		_, err := s.Claim(context.Background(), nonceN(uint64(flood+i)), clock.now().Add(time.Hour))
		if err != nil && !errors.Is(err, ErrReplayStoreFull) {
			t.Fatal(err)
		}
	}
	if s.Len() != capacity {
		t.Fatalf("Len = %d after a flood of live nonces, want %d", s.Len(), capacity)
	}

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 1000 entries of a 16-byte key, a map slot and a heap slot are tens of
	// KiB; 2 million distinct nonces kept would be over 100 MiB.
	const bound = 4 << 20
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > bound {
		t.Fatalf("heap grew by %d bytes over a flood of %d nonces into a %d-slot store (bound %d)", grown, 2*flood, capacity, bound)
	}
	runtime.KeepAlive(s)
}

func TestMemoryReplayStoreConcurrentClaimsWinOnce(t *testing.T) {
	s, clock := newClockedStore(10_000)
	const nonces, workers = 2000, 8
	wins := make([]int, nonces)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range nonces {
				n := (i + w*nonces/workers) % nonces
				ok, err := s.Claim(context.Background(), nonceN(uint64(n)), clock.now().Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					wins[n]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for n, w := range wins {
		if w != 1 {
			t.Fatalf("nonce %d claimed first %d times", n, w)
		}
	}
}

func TestMemoryReplayStoreCanceledContext(t *testing.T) {
	s, clock := newClockedStore(8)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, err := s.Claim(ctx, nonceN(1), clock.now().Add(time.Minute)); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim with a canceled context = %v, %v", ok, err)
	}
	if s.Len() != 0 {
		t.Fatal("a canceled Claim stored its nonce")
	}
}

func TestMemoryReplayStoreDefaultCapacity(t *testing.T) {
	for _, c := range []int{0, -1} {
		if got := NewMemoryReplayStore(c).Capacity(); got != DefaultReplayCapacity {
			t.Fatalf("NewMemoryReplayStore(%d).Capacity() = %d, want %d", c, got, DefaultReplayCapacity)
		}
	}
	if got := NewMemoryReplayStore(5).Capacity(); got != 5 {
		t.Fatalf("Capacity() = %d, want 5", got)
	}
}

func TestMemoryReplayStoreUsesTheWallClock(t *testing.T) {
	s := NewMemoryReplayStore(4)
	mustClaim(t, s, nonceN(1), time.Now().Add(time.Hour), true)
	mustClaim(t, s, nonceN(1), time.Now().Add(time.Hour), false)
	mustClaim(t, s, nonceN(2), time.Now().Add(-time.Second), true)
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}
