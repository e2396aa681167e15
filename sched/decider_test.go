package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
)

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

var testConfigYAML = packettest.EqualNodesConfig

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
func findFlow(snap *lookup.Snapshot, start int, pred func(slot lookup.Slot) bool) (parser.FlowKey, int) {
	for i := start; ; i++ {
		k := packettest.FlowKeyN(i)
		if pred(snap.Slots[snap.SlotOf(snap.Hash(&k))]) {
			return k, i
		}
	}
}

// The transition rule (package lookup's doc), end to end through the
// scheduler.
func TestTransitionRule(t *testing.T) {
	const grace = 5 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	before := s.Current()

	// A flow on a slot of n2 starts before n2 is drained.
	old, i := findFlow(before, 0, func(sl lookup.Slot) bool { return before.Nodes[sl.Owner].Name == "n2" })
	if dec := d.Decide(before, &old, true, now); before.Nodes[dec.Node].Name != "n2" || dec.Via != lookup.ViaTable {
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
		if dec := d.Decide(after, &old, false, at); dec.Node != st.Prev || dec.Via != lookup.ViaTransitionOld {
			t.Fatalf("old flow at t0+%v: %+v", time.Duration(at-t0), dec)
		}
	}
	// A flow on the same slot that starts after the change goes to the
	// new owner, SYN and every later packet.
	fresh, _ := findFlow(after, i+1, func(sl lookup.Slot) bool { return sl == st })
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
	if dec := d.Decide(after, &old, false, t0+int64(grace)); dec.Node != newOwner || dec.Via != lookup.ViaTable {
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
	// Giving n3 more weight would move some of n2's former slots again.
	reloadWith(t, s, 4, 1009, grace, map[int]string{2: "drain: true", 3: "weight: 300"})
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
		if n.Name == "n2" && n.Slots != 0 {
			t.Fatalf("drained node %s still owns %d slots", n.Name, n.Slots)
		}
	}
}

