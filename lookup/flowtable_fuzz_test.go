package lookup

import (
	"testing"

	"github.com/anysched/anysched/parser"
)

// FuzzFlowTable runs arbitrary sequences of table operations (two bytes
// each: operation and key; the clock advances with each) on a 4-bucket
// table and checks after every one that the bookkeeping matches the
// entries (count, protected count, bucket bitmap) and that the segmented
// LRU holds: inserting a new key never evicts a protected entry while its
// bucket has a live probation entry, and never evicts a live entry while
// the bucket has a free or expired one.
func FuzzFlowTable(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 1, 0, 3, 2, 1, 3, 2, 4, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 1, 0, 0, 9})
	f.Add([]byte{0, 1, 1, 1, 2, 1, 5, 1, 6, 1, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 1024 {
			return // long sequences only repeat what short ones reach
		}
		ft := newFlowTable(32, 100)
		now := int64(1)
		for len(ops) >= 2 {
			op, ki := ops[0]%8, int(ops[1])
			ops = ops[2:]
			now += int64(op & 3)
			k := keyN(ki % 64)
			h := HashFlow(refKey(), &k)
			b := ft.bucketOf(h)
			switch op {
			case 0, 7: // insert (deadline a pin's or a record's)
				deadline := now + 100
				if op == 7 {
					deadline = now + int64(ki%7)
				}
				var live, protected []int
				hasProbation, hasRoom, present := false, false, false
				for i := b; i < b+bucketSize; i++ {
					e := &ft.entries[i]
					switch {
					case ft.tags[i] == 0 || e.deadline <= now:
						hasRoom = true
					case e.key == k:
						present = true
					default:
						live = append(live, i)
						if e.flags&flagProtected != 0 {
							protected = append(protected, i)
						} else {
							hasProbation = true
						}
					}
				}
				keys := map[int]parser.FlowKey{}
				for _, i := range live {
					keys[i] = ft.entries[i].key
				}
				ft.insert(&k, h, uint16(ki%64), deadline, now)
				if present {
					break
				}
				still := func(i int) bool { return ft.tags[i] != 0 && ft.entries[i].key == keys[i] }
				for _, i := range live {
					if hasRoom && !still(i) {
						t.Fatalf("evicted a live entry with room in the bucket")
					}
				}
				for _, i := range protected {
					if hasProbation && !still(i) {
						t.Fatalf("evicted a protected entry while a probation one was live")
					}
				}
			case 1: // a trusted later packet
				if i := ft.find(&k, h, now); i >= 0 {
					ft.touch(i, now)
					if ft.entries[i].flags&flagProtected == 0 {
						t.Fatal("touch did not protect")
					}
				}
			case 2: // RST
				if i := ft.find(&k, h, now); i >= 0 {
					before := ft.entries[i].deadline
					ft.shorten(i, now+int64(ki%5))
					if ft.entries[i].deadline > before {
						t.Fatal("shorten extended an entry")
					}
				}
			case 3:
				ft.remove(&k, h)
			case 4:
				ft.sweep(now, ki%16)
			case 5:
				n, ok := ft.peek(&k, h, now)
				if ok != ft.holds(&k, h, now) || ok && n != uint16(ki%64) {
					t.Fatalf("peek %d,%v; holds %v; key %d", n, ok, ft.holds(&k, h, now), ki%64)
				}
			case 6:
				if n, ok := ft.lookup(&k, h, now); ok && n != ft.entries[ft.find(&k, h, now)].node {
					t.Fatal("lookup returned another entry's node")
				}
			}
			checkFlowTable(t, ft)
		}
	})
}

func checkFlowTable(t *testing.T, ft *flowTable) {
	t.Helper()
	count, protected := 0, 0
	for b := range len(ft.tags) / bucketSize {
		used := false
		for i := b * bucketSize; i < (b+1)*bucketSize; i++ {
			if ft.tags[i] == 0 {
				continue
			}
			used = true
			count++
			if ft.entries[i].flags&flagProtected != 0 {
				protected++
			}
			if tagOf(HashFlow(refKey(), &ft.entries[i].key)) != ft.tags[i] || ft.bucketOf(HashFlow(refKey(), &ft.entries[i].key)) != b*bucketSize {
				t.Fatalf("entry %d is not where its hash puts it", i)
			}
		}
		if bit := ft.occupied[b/64]&(1<<(b%64)) != 0; bit != used {
			t.Fatalf("bucket %d: bit %v, entries %v", b, bit, used)
		}
	}
	if count != ft.count || protected != ft.protected || uint64(count) != ft.size.Load() || uint64(protected) != ft.protectedSize.Load() {
		t.Fatalf("count %d/%d, protected %d/%d", count, ft.count, protected, ft.protected)
	}
}
