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

// Bytes is the memory the Decider's two tables take (both rounded up as
// NewDecider rounds them), for checking capacities against memory.
func (c DeciderConfig) Bytes() int64 {
	return int64(tableEntries(max(c.PinCapacity, bucketSize))+tableEntries(max(c.TransitionCapacity, bucketSize))) * int64(EntryBytes)
}

// PacketKind says what a packet may change in a Decider's tables.
type PacketKind uint8

const (
	// PacketData is a client segment without SYN or RST: it refreshes its
	// pin or transition record (and promotes it: the flow is talking).
	PacketData PacketKind = iota
	// PacketSYN is a SYN without ACK: a new flow, recorded if its slot is
	// moving. A SYN on a live pinned 5-tuple follows the pin and changes
	// it in no way (a stray SYN must not end or move a connection).
	PacketSYN
	// PacketRST is a client RST: it only shortens its pin's idle time
	// (Snapshot.PinIdleAfterRST); the real client's next packet restores
	// it, so a spoofed RST cannot end a pin of a flow that is talking.
	PacketRST
	// PacketPassive is decided like a packet of its flow and changes
	// nothing: an ICMP error quoting the flow.
	PacketPassive
)

// Decider decides the node of each packet of one fast-path worker: its pin
// table first, then the transition rule, then the table. It owns its pin
// table and transition set (see the package doc for why per worker), so it
// must be used by one goroutine only; its Stats may be read from any.
type Decider struct {
	pins  *flowTable
	trans *flowTable

	pinHits        ownerCounter
	pinsStale      ownerCounter
	synOnPin       ownerCounter
	rstShortened   ownerCounter
	transOld       ownerCounter
	transNew       ownerCounter
	transStale     ownerCounter
	transOldGone   ownerCounter
	unverified     ownerCounter
	finalKept      ownerCounter
	unpinWouldMove ownerCounter
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

// Decide is DecidePacket for a packet known to be intact: a SYN without
// ACK (syn) or a data segment.
func (d *Decider) Decide(s *Snapshot, key *parser.FlowKey, syn bool, now int64) Decision {
	kind := PacketData
	if syn {
		kind = PacketSYN
	}
	return d.DecidePacket(s, key, kind, now, nil)
}

// DecidePacket returns the node for a packet of flow key at time now (Now
// clock) under snapshot s. It never allocates or locks.
//
// Every packet goes to its flow's live pin, if any (a pin to a removed
// node is dropped). Otherwise a SYN goes to the slot's owner, and is
// recorded in the transition set while the slot is in its grace period;
// any other packet goes, while its slot is in its grace period, to the
// node its recorded SYN went to or else the previous owner, else to the
// owner. A transition record or previous owner that is removed or down
// no longer serves: such packets go to the owner at once.
//
// intact reports whether the packet is what its sender sent (its TCP
// checksum is right); nil means it is. It is called, at most once, only
// when the packet would change state (record a SYN, refresh or promote
// an entry, shorten a pin): a packet that is not intact is decided the
// same way but changes nothing, as the node will drop it.
func (d *Decider) DecidePacket(s *Snapshot, key *parser.FlowKey, kind PacketKind, now int64, intact func() bool) Decision {
	h := HashFlow(s.Key, key)
	slot := reduce(h, s.M())
	st := &s.Slots[slot]
	if d.pins.count > 0 {
		if i := d.pins.find(key, h, now); i >= 0 {
			n := d.pins.entries[i].node
			if int(n) < len(s.Nodes) && !s.Nodes[n].Removed {
				d.pinHits.add(1)
				switch kind {
				case PacketSYN:
					d.synOnPin.add(1)
				case PacketData:
					if d.trust(intact) {
						d.pins.touch(i, now)
					}
				case PacketRST:
					if d.trust(intact) && d.pins.shorten(i, now+s.PinIdleAfterRST) {
						d.rstShortened.add(1)
					}
				}
				return decision(h, slot, n, ViaPin)
			}
			d.pins.clear(i)
			d.pinsStale.add(1)
		}
	}
	moving := st.Moving(now)
	if kind == PacketSYN {
		if moving && st.Owner != NoNode && d.trust(intact) {
			// The record outlives the slot's grace period by G: a
			// node drained or lost within it gives up the slot at once
			// and starts a new grace period (at most G later), through
			// which the flows it already got must still reach it.
			d.trans.insert(key, h, st.Owner, st.Until+s.Grace, now)
		}
		return decision(h, slot, st.Owner, ViaTable)
	}
	if moving {
		if d.trans.count > 0 {
			if i := d.trans.find(key, h, now); i >= 0 {
				n := d.trans.entries[i].node
				if s.serves(n) {
					if kind == PacketData && d.trust(intact) {
						d.trans.touch(i, now)
					}
					d.transNew.add(1)
					return decision(h, slot, n, ViaTransitionNew)
				}
				d.trans.clear(i)
				d.transStale.add(1)
			}
		}
		if s.serves(st.Prev) {
			d.transOld.add(1)
			return decision(h, slot, st.Prev, ViaTransitionOld)
		}
		d.transOldGone.add(1)
	}
	return decision(h, slot, st.Owner, ViaTable)
}

// trust calls intact and counts a refusal.
func (d *Decider) trust(intact func() bool) bool {
	if intact == nil || intact() {
		return true
	}
	d.unverified.add(1)
	return false
}

// serves reports whether node id can still take its flows: it exists, is
// in the config and is up. Transition routes to a node that cannot stop
// at once.
func (s *Snapshot) serves(id uint16) bool {
	return int(id) < len(s.Nodes) && !s.Nodes[id].Removed && s.Nodes[id].Up
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
// of a non-TLS VIP) after checking the packet is intact. A new pin starts
// on probation; the flow's next packet protects it. Re-pinning a pinned
// flow keeps its protection and finality.
func (d *Decider) Pin(key *parser.FlowKey, h uint64, node uint16, idle, now int64) {
	d.pins.idle = idle
	d.pins.insert(key, h, node, now+idle, now)
}

// PinIntact pins like Pin if intact (as in DecidePacket) reports the
// packet intact, and reports whether it pinned.
func (d *Decider) PinIntact(key *parser.FlowKey, h uint64, node uint16, idle, now int64, intact func() bool) bool {
	if !d.trust(intact) {
		return false
	}
	d.Pin(key, h, node, idle, now)
	return true
}

// MarkFinal marks the flow's live pin final and reports whether it has
// one: its complete ClientHello was legacy, so no later ClientHello on
// the 5-tuple (a spoofed one with migration_support) removes it
// (UnpinUnlessFinal).
func (d *Decider) MarkFinal(key *parser.FlowKey, h uint64, now int64) bool {
	i := d.pins.find(key, h, now)
	if i < 0 {
		return false
	}
	d.pins.entries[i].flags |= flagFinal
	return true
}

// Unpin removes the flow's pin, final or not, and reports whether there
// was one (for tools and tests; the packet path uses UnpinUnlessFinal).
func (d *Decider) Unpin(key *parser.FlowKey, h uint64) bool {
	return d.pins.remove(key, h)
}

// UnpinUnlessFinal removes the flow's pin (its ClientHello turned out to
// carry migration_support) and reports whether it did. It keeps a pin
// that a complete legacy ClientHello made final (MarkFinal), and one
// whose removal would move the flow: its node is not where the flow would
// go without it under s (the table changed since it was made, or a SYN
// on the reused 5-tuple followed it). An unpin only ever saves an entry;
// it never moves a connection.
func (d *Decider) UnpinUnlessFinal(s *Snapshot, key *parser.FlowKey, h uint64, now int64) bool {
	i := d.pins.find(key, h, now)
	if i < 0 {
		return false
	}
	e := &d.pins.entries[i]
	if e.flags&flagFinal != 0 {
		d.finalKept.add(1)
		return false
	}
	if e.node != d.unpinnedNode(s, key, h, now) {
		d.unpinWouldMove.add(1)
		return false
	}
	d.pins.clear(i)
	return true
}

// unpinnedNode is the node DecidePacket would give a non-SYN packet of
// the flow if it had no pin, changing nothing.
func (d *Decider) unpinnedNode(s *Snapshot, key *parser.FlowKey, h uint64, now int64) uint16 {
	st := &s.Slots[reduce(h, s.M())]
	if st.Moving(now) {
		if n, ok := d.trans.peek(key, h, now); ok && s.serves(n) {
			return n
		}
		if s.serves(st.Prev) {
			return st.Prev
		}
	}
	return st.Owner
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
// now). Evictions are split by segment: probation (entries no later
// packet confirmed: what a flood of one-shot flows recycles) and
// protected (flows that were talking: only when a whole bucket is).
type DeciderStats struct {
	PinSize, PinProtected, PinCapacity uint64
	PinInserts, PinPromotions          uint64
	PinEvictions                       uint64 // both segments
	PinEvictionsProbation              uint64
	PinEvictionsProtected              uint64
	PinExpirations                     uint64
	PinHits, PinsStale                 uint64
	PinSYNsFollowed, PinRSTShortened   uint64
	// PinFinalKept counts migration_support ClientHellos that did not
	// unpin because the pin was final; PinUnpinWouldMove those that did
	// not because the flow would have moved.
	PinFinalKept, PinUnpinWouldMove          uint64
	TransSize, TransProtected, TransCapacity uint64
	TransInserts, TransPromotions            uint64
	TransEvictions                           uint64 // both segments
	TransEvictionsProbation                  uint64
	TransEvictionsProtected                  uint64
	TransExpirations                         uint64
	TransToOld, TransToNew                   uint64
	// TransStale counts records dropped because their node was removed
	// or down; TransOldGone packets that would have gone to a previous
	// owner that is removed or down and went to the owner instead.
	TransStale, TransOldGone uint64
	// Unverified counts packets whose state change was refused because
	// they were not intact (bad checksum).
	Unverified uint64
}

// Stats reads the counters; safe from any goroutine.
func (d *Decider) Stats() DeciderStats {
	p, t := d.pins, d.trans
	return DeciderStats{
		PinSize:                 p.size.Load(),
		PinProtected:            p.protectedSize.Load(),
		PinCapacity:             uint64(p.capacity()),
		PinInserts:              p.inserts.Load(),
		PinPromotions:           p.promotions.Load(),
		PinEvictions:            p.evictions(),
		PinEvictionsProbation:   p.evictionsProbation.Load(),
		PinEvictionsProtected:   p.evictionsProtected.Load(),
		PinExpirations:          p.expirations.Load(),
		PinHits:                 d.pinHits.Load(),
		PinsStale:               d.pinsStale.Load(),
		PinSYNsFollowed:         d.synOnPin.Load(),
		PinRSTShortened:         d.rstShortened.Load(),
		PinFinalKept:            d.finalKept.Load(),
		PinUnpinWouldMove:       d.unpinWouldMove.Load(),
		TransSize:               t.size.Load(),
		TransProtected:          t.protectedSize.Load(),
		TransCapacity:           uint64(t.capacity()),
		TransInserts:            t.inserts.Load(),
		TransPromotions:         t.promotions.Load(),
		TransEvictions:          t.evictions(),
		TransEvictionsProbation: t.evictionsProbation.Load(),
		TransEvictionsProtected: t.evictionsProtected.Load(),
		TransExpirations:        t.expirations.Load(),
		TransToOld:              d.transOld.Load(),
		TransToNew:              d.transNew.Load(),
		TransStale:              d.transStale.Load(),
		TransOldGone:            d.transOldGone.Load(),
		Unverified:              d.unverified.Load(),
	}
}
