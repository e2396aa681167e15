package lookup

import (
	"sync/atomic"
	"unsafe"

	"github.com/anysched/anysched/parser"
)

const bucketSize = 8

// ownerCounter is a counter written by one goroutine (its owner) and read
// by any: the owner's load+store compiles to plain moves, with no locked
// instruction, and readers still see a whole value.
type ownerCounter struct{ v atomic.Uint64 }

func (c *ownerCounter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *ownerCounter) Load() uint64 { return c.v.Load() }

// Store sets the counter (owner only).
func (c *ownerCounter) Store(v uint64) { c.v.Store(v) }

// flowTable maps flow keys to node IDs with a deadline. It is fixed-size,
// preallocated, set-associative open addressing: a key's hash picks a
// bucket of bucketSize entries whose 32-bit tags (hash bits, forced
// non-zero; 0 marks an empty entry) share half a cache line, so a miss
// reads one line and a hit one or two more (an entry is 56 bytes). All of
// its methods belong to one goroutine.
//
// Each bucket is a segmented LRU: a new entry starts on probation; a
// later trusted packet of its flow (touch) promotes it to protected and
// records its activity. A full bucket evicts its least recently active
// probation entry, and a protected one only when all eight are protected.
// A flood of one-shot flows (spoofed SYNs, spoofed segments that each make
// a pin) therefore only recycles probation entries: the entries of flows
// that are still talking stay.
type flowTable struct {
	mask    uint64 // bucket count - 1
	tags    []uint32
	entries []flowEntry
	// occupied has one bit per bucket, set while the bucket holds an
	// entry. A probe of an empty bucket reads this bitmap (1 bit per 8
	// entries, so it stays in the L1 cache) instead of the bucket's tag
	// line: most lookups are misses in a table sized for the peak.
	occupied []uint64
	// idle > 0 makes a touch extend the deadline to now+idle (pins); 0
	// keeps fixed deadlines (transition records).
	idle      int64
	count     int
	protected int
	sweepc    int

	size               ownerCounter
	protectedSize      ownerCounter
	inserts            ownerCounter
	promotions         ownerCounter
	evictionsProbation ownerCounter
	evictionsProtected ownerCounter
	expirations        ownerCounter
}

// entryFlags are an entry's segment and marks.
type entryFlags uint8

const (
	// flagProtected: a later packet of the flow was seen.
	flagProtected entryFlags = 1 << iota
	// flagFinal: the pin comes from a complete legacy ClientHello; no
	// later ClientHello removes it.
	flagFinal
	// flagShortened: an RST cut the pin's idle time; the next trusted
	// packet restores it.
	flagShortened
)

// flowEntry is 56 bytes, so that with its tag a pin costs 60 bytes: a
// legacy connection's whole cost to the router stays within 64 bytes.
type flowEntry struct {
	key   parser.FlowKey
	node  uint16
	flags entryFlags
	// active is when the flow was last seen doing something trusted
	// (its insert, a touch), in activeTicks: the eviction order within a
	// segment. 32 bits of ~1 ms wrap after ~50 days; entries of one
	// bucket are compared by wrapping difference, and none lives within
	// 25 days of that (pins idle out in minutes).
	active   uint32
	deadline int64
}

// activeTick is the Now clock (ns) in ~1.05 ms units, cut to 32 bits.
func activeTick(now int64) uint32 { return uint32(uint64(now) >> 20) }

// activeBefore reports whether tick a is older than tick b.
func activeBefore(a, b uint32) bool { return int32(a-b) < 0 }

// EntryBytes is the memory one pin-table or transition-set entry takes
// (its tag included), for sizing tables against memory.
const EntryBytes = int(unsafe.Sizeof(flowEntry{})) + 4

// The idle argument of newFlowTable for the Decider's two tables. A
// transition record keeps the deadline it was given (the end of its
// slot's grace period). A pin's deadline moves to now+idle on every
// touch, where idle is the snapshot's pin idle timeout, which Pin sets
// before every insert (it can change with a reload); extendOnHit only
// marks the table as one that extends.
const (
	fixedDeadlines int64 = 0
	extendOnHit    int64 = 1
)

