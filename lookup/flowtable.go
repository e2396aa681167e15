package lookup

import (
	"sync/atomic"

	"github.com/anysched/anysched/parser"
)

const bucketSize = 8

// ownerCounter is a counter written by one goroutine (its owner) and read
// by any: the owner's load+store compiles to plain moves, with no locked
// instruction, and readers still see a whole value.
type ownerCounter struct{ v atomic.Uint64 }

func (c *ownerCounter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *ownerCounter) Load() uint64 { return c.v.Load() }

// flowTable maps flow keys to node IDs with a deadline. It is fixed-size,
// preallocated, set-associative open addressing: a key's hash picks a
// bucket of bucketSize entries whose 32-bit tags (hash bits, forced
// non-zero; 0 marks an empty entry) share half a cache line, so a miss
// reads one line and a hit one more. All of its methods belong to one
// goroutine.
type flowTable struct {
	mask    uint64 // bucket count - 1
	tags    []uint32
	entries []flowEntry
	// occupied has one bit per bucket, set while the bucket holds an
	// entry. A probe of an empty bucket reads this bitmap (1 bit per 8
	// entries, so it stays in the L1 cache) instead of the bucket's tag
	// line: most lookups are misses in a table sized for the peak.
	occupied []uint64
	// idle > 0 makes a hit extend the deadline to now+idle (pins); 0
	// keeps fixed deadlines (transition records).
	idle   int64
	count  int
	sweepc int

	size        ownerCounter
	inserts     ownerCounter
	evictions   ownerCounter
	expirations ownerCounter
}

type flowEntry struct {
	key      parser.FlowKey
	node     uint16
	deadline int64
}

// The idle argument of newFlowTable for the Decider's two tables. A
// transition record keeps the deadline it was given (the end of its
// slot's grace period). A pin's deadline moves to now+idle on every hit,
// where idle is the snapshot's pin idle timeout, which Pin sets before
// every insert (it can change with a reload); extendOnHit only marks the
// table as one that extends.
const (
	fixedDeadlines int64 = 0
	extendOnHit    int64 = 1
)

// newFlowTable preallocates room for at least capacity entries (rounded up
// to a power-of-two number of buckets).
func newFlowTable(capacity int, idle int64) *flowTable {
	buckets := 1
	for buckets*bucketSize < capacity {
		buckets <<= 1
	}
	n := buckets * bucketSize
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

// lookup returns the node stored for key and whether it was there and
// live; an expired entry is removed.
func (t *flowTable) lookup(key *parser.FlowKey, h uint64, now int64) (uint16, bool) {
	if !t.mayHold(h) {
		return NoNode, false
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
			return NoNode, false
		}
		if t.idle > 0 {
			e.deadline = now + t.idle
		}
		return e.node, true
	}
	return NoNode, false
}

// holds reports whether key has a live entry at now, changing nothing (no
// deadline extended, nothing expired).
func (t *flowTable) holds(key *parser.FlowKey, h uint64, now int64) bool {
	if !t.mayHold(h) {
		return false
	}
	b := t.bucketOf(h)
	tag := tagOf(h)
	for i, tg := range t.tags[b : b+bucketSize] {
		if tg == tag && t.entries[b+i].key == *key && t.entries[b+i].deadline > now {
			return true
		}
	}
	return false
}

// insert stores key → node until deadline (for pins: now+idle). It
// replaces the key's entry if present, else takes an empty or expired
// entry of the bucket, else evicts the bucket's oldest entry.
func (t *flowTable) insert(key *parser.FlowKey, h uint64, node uint16, deadline, now int64) {
	b := t.bucketOf(h)
	tag := tagOf(h)
	free, expired, oldest := -1, -1, -1
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
			return
		}
		if e.deadline <= now && expired < 0 {
			expired = i
		}
		if oldest < 0 || e.deadline < t.entries[oldest].deadline {
			oldest = i
		}
	}
	i := free
	switch {
	case i >= 0:
	case expired >= 0:
		i = expired
		t.clear(i)
		t.expirations.add(1)
	default:
		i = oldest
		t.clear(i)
		t.evictions.add(1)
	}
	t.tags[i] = tag
	t.entries[i] = flowEntry{key: *key, node: node, deadline: deadline}
	bucket := h & t.mask
	t.occupied[bucket/64] |= 1 << (bucket % 64)
	t.count++
	t.size.Store(uint64(t.count))
	t.inserts.add(1)
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

// Store sets the counter (owner only).
func (c *ownerCounter) Store(v uint64) { c.v.Store(v) }
