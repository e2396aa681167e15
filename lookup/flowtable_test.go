package lookup

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

var keyN = packettest.FlowKeyN

func TestFlowTableBasics(t *testing.T) {
	ft := newFlowTable(64, 100)
	k1, k2 := keyN(1), keyN(2)
	h1, h2 := HashFlow(refKey(), &k1), HashFlow(refKey(), &k2)
	if _, ok := ft.lookup(&k1, h1, 0); ok {
		t.Fatal("hit in an empty table")
	}
	ft.insert(&k1, h1, 7, 100, 0)
	if n, ok := ft.lookup(&k1, h1, 50); !ok || n != 7 {
		t.Fatalf("lookup = %d, %v", n, ok)
	}
	// The hit at 50 extended the idle deadline to 150.
	if n, ok := ft.lookup(&k1, h1, 149); !ok || n != 7 {
		t.Fatalf("entry expired before its idle timeout: %d, %v", n, ok)
	}
	if _, ok := ft.lookup(&k2, h2, 149); ok {
		t.Fatal("hit for a key never inserted")
	}
	if _, ok := ft.lookup(&k1, h1, 249); ok {
		t.Fatal("entry outlived its idle timeout")
	}
	if ft.count != 0 || ft.expirations.Load() != 1 || ft.inserts.Load() != 1 {
		t.Fatalf("count %d expirations %d inserts %d", ft.count, ft.expirations.Load(), ft.inserts.Load())
	}
	ft.insert(&k2, h2, 3, 1000, 300)
	ft.insert(&k2, h2, 4, 1000, 300) // replaces
	if ft.count != 1 {
		t.Fatalf("count %d after re-insert", ft.count)
	}
	if !ft.remove(&k2, h2) || ft.remove(&k2, h2) || ft.count != 0 {
		t.Fatal("remove")
	}
}

// A full bucket evicts its least recently active probation entry; a
// touched (protected) entry outlives older untouched ones.
func TestFlowTableEvictsLeastRecentProbation(t *testing.T) {
	ft := newFlowTable(8, 1000) // one bucket
	if ft.capacity() != 8 {
		t.Fatalf("capacity %d", ft.capacity())
	}
	for i := range 8 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), uint16(i), int64(1000+i), int64(i))
	}
	// Touch key 0 (protected) so key 1 is the least recently active
	// probation entry.
	k0 := keyN(0)
	ft.lookup(&k0, HashFlow(refKey(), &k0), 500)
	k8 := keyN(8)
	ft.insert(&k8, HashFlow(refKey(), &k8), 8, 1600, 600)
	if ft.evictions() != 1 || ft.count != 8 {
		t.Fatalf("evictions %d count %d", ft.evictions(), ft.count)
	}
	k1 := keyN(1)
	if _, ok := ft.lookup(&k1, HashFlow(refKey(), &k1), 600); ok {
		t.Fatal("the least recently active probation entry was not the one evicted")
	}
	for _, i := range []int{0, 2, 7, 8} {
		k := keyN(i)
		if n, ok := ft.lookup(&k, HashFlow(refKey(), &k), 600); !ok || n != uint16(i) {
			t.Fatalf("key %d lost", i)
		}
	}
	// An expired entry is reused before anything is evicted.
	k9 := keyN(9)
	ft.insert(&k9, HashFlow(refKey(), &k9), 9, 5000, 1005)
	if ft.evictions() != 1 || ft.expirations.Load() == 0 {
		t.Fatalf("evictions %d expirations %d", ft.evictions(), ft.expirations.Load())
	}
}

func TestFlowTableSweep(t *testing.T) {
	ft := newFlowTable(1024, 10)
	for i := range 500 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), 1, 10, 0)
	}
	stored := 500 - int(ft.evictions())
	if ft.count != stored || stored < 490 {
		t.Fatalf("count %d, %d evictions", ft.count, ft.evictions())
	}
	removed := 0
	for range ft.capacity() / 64 {
		removed += ft.sweep(11, 64)
	}
	if removed != stored || ft.count != 0 || ft.size.Load() != 0 {
		t.Fatalf("swept %d, count %d", removed, ft.count)
	}
}

