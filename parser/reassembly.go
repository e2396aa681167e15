package parser

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
	"unsafe"
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

// reasmSlotOverhead is what a slot costs beside its MaxBytes of buffer:
// its bookkeeping, its resumable scan and the ClientHello it fills, and
// two index entries.
const reasmSlotOverhead = int(unsafe.Sizeof(reasmSlot{}) + unsafe.Sizeof(reasmScan{}) + 2*unsafe.Sizeof(int32(0)))

// Bytes is the memory a Reassembler of this configuration allocates up
// front (as given: zero fields count as zero), so a caller can check
// capacities against memory.
func (c ReassemblerConfig) Bytes() uint64 {
	return uint64(max(c.Slots, 0)) * uint64(max(c.MaxBytes, 0)+reasmSlotOverhead)
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
	case c.Bytes() > maxReassemblyTotalBytes:
		return c, fmt.Errorf("reassembler: Slots %d × (MaxBytes %d + %d of scan state) = %d bytes exceeds %d",
			c.Slots, c.MaxBytes, reasmSlotOverhead, c.Bytes(), uint64(maxReassemblyTotalBytes))
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
	// VerdictComplete: out holds the whole ClientHello; the flow is
	// decided (see Reassembler).
	VerdictComplete
	// VerdictMalformed: a ClientHello that breaks the rules (out.Malformed);
	// the flow is decided. Treat the flow as legacy.
	VerdictMalformed
	// VerdictUnknown: the ClientHello cannot be followed (no free slot, over
	// MaxBytes, a gap in the sequence, bytes that contradict bytes held,
	// timed out); the flow is decided if it had a slot. The caller pins
	// the flow.
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
	Started    uint64 // flows that got a slot on their first ClientHello bytes
	Opened     uint64 // flows that got a slot from Open (their SYN)
	Completed  uint64 // VerdictComplete after buffering
	Malformed  uint64 // VerdictMalformed after buffering
	NoSlot     uint64 // VerdictUnknown: every slot busy
	Overflow   uint64 // VerdictUnknown: the ClientHello needs more than MaxBytes
	OutOfOrder uint64 // segments held ahead of a gap, waiting for it to fill
	Holes      uint64 // VerdictUnknown: more gaps than a slot can track
	Conflict   uint64 // VerdictUnknown: a segment's bytes differ from bytes held for the same sequence numbers
	Timeout    uint64 // VerdictUnknown: the flow was pending too long
	Expired    uint64 // slots freed by Expire or to make room
	Replaced   uint64 // slots of opened flows that had sent nothing, or of decided flows, given to another flow
	Forgotten  uint64 // slots freed by Forget
	Ignored    uint64 // segments of decided flows (retransmissions, later handshake records), not scanned
}

// Add adds o to s, field by field (to total several reassemblers).
func (s *ReassemblerStats) Add(o *ReassemblerStats) {
	s.Started += o.Started
	s.Opened += o.Opened
	s.Completed += o.Completed
	s.Malformed += o.Malformed
	s.NoSlot += o.NoSlot
	s.Overflow += o.Overflow
	s.OutOfOrder += o.OutOfOrder
	s.Holes += o.Holes
	s.Conflict += o.Conflict
	s.Timeout += o.Timeout
	s.Expired += o.Expired
	s.Replaced += o.Replaced
	s.Forgotten += o.Forgotten
	s.Ignored += o.Ignored
}

// reasmGaps is how many separate runs of bytes a slot holds beyond its
// contiguous prefix: a ClientHello of n segments arriving in any order
// needs at most n-1 of them.
const reasmGaps = 4

