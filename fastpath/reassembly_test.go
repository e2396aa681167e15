package fastpath

import (
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

// seg is a client segment of port's flow with sequence number seq.
func seg(port uint16, flags uint8, seq uint32, payload []byte) packettest.TCP {
	s := flow(port, flags, payload)
	s.SrcPort, s.Seq = port, seq
	return s
}

// badChecksum is the frame of s with its TCP checksum broken.
func badChecksum(t *testing.T, s packettest.TCP) []byte {
	f := packettest.Frame(t, s)
	var p parser.Packet
	if parser.ParseFrame(f, &p) != parser.StatusOK {
		t.Fatal("frame does not parse")
	}
	f[p.L4Off+16] ^= 0x5a
	return f
}

func (h *harness) pinned(port uint16) bool {
	k := parser.FlowKey{SrcPort: port, DstPort: 443, Proto: parser.ProtoTCP}
	k.SetIPv4(client4.AsSlice(), vip4.AsSlice())
	return h.w.Decider().Pinned(&k, h.s.Current().Hash(&k), h.clk.now())
}

// Finding 6: a ClientHello carried on the SYN (TCP Fast Open) is scanned
// like any other: legacy pins, migration_support does not, and one that
// continues past the SYN is pinned while pending.
func TestFastOpenClientHelloIsScanned(t *testing.T) {
	h := newHarness(t)
	for i, c := range []struct {
		migration bool
		split     int // bytes on the SYN; the rest follow (0: all on the SYN)
	}{{false, 0}, {true, 0}, {false, 300}, {true, 300}} {
		port := uint16(31000 + i)
		ch := packettest.ClientHello(c.migration, 600)
		onSYN := ch
		if c.split > 0 {
			onSYN = ch[:c.split]
		}
		h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 5000, onSYN)))
		if c.split > 0 {
			if !h.pinned(port) {
				t.Fatalf("%+v: not pinned while the ClientHello on the SYN is pending", c)
			}
			h.send(packettest.Frame(t, seg(port, parser.TCPFlagACK, 5001+uint32(c.split), ch[c.split:])))
		}
		if got := h.pinned(port); got == c.migration {
			t.Errorf("%+v: pinned %v", c, got)
		}
	}
	if c := h.counters(); c.ClientHellos != 4 || c.ClientHelloMigrationSupport != 2 {
		t.Errorf("hellos %d, migration_support %d", c.ClientHellos, c.ClientHelloMigrationSupport)
	}
}

// Finding 8: the router believes only what the node accepts. A copy of
// the ClientHello with a bad TCP checksum, before or after the real one,
// with or without migration_support, changes nothing (the node drops it);
// two well-formed copies of the same bytes that differ are unknown, and
// the flow is pinned.
func TestChecksumAndConflictingCopies(t *testing.T) {
	legacy := packettest.ClientHello(false, 604)
	mig := packettest.ClientHello(true, 600)
	if len(legacy) != len(mig) {
		t.Fatalf("hellos of %d and %d bytes", len(legacy), len(mig))
	}
	const cut = 400
	for i, c := range []struct {
		name     string
		first    func(t *testing.T, port uint16) []byte
		real     []byte
		wantPin  bool
		conflict bool
	}{
		{"bad-checksum migration copy, then the legacy hello", func(t *testing.T, p uint16) []byte {
			return badChecksum(t, seg(p, parser.TCPFlagACK, 1001, mig[:cut]))
		}, legacy, true, false},
		{"bad-checksum legacy copy, then the migration hello", func(t *testing.T, p uint16) []byte {
			return badChecksum(t, seg(p, parser.TCPFlagACK, 1001, legacy[:cut]))
		}, mig, false, false},
	} {
		h := newHarness(t)
		port := uint16(32000 + i)
		h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 1000, nil)))
		// The second segment first, so each first-segment copy is what
		// the scan reads.
		h.send(packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001+cut, c.real[cut:])))
		h.send(c.first(t, port))
		h.send(packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001, c.real[:cut])))
		cs := h.counters()
		if got := h.pinned(port); got != c.wantPin {
			t.Errorf("%s: pinned %v, want %v", c.name, got, c.wantPin)
		}
		if c.conflict != (cs.Reassembly.Conflict == 1) || c.conflict != (cs.ClientHelloUnknown == 1) {
			t.Errorf("%s: conflicts %d, unknown %d", c.name, cs.Reassembly.Conflict, cs.ClientHelloUnknown)
		}
		if !c.conflict && cs.ReassemblyBadChecksum != 1 {
			t.Errorf("%s: %d bad checksums counted", c.name, cs.ReassemblyBadChecksum)
		}
	}
	// Two good copies of a segment held ahead of a gap, one with
	// migration_support, one without: which one the node's TCP keeps is
	// its own business (Linux lets a later out-of-order copy replace an
	// earlier one), so the router cannot know: unknown, pinned.
	h := newHarness(t)
	port := uint16(32100)
	h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 1000, nil)),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001+cut, mig[cut:])),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001+50, mig[50:cut])),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001+50, legacy[50:cut])),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001, mig[:50])))
	if cs := h.counters(); !h.pinned(port) || cs.Reassembly.Conflict != 1 || cs.ClientHelloUnknown != 1 {
		t.Errorf("conflicting good copies: pinned %v, conflicts %d, unknown %d", h.pinned(port), cs.Reassembly.Conflict, cs.ClientHelloUnknown)
	}
}