// A table big enough to be mapped on huge pages works like a small one
// and is released with its owner.
func TestLargeFlowTable(t *testing.T) {
	ft := newFlowTable(1<<18, 10)
	if ft.capacity() != 1<<18 {
		t.Fatalf("capacity %d", ft.capacity())
	}
	for i := range 50000 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), uint16(i), 1000, 0)
	}
	for i := range 50000 {
		k := keyN(i)
		if n, ok := ft.lookup(&k, HashFlow(refKey(), &k), 1); ok && n != uint16(i) {
			t.Fatalf("key %d maps to %d", i, n)
		}
	}
	if got := ft.count + int(ft.evictions()); got != 50000 {
		t.Fatalf("count %d + evictions %d", ft.count, ft.evictions())
	}
	ft = nil
	runtime.GC()
}

func BenchmarkPinTable(b *testing.B) {
	const capacity = 1 << 18
	r := rand.New(rand.NewPCG(3, 4))
	keys := make([]parser.FlowKey, 1<<16)
	hashes := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = randomKey(r, i%4 == 0)
		hashes[i] = HashFlow(refKey(), &keys[i])
	}
	const idle = int64(time.Minute)
	b.Run("insert", func(b *testing.B) {
		// Every insert is a new flow: time advances one tick per insert
		// and a key comes back only after its entry expired, as new
		// legacy flows do in steady state.
		const ttl = 1 << 15
		ft := newFlowTable(capacity, ttl)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			j := i & (len(keys) - 1)
			ft.insert(&keys[j], hashes[j], 1, int64(i)+ttl, int64(i))
			i++
		}
	})
	ft := newFlowTable(capacity, idle)
	for i := range keys {
		ft.insert(&keys[i], hashes[i], 1, idle, 0)
	}
	b.Run("lookup_hit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		var sink uint16
		for b.Loop() {
			j := i & (len(keys) - 1)
			n, _ := ft.lookup(&keys[j], hashes[j], 1)
			sink += n
			i++
		}
		_ = sink
	})
	b.Run("lookup_miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		var sink uint16
		for b.Loop() {
			j := i & (len(keys) - 1)
			n, _ := ft.lookup(&keys[j], ^hashes[j], 1)
			sink += n
			i++
		}
		_ = sink
	})
}

// oneBucketKeys returns n keys that share key 0's bucket in a table of
// the given capacity (all of them, for a one-bucket table).
func sameBucketKeys(ft *flowTable, n int) []parser.FlowKey {
	k0 := keyN(0)
	b := ft.bucketOf(HashFlow(refKey(), &k0))
	var out []parser.FlowKey
	for i := 0; len(out) < n; i++ {
		k := keyN(i)
		if ft.bucketOf(HashFlow(refKey(), &k)) == b {
			out = append(out, k)
		}
	}
	return out
}