// Reassembler holds the first flight of flows whose ClientHello spans TCP
// segments, in a fixed number of preallocated slots, so the fast path can
// scan the whole message.
//
// Segments may arrive in any order, duplicated or retransmitted: each is
// placed by its sequence number relative to the first byte of the flight,
// which is known from the flow's SYN (Open) or, without it, taken to be the
// first byte of the first segment that starts a ClientHello. The bytes
// held form a contiguous prefix plus up to reasmGaps runs beyond a gap;
// the ClientHello scan resumes where it stopped when the prefix grows, so
// every byte is scanned once, and a duplicate or a segment held ahead of
// a gap costs a comparison and a copy of its own bytes, never a rescan:
// the work per segment is bounded by its length. A segment whose bytes
// differ from bytes already held for the same sequence numbers (an attack
// or a broken stack), more gaps than that, or a ClientHello longer than
// MaxBytes makes the flow VerdictUnknown. It never allocates after
// NewReassembler.
//
// A flow whose ClientHello was decided (complete, malformed or unknown)
// keeps its slot, without bytes, as a marker until the timeout, its
// FIN/RST (Forget) or a new connection on the 5-tuple (Open with another
// sequence number): its later segments — a retransmission of the
// ClientHello, a second one, TLS 1.2's next handshake records — are
// VerdictNotHello, so a retransmitted first segment cannot start a new
// scan that would pin a flow the first verdict unpinned. Markers give way
// (after opened slots) when slots run out; a flow that lost its marker is followed again
// from a segment that starts a ClientHello, pinned while that is pending.
//
// A Reassembler is not safe for concurrent use: each fast-path worker owns
// one and calls it from its own goroutine only.
type Reassembler struct {
	cfg   ReassemblerConfig
	slots []reasmSlot
	scans []reasmScan // per slot: where its ClientHello scan stopped
	buf   []byte      // Slots × MaxBytes
	index []int32     // open addressing, linear probing: slot+1, 0 = empty
	mask  uint32
	seed  [2]uint64
	free  []int32 // stack of free slots
	// The slots in use form two lists in the order they joined them:
	// opened flows that have sent nothing yet, and flows holding bytes.
	// With one timeout for all, each head is the next of its list to
	// expire, and the opened list's head is the first to give way.
	head, tail [numReasmLists]int32
	count      [numReasmLists]int32
	stats      ReassemblerStats
	scanSteps  uint64 // helloScan.steps of every scan of held bytes
}

// The lists of slots in use.
const (
	listHolding = iota // bytes held
	listOpened         // Open was called, no byte yet
	listDecided        // the ClientHello was decided; a marker
	numReasmLists
)

type reasmSlot struct {
	key        FlowKey
	start      uint32 // sequence number of the flight's first byte
	n          int32  // bytes held contiguously from start
	gaps       uint8  // runs used in held
	list       uint8
	held       [reasmGaps]reasmRun // beyond n: sorted, disjoint, not touching
	created    int64               // when the slot joined its list
	prev, next int32
}

// reasmRun is a run of bytes held beyond a gap, as offsets from start.
type reasmRun struct{ lo, hi int32 }

