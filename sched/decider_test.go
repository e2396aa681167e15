package sched

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/parser"
)

func keyN(i int) parser.FlowKey {
	var k parser.FlowKey
	k.SetIPv4([]byte{192, 0, 2, byte(i >> 16)}, []byte{10, 200, 0, 1})
	k.SrcPort, k.DstPort, k.Proto = uint16(i), 443, 6
	return k
}

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

// A full table evicts the oldest entry of the bucket.
func TestFlowTableEvictsOldest(t *testing.T) {
	ft := newFlowTable(8, 1000) // one bucket
	if ft.capacity() != 8 {
		t.Fatalf("capacity %d", ft.capacity())
	}
	for i := range 8 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), uint16(i), int64(1000+i), int64(i))
	}
	// Touch key 0 so key 1 is now the oldest.
	k0 := keyN(0)
	ft.lookup(&k0, HashFlow(refKey(), &k0), 500)
	k8 := keyN(8)
	ft.insert(&k8, HashFlow(refKey(), &k8), 8, 1600, 600)
	if ft.evictions.Load() != 1 || ft.count != 8 {
		t.Fatalf("evictions %d count %d", ft.evictions.Load(), ft.count)
	}
	k1 := keyN(1)
	if _, ok := ft.lookup(&k1, HashFlow(refKey(), &k1), 600); ok {
		t.Fatal("the oldest entry was not the one evicted")
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
	if ft.evictions.Load() != 1 || ft.expirations.Load() == 0 {
		t.Fatalf("evictions %d expirations %d", ft.evictions.Load(), ft.expirations.Load())
	}
}

func TestFlowTableSweep(t *testing.T) {
	ft := newFlowTable(1024, 10)
	for i := range 500 {
		k := keyN(i)
		ft.insert(&k, HashFlow(refKey(), &k), 1, 10, 0)
	}
	stored := 500 - int(ft.evictions.Load())
	if ft.count != stored || stored < 490 {
		t.Fatalf("count %d, %d evictions", ft.count, ft.evictions.Load())
	}
	removed := 0
	for range ft.capacity() / 64 {
		removed += ft.sweep(11, 64)
	}
	if removed != stored || ft.count != 0 || ft.size.Load() != 0 {
		t.Fatalf("swept %d, count %d", removed, ft.count)
	}
}

