package parser

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// Defaults of ReassemblerConfig.
const (
	DefaultReassemblySlots   = 1024
	DefaultReassemblyBytes   = 16 << 10
	DefaultReassemblyTimeout = int64(3 * time.Second)
)

// Limits of ReassemblerConfig, so a typo cannot ask for terabytes.
const (
	MaxReassemblySlots      = 1 << 20
	MinReassemblyBytes      = 64
	MaxReassemblyBytes      = 1 << 20
	maxReassemblyTotalBytes = 1 << 32
)

// ReassemblerConfig sizes a Reassembler. Zero fields take the defaults.
type ReassemblerConfig struct {
	// Slots is how many ClientHellos can be in flight at once (default 1024).
	Slots int
	// MaxBytes caps the bytes held per flow (default 16 KiB); a first flight
	// longer than that is reported VerdictUnknown.
	MaxBytes int
	// Timeout is how long a flow may stay pending, in the unit of the now
	// argument (nanoseconds by convention; default 3 s).
	Timeout int64
}

// withDefaults fills zero fields and checks the limits, naming the field.
func (c ReassemblerConfig) withDefaults() (ReassemblerConfig, error) {
	if c.Slots == 0 {
		c.Slots = DefaultReassemblySlots
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultReassemblyBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultReassemblyTimeout
	}
	switch {
	case c.Slots < 1 || c.Slots > MaxReassemblySlots:
		return c, fmt.Errorf("reassembler: Slots %d out of range 1..%d", c.Slots, MaxReassemblySlots)
	case c.MaxBytes < MinReassemblyBytes || c.MaxBytes > MaxReassemblyBytes:
		return c, fmt.Errorf("reassembler: MaxBytes %d out of range %d..%d", c.MaxBytes, MinReassemblyBytes, MaxReassemblyBytes)
	case uint64(c.Slots)*uint64(c.MaxBytes) > maxReassemblyTotalBytes:
		return c, fmt.Errorf("reassembler: Slots*MaxBytes = %d bytes exceeds %d", uint64(c.Slots)*uint64(c.MaxBytes), uint64(maxReassemblyTotalBytes))
	case c.Timeout < 0:
		return c, fmt.Errorf("reassembler: Timeout %d is negative", c.Timeout)
	}
	return c, nil
}

// Verdict is the outcome of Reassembler.Feed.
type Verdict uint8

// Outcomes of Feed.
const (
	// VerdictNotHello: the payload does not start a ClientHello and the flow
	// is not tracked. Nothing to do.
	VerdictNotHello Verdict = iota
	// VerdictPending: the start of a ClientHello is held; more segments are
	// needed. out holds what was seen so far. The caller pins the flow while
	// it is pending.
	VerdictPending
	// VerdictComplete: out holds the whole ClientHello; the slot is free.
	VerdictComplete
	// VerdictMalformed: a ClientHello that breaks the rules (out.Malformed);
	// the slot is free. Treat the flow as legacy.
	VerdictMalformed
	// VerdictUnknown: the ClientHello cannot be followed (no free slot, over
	// MaxBytes, a gap in the sequence, timed out); the slot is free. The
	// caller pins the flow.
	VerdictUnknown
	// NumVerdict is the number of Verdict values.
	NumVerdict
)

var verdictNames = [NumVerdict]string{"not_hello", "pending", "complete", "malformed", "unknown"}

// String returns a short snake_case name.
func (v Verdict) String() string {
	if v < NumVerdict {
		return verdictNames[v]
	}
	return "unknown_verdict"
}

// ReassemblerStats counts what a Reassembler did since it was made.
type ReassemblerStats struct {
	Started    uint64 // flows that got a slot
	Completed  uint64 // VerdictComplete after buffering
	Malformed  uint64 // VerdictMalformed after buffering
	NoSlot     uint64 // VerdictUnknown: every slot busy
	Overflow   uint64 // VerdictUnknown: more than MaxBytes
	OutOfOrder uint64 // VerdictUnknown: a gap before the segment
	Timeout    uint64 // VerdictUnknown: the flow was pending too long
	Expired    uint64 // slots freed by Expire or to make room
	Forgotten  uint64 // slots freed by Forget
}

