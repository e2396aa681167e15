package lookup

import (
	"math/rand/v2"
	"testing"

	"github.com/anysched/anysched/parser"
)

// TestFlowTableOccupancy checks the bucket bitmap that lets probes skip
// empty buckets: after any sequence of inserts, removes, lookups (which
// expire) and sweeps, a bucket's bit is set exactly when one of its
// entries is, and a lookup finds a key exactly when a plain scan of its
// bucket does.
func TestFlowTableOccupancy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ft := newFlowTable(64, 0) // 8 buckets: collisions and full buckets
	now := int64(1000)
	scan := func(k *parser.FlowKey, h uint64) (uint16, bool) {
		b := ft.bucketOf(h)
		for i := b; i < b+bucketSize; i++ {
			if ft.tags[i] == tagOf(h) && ft.entries[i].key == *k && ft.entries[i].deadline > now {
				return ft.entries[i].node, true
			}
		}
		return NoNode, false
	}
	for step := range 20000 {
		i := r.IntN(200)
		k := keyN(i)
		h := HashFlow(refKey(), &k)
		switch op := r.IntN(10); {
		case op < 4:
			ft.insert(&k, h, uint16(i), now+int64(r.IntN(50)), now)
		case op < 6:
			ft.remove(&k, h)
		case op < 9:
			wantNode, want := scan(&k, h)
			if n, ok := ft.lookup(&k, h, now); ok != want || n != wantNode {
				t.Fatalf("step %d: key %d: lookup %d,%v, scan %d,%v", step, i, n, ok, wantNode, want)
			}
		default:
			ft.sweep(now, r.IntN(16))
		}
		now += int64(r.IntN(3))
		for b := range len(ft.tags) / bucketSize {
			used := false
			for _, tg := range ft.tags[b*bucketSize : (b+1)*bucketSize] {
				used = used || tg != 0
			}
			if bit := ft.occupied[b/64]&(1<<(b%64)) != 0; bit != used {
				t.Fatalf("step %d: bucket %d: bit %v, entries %v", step, b, bit, used)
			}
		}
	}
}