// reasmScan is a slot's scan of its contiguous bytes: the walk resumes
// where the bytes ran out, and hello holds what it found so far.
type reasmScan struct {
	scan  helloScan
	hello ClientHello
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
		scans: make([]reasmScan, cfg.Slots),
		buf:   make([]byte, cfg.Slots*cfg.MaxBytes),
		index: make([]int32, size),
		mask:  size - 1,
		free:  make([]int32, 0, cfg.Slots),
		head:  [numReasmLists]int32{noSlot, noSlot, noSlot},
		tail:  [numReasmLists]int32{noSlot, noSlot, noSlot},
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

// InUse returns how many slots hold a ClientHello in progress: pending
// flows and opened ones that have sent nothing yet.
func (r *Reassembler) InUse() int { return int(r.count[listHolding] + r.count[listOpened]) }

// Decided returns how many slots are markers of decided flows.
func (r *Reassembler) Decided() int { return int(r.count[listDecided]) }

// Tracking is what a Reassembler knows of a flow.
type Tracking uint8

// Values of Tracking.
const (
	TrackingNone       Tracking = iota // no slot
	TrackingCollecting                 // opened or pending: its segments change state
	TrackingDecided                    // decided: its segments are ignored
)

// Tracks says what r holds for the flow, so a caller can skip work (a
// checksum) for segments that cannot change anything: a flow with no slot
// changes state only with a segment that starts a ClientHello, a decided
// flow never.
func (r *Reassembler) Tracks(key *FlowKey) Tracking {
	if len(r.free) == len(r.slots) {
		return TrackingNone
	}
	si := r.find(key, r.hash(key))
	switch {
	case si == noSlot:
		return TrackingNone
	case r.slots[si].list == listDecided:
		return TrackingDecided
	}
	return TrackingCollecting
}

// Open tells the Reassembler that the flow's client sent a SYN with
// sequence number synSeq, so its first payload byte will be synSeq+1:
// then segments of its ClientHello are placed exactly even when the first
// one arrives last. It takes a slot if one is free, else the slot of the
// opened flow that has waited longest without sending a byte, else the
// oldest decided marker, else none (the flow is then followed from its
// first ClientHello bytes, as without Open). A repeated SYN keeps the slot
// (and a decided flow its marker); one with another sequence number (the
// 5-tuple reused) starts over. It reports whether the flow has a slot.
func (r *Reassembler) Open(key *FlowKey, synSeq uint32, now int64) bool {
	h := r.hash(key)
	if si := r.find(key, h); si != noSlot {
		s := &r.slots[si]
		if s.start == synSeq+1 {
			return true
		}
		r.release(si)
	}
	si := r.take(now)
	if si == noSlot {
		return false
	}
	s := &r.slots[si]
	s.key, s.start, s.n, s.gaps = *key, synSeq+1, 0, 0
	r.scans[si].reset()
	r.insert(h, si)
	r.push(si, listOpened, now)
	r.stats.Opened++
	return true
}

// take returns a free slot, making room if it can: expired flows first,
// then the opened flow that has waited longest without a byte (so a SYN
// flood churns only the slots of SYNs), then the oldest decided marker.
func (r *Reassembler) take(now int64) int32 {
	if len(r.free) == 0 {
		r.expire(now, len(r.slots))
	}
	for _, l := range [...]uint8{listOpened, listDecided} {
		if len(r.free) == 0 && r.head[l] != noSlot {
			r.release(r.head[l])
			r.stats.Replaced++
		}
	}
	if len(r.free) == 0 {
		return noSlot
	}
	si := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	return si
}

// Feed takes one client→server TCP segment (sequence number seq and its
// payload) of the flow key at time now and returns the verdict. out is
// filled by every call that scans: a segment that adds to the contiguous
// bytes held, or the first ClientHello bytes of a flow; otherwise (the
// segment is held ahead of a gap, repeats bytes held, or the flow is
// Unknown) out is reset. Slices in out may point into the Reassembler's
// buffer: they are valid until the next call on r.
// Ignore counts a segment of a decided flow (Tracks said so) that the
// caller did not feed, as Feed counts one it is given.
func (r *Reassembler) Ignore() { r.stats.Ignored++ }

func (r *Reassembler) Feed(key *FlowKey, seq uint32, payload []byte, now int64, cfg *HelloConfig, out *ClientHello) Verdict {
	h := r.hash(key)
	si := r.find(key, h)
	if si == noSlot {
		return r.feedNew(key, h, seq, payload, now, cfg, out)
	}
	s := &r.slots[si]
	if s.list == listDecided {
		r.stats.Ignored++
		out.reset()
		return VerdictNotHello
	}
	if now-s.created > r.cfg.Timeout {
		return r.drop(si, &r.stats.Timeout, out, now)
	}
	// Place the segment relative to the flight's first byte (serial
	// arithmetic); bytes before it or past MaxBytes are not the flight's
	// or cannot be held: a ClientHello that needs the latter is Unknown
	// below, when the bytes held reach MaxBytes.
	off := int64(int32(seq - s.start))
	if off < 0 && s.n == 0 && s.gaps == 0 {
		// Data from before the byte the SYN promised, and nothing held:
		// that SYN was not this stream's (a spoofed or stale one). Follow
		// the flow from this segment, as if it had never been opened.
		r.release(si)
		return r.feedNew(key, h, seq, payload, now, cfg, out)
	}
	data := payload
	if off < 0 {
		if int64(len(data)) <= -off {
			data = nil
		} else {
			data = data[-off:]
		}
		off = 0
	}
	limit := int64(r.cfg.MaxBytes)
	if off >= limit {
		data = nil
	} else if off+int64(len(data)) > limit {
		data = data[:limit-off]
	}
	if len(data) == 0 {
		out.reset()
		return VerdictPending
	}
	lo, hi := int32(off), int32(off)+int32(len(data))
	base := int(si) * r.cfg.MaxBytes
	if !r.agrees(s, r.buf[base:base+r.cfg.MaxBytes], lo, data) {
		return r.drop(si, &r.stats.Conflict, out, now)
	}
	copy(r.buf[base+int(lo):], data)
	if s.list == listOpened {
		r.unlink(si)
		r.push(si, listHolding, now)
	}
	if lo > s.n {
		if !s.hold(lo, hi) {
			return r.drop(si, &r.stats.Holes, out, now)
		}
		r.stats.OutOfOrder++
		out.reset()
		return VerdictPending
	}
	if hi <= s.n {
		out.reset() // nothing new: a duplicate
		return VerdictPending
	}
	s.n = hi
	for s.gaps > 0 && s.held[0].lo <= s.n {
		s.n = max(s.n, s.held[0].hi)
		copy(s.held[:], s.held[1:s.gaps])
		s.gaps--
	}
	if cfg == nil {
		cfg = &defaultHelloConfig
	}
	sc := &r.scans[si]
	steps := sc.scan.steps
	st := sc.scan.advance(r.buf[base:base+int(s.n):base+int(s.n)], cfg, &sc.hello)
	r.scanSteps += uint64(sc.scan.steps - steps)
	sc.copyTo(out)
	switch st {
	case HelloIncomplete:
		if int(s.n) == r.cfg.MaxBytes {
			return r.drop(si, &r.stats.Overflow, out, now)
		}
		return VerdictPending
	case HelloComplete:
		r.decide(si, now)
		r.stats.Completed++
		return VerdictComplete
	case HelloMalformed:
		r.decide(si, now)
		r.stats.Malformed++
		return VerdictMalformed
	}
	// An opened flow whose first bytes are not a ClientHello.
	r.release(si)
	return VerdictNotHello
}

// drop decides slot si as VerdictUnknown, counting why.
func (r *Reassembler) drop(si int32, why *uint64, out *ClientHello, now int64) Verdict {
	r.decide(si, now)
	*why++
	out.reset()
	return VerdictUnknown
}

// decide turns slot si into a marker of a decided flow.
func (r *Reassembler) decide(si int32, now int64) {
	r.unlink(si)
	r.push(si, listDecided, now)
}

// agrees reports whether data, to be placed at offset lo, matches every
// byte already held for the same offsets.
func (r *Reassembler) agrees(s *reasmSlot, buf []byte, lo int32, data []byte) bool {
	hi := lo + int32(len(data))
	same := func(from, to int32) bool {
		from, to = max(from, lo), min(to, hi)
		return from >= to || bytes.Equal(buf[from:to], data[from-lo:to-lo])
	}
	if !same(0, s.n) {
		return false
	}
	for _, run := range s.held[:s.gaps] {
		if !same(run.lo, run.hi) {
			return false
		}
	}
	return true
}

// hold records [lo, hi), beyond a gap, merging the runs it overlaps or
// touches; false when that would need more than reasmGaps runs.
func (s *reasmSlot) hold(lo, hi int32) bool {
	var merged [reasmGaps + 1]reasmRun
	n, placed := 0, false
	for _, run := range s.held[:s.gaps] {
		switch {
		case run.hi < lo: // wholly before
			merged[n] = run
			n++
		case run.lo > hi: // wholly after
			if !placed {
				merged[n] = reasmRun{lo, hi}
				n++
				placed = true
			}
			merged[n] = run
			n++
		default: // overlaps or touches: absorb it
			lo, hi = min(lo, run.lo), max(hi, run.hi)
		}
	}
	if !placed {
		merged[n] = reasmRun{lo, hi}
		n++
	}
	if n > reasmGaps {
		return false
	}
	copy(s.held[:], merged[:n])
	s.gaps = uint8(n)
	return true
}

// feedNew handles a segment of a flow that holds no slot.
func (r *Reassembler) feedNew(key *FlowKey, h uint32, seq uint32, payload []byte, now int64, cfg *HelloConfig, out *ClientHello) Verdict {
	if cfg == nil {
		cfg = &defaultHelloConfig
	}
	out.reset()
	if len(payload) == 0 {
		return VerdictNotHello
	}
	if wholeInOneRecord(payload) { // the usual hello: one segment, one record
		switch ScanClientHello(payload, cfg, out) {
		case HelloNotClientHello:
			return VerdictNotHello
		case HelloComplete:
			return VerdictComplete
		}
		return VerdictMalformed
	}
	// The record layer first: only a ClientHello that continues past this
	// segment needs a slot, and the slot's scan reads its body once.
	var records helloScan
	records.reset()
	switch records.advanceRecords(payload, out) {
	case HelloNotClientHello:
		return VerdictNotHello
	case HelloMalformed:
		return VerdictMalformed
	case HelloComplete:
		if ScanClientHello(payload, cfg, out) == HelloComplete {
			return VerdictComplete
		}
		return VerdictMalformed
	}
	var si int32 = noSlot
	if len(payload) < r.cfg.MaxBytes {
		si = r.take(now)
	}
	if si == noSlot {
		// Unknown, unless the body already breaks the rules.
		if ScanClientHello(payload, cfg, out) == HelloMalformed {
			return VerdictMalformed
		}
		if len(payload) >= r.cfg.MaxBytes {
			r.stats.Overflow++
		} else {
			r.stats.NoSlot++
		}
		return VerdictUnknown
	}
	s := &r.slots[si]
	s.key, s.start, s.gaps = *key, seq, 0
	base := int(si) * r.cfg.MaxBytes
	s.n = int32(copy(r.buf[base:], payload))
	sc := &r.scans[si]
	sc.reset()
	steps := sc.scan.steps
	st := sc.scan.advance(r.buf[base:base+int(s.n):base+int(s.n)], cfg, &sc.hello)
	r.scanSteps += uint64(sc.scan.steps - steps)
	sc.copyTo(out)
	if st == HelloMalformed {
		// As a scan of the segment alone says: no slot for a verdict
		// found in the first segment.
		r.free = append(r.free, si)
		return VerdictMalformed
	}
	r.insert(h, si)
	r.push(si, listHolding, now)
	r.stats.Started++
	return VerdictPending
}

func (sc *reasmScan) reset() {
	sc.scan.reset()
	sc.hello.reset()
}

// copyTo gives out what the scan found, field by field: the type list
// only serves the scan's duplicate check, and the host-name buffer is
// copied only when the name lies there (split records), then out's SNI
// points into out's own buffer, as ScanClientHello's would.
func (sc *reasmScan) copyTo(out *ClientHello) {
	h := &sc.hello
	out.IsClientHello, out.Complete, out.Missing, out.Malformed = h.IsClientHello, h.Complete, h.Missing, h.Malformed
	out.Records, out.Length, out.End, out.LegacyVersion, out.Extensions = h.Records, h.Length, h.End, h.LegacyVersion, h.Extensions
	out.MigrationSupport, out.MigrationToken, out.MigrationTokenData, out.SNI = h.MigrationSupport, h.MigrationToken, h.MigrationTokenData, h.SNI
	out.OffersTLS13, out.PreSharedKey, out.ECH, out.GREASE = h.OffersTLS13, h.PreSharedKey, h.ECH, h.GREASE
	if n := len(h.SNI); n > 0 && &h.SNI[0] == &h.sniBuf[0] {
		out.SNI = out.sniBuf[:copy(out.sniBuf[:], h.SNI):n]
	}
}

// Forget frees the flow's slot, if it has one (on FIN/RST, or when the
// caller has decided the flow otherwise).
func (r *Reassembler) Forget(key *FlowKey) {
	if si := r.find(key, r.hash(key)); si != noSlot {
		r.release(si)
		r.stats.Forgotten++
	}
}

// Expire frees the slots that outlived the timeout (flows pending or
// opened that long, and markers of flows decided that long ago) and
// returns how many it freed; it frees at most budget (<= 0: no limit), so
// a fast path can call it every batch at a bounded cost and the slots of
// a flood leave within the timeout even when no ClientHello needs one.
func (r *Reassembler) Expire(now int64, budget int) int {
	if budget <= 0 {
		budget = len(r.slots)
	}
	return r.expire(now, budget)
}

func (r *Reassembler) expire(now int64, budget int) int {
	n := 0
	for l := range r.head {
		for n < budget && r.head[l] != noSlot && now-r.slots[r.head[l]].created > r.cfg.Timeout {
			r.release(r.head[l])
			n++
		}
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
// tombstones accumulate), out of its list, onto the free stack.
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
	r.unlink(si)
	s.n, s.gaps = 0, 0
	r.free = append(r.free, si)
}

// unlink takes slot si out of its list.
func (r *Reassembler) unlink(si int32) {
	s := &r.slots[si]
	if s.prev != noSlot {
		r.slots[s.prev].next = s.next
	} else {
		r.head[s.list] = s.next
	}
	if s.next != noSlot {
		r.slots[s.next].prev = s.prev
	} else {
		r.tail[s.list] = s.prev
	}
	r.count[s.list]--
}

// push appends slot si to list l, joining it at time now.
func (r *Reassembler) push(si int32, l uint8, now int64) {
	s := &r.slots[si]
	s.list, s.created = l, now
	s.prev, s.next = r.tail[l], noSlot
	if r.tail[l] != noSlot {
		r.slots[r.tail[l]].next = si
	} else {
		r.head[l] = si
	}
	r.tail[l] = si
	r.count[l]++
}