// The segmented LRU: entries whose flow sent a later packet (touch)
// survive any number of one-shot inserts into their bucket; only when
// the whole bucket is protected does the least recently active go.
func TestFlowTableProbationAbsorbsOneShotFlows(t *testing.T) {
	ft := newFlowTable(64, 1000) // 8 buckets
	keys := sameBucketKeys(ft, 8+5000)
	talking := keys[:6]
	for i := range talking {
		h := HashFlow(refKey(), &talking[i])
		ft.insert(&talking[i], h, uint16(i), 1000, 0)
		if _, ok := ft.lookup(&talking[i], h, int64(1+i)); !ok {
			t.Fatalf("talking flow %d not found", i)
		}
	}
	if ft.protected != 6 || ft.promotions.Load() != 6 {
		t.Fatalf("protected %d promotions %d", ft.protected, ft.promotions.Load())
	}
	// A flood of one-shot flows into the same bucket, later than every
	// talking flow's last packet.
	for i, k := range keys[8:] {
		ft.insert(&k, HashFlow(refKey(), &k), 99, 1000, int64(10+i/100))
	}
	if ft.evictionsProtected.Load() != 0 || ft.evictionsProbation.Load() != uint64(5000-2) {
		t.Fatalf("evictions: probation %d protected %d", ft.evictionsProbation.Load(), ft.evictionsProtected.Load())
	}
	for i := range talking {
		if n, ok := ft.lookup(&talking[i], HashFlow(refKey(), &talking[i]), 100); !ok || n != uint16(i) {
			t.Fatalf("talking flow %d lost to one-shot flows", i)
		}
	}
	// The two probation entries left get promoted: the bucket is all
	// protected, and a new flow takes the least recently active entry.
	for _, k := range keys[8:] {
		if i := ft.find(&k, HashFlow(refKey(), &k), 100); i >= 0 {
			ft.touch(i, 200)
		}
	}
	if ft.protected != 8 {
		t.Fatalf("protected %d, want 8", ft.protected)
	}
	extra := keys[1]
	ft.remove(&extra, HashFlow(refKey(), &extra))
	ft.insert(&extra, HashFlow(refKey(), &extra), 1, 1000, 300) // probation, the only one
	ft.touch(ft.find(&extra, HashFlow(refKey(), &extra), 300), 300)
	newcomer := keys[7]
	ft.insert(&newcomer, HashFlow(refKey(), &newcomer), 7, 1000, 400)
	if ft.evictionsProtected.Load() != 1 {
		t.Fatalf("protected evictions %d, want 1", ft.evictionsProtected.Load())
	}
	// Talking flows were last active at 100 (keys 0, 2..5 at 100) and
	// the promoted flood survivors at 200: one of those at 100 went.
	lost := 0
	for _, i := range []int{0, 2, 3, 4, 5} {
		if !ft.holds(&talking[i], HashFlow(refKey(), &talking[i]), 400) {
			lost++
		}
	}
	if lost != 1 || !ft.holds(&extra, HashFlow(refKey(), &extra), 400) {
		t.Fatalf("%d of the least recently active lost, extra kept %v", lost, ft.holds(&extra, HashFlow(refKey(), &extra), 400))
	}
}

// An RST-shortened entry ends at the shorter deadline unless a later
// trusted packet restores the idle timeout; re-inserting keeps the
// entry's segment.
func TestFlowTableShortenAndRestore(t *testing.T) {
	ft := newFlowTable(64, 1000)
	k := keyN(1)
	h := HashFlow(refKey(), &k)
	i := ft.insert(&k, h, 3, 1000, 0)
	ft.touch(i, 10) // protected, deadline 1010
	if !ft.shorten(i, 60) || ft.shorten(i, 5000) {
		t.Fatal("shorten reports")
	}
	if ft.entries[i].deadline != 60 {
		t.Fatalf("deadline %d after shortening to 60 (a later shorten never extends)", ft.entries[i].deadline)
	}
	ft.touch(ft.find(&k, h, 50), 50)
	if ft.entries[i].deadline != 1050 || ft.entries[i].flags&flagShortened != 0 {
		t.Fatalf("touch did not restore the idle timeout: %+v", ft.entries[i])
	}
	ft.shorten(i, 100)
	if ft.find(&k, h, 100) >= 0 {
		t.Fatal("a shortened entry outlived its deadline")
	}
	i = ft.insert(&k, h, 3, 2000, 200)
	ft.touch(i, 210)
	ft.insert(&k, h, 4, 3000, 220)
	if e := ft.entries[i]; e.flags&flagProtected == 0 || e.node != 4 || ft.protected != 1 {
		t.Fatalf("re-insert changed the segment: %+v, %d protected", e, ft.protected)
	}
}