// testScheduler builds a scheduler over n equal nodes in one pool with a
// fake clock.
func testScheduler(t testing.TB, n int, m uint32, grace time.Duration, now *int64) *Scheduler {
	t.Helper()
	cfg, err := ParseConfig([]byte(testConfigYAML(n, m, grace, nil)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, WithClock(func() int64 { return *now }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testConfigYAML writes a config of n nodes; extra lines per node index
// (e.g. "drain: true") are added to that node.
func testConfigYAML(n int, m uint32, grace time.Duration, extra map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vips:\n  - address: 10.200.0.1\npolicy: weighted\ntable:\n  size: %d\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\ngrace_period: %v\npools:\n  - name: p\n    nodes:\n", m, grace)
	for i := range n {
		fmt.Fprintf(&b, "      - name: n%d\n        address: 10.201.0.%d\n", i, i+1)
		if e, ok := extra[i]; ok {
			fmt.Fprintf(&b, "        %s\n", e)
		}
	}
	return b.String()
}

func reloadWith(t testing.TB, s *Scheduler, n int, m uint32, grace time.Duration, extra map[int]string) {
	t.Helper()
	cfg, err := ParseConfig([]byte(testConfigYAML(n, m, grace, extra)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// findFlow returns a key whose slot is owned by the given node in snap.
func findFlow(snap *Snapshot, start int, pred func(slot Slot) bool) (parser.FlowKey, int) {
	for i := start; ; i++ {
		k := keyN(i)
		if pred(snap.Slots[snap.SlotOf(snap.Hash(&k))]) {
			return k, i
		}
	}
}

// The transition rule of DESIGN.md §5, end to end through the scheduler.
func TestTransitionRule(t *testing.T) {
	const grace = 5 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	d := NewDecider(DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	before := s.Current()

	// A flow on a slot of n2 starts before n2 is drained.
	old, i := findFlow(before, 0, func(sl Slot) bool { return before.Nodes[sl.Owner].Name == "n2" })
	if dec := d.Decide(before, &old, true, now); before.Nodes[dec.Node].Name != "n2" || dec.Via != ViaTable {
		t.Fatalf("SYN before the change: %+v", dec)
	}
	now += int64(time.Second)
	t0 := now
	reloadWith(t, s, 4, 1009, grace, map[int]string{2: "drain: true"})
	after := s.Current()
	if after.Generation != before.Generation+1 {
		t.Fatalf("generation %d", after.Generation)
	}
	slot := after.SlotOf(after.Hash(&old))
	st := after.Slots[slot]
	if after.Nodes[st.Owner].Name == "n2" || after.Nodes[st.Prev].Name != "n2" || st.Until != t0+int64(grace) {
		t.Fatalf("slot after drain: %+v", st)
	}
	newOwner := st.Owner

	// Through the grace period the old flow stays on n2.
	for _, at := range []int64{t0, t0 + int64(grace)/2, t0 + int64(grace) - 1} {
		if dec := d.Decide(after, &old, false, at); dec.Node != st.Prev || dec.Via != ViaTransitionOld {
			t.Fatalf("old flow at t0+%v: %+v", time.Duration(at-t0), dec)
		}
	}
	// A flow on the same slot that starts after the change goes to the
	// new owner, SYN and every later packet.
	fresh, _ := findFlow(after, i+1, func(sl Slot) bool { return sl == st })
	if dec := d.Decide(after, &fresh, true, t0+1); dec.Node != newOwner {
		t.Fatalf("new flow SYN: %+v", dec)
	}
	for _, at := range []int64{t0 + 2, t0 + int64(grace) - 1, t0 + int64(grace), t0 + 2*int64(grace)} {
		if dec := d.Decide(after, &fresh, false, at); dec.Node != newOwner {
			t.Fatalf("new flow at t0+%v: %+v", time.Duration(at-t0), dec)
		}
	}
	if got := d.Stats(); got.TransInserts != 1 || got.TransToOld == 0 || got.TransToNew == 0 {
		t.Fatalf("stats %+v", got)
	}
	// After G the slot belongs to the new owner for everyone.
	if dec := d.Decide(after, &old, false, t0+int64(grace)); dec.Node != newOwner || dec.Via != ViaTable {
		t.Fatalf("old flow after G: %+v", dec)
	}
}

// A slot that moved does not move again within G: the second change waits
// and is applied when the dwell time ends.
func TestDwell(t *testing.T) {
	const grace = 5 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	t0 := now
	reloadWith(t, s, 4, 1009, grace, map[int]string{2: "drain: true"})
	first := s.Current()
	now += int64(time.Second)
	// Draining n3 too would move some of n2's former slots again.
	reloadWith(t, s, 4, 1009, grace, map[int]string{2: "drain: true", 3: "drain: true"})
	second := s.Current()
	if second.Held == 0 {
		t.Fatal("no slot was held back by the dwell time")
	}
	for i := range second.Slots {
		a, b := first.Slots[i], second.Slots[i]
		if a.Owner != b.Owner && a.Until > now {
			t.Fatalf("slot %d moved again within G: %+v → %+v", i, a, b)
		}
	}
	// When G has passed, the scheduler releases the held slots.
	now = t0 + int64(grace)
	s.mu.Lock()
	s.evaluate(now, false)
	s.mu.Unlock()
	third := s.Current()
	if third.Held != 0 || third.Generation == second.Generation {
		t.Fatalf("held slots not released: generation %d held %d", third.Generation, third.Held)
	}
	for _, n := range third.Nodes {
		if (n.Name == "n2" || n.Name == "n3") && n.Slots != 0 {
			t.Fatalf("drained node %s still owns %d slots", n.Name, n.Slots)
		}
	}
}

// Randomized property: over random sequences of weight changes, drains
// and time steps, no packet of a live flow goes to a node other than the
// one its SYN went to while the flow is within the rules — that is, before
// the end of the grace period of the first move of its slot after its SYN.
// Also no slot moves twice within G.
func TestTransitionProperty(t *testing.T) {
	const grace = 2 * time.Second
	const nodes, m = 6, 211
	type flow struct {
		key      parser.FlowKey
		node     uint16
		slot     uint32
		owner    uint16 // slot owner when last checked
		deadline int64  // 0: slot has not moved since the SYN
	}
	for seed := range uint64(12) {
		r := rand.New(rand.NewPCG(seed, 99))
		var now int64 = int64(time.Hour)
		s := testScheduler(t, nodes, m, grace, &now)
		d := NewDecider(DeciderConfig{PinCapacity: 1 << 12, TransitionCapacity: 1 << 14})
		var flows []*flow
		lastMove := make([]int64, m)
		owners := s.Current().Owners()
		next := 0
		observe := func() {
			snap := s.Current()
			for i, sl := range snap.Slots {
				if sl.Owner != owners[i] {
					if lastMove[i] != 0 && now-lastMove[i] < int64(grace) {
						t.Fatalf("seed %d: slot %d moved twice within G", seed, i)
					}
					lastMove[i] = now
					owners[i] = sl.Owner
				}
			}
			for _, f := range flows {
				if o := snap.Slots[f.slot].Owner; o != f.owner {
					if f.deadline == 0 {
						f.deadline = now + int64(grace)
					}
					f.owner = o
				}
			}
		}
		for step := range 300 {
			now += r.Int64N(int64(grace) / 3)
			switch r.IntN(5) {
			case 0: // change the config
				extra := map[int]string{}
				for i := range nodes {
					switch r.IntN(4) {
					case 0:
						extra[i] = "drain: true"
					case 1:
						extra[i] = fmt.Sprintf("weight: %d", 1+r.IntN(300))
					}
				}
				if len(extra) == nodes {
					delete(extra, r.IntN(nodes))
				}
				reloadWith(t, s, nodes, m, grace, extra)
			case 1: // the scheduler's periodic evaluation
				s.mu.Lock()
				s.evaluate(now, false)
				s.mu.Unlock()
			}
			observe()
			snap := s.Current()
			// New flows.
			for range 5 {
				k := keyN(next)
				next++
				dec := d.Decide(snap, &k, true, now)
				if dec.Node == NoNode {
					continue
				}
				flows = append(flows, &flow{key: k, node: dec.Node, slot: dec.Slot, owner: snap.Slots[dec.Slot].Owner})
			}
			// Packets of live flows; flows past their deadline end.
			live := flows[:0]
			for _, f := range flows {
				if f.deadline != 0 && now >= f.deadline {
					continue
				}
				dec := d.Decide(snap, &f.key, false, now)
				if dec.Node != f.node {
					t.Fatalf("seed %d step %d: flow %v (slot %d) went to %d via %v, its SYN went to %d",
						seed, step, f.key, f.slot, dec.Node, dec.Via, f.node)
				}
				if r.IntN(20) != 0 {
					live = append(live, f)
				}
			}
			flows = live
		}
		if st := d.Stats(); st.TransToOld == 0 || st.TransToNew == 0 {
			t.Fatalf("seed %d never exercised both transition paths: %+v", seed, st)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	reloadWith(t, s, 4, 1009, time.Second, map[int]string{1: "drain: true"})
	snap := s.Current()
	d := NewDecider(DeciderConfig{PinCapacity: 1024, TransitionCapacity: 1024})
	k := keyN(1)
	k2 := keyN(2)
	h2 := HashFlow(snap.Key, &k2)
	d.Pin(&k2, h2, 0, int64(time.Minute), now)
	var sink uint16
	for name, f := range map[string]func(){
		"syn":     func() { sink += d.Decide(snap, &k, true, now).Node },
		"packet":  func() { sink += d.Decide(snap, &k, false, now).Node },
		"pin hit": func() { sink += d.Decide(snap, &k2, false, now).Node },
		"pin":     func() { d.Pin(&k, h2^1, 1, int64(time.Minute), now) },
		"unpin":   func() { d.Unpin(&k, h2^1) },
		"sweep":   func() { d.Sweep(now, 64) },
		"current": func() { sink += uint16(s.Current().Generation) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
	_ = sink
}

// A pin wins over the table and transitions; a SYN on the same 5-tuple
// drops it; a pin to a removed node is ignored.
func TestPinning(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	snap := s.Current()
	d := NewDecider(DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	k := keyN(5)
	dec := d.Decide(snap, &k, true, now)
	other := (dec.Node + 1) % 4
	d.Pin(&k, dec.Hash, other, snap.PinIdle, now)
	if got := d.Decide(snap, &k, false, now+1); got.Node != other || got.Via != ViaPin {
		t.Fatalf("pinned flow: %+v", got)
	}
	if !d.Unpin(&k, dec.Hash) {
		t.Fatal("Unpin found nothing")
	}
	if got := d.Decide(snap, &k, false, now+2); got.Node != dec.Node || got.Via != ViaTable {
		t.Fatalf("unpinned flow: %+v", got)
	}
	d.Pin(&k, dec.Hash, other, snap.PinIdle, now)
	d.Decide(snap, &k, true, now+3)
	if got := d.Decide(snap, &k, false, now+4); got.Via == ViaPin {
		t.Fatal("a new SYN kept the old connection's pin")
	}
	// Pin to a node that a reload removes.
	d.Pin(&k, dec.Hash, 3, snap.PinIdle, now)
	cfg, err := ParseConfig([]byte(testConfigYAML(3, 1009, time.Second, nil)), "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	snap = s.Current()
	if !snap.Nodes[3].Removed {
		t.Fatal("node 3 not marked removed")
	}
	if got := d.Decide(snap, &k, false, now+5); got.Via == ViaPin || got.Node == 3 {
		t.Fatalf("pin to a removed node used: %+v", got)
	}
	if st := d.Stats(); st.PinsStale != 1 || st.PinHits != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkLookup(b *testing.B) {
	var now int64 = int64(time.Hour)
	s := testScheduler(b, 100, 65537, 5*time.Second, &now)
	// A weight change puts some slots in transition, as in production.
	reloadWith(b, s, 100, 65537, 5*time.Second, map[int]string{7: "drain: true"})
	snap := s.Current()
	d := NewDecider(DeciderConfig{PinCapacity: 1 << 16, TransitionCapacity: 1 << 14})
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]parser.FlowKey, 4096)
	for i := range keys {
		keys[i] = randomKey(r, i%4 == 0)
		// A tenth of the flows are legacy and pinned.
		if i%10 == 0 {
			dec := d.Decide(snap, &keys[i], true, now)
			d.Pin(&keys[i], dec.Hash, dec.Node, snap.PinIdle, now)
		}
	}
	b.ReportAllocs()
	var sink uint16
	i := 0
	for b.Loop() {
		sink += d.Decide(snap, &keys[i&4095], false, now).Node
		i++
	}
	_ = sink
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

// Stats may be read while the owner decides (run with -race).
func TestDeciderStatsConcurrent(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	snap := s.Current()
	d := NewDecider(DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			k := keyN(i)
			dec := d.Decide(snap, &k, true, now)
			d.Pin(&k, dec.Hash, dec.Node, int64(time.Millisecond), now+int64(i))
			d.Sweep(now+int64(i), 8)
		}
	}()
	var last DeciderStats
	for {
		select {
		case <-done:
			st := d.Stats()
			if st.PinInserts != 20000 || st.PinSize > st.PinCapacity || st.PinEvictions+st.PinExpirations+st.PinSize != st.PinInserts {
				t.Fatalf("final stats %+v", st)
			}
			return
		default:
			st := d.Stats()
			if st.PinInserts < last.PinInserts {
				t.Fatal("a counter went backwards")
			}
			last = st
		}
	}
}