// tableEntries is the entry count of a table asked for capacity entries:
// a power-of-two number of buckets.
func tableEntries(capacity int) int {
	buckets := 1
	for buckets*bucketSize < capacity {
		buckets <<= 1
	}
	return buckets * bucketSize
}

// newFlowTable preallocates room for at least capacity entries (rounded up
// to a power-of-two number of buckets).
func newFlowTable(capacity int, idle int64) *flowTable {
	n := tableEntries(capacity)
	buckets := n / bucketSize
	t := &flowTable{mask: uint64(buckets - 1), idle: idle}
	t.tags = allocTable[uint32](t, n)
	t.entries = allocTable[flowEntry](t, n)
	t.occupied = make([]uint64, (buckets+63)/64)
	return t
}

// capacity is the number of entries.
func (t *flowTable) capacity() int { return len(t.tags) }

// tagOf takes the high hash bits (the bucket uses the low ones).
func tagOf(h uint64) uint32 { return uint32(h>>32) | 1 }

func (t *flowTable) bucketOf(h uint64) int { return int(h&t.mask) * bucketSize }

// mayHold reports whether the bucket of h holds any entry.
func (t *flowTable) mayHold(h uint64) bool {
	b := h & t.mask
	return t.occupied[b/64]&(1<<(b%64)) != 0
}

// find returns the index of key's live entry, or -1. An expired entry is
// removed; nothing else changes.
func (t *flowTable) find(key *parser.FlowKey, h uint64, now int64) int {
	if !t.mayHold(h) {
		return -1
	}
	b := t.bucketOf(h)
	tag := tagOf(h)
	tags := t.tags[b : b+bucketSize : b+bucketSize]
	for i, tg := range tags {
		if tg != tag {
			continue
		}
		e := &t.entries[b+i]
		if e.key != *key {
			continue
		}
		if e.deadline <= now {
			t.clear(b + i)
			t.expirations.add(1)
			return -1
		}
		return b + i
	}
	return -1
}

// touch records a trusted later packet of entry i's flow at now: it is
// promoted to protected, its activity is now, and a pin's idle deadline
// (even one an RST shortened) is now+idle again.
func (t *flowTable) touch(i int, now int64) {
	e := &t.entries[i]
	if e.flags&flagProtected == 0 {
		e.flags |= flagProtected
		t.protected++
		t.protectedSize.Store(uint64(t.protected))
		t.promotions.add(1)
	}
	e.active = activeTick(now)
	if t.idle > 0 {
		e.deadline = now + t.idle
		e.flags &^= flagShortened
	}
}

// shorten brings entry i's deadline forward to until (never later than
// it was) and marks it shortened. It reports whether it was not already.
func (t *flowTable) shorten(i int, until int64) bool {
	e := &t.entries[i]
	if until < e.deadline {
		e.deadline = until
	}
	first := e.flags&flagShortened == 0
	e.flags |= flagShortened
	return first
}

// lookup returns the node stored for key and whether it was there and
// live, and counts the lookup as a trusted packet of the flow (touch).
func (t *flowTable) lookup(key *parser.FlowKey, h uint64, now int64) (uint16, bool) {
	i := t.find(key, h, now)
	if i < 0 {
		return NoNode, false
	}
	t.touch(i, now)
	return t.entries[i].node, true
}

// peek returns the node of key's live entry, changing nothing.
func (t *flowTable) peek(key *parser.FlowKey, h uint64, now int64) (uint16, bool) {
	if !t.mayHold(h) {
		return NoNode, false
	}
	b := t.bucketOf(h)
	tag := tagOf(h)
	for i, tg := range t.tags[b : b+bucketSize] {
		if e := &t.entries[b+i]; tg == tag && e.key == *key && e.deadline > now {
			return e.node, true
		}
	}
	return NoNode, false
}