// A node drained (or down) within the dwell time of slots it just got
// loses them at once: new flows must not be sent to a node that is
// leaving for up to G. The flows whose SYN it already got keep going to
// it (recorded), and the previous owner's flows stay protected.
func TestDrainWithinDwellReleasesTheDrainedNodesSlots(t *testing.T) {
	const grace = 5 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	reloadWith(t, s, 4, 1009, grace, map[int]string{3: "weight: 1000"})
	first := s.Current()
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 1 << 10, TransitionCapacity: 1 << 10})
	// A flow that started on n3 after its slot moved to it.
	born, _ := findFlow(first, 0, func(sl lookup.Slot) bool {
		return first.Nodes[sl.Owner].Name == "n3" && sl.Prev != sl.Owner && sl.Until > now
	})
	if dec := d.Decide(first, &born, true, now); first.Nodes[dec.Node].Name != "n3" {
		t.Fatalf("SYN after the move: %+v", dec)
	}
	now += int64(time.Second)
	reloadWith(t, s, 4, 1009, grace, map[int]string{3: "weight: 1000\n        drain: true"})
	second := s.Current()
	for _, n := range second.Nodes {
		if n.Name == "n3" && n.Slots != 0 {
			t.Fatalf("n3 drained 1 s after a move still owns %d slots (held by the dwell time)", n.Slots)
		}
	}
	if dec := d.Decide(second, &born, false, now); second.Nodes[dec.Node].Name != "n3" || dec.Via != lookup.ViaTransitionNew {
		t.Fatalf("a flow n3 got within the grace period left it when n3 was drained: %+v", dec)
	}
	newFlow, _ := findFlow(second, 1<<20, func(sl lookup.Slot) bool { return sl.Until > now && sl.Prev != sl.Owner })
	if dec := d.Decide(second, &newFlow, true, now); second.Nodes[dec.Node].Name == "n3" {
		t.Fatalf("a new flow went to the drained node: %+v", dec)
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
		d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 1 << 12, TransitionCapacity: 1 << 14})
		var flows []*flow
		lastMove := make([]int64, m)
		owners := s.Current().Owners()
		next := 0
		observe := func() {
			snap := s.Current()
			for i, sl := range snap.Slots {
				if sl.Owner != owners[i] {
					// Only a node closed to new flows (drained, down)
					// loses a slot within G of getting it.
					left := snap.Nodes[owners[i]]
					if lastMove[i] != 0 && now-lastMove[i] < int64(grace) && !left.Draining && left.Up {
						t.Fatalf("seed %d: slot %d moved %d → %d within G of its last move, but %s is open to new flows", seed, i, owners[i], sl.Owner, left.Name)
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
				k := packettest.FlowKeyN(next)
				next++
				dec := d.Decide(snap, &k, true, now)
				if dec.Node == lookup.NoNode {
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
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 1024, TransitionCapacity: 1024})
	k := packettest.FlowKeyN(1)
	k2 := packettest.FlowKeyN(2)
	h2 := lookup.HashFlow(snap.Key, &k2)
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
// follows it and leaves it in place (a stray SYN must not end a pin); a
// pin to a removed node is ignored.
func TestPinning(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	snap := s.Current()
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	k := packettest.FlowKeyN(5)
	dec := d.Decide(snap, &k, true, now)
	other := (dec.Node + 1) % 4
	d.Pin(&k, dec.Hash, other, snap.PinIdle, now)
	if got := d.Decide(snap, &k, false, now+1); got.Node != other || got.Via != lookup.ViaPin {
		t.Fatalf("pinned flow: %+v", got)
	}
	if !d.Unpin(&k, dec.Hash) {
		t.Fatal("Unpin found nothing")
	}
	if got := d.Decide(snap, &k, false, now+2); got.Node != dec.Node || got.Via != lookup.ViaTable {
		t.Fatalf("unpinned flow: %+v", got)
	}
	d.Pin(&k, dec.Hash, other, snap.PinIdle, now)
	if got := d.Decide(snap, &k, true, now+3); got.Node != other || got.Via != lookup.ViaPin {
		t.Fatalf("a SYN on a pinned 5-tuple went to %+v, not its pin", got)
	}
	if got := d.Decide(snap, &k, false, now+4); got.Node != other || got.Via != lookup.ViaPin {
		t.Fatalf("a SYN on a pinned 5-tuple moved the pin: %+v", got)
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
	if got := d.Decide(snap, &k, false, now+5); got.Via == lookup.ViaPin || got.Node == 3 {
		t.Fatalf("pin to a removed node used: %+v", got)
	}
	if st := d.Stats(); st.PinsStale != 1 || st.PinHits != 3 || st.PinSYNsFollowed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Stats may be read while the owner decides (run with -race).
func TestDeciderStatsConcurrent(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	snap := s.Current()
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			k := packettest.FlowKeyN(i)
			dec := d.Decide(snap, &k, true, now)
			d.Pin(&k, dec.Hash, dec.Node, int64(time.Millisecond), now+int64(i))
			d.Sweep(now+int64(i), 8)
		}
	}()
	var last lookup.DeciderStats
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

// Finding 12 of issue 11: when a reload removes a node, packets that the
// transition rule would send to it (it was a moved slot's previous
// owner, or a recorded SYN went to it) go to the slot's owner at once,
// not until the grace period ends.
func TestTransitionsStopAtARemovedNode(t *testing.T) {
	const grace = 10 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	before := s.Current()
	// An established flow on one of n3's slots, then n3 drains: the
	// flow keeps going to n3 through the grace period.
	old, i := findFlow(before, 0, func(sl lookup.Slot) bool { return before.Nodes[sl.Owner].Name == "n3" })
	d.Decide(before, &old, true, now)
	now += int64(time.Second)
	reloadWith(t, s, 4, 1009, grace, map[int]string{3: "drain: true"})
	drained := s.Current()
	if dec := d.Decide(drained, &old, false, now); drained.Nodes[dec.Node].Name != "n3" || dec.Via != lookup.ViaTransitionOld {
		t.Fatalf("old flow during the drain: %+v", dec)
	}
	// A new flow on a slot that moved from n3 to another node: recorded.
	slotOwner := drained.Slots[drained.SlotOf(drained.Hash(&old))].Owner
	fresh, _ := findFlow(drained, i+1, func(sl lookup.Slot) bool { return sl.Prev != sl.Owner })
	if dec := d.Decide(drained, &fresh, true, now); dec.Via != lookup.ViaTable {
		t.Fatalf("new flow: %+v", dec)
	}
	// n3 leaves the config, well within the grace period.
	now += int64(time.Second)
	reloadWith(t, s, 3, 1009, grace, nil)
	after := s.Current()
	if !after.Nodes[3].Removed {
		t.Fatal("n3 not removed")
	}
	dec := d.Decide(after, &old, false, now)
	if dec.Node == 3 || dec.Node != after.Slots[dec.Slot].Owner || dec.Via != lookup.ViaTable {
		t.Fatalf("old flow after n3 was removed: %+v (slot owner %d, before %d)", dec, after.Slots[dec.Slot].Owner, slotOwner)
	}
	if st := d.Stats(); st.TransOldGone != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A transition record whose node a reload removes is dropped at once;
// the flow is then an unrecorded one (here: the previous owner, which
// still serves).
func TestTransitionRecordToARemovedNodeIsDropped(t *testing.T) {
	const grace = 10 * time.Second
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, grace, &now)
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	reloadWith(t, s, 4, 1009, grace, map[int]string{1: "drain: true"})
	drained := s.Current()
	// A new flow on a slot that moved from n1 to n3: recorded (n3).
	rec, _ := findFlow(drained, 0, func(sl lookup.Slot) bool { return sl.Prev == 1 && sl.Owner == 3 })
	if dec := d.Decide(drained, &rec, true, now); dec.Node != 3 {
		t.Fatalf("SYN: %+v", dec)
	}
	if dec := d.Decide(drained, &rec, false, now+1); dec.Node != 3 || dec.Via != lookup.ViaTransitionNew {
		t.Fatalf("recorded flow: %+v", dec)
	}
	now += int64(time.Second)
	reloadWith(t, s, 3, 1009, grace, map[int]string{1: "drain: true"})
	after := s.Current()
	sl := after.Slots[after.SlotOf(after.Hash(&rec))]
	if !after.Nodes[3].Removed || sl.Prev != 1 || now >= sl.Until {
		t.Fatalf("slot after removing n3: %+v", sl)
	}
	if dec := d.Decide(after, &rec, false, now); dec.Node != 1 || dec.Via != lookup.ViaTransitionOld {
		t.Fatalf("flow recorded to removed n3: %+v", dec)
	}
	if st := d.Stats(); st.TransStale != 1 || st.TransSize != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Finding 2 at the Decider: an RST shortens a pin, the next packet
// restores it; a not-intact packet changes nothing; a final pin survives
// UnpinUnlessFinal.
func TestPinSurvivesSpoofablePackets(t *testing.T) {
	var now int64 = int64(time.Hour)
	s := testScheduler(t, 4, 1009, time.Second, &now)
	snap := s.Current()
	if snap.PinIdleAfterRST != int64(DefaultPinRSTIdleTimeout) {
		t.Fatalf("PinIdleAfterRST %d", snap.PinIdleAfterRST)
	}
	d := lookup.NewDecider(lookup.DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	k := packettest.FlowKeyN(9)
	dec := d.Decide(snap, &k, true, now)
	d.Pin(&k, dec.Hash, dec.Node, snap.PinIdle, now)
	bad := func() bool { return false }
	// A bad-checksum RST changes nothing.
	if got := d.DecidePacket(snap, &k, lookup.PacketRST, now+1, bad); got.Via != lookup.ViaPin {
		t.Fatalf("RST: %+v", got)
	}
	if st := d.Stats(); st.PinRSTShortened != 0 || st.Unverified != 1 || st.PinProtected != 0 {
		t.Fatalf("bad-checksum RST changed state: %+v", st)
	}
	// An intact RST shortens the pin; the flow's next packet restores it.
	d.DecidePacket(snap, &k, lookup.PacketRST, now+2, nil)
	if d.Pinned(&k, dec.Hash, now+2+snap.PinIdleAfterRST) {
		t.Fatal("an RST did not shorten the pin")
	}
	d.Decide(snap, &k, false, now+3)
	if !d.Pinned(&k, dec.Hash, now+3+snap.PinIdle-1) {
		t.Fatal("the flow's next packet did not restore the pin's idle time")
	}
	// A bad-checksum packet does not restore a shortened pin.
	d.DecidePacket(snap, &k, lookup.PacketRST, now+4, nil)
	d.DecidePacket(snap, &k, lookup.PacketData, now+5, bad)
	if d.Pinned(&k, dec.Hash, now+4+snap.PinIdleAfterRST) {
		t.Fatal("a bad-checksum packet restored a shortened pin")
	}
	d.Decide(snap, &k, false, now+6)
	// Final pins stay; others go.
	if !d.MarkFinal(&k, dec.Hash, now+6) || d.UnpinUnlessFinal(snap, &k, dec.Hash, now+7) || !d.Pinned(&k, dec.Hash, now+7) {
		t.Fatal("UnpinUnlessFinal removed a final pin")
	}
	// A pin that is not final goes, unless removing it would move the
	// flow (its node is not the one the table gives it).
	k2 := packettest.FlowKeyN(10)
	h2 := snap.Hash(&k2)
	owner := snap.LookupNew(&k2)
	d.Pin(&k2, h2, (owner+1)%4, snap.PinIdle, now)
	if d.UnpinUnlessFinal(snap, &k2, h2, now+1) || !d.Pinned(&k2, h2, now+1) {
		t.Fatal("UnpinUnlessFinal moved a flow off its pinned node")
	}
	d.Pin(&k2, h2, owner, snap.PinIdle, now)
	if !d.UnpinUnlessFinal(snap, &k2, h2, now+1) || d.Pinned(&k2, h2, now+1) {
		t.Fatal("UnpinUnlessFinal kept a pin that is not final")
	}
	// An ICMP error (passive) neither refreshes nor promotes.
	k3 := packettest.FlowKeyN(11)
	h3 := snap.Hash(&k3)
	d.Pin(&k3, h3, 2, snap.PinIdle, now)
	protected := d.Stats().PinProtected
	d.DecidePacket(snap, &k3, lookup.PacketPassive, now+snap.PinIdle/2, nil)
	if d.Stats().PinProtected != protected || d.Pinned(&k3, h3, now+snap.PinIdle) {
		t.Fatal("a passive packet changed its pin")
	}
	if st := d.Stats(); st.PinFinalKept != 1 || st.PinUnpinWouldMove != 1 {
		t.Fatalf("stats %+v", st)
	}
}