// Reassembler holds the first flight of flows whose ClientHello spans TCP
// segments, in a fixed number of preallocated slots, so the fast path can
// scan the whole message. Segments are taken in sequence order; duplicates
// and overlaps keep the bytes received first (as Linux does); a gap makes
// the flow unknown. It never allocates after NewReassembler.
//
// A Reassembler is not safe for concurrent use: each fast-path worker owns
// one and calls it from its own goroutine only.
type Reassembler struct {
	cfg   ReassemblerConfig
	slots []reasmSlot
	buf   []byte  // Slots × MaxBytes
	index []int32 // open addressing, linear probing: slot+1, 0 = empty
	mask  uint32
	seed  [2]uint64
	free  []int32 // stack of free slots
	// The slots in use form a list in the order they were taken; with one
	// timeout for all, the head is always the next to expire.
	head, tail int32
	stats      ReassemblerStats
}

type reasmSlot struct {
	key        FlowKey
	start      uint32 // sequence number of the first byte held
	n          int    // bytes held
	created    int64
	prev, next int32
}

const noSlot = -1

// NewReassembler makes a Reassembler with all its memory
// (Slots × MaxBytes plus a small index) allocated up front.
func NewReassembler(cfg ReassemblerConfig) (*Reassembler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	size := uint32(1) << bits.Len32(uint32(2*cfg.Slots-1))
	r := &Reassembler{
		cfg:   cfg,
		slots: make([]reasmSlot, cfg.Slots),
		buf:   make([]byte, cfg.Slots*cfg.MaxBytes),
		index: make([]int32, size),
		mask:  size - 1,
		free:  make([]int32, 0, cfg.Slots),
		head:  noSlot,
		tail:  noSlot,
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("reassembler: hash seed: %w", err)
	}
	r.seed[0] = binary.LittleEndian.Uint64(seed[:8])
	r.seed[1] = binary.LittleEndian.Uint64(seed[8:])
	for i := cfg.Slots - 1; i >= 0; i-- {
		r.free = append(r.free, int32(i))
	}
	return r, nil
}

// Config returns the configuration in effect (defaults filled in).
func (r *Reassembler) Config() ReassemblerConfig { return r.cfg }

// Stats returns the counters. Call it from the owning goroutine.
func (r *Reassembler) Stats() ReassemblerStats { return r.stats }

// InUse returns how many slots hold a pending flow.
func (r *Reassembler) InUse() int { return len(r.slots) - len(r.free) }

// Feed takes one client→server TCP segment (sequence number seq and its
// payload) of the flow key at time now and returns the verdict. out is
// filled by every call that scans (all verdicts except some Unknown ones,
// where out is reset). Slices in out may point into the Reassembler's
// buffer: they are valid until the next call on r.
func (r *Reassembler) Feed(key *FlowKey, seq uint32, payload []byte, now int64, cfg *HelloConfig, out *ClientHello) Verdict {
	h := r.hash(key)
	si := r.find(key, h)
	if si == noSlot {
		return r.feedNew(key, h, seq, payload, now, cfg, out)
	}
	s := &r.slots[si]
	if now-s.created > r.cfg.Timeout {
		r.release(si)
		r.stats.Timeout++
		out.reset()
		return VerdictUnknown
	}
	// Place the segment relative to the first byte held (serial arithmetic).
	off := int64(int32(seq - s.start))
	data := payload
	if off < 0 {
		if int64(len(data)) <= -off {
			data = nil
		} else {
			data = data[-off:]
		}
		off = 0
	}
	if off > int64(s.n) {
		r.release(si)
		r.stats.OutOfOrder++
		out.reset()
		return VerdictUnknown
	}
	if dup := s.n - int(off); dup >= len(data) {
		data = nil
	} else {
		data = data[dup:]
	}
	if s.n+len(data) > r.cfg.MaxBytes {
		r.release(si)
		r.stats.Overflow++
		out.reset()
		return VerdictUnknown
	}
	base := int(si) * r.cfg.MaxBytes
	copy(r.buf[base+s.n:], data)
	s.n += len(data)
	switch ScanClientHello(r.buf[base:base+s.n:base+s.n], cfg, out) {
	case HelloIncomplete:
		return VerdictPending
	case HelloComplete:
		r.release(si)
		r.stats.Completed++
		return VerdictComplete
	case HelloMalformed:
		r.release(si)
		r.stats.Malformed++
		return VerdictMalformed
	}
	r.release(si) // cannot happen: the bytes held started a ClientHello
	return VerdictNotHello
}

