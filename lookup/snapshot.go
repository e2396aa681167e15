package lookup

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"sort"
	"time"

	"github.com/anysched/anysched/parser"
)

// NoNode is the node ID of an empty slot (no node has weight) and of "no
// decision".
const NoNode uint16 = 0xFFFF

// VIP is an anycast service address the router schedules.
type VIP struct {
	Addr netip.Addr
	Port uint16
	// TLS false declares a non-TLS service: all its flows are legacy and
	// pinned at the SYN.
	TLS bool
}

// Node is one node as a Snapshot sees it. Its ID is its index in
// Snapshot.Nodes and is stable for the life of the Scheduler.
type Node struct {
	ID      uint16
	Name    string
	Pool    string
	Unicast netip.Addr
	// MAC is valid when HasMAC; otherwise resolve Unicast through the
	// kernel's neighbour table.
	MAC    [6]byte
	HasMAC bool
	// Weight is the node's weight in this table; Slots how many slots it
	// owns.
	Weight uint32
	Slots  uint32
	// Up is the probe verdict, Draining the config or report verdict.
	Up       bool
	Draining bool
	// Removed nodes are no longer in the config; they stay in the array
	// so that IDs held by pins and transitions still resolve.
	Removed bool
	// Score is the node's score in [0,1] when the table was built (lower
	// is better).
	Score float64
}

// Slot is one entry of the Maglev table with its transition state.
type Slot struct {
	// Owner receives new flows (SYNs) hashed to the slot.
	Owner uint16
	// Prev owned the slot before its last move. While now < Until,
	// non-SYN packets of flows not recorded in the transition set go to
	// Prev.
	Prev uint16
	// Until is the end of the grace period of the slot's last move, on
	// the Now clock; 0 when the slot never moved.
	Until int64
}

// Moving reports whether the slot is within the grace period of a move:
// its transition records and Prev decide non-SYN packets. Prev may equal
// Owner then: a slot whose new owner was drained or died within the
// grace period can go back to the node it came from, and the flows the
// drained node got meanwhile still follow their records.
func (sl *Slot) Moving(now int64) bool { return now < sl.Until }

// Snapshot is an immutable, published scheduling state. Nothing in it is
// written after Scheduler publishes it; readers must not write it either.
type Snapshot struct {
	// Generation increases by one with every published snapshot.
	Generation uint64
	// BuiltAt is when it was built, on the Now clock.
	BuiltAt int64
	VIPs    []VIP
	Nodes   []Node
	// Slots is the Maglev table, len(Slots) == M.
	Slots []Slot
	// Grace is the grace period G in nanoseconds.
	Grace int64
	// PinIdle is the pin idle timeout in nanoseconds.
	PinIdle int64
	// PinIdleAfterRST is how long a pin lives after a client RST unless
	// a later packet of the flow restores PinIdle (an RST may be
	// spoofed: it only shortens the pin).
	PinIdleAfterRST int64
	// Held counts slots whose move waits for their dwell time.
	Held int
	// Digest identifies the table independent of node IDs: two routers
	// with the same digest send every flow to the same node name.
	Digest [32]byte
	Key    HashKey
}

// M returns the table size.
func (s *Snapshot) M() uint32 { return uint32(len(s.Slots)) }

// Hash returns the keyed flow hash of key.
func (s *Snapshot) Hash(key *parser.FlowKey) uint64 { return HashFlow(s.Key, key) }

// SlotOf returns the slot index of a flow hash.
func (s *Snapshot) SlotOf(h uint64) uint32 { return reduce(h, s.M()) }

// LookupNew returns the node a new flow (a SYN) with this key goes to,
// ignoring pins and transitions: the table owner of its slot.
func (s *Snapshot) LookupNew(key *parser.FlowKey) uint16 {
	return s.Slots[reduce(HashFlow(s.Key, key), s.M())].Owner
}

// Node returns the node with the given ID, or nil for NoNode or an ID out
// of range.
func (s *Snapshot) Node(id uint16) *Node {
	if int(id) >= len(s.Nodes) {
		return nil
	}
	return &s.Nodes[id]
}

// VIPFor reports whether addr:port is a VIP of this snapshot and returns
// it. It is a linear scan: VIP lists are short.
func (s *Snapshot) VIPFor(addr netip.Addr, port uint16) (VIP, bool) {
	for _, v := range s.VIPs {
		if v.Port == port && v.Addr == addr {
			return v, true
		}
	}
	return VIP{}, false
}

// Owners returns the table as a node ID per slot (a copy).
func (s *Snapshot) Owners() []uint16 {
	out := make([]uint16, len(s.Slots))
	for i := range s.Slots {
		out[i] = s.Slots[i].Owner
	}
	return out
}

// Now is the clock of slot change times, pin deadlines and Decider calls:
// monotonic nanoseconds since the process started. The fast path reads it
// once per batch.
func Now() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// TableDigest hashes the table as "slot → node name": node names sorted,
// then each slot's owner as the uint16 rank of its name (0xFFFF empty).
func TableDigest(owners []uint16, nodes []Node) [32]byte {
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if n.Slots > 0 {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	rank := make(map[string]uint16, len(names))
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(len(owners)))
	h.Write(b[:])
	for i, n := range names {
		rank[n] = uint16(i)
		binary.LittleEndian.PutUint16(b[:2], uint16(len(n)))
		h.Write(b[:2])
		h.Write([]byte(n))
	}
	buf := make([]byte, 2*len(owners))
	for i, o := range owners {
		r := NoNode
		if o != NoNode {
			r = rank[nodes[o].Name]
		}
		binary.LittleEndian.PutUint16(buf[2*i:], r)
	}
	h.Write(buf)
	var d [32]byte
	h.Sum(d[:0])
	return d
}
