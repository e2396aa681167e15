package lookup

import (
	"github.com/anysched/anysched/parser"
)

// Via says which rule decided a packet's node (snake_case names, as
// fastpath.Route's metric labels).
type Via uint8

const (
	// ViaNone: no node (empty table).
	ViaNone Via = iota
	// ViaTable: the slot's owner.
	ViaTable
	// ViaPin: the flow's pin.
	ViaPin
	// ViaTransitionOld: the slot moved within the grace period and the
	// flow started before the move: the previous owner.
	ViaTransitionOld
	// ViaTransitionNew: the flow's SYN was seen after the move (recorded
	// in the transition set): the node the SYN went to.
	ViaTransitionNew
)

func (v Via) String() string {
	switch v {
	case ViaNone:
		return "none"
	case ViaTable:
		return "table"
	case ViaPin:
		return "pin"
	case ViaTransitionOld:
		return "transition_old"
	case ViaTransitionNew:
		return "transition_new"
	}
	return "via?"
}

// Decision is the outcome of Decider.Decide.
type Decision struct {
	// Hash is the keyed flow hash; pass it back to Pin/Unpin.
	Hash uint64
	// Slot is the table slot of the flow.
	Slot uint32
	// Node is an ID in Snapshot.Nodes, or NoNode (drop: no node has
	// weight).
	Node uint16
	Via  Via
}

// DeciderConfig sizes a Decider's tables.
type DeciderConfig struct {
	// PinCapacity is the pin table's size (entries, rounded up to a power
	// of two, at least 8).
	PinCapacity int
	// TransitionCapacity is the transition set's size.
	TransitionCapacity int
}

// Decider decides the node of each packet of one fast-path worker: its pin
// table first, then the transition rule, then the table. It owns its pin
// table and transition set (see the package doc for why per worker), so it
// must be used by one goroutine only; its Stats may be read from any.
type Decider struct {
	pins  *flowTable
	trans *flowTable

	pinHits   ownerCounter
	transOld  ownerCounter
	transNew  ownerCounter
	pinsStale ownerCounter
}

// NewDecider preallocates a Decider's tables.
func NewDecider(c DeciderConfig) *Decider {
	if c.PinCapacity < bucketSize {
		c.PinCapacity = bucketSize
	}
	if c.TransitionCapacity < bucketSize {
		c.TransitionCapacity = bucketSize
	}
	return &Decider{
		pins:  newFlowTable(c.PinCapacity, extendOnHit),
		trans: newFlowTable(c.TransitionCapacity, fixedDeadlines),
	}
}

// Decide returns the node for a packet of flow key at time now (Now
// clock) under snapshot s. syn is true for a SYN without ACK (a new flow).
// It never allocates or locks.
//
// A SYN goes to the slot's owner; if the slot is within its grace period
// the flow is recorded in the transition set until the period ends, and
// any pin left by an earlier connection on the same 5-tuple is dropped.
// Any other packet goes to its pin, else, while its slot is within the
// grace period, to the node its recorded SYN went to or else the previous
// owner, else to the owner.
func (d *Decider) Decide(s *Snapshot, key *parser.FlowKey, syn bool, now int64) Decision {
	h := HashFlow(s.Key, key)
	slot := reduce(h, s.M())
	st := &s.Slots[slot]
	if syn {
		if d.pins.count > 0 {
			d.pins.remove(key, h)
		}
		if now < st.Until && st.Prev != st.Owner && st.Owner != NoNode {
			d.trans.insert(key, h, st.Owner, st.Until, now)
		}
		return decision(h, slot, st.Owner, ViaTable)
	}
	if d.pins.count > 0 {
		if n, ok := d.pins.lookup(key, h, now); ok {
			if int(n) < len(s.Nodes) && !s.Nodes[n].Removed {
				d.pinHits.add(1)
				return decision(h, slot, n, ViaPin)
			}
			d.pins.remove(key, h)
			d.pinsStale.add(1)
		}
	}
	if now < st.Until && st.Prev != st.Owner {
		if d.trans.count > 0 {
			if n, ok := d.trans.lookup(key, h, now); ok {
				d.transNew.add(1)
				return decision(h, slot, n, ViaTransitionNew)
			}
		}
		d.transOld.add(1)
		return decision(h, slot, st.Prev, ViaTransitionOld)
	}
	return decision(h, slot, st.Owner, ViaTable)
}

func decision(h uint64, slot uint32, node uint16, via Via) Decision {
	if node == NoNode {
		via = ViaNone
	}
	return Decision{Hash: h, Slot: slot, Node: node, Via: via}
}

// Pin keeps the flow (key, with hash h from its Decision) on node until it
// has been idle for idle nanoseconds (Snapshot.PinIdle). The fast path
// pins legacy flows (a ClientHello without migration_support, or any flow
// of a non-TLS VIP). When the table is full, the oldest entry of the key's
// bucket is evicted.
func (d *Decider) Pin(key *parser.FlowKey, h uint64, node uint16, idle, now int64) {
	d.pins.idle = idle
	d.pins.insert(key, h, node, now+idle, now)
}

// Unpin removes the flow's pin (a ClientHello that turned out to carry
// migration_support) and reports whether there was one.
func (d *Decider) Unpin(key *parser.FlowKey, h uint64) bool {
	return d.pins.remove(key, h)
}

// Pinned reports whether the flow (key, hash h) has a live pin at now,
// changing nothing: for tools that report what the fast path holds
// (anysched inspect and its tests), not for the packet path.
func (d *Decider) Pinned(key *parser.FlowKey, h uint64, now int64) bool {
	return d.pins.holds(key, h, now)
}

// Sweep expires up to budget entries of each table; call it once per
// batch with a small budget (e.g. 64) so idle entries do not linger.
func (d *Decider) Sweep(now int64, budget int) {
	d.pins.sweep(now, budget)
	d.trans.sweep(now, budget)
}

// DeciderStats are a Decider's counters (totals since it was made, sizes
// now).
type DeciderStats struct {
	PinSize, PinCapacity                           uint64
	PinInserts, PinEvictions, PinExpirations       uint64
	PinHits, PinsStale                             uint64
	TransSize, TransCapacity                       uint64
	TransInserts, TransEvictions, TransExpirations uint64
	TransToOld, TransToNew                         uint64
}

// Stats reads the counters; safe from any goroutine.
func (d *Decider) Stats() DeciderStats {
	return DeciderStats{
		PinSize:          d.pins.size.Load(),
		PinCapacity:      uint64(d.pins.capacity()),
		PinInserts:       d.pins.inserts.Load(),
		PinEvictions:     d.pins.evictions.Load(),
		PinExpirations:   d.pins.expirations.Load(),
		PinHits:          d.pinHits.Load(),
		PinsStale:        d.pinsStale.Load(),
		TransSize:        d.trans.size.Load(),
		TransCapacity:    uint64(d.trans.capacity()),
		TransInserts:     d.trans.inserts.Load(),
		TransEvictions:   d.trans.evictions.Load(),
		TransExpirations: d.trans.expirations.Load(),
		TransToOld:       d.transOld.Load(),
		TransToNew:       d.transNew.Load(),
	}
}