// holds reports whether key has a live entry at now, changing nothing (no
// deadline extended, nothing expired).
func (t *flowTable) holds(key *parser.FlowKey, h uint64, now int64) bool {
	_, ok := t.peek(key, h, now)
	return ok
}

// insert stores key → node until deadline (for pins: now+idle) and
// returns the entry's index. A key already present keeps its segment and
// marks (a re-pin is no promotion and no demotion) and gets the new node
// and deadline. A new key goes on probation in an empty or expired entry
// of the bucket, else in place of the least recently active probation
// entry, else of the least recently active protected one.
func (t *flowTable) insert(key *parser.FlowKey, h uint64, node uint16, deadline, now int64) int {
	b := t.bucketOf(h)
	tag := tagOf(h)
	free, expired, probation, protected := -1, -1, -1, -1
	for i := b; i < b+bucketSize; i++ {
		tg := t.tags[i]
		if tg == 0 {
			if free < 0 {
				free = i
			}
			continue
		}
		e := &t.entries[i]
		if tg == tag && e.key == *key {
			e.node = node
			e.deadline = deadline
			e.flags &^= flagShortened
			return i
		}
		switch {
		case e.deadline <= now:
			if expired < 0 {
				expired = i
			}
		case e.flags&flagProtected == 0:
			if probation < 0 || activeBefore(e.active, t.entries[probation].active) {
				probation = i
			}
		default:
			if protected < 0 || activeBefore(e.active, t.entries[protected].active) {
				protected = i
			}
		}
	}
	i := free
	switch {
	case i >= 0:
	case expired >= 0:
		i = expired
		t.clear(i)
		t.expirations.add(1)
	case probation >= 0:
		i = probation
		t.clear(i)
		t.evictionsProbation.add(1)
	default:
		i = protected
		t.clear(i)
		t.evictionsProtected.add(1)
	}
	t.tags[i] = tag
	t.entries[i] = flowEntry{key: *key, node: node, deadline: deadline, active: activeTick(now)}
	bucket := h & t.mask
	t.occupied[bucket/64] |= 1 << (bucket % 64)
	t.count++
	t.size.Store(uint64(t.count))
	t.inserts.add(1)
	return i
}

// remove deletes key's entry and reports whether it was there.
func (t *flowTable) remove(key *parser.FlowKey, h uint64) bool {
	if !t.mayHold(h) {
		return false
	}
	b := t.bucketOf(h)
	tag := tagOf(h)
	for i := b; i < b+bucketSize; i++ {
		if t.tags[i] == tag && t.entries[i].key == *key {
			t.clear(i)
			return true
		}
	}
	return false
}

func (t *flowTable) clear(e int) {
	t.tags[e] = 0
	t.count--
	t.size.Store(uint64(t.count))
	if t.entries[e].flags&flagProtected != 0 {
		t.protected--
		t.protectedSize.Store(uint64(t.protected))
	}
	b := e / bucketSize
	for _, tg := range t.tags[b*bucketSize : b*bucketSize+bucketSize] {
		if tg != 0 {
			return
		}
	}
	t.occupied[b/64] &^= 1 << (b % 64)
}

// sweep examines up to budget entries, round robin, and removes the
// expired ones. It returns how many it removed.
func (t *flowTable) sweep(now int64, budget int) int {
	removed := 0
	if t.count == 0 {
		// Nothing can expire; the cursor resumes where it was.
		return 0
	}
	n := len(t.tags)
	for ; budget > 0; budget-- {
		e := t.sweepc
		t.sweepc++
		if t.sweepc == n {
			t.sweepc = 0
		}
		if t.tags[e] != 0 && t.entries[e].deadline <= now {
			t.clear(e)
			t.expirations.add(1)
			removed++
		}
	}
	return removed
}

// evictions is the total of both segments.
func (t *flowTable) evictions() uint64 {
	return t.evictionsProbation.Load() + t.evictionsProtected.Load()
}
