package lookup

import (
	"testing"
)

// movingSnapshot is a hand-made snapshot whose every slot moved from node
// 1 to node 0 and is in its grace period until `until`.
func movingSnapshot(until int64, up1 bool) *Snapshot {
	slots := make([]Slot, 7)
	for i := range slots {
		slots[i] = Slot{Owner: 0, Prev: 1, Until: until}
	}
	return &Snapshot{
		Nodes:           []Node{{ID: 0, Name: "a", Up: true}, {ID: 1, Name: "b", Up: up1}},
		Slots:           slots,
		PinIdle:         1000,
		PinIdleAfterRST: 10,
		Key:             refKey(),
	}
}

// A previous owner that is down gets no transition traffic: the flows
// go to the slot's owner at once (finding 12 of issue 11; a removed node
// is tested through the scheduler in package sched).
func TestTransitionSkipsADownNode(t *testing.T) {
	d := NewDecider(DeciderConfig{PinCapacity: 64, TransitionCapacity: 64})
	k := keyN(3)
	if dec := d.Decide(movingSnapshot(100, true), &k, false, 1); dec.Node != 1 || dec.Via != ViaTransitionOld {
		t.Fatalf("previous owner up: %+v", dec)
	}
	if dec := d.Decide(movingSnapshot(100, false), &k, false, 2); dec.Node != 0 || dec.Via != ViaTable {
		t.Fatalf("previous owner down: %+v", dec)
	}
	// A record to a node that went down is dropped.
	s := movingSnapshot(100, true)
	s.Slots = append([]Slot(nil), s.Slots...)
	for i := range s.Slots {
		s.Slots[i] = Slot{Owner: 1, Prev: 0, Until: 100}
	}
	k2 := keyN(4)
	d.Decide(s, &k2, true, 3)
	if dec := d.Decide(s, &k2, false, 4); dec.Node != 1 || dec.Via != ViaTransitionNew {
		t.Fatalf("recorded flow: %+v", dec)
	}
	down := *s
	down.Nodes = []Node{{ID: 0, Name: "a", Up: true}, {ID: 1, Name: "b", Up: false}}
	if dec := d.Decide(&down, &k2, false, 5); dec.Node != 0 {
		t.Fatalf("flow recorded to a node that is down: %+v", dec)
	}
	if st := d.Stats(); st.TransStale != 1 || st.TransOldGone != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// An entry and its tag fit a legacy connection's 64-byte budget, and Bytes counts what
// NewDecider allocates (capacities rounded up to whole power-of-two
// bucket counts), so a config can be checked against memory.
func TestDeciderBytes(t *testing.T) {
	if EntryBytes > 64 {
		t.Fatalf("EntryBytes %d: a pin no longer fits the 64 B per legacy connection", EntryBytes)
	}
	for _, c := range []DeciderConfig{{0, 0}, {8, 8}, {1000, 100}, {1 << 18, 1 << 16}} {
		d := NewDecider(c)
		want := int64(d.pins.capacity()+d.trans.capacity()) * int64(EntryBytes)
		if got := c.Bytes(); got != want {
			t.Errorf("%+v: Bytes %d, tables take %d", c, got, want)
		}
	}
	if got := (DeciderConfig{PinCapacity: 1 << 18, TransitionCapacity: 1 << 16}).Bytes(); got != (1<<18+1<<16)*int64(EntryBytes) {
		t.Errorf("default capacities: %d bytes", got)
	}
}