// Finding 7, the fast path's half: a flow's slot is freed by its RST or
// FIN (not by a forged one with a bad checksum), a new connection on the
// 5-tuple (SYN, another ISN) starts over, and a retransmission of the
// first segment after the verdict does not re-pin a migrating flow.
func TestReassemblySlotLifecycle(t *testing.T) {
	h := newHarness(t)
	ch := packettest.ClientHello(true, 1200)
	inUse := func() uint64 { _, g := h.w.Counters(); return g.Reassembling }
	for i, end := range []uint8{parser.TCPFlagRST, parser.TCPFlagFIN | parser.TCPFlagACK} {
		port := uint16(33000 + i)
		h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 1000, nil)),
			packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001, ch[:500])))
		h.send(badChecksum(t, seg(port, end, 1501, nil)))
		if inUse() != 1 {
			t.Fatalf("flags %#x: a forged end freed the slot", end)
		}
		h.send(packettest.Frame(t, seg(port, end, 1501, nil)))
		if inUse() != 0 {
			t.Fatalf("flags %#x: slot kept after the connection ended", end)
		}
	}
	// A new connection on the 5-tuple while its predecessor's hello is
	// pending: the new stream is read from its own first byte.
	port := uint16(33010)
	h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 1000, nil)),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 1001, ch[:500])))
	h.send(packettest.Frame(t, seg(port, parser.TCPFlagSYN, 90000, nil)),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 90001+500, ch[500:])),
		packettest.Frame(t, seg(port, parser.TCPFlagACK, 90001, ch[:500])))
	if h.pinned(port) || inUse() != 0 {
		t.Fatalf("new connection's migration hello: pinned %v, in use %d", h.pinned(port), inUse())
	}
	// The first segment again, after the verdict: ignored, not a new scan.
	h.send(packettest.Frame(t, seg(port, parser.TCPFlagACK, 90001, ch[:500])))
	if h.pinned(port) || h.counters().Reassembly.Ignored != 1 {
		t.Fatalf("retransmission after the verdict: pinned %v, ignored %d", h.pinned(port), h.counters().Reassembly.Ignored)
	}
}

// Finding 15: after a burst of pending ClientHellos fills every slot, the
// in-use gauge falls back to zero once they time out, on an idle queue,
// within Slots/sweepBudget polls.
func TestReassemblyGaugeFallsBack(t *testing.T) {
	h := newHarness(t)
	slots := parser.DefaultReassemblySlots
	ch := packettest.ClientHello(false, 1200)
	var frames [][]byte
	for i := range slots {
		frames = append(frames, packettest.Frame(t, seg(uint16(40000+i), parser.TCPFlagACK, 7, ch[:300])))
		if len(frames) == 128 {
			h.send(frames...)
			frames = frames[:0]
		}
	}
	if _, g := h.w.Counters(); g.Reassembling != uint64(slots) {
		t.Fatalf("%d slots in use after the burst, want %d", g.Reassembling, slots)
	}
	h.clk.t.Add(int64(parser.DefaultReassemblyTimeout) + int64(time.Millisecond))
	polls := 0
	for ; polls < slots/sweepBudget+1; polls++ {
		if _, g := h.w.Counters(); g.Reassembling == 0 {
			break
		}
		if _, err := h.w.Step(0); err != nil { // nothing queued: an idle poll
			t.Fatal(err)
		}
	}
	if _, g := h.w.Counters(); g.Reassembling != 0 {
		t.Fatalf("%d slots still in use after %d idle polls past the timeout", g.Reassembling, polls)
	}
	if polls > slots/sweepBudget {
		t.Errorf("%d polls to expire %d slots (budget %d each)", polls, slots, sweepBudget)
	}
}