// feedNew handles a segment of a flow that holds no slot.
func (r *Reassembler) feedNew(key *FlowKey, h uint32, seq uint32, payload []byte, now int64, cfg *HelloConfig, out *ClientHello) Verdict {
	if len(payload) == 0 {
		out.reset()
		return VerdictNotHello
	}
	switch ScanClientHello(payload, cfg, out) {
	case HelloNotClientHello:
		return VerdictNotHello
	case HelloComplete:
		return VerdictComplete
	case HelloMalformed:
		return VerdictMalformed
	}
	if len(payload) > r.cfg.MaxBytes {
		r.stats.Overflow++
		return VerdictUnknown
	}
	if len(r.free) == 0 {
		r.expire(now)
		if len(r.free) == 0 {
			r.stats.NoSlot++
			return VerdictUnknown
		}
	}
	si := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	s := &r.slots[si]
	s.key = *key
	s.start = seq
	s.created = now
	s.n = copy(r.buf[int(si)*r.cfg.MaxBytes:], payload)
	r.insert(h, si)
	r.pushTail(si)
	r.stats.Started++
	// out points into payload; the caller's buffer is still valid.
	return VerdictPending
}

// Forget frees the flow's slot, if it has one (on FIN/RST, or when the
// caller has decided the flow otherwise).
func (r *Reassembler) Forget(key *FlowKey) {
	if si := r.find(key, r.hash(key)); si != noSlot {
		r.release(si)
		r.stats.Forgotten++
	}
}

// Expire frees the slots of flows pending longer than the timeout and
// returns how many it freed. Call it now and then (it costs O(expired)).
func (r *Reassembler) Expire(now int64) int {
	return r.expire(now)
}

func (r *Reassembler) expire(now int64) int {
	n := 0
	for r.head != noSlot && now-r.slots[r.head].created > r.cfg.Timeout {
		r.release(r.head)
		n++
	}
	r.stats.Expired += uint64(n)
	return n
}

// hash is a keyed multiply-xorshift hash of the 5-tuple; the random seed
// keeps outsiders from choosing flows that collide.
func (r *Reassembler) hash(k *FlowKey) uint32 {
	const m = 0x9e3779b97f4a7c15
	h := r.seed[0]
	mix := func(w uint64) {
		h = (h ^ w) * m
		h ^= h >> 29
	}
	mix(binary.LittleEndian.Uint64(k.Src[0:8]))
	mix(binary.LittleEndian.Uint64(k.Src[8:16]))
	mix(binary.LittleEndian.Uint64(k.Dst[0:8]))
	mix(binary.LittleEndian.Uint64(k.Dst[8:16]))
	mix(uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32 | uint64(k.Family)<<40)
	mix(r.seed[1])
	return uint32(h ^ h>>32)
}

// find returns the slot holding key, or noSlot.
func (r *Reassembler) find(key *FlowKey, h uint32) int32 {
	for i := h & r.mask; ; i = (i + 1) & r.mask {
		e := r.index[i]
		if e == 0 {
			return noSlot
		}
		if r.slots[e-1].key == *key {
			return e - 1
		}
	}
}

func (r *Reassembler) insert(h uint32, si int32) {
	i := h & r.mask
	for r.index[i] != 0 {
		i = (i + 1) & r.mask
	}
	r.index[i] = si + 1
}

// release frees slot si: out of the index (backward-shift deletion, so no
// tombstones accumulate), out of the age list, onto the free stack.
func (r *Reassembler) release(si int32) {
	s := &r.slots[si]
	i := r.hash(&s.key) & r.mask
	for r.index[i] != si+1 {
		i = (i + 1) & r.mask
	}
	// Shift later entries of the probe run back into the hole.
	for j := (i + 1) & r.mask; r.index[j] != 0; j = (j + 1) & r.mask {
		home := r.hash(&r.slots[r.index[j]-1].key) & r.mask
		// The entry at j may move to the hole at i if its home is not in
		// the cyclic range (i, j].
		if (j-home)&r.mask >= (j-i)&r.mask {
			r.index[i] = r.index[j]
			i = j
		}
	}
	r.index[i] = 0
	if s.prev != noSlot {
		r.slots[s.prev].next = s.next
	} else {
		r.head = s.next
	}
	if s.next != noSlot {
		r.slots[s.next].prev = s.prev
	} else {
		r.tail = s.prev
	}
	s.n = 0
	r.free = append(r.free, si)
}

func (r *Reassembler) pushTail(si int32) {
	s := &r.slots[si]
	s.prev, s.next = r.tail, noSlot
	if r.tail != noSlot {
		r.slots[r.tail].next = si
	} else {
		r.head = si
	}
	r.tail = si
}
