package parser

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func newReasm(t testing.TB, cfg ReassemblerConfig) *Reassembler {
	t.Helper()
	r, err := NewReassembler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flowN(i int) FlowKey {
	var k FlowKey
	k.SetIPv4([]byte{198, 51, 100, byte(i >> 8)}, []byte{203, 0, 113, 10})
	k.SrcPort = uint16(i)
	k.DstPort = 443
	k.Proto = ProtoTCP
	return k
}

func TestReassemblerTwoSegments(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{})
	k := flowN(1)
	var h ClientHello
	var isn uint32 = 0xfffffc00 // the sequence numbers wrap inside the hello
	if v := r.Feed(&k, isn, pq[:1200], 0, nil, &h); v != VerdictPending || h.Missing != len(pq)-1200 || r.InUse() != 1 {
		t.Fatalf("first: %v missing %d in use %d", v, h.Missing, r.InUse())
	}
	if v := r.Feed(&k, isn+1200, pq[1200:], 1, nil, &h); v != VerdictComplete || string(h.SNI) != "example.com" || !h.OffersTLS13 || r.InUse() != 0 {
		t.Fatalf("second: %v %+v", v, h)
	}
	// The flow is no longer tracked: later payload is not a hello.
	if v := r.Feed(&k, isn+uint32(len(pq)), []byte{23, 3, 3, 0, 5, 1, 2, 3, 4, 5}, 2, nil, &h); v != VerdictNotHello {
		t.Fatalf("after: %v", v)
	}
	if s := r.Stats(); s.Started != 1 || s.Completed != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestReassemblerUntracked(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{Slots: 4})
	k := flowN(2)
	var h ClientHello
	cases := []struct {
		payload []byte
		want    Verdict
	}{
		{nil, VerdictNotHello},
		{[]byte("GET / HTTP/1.1\r\n"), VerdictNotHello},
		{pq, VerdictComplete},
		{[]byte{22, 3, 1, 0, 0}, VerdictMalformed},
	}
	for _, c := range cases {
		if v := r.Feed(&k, 1, c.payload, 0, nil, &h); v != c.want {
			t.Fatalf("%x: %v, want %v", c.payload[:min(len(c.payload), 8)], v, c.want)
		}
	}
	if r.InUse() != 0 {
		t.Fatal("slot taken")
	}
}

// TestReassemblerMigrationSecondSegment: migration_support lies in the
// second segment (as one of the captured clients sends it).
func TestReassemblerMigrationSecondSegment(t *testing.T) {
	rec := records(buildHello(migrationExts()))
	cut := strings.Index(string(rec), "\xfe\x4d") - 3
	r := newReasm(t, ReassemblerConfig{})
	k := flowN(3)
	var h ClientHello
	if v := r.Feed(&k, 7, rec[:cut], 0, nil, &h); v != VerdictPending || h.MigrationSupport {
		t.Fatalf("first: %v %v", v, h.MigrationSupport)
	}
	if v := r.Feed(&k, 7+uint32(cut), rec[cut:], 0, nil, &h); v != VerdictComplete || !h.MigrationSupport || !h.MigrationToken {
		t.Fatalf("second: %v %+v", v, h)
	}
}

func TestReassemblerRetransmissions(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{})
	k := flowN(4)
	var h ClientHello
	const isn = 5000
	steps := []struct {
		seq      uint32
		from, to int
		want     Verdict
	}{
		{isn, 0, 600, VerdictPending},
		{isn, 0, 600, VerdictPending},            // duplicate
		{isn + 100, 100, 300, VerdictPending},    // inside what is held
		{isn - 10, 0, 0, VerdictPending},         // before the start, empty
		{isn + 600, 600, 600, VerdictPending},    // empty at the edge
		{isn + 500, 500, 1000, VerdictPending},   // partial overlap
		{isn + 1000, 1000, 1400, VerdictPending}, // in order
		{isn + 1400, 1400, len(pq), VerdictComplete},
	}
	for i, s := range steps {
		if v := r.Feed(&k, s.seq, pq[s.from:s.to], int64(i), nil, &h); v != s.want {
			t.Fatalf("step %d: %v, want %v", i, v, s.want)
		}
	}
	if string(h.SNI) != "example.com" {
		t.Fatal(h.SNI)
	}
	// Decided: a retransmission of the first segment is ignored, it does
	// not start a new scan (which would pin the flow while pending).
	if v := r.Feed(&k, isn, pq[:600], 9, nil, &h); v != VerdictNotHello || r.Stats().Ignored != 1 || r.Tracks(&k) != TrackingDecided {
		t.Fatalf("retransmission after the verdict: %v %+v", v, r.Stats())
	}
	// The connection ends (FIN/RST); the 5-tuple's next stream starts over.
	r.Forget(&k)
	if r.Tracks(&k) != TrackingNone || r.Decided() != 0 {
		t.Fatal("marker kept after Forget")
	}
	// A segment starting before the first byte held but reaching past it.
	if v := r.Feed(&k, isn, pq[:300], 0, nil, &h); v != VerdictPending {
		t.Fatal(v)
	}
	withPrefix := append([]byte("xxxxx"), pq[:700]...)
	if v := r.Feed(&k, isn-5, withPrefix, 0, nil, &h); v != VerdictPending || h.Missing != len(pq)-700 {
		t.Fatalf("%v missing %d", v, h.Missing)
	}
	// The rest completes it, overlapping what is held with the same bytes.
	if v := r.Feed(&k, isn+600, pq[600:], 0, nil, &h); v != VerdictComplete || string(h.SNI) != "example.com" {
		t.Fatal(v)
	}
	if h2 := scan(t, pq, HelloComplete); h2.Extensions != h.Extensions {
		t.Fatal("reassembled hello differs")
	}
}

func TestReassemblerUnknown(t *testing.T) {
	pq, _ := goHellos(t)
	var h ClientHello
	t.Run("gap filled", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{})
		k := flowN(5)
		r.Feed(&k, 100, pq[:500], 0, nil, &h)
		if v := r.Feed(&k, 100+600, pq[600:], 0, nil, &h); v != VerdictPending || r.InUse() != 1 || r.Stats().OutOfOrder != 1 {
			t.Fatalf("held ahead of the gap: %v", v)
		}
		if v := r.Feed(&k, 100+500, pq[500:600], 0, nil, &h); v != VerdictComplete || r.InUse() != 0 || string(h.SNI) != "example.com" {
			t.Fatalf("gap filled: %v", v)
		}
	})
	t.Run("gap never filled", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{Timeout: 100})
		k := flowN(5)
		r.Feed(&k, 100, pq[:500], 0, nil, &h)
		r.Feed(&k, 100+600, pq[600:], 10, nil, &h)
		if v := r.Feed(&k, 100+600, pq[600:], 101, nil, &h); v != VerdictUnknown || r.InUse() != 0 || r.Stats().Timeout != 1 {
			t.Fatalf("%v", v)
		}
	})
	t.Run("overflow", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{MaxBytes: 1000})
		k := flowN(6)
		if v := r.Feed(&k, 100, pq[:1001], 0, nil, &h); v != VerdictUnknown {
			t.Fatalf("first segment over the cap: %v", v)
		}
		r.Feed(&k, 100, pq[:900], 0, nil, &h)
		if v := r.Feed(&k, 1000, pq[900:], 0, nil, &h); v != VerdictUnknown || r.InUse() != 0 || r.Stats().Overflow != 2 {
			t.Fatalf("%v %+v", v, r.Stats())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{Timeout: 100})
		k := flowN(7)
		r.Feed(&k, 100, pq[:500], 1000, nil, &h)
		if v := r.Feed(&k, 600, pq[500:], 1101, nil, &h); v != VerdictUnknown || r.InUse() != 0 || r.Stats().Timeout != 1 {
			t.Fatalf("%v", v)
		}
	})
	t.Run("no free slot", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{Slots: 3, Timeout: 100})
		for i := range 3 {
			k := flowN(10 + i)
			if v := r.Feed(&k, 1, pq[:500], int64(i*10), nil, &h); v != VerdictPending {
				t.Fatal(v)
			}
		}
		k := flowN(20)
		if v := r.Feed(&k, 1, pq[:500], 50, nil, &h); v != VerdictUnknown || r.Stats().NoSlot != 1 {
			t.Fatalf("%v", v)
		}
		// At 105 the first flow (started at 0) has expired: its slot is reused.
		if v := r.Feed(&k, 1, pq[:500], 105, nil, &h); v != VerdictPending || r.Stats().Expired != 1 || r.InUse() != 3 {
			t.Fatalf("%v %+v", v, r.Stats())
		}
		k0 := flowN(10)
		if v := r.Feed(&k0, 501, pq[500:], 106, nil, &h); v != VerdictNotHello {
			t.Fatalf("expired flow still tracked: %v", v)
		}
		if n := r.Expire(1000, 0); n != 3 || r.InUse() != 0 {
			t.Fatalf("expired %d, in use %d", n, r.InUse())
		}
	})
	t.Run("forget", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{})
		k := flowN(8)
		r.Feed(&k, 1, pq[:500], 0, nil, &h)
		other := flowN(9)
		r.Forget(&other)
		if r.InUse() != 1 {
			t.Fatal("forgot the wrong flow")
		}
		r.Forget(&k)
		if r.InUse() != 0 || r.Stats().Forgotten != 1 {
			t.Fatal("not forgotten")
		}
	})
	t.Run("malformed after buffering", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{})
		k := flowN(9)
		rec := records(buildHello(append(migrationExts()[:4], ext{typ: 10})))
		if v := r.Feed(&k, 1, rec[:60], 0, nil, &h); v != VerdictPending {
			t.Fatal(v)
		}
		if v := r.Feed(&k, 61, rec[60:], 0, nil, &h); v != VerdictMalformed || h.Malformed != MalformedDuplicateExtension || r.InUse() != 0 {
			t.Fatalf("%v %v", v, h.Malformed)
		}
	})
}

func TestReassemblerConfig(t *testing.T) {
	for _, c := range []struct {
		cfg   ReassemblerConfig
		field string
	}{
		{ReassemblerConfig{Slots: -1}, "Slots"},
		{ReassemblerConfig{Slots: MaxReassemblySlots + 1}, "Slots"},
		{ReassemblerConfig{MaxBytes: 10}, "MaxBytes"},
		{ReassemblerConfig{MaxBytes: MaxReassemblyBytes + 1}, "MaxBytes"},
		{ReassemblerConfig{Slots: MaxReassemblySlots, MaxBytes: MaxReassemblyBytes}, "Slots"},
		// The scan state counts too: 2^20 slots of 4 KiB fill the 4 GiB
		// cap with their buffers alone.
		{ReassemblerConfig{Slots: MaxReassemblySlots, MaxBytes: 4096}, "scan state"},
		{ReassemblerConfig{Timeout: -1}, "Timeout"},
	} {
		_, err := NewReassembler(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
	if b := (ReassemblerConfig{Slots: 1024, MaxBytes: 16 << 10}).Bytes(); b < 1024*(16<<10) || b > 1024*(17<<10) {
		t.Errorf("default reassembler: %d bytes", b)
	}
	r := newReasm(t, ReassemblerConfig{})
	if c := r.Config(); c.Slots != DefaultReassemblySlots || c.MaxBytes != DefaultReassemblyBytes || c.Timeout != DefaultReassemblyTimeout {
		t.Fatalf("%+v", c)
	}
}

// TestReassemblerIndexModel drives many flows through a small table (so
// probe runs collide and wrap) in random order and checks the index against
// a map model after every step.
func TestReassemblerIndexModel(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{Slots: 16, MaxBytes: 2048, Timeout: 1 << 62})
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[FlowKey]bool{} // flows with a ClientHello in progress
	var decided []FlowKey       // markers of decided flows, oldest first (the first of them to give way)
	isDecided := func(k FlowKey) int { return slices.Index(decided, k) }
	var h ClientHello
	for step := range 20000 {
		k := flowN(rng.IntN(40))
		switch rng.IntN(3) {
		case 0:
			v := r.Feed(&k, 1, pq[:100], int64(step), nil, &h)
			switch {
			case isDecided(k) >= 0 && v != VerdictNotHello:
				t.Fatalf("step %d: decided flow got %v", step, v)
			case isDecided(k) >= 0:
			case model[k] && v != VerdictPending:
				t.Fatalf("step %d: tracked flow got %v", step, v)
			case !model[k] && len(model) < 16 && v != VerdictPending:
				t.Fatalf("step %d: new flow got %v", step, v)
			case !model[k] && len(model) == 16 && v != VerdictUnknown:
				t.Fatalf("step %d: full table got %v", step, v)
			}
			if v == VerdictPending && !model[k] {
				if len(model)+len(decided) == 16 {
					decided = decided[1:] // the oldest marker gave way
				}
				model[k] = true
			}
		case 1:
			r.Forget(&k)
			delete(model, k)
			if i := isDecided(k); i >= 0 {
				decided = slices.Delete(decided, i, i+1)
			}
		case 2:
			v := r.Feed(&k, 101, pq[100:], int64(step), nil, &h)
			if model[k] != (v == VerdictComplete) {
				t.Fatalf("step %d: tracked %v, verdict %v", step, model[k], v)
			}
			if model[k] {
				decided = append(decided, k)
			}
			delete(model, k)
		}
		if r.InUse() != len(model) || r.Decided() != len(decided) {
			t.Fatalf("step %d: in use %d, decided %d; model %d, %d", step, r.InUse(), r.Decided(), len(model), len(decided))
		}
	}
}

func TestReassemblerNoAllocs(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{})
	k := flowN(1)
	var h ClientHello
	n := testing.AllocsPerRun(200, func() {
		r.Feed(&k, 1, pq[:1000], 0, nil, &h)
		r.Feed(&k, 1001, pq[1000:], 0, nil, &h)
		r.Feed(&k, 1, pq[:1000], 0, nil, &h)
		r.Forget(&k)
		r.Expire(10, 0)
		// After the SYN: last segment first, a duplicate, the first.
		r.Open(&k, 0, 0)
		r.Feed(&k, 1001, pq[1000:], 0, nil, &h)
		r.Feed(&k, 1001, pq[1000:], 0, nil, &h)
		r.Feed(&k, 1, pq[:1000], 0, nil, &h)
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
	if names := len(verdictNames); names != int(NumVerdict) || NumVerdict.String() != "unknown_verdict" || VerdictPending.String() != "pending" {
		t.Fatal("verdict names")
	}
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// cuts splits hello into segments at the given offsets.
func cuts(hello []byte, at ...int) [][2]int {
	var segs [][2]int
	from := 0
	for _, c := range append(at, len(hello)) {
		segs = append(segs, [2]int{from, c})
		from = c
	}
	return segs
}

// TestReassemblerEveryOrder: a ClientHello of 2 or 3 segments, after the
// flow's SYN, comes out exactly in every arrival order, with and without
// a retransmission of any segment at any point: Pending until the last
// new byte, then Complete with what a scan of the whole message finds.
func TestReassemblerEveryOrder(t *testing.T) {
	pq, _ := goHellos(t)
	mig := records(buildHello(migrationExts()))
	support := strings.Index(string(mig), "\xfe\x4d")
	for _, c := range []struct {
		name  string
		hello []byte
		segs  [][2]int
	}{
		{"pq 2", pq, cuts(pq, 1200)},
		{"pq 3", pq, cuts(pq, 500, 1000)},
		{"pq 3, tiny first", pq, cuts(pq, 3, 1448)},
		{"migration 2, support in 2nd", mig, cuts(mig, support-2)},
		{"migration 3, support split", mig, cuts(mig, 20, support+1)},
	} {
		want := scan(t, c.hello, HelloComplete)
		for _, order := range permutations(len(c.segs)) {
			// dup -1: no retransmission; else segment order[dup%n] is
			// sent again right after arrival dup/n (if it was sent by then).
			for dup := -1; dup < len(order)*len(order); dup++ {
				r := newReasm(t, ReassemblerConfig{Slots: 2})
				k := flowN(30)
				const syn = 0xfffffa00 // sequence numbers wrap inside the hello
				if !r.Open(&k, syn, 0) {
					t.Fatal("no slot")
				}
				arrivals := append([]int{}, order...)
				if dup >= 0 {
					seg, at := order[dup%len(order)], dup/len(order)
					if at < slices.Index(order, seg) {
						continue // a retransmission comes after the original
					}
					arrivals = slices.Insert(arrivals, at+1, seg)
				}
				var h ClientHello
				seen := map[int]bool{}
				for i, s := range arrivals {
					seg := c.segs[s]
					v := r.Feed(&k, syn+1+uint32(seg[0]), c.hello[seg[0]:seg[1]], int64(i), nil, &h)
					seen[s] = true
					wantV := VerdictPending
					if len(seen) == len(c.segs) {
						wantV = VerdictComplete
					}
					if v != wantV {
						t.Fatalf("%s: order %v: arrival %d (segment %d): %v, want %v", c.name, arrivals, i, s, v, wantV)
					}
					if v == VerdictComplete {
						if !sameHello(&h, want) {
							t.Fatalf("%s: order %v: %+v, want %+v", c.name, arrivals, h, want)
						}
						if r.InUse() != 0 {
							t.Fatal("slot kept after Complete")
						}
						break
					}
				}
			}
		}
	}
}

// TestReassemblerWithoutSYN: without Open the flight starts at the first
// segment that starts a ClientHello. Orders that begin with it come out
// exactly; a segment seen before it cannot be placed (its bytes are not
// recognisable), so such flows stay pending — pinned, safe — until they
// time out.
func TestReassemblerWithoutSYN(t *testing.T) {
	pq, _ := goHellos(t)
	segs := cuts(pq, 500, 1000)
	want := scan(t, pq, HelloComplete)
	for _, order := range permutations(3) {
		r := newReasm(t, ReassemblerConfig{Slots: 2})
		k := flowN(31)
		var h ClientHello
		var v Verdict
		for i, s := range order {
			v = r.Feed(&k, 7000+uint32(segs[s][0]), pq[segs[s][0]:segs[s][1]], int64(i), nil, &h)
			if i == 0 && s != 0 && v != VerdictNotHello {
				t.Fatalf("order %v: a middle segment first: %v, want not_hello", order, v)
			}
		}
		if order[0] == 0 && (v != VerdictComplete || !sameHello(&h, want)) {
			t.Errorf("order %v: %v, want complete", order, v)
		}
		if order[0] != 0 && v != VerdictPending {
			t.Errorf("order %v: %v, want pending (the first segment missed)", order, v)
		}
	}
}

// TestReassemblerConflictingOverlaps: bytes that differ from bytes held for
// the same sequence numbers make the flow Unknown, wherever they overlap;
// bytes that agree, or that overlap nothing held, are taken.
func TestReassemblerConflictingOverlaps(t *testing.T) {
	pq, _ := goHellos(t)
	flip := func(b []byte, at int) []byte {
		c := append([]byte(nil), b...)
		c[at] ^= 0x5a
		return c
	}
	const syn = 100
	seq := func(off int) uint32 { return syn + 1 + uint32(off) }
	type feed struct {
		off  int
		data []byte
		want Verdict
	}
	for _, c := range []struct {
		name  string
		feeds []feed
	}{
		{"retransmitted first segment differs", []feed{
			{0, pq[:600], VerdictPending}, {0, flip(pq[:600], 599), VerdictUnknown}}},
		{"overlap into the held prefix differs", []feed{
			{0, pq[:600], VerdictPending}, {500, flip(pq[500:900], 10), VerdictUnknown}}},
		{"overlap into a run held ahead of a gap differs", []feed{
			{800, pq[800:1200], VerdictPending}, {0, pq[:600], VerdictPending}, {600, flip(pq[600:1000], 250), VerdictUnknown}}},
		{"run held ahead retransmitted differently", []feed{
			{800, pq[800:1200], VerdictPending}, {800, flip(pq[800:1200], 0), VerdictUnknown}}},
		{"a difference outside the overlap is new data", []feed{
			{0, pq[:600], VerdictPending}, {500, pq[500:700], VerdictPending}, {700, pq[700:], VerdictComplete}}},
	} {
		r := newReasm(t, ReassemblerConfig{Slots: 2})
		k := flowN(32)
		r.Open(&k, syn, 0)
		var h ClientHello
		for i, f := range c.feeds {
			if v := r.Feed(&k, seq(f.off), f.data, int64(i), nil, &h); v != f.want {
				t.Fatalf("%s: feed %d at %d: %v, want %v", c.name, i, f.off, v, f.want)
			}
		}
		if last := c.feeds[len(c.feeds)-1]; last.want == VerdictUnknown && (r.Stats().Conflict != 1 || r.InUse() != 0) {
			t.Errorf("%s: %+v, in use %d", c.name, r.Stats(), r.InUse())
		}
	}
}

// TestReassemblerGapsAndBounds: up to reasmGaps runs beyond a gap are held;
// one more is Unknown. Bytes past MaxBytes are never held: a ClientHello
// that needs them is Unknown once the bytes held reach MaxBytes.
func TestReassemblerGapsAndBounds(t *testing.T) {
	pq, _ := goHellos(t)
	var h ClientHello
	r := newReasm(t, ReassemblerConfig{Slots: 2})
	k := flowN(33)
	r.Open(&k, 0, 0)
	for i := range reasmGaps {
		off := 100 * (i + 1)
		if v := r.Feed(&k, 1+uint32(off), pq[off:off+50], 0, nil, &h); v != VerdictPending {
			t.Fatalf("run %d: %v", i, v)
		}
	}
	// Filling a gap between two runs merges them, freeing a run.
	if v := r.Feed(&k, 1+150, pq[150:200], 0, nil, &h); v != VerdictPending {
		t.Fatal(v)
	}
	if v := r.Feed(&k, 1+700, pq[700:750], 0, nil, &h); v != VerdictPending {
		t.Fatalf("a run after a merge: %v", v)
	}
	if v := r.Feed(&k, 1+900, pq[900:950], 0, nil, &h); v != VerdictUnknown || r.Stats().Holes != 1 {
		t.Fatalf("one run too many: %v %+v", v, r.Stats())
	}

	small := newReasm(t, ReassemblerConfig{Slots: 2, MaxBytes: 1000})
	small.Open(&k, 0, 0)
	if v := small.Feed(&k, 1+900, pq[900:], 0, nil, &h); v != VerdictPending {
		t.Fatalf("past MaxBytes, ahead of a gap: %v", v)
	}
	if v := small.Feed(&k, 1, pq[:900], 0, nil, &h); v != VerdictUnknown || small.Stats().Overflow != 1 || small.InUse() != 0 {
		t.Fatalf("a hello longer than MaxBytes: %v %+v", v, small.Stats())
	}
}

// TestReassemblerOpen: what the SYN's slot does — repeated SYNs, a reused
// 5-tuple, a flow whose first bytes are not a ClientHello, a full table,
// timeouts.
func TestReassemblerOpen(t *testing.T) {
	pq, _ := goHellos(t)
	var h ClientHello
	r := newReasm(t, ReassemblerConfig{Slots: 2, Timeout: 100})
	a, b, c := flowN(40), flowN(41), flowN(42)
	if !r.Open(&a, 1000, 0) || !r.Open(&a, 1000, 1) || r.InUse() != 1 || r.Stats().Opened != 1 {
		t.Fatalf("repeated SYN: in use %d %+v", r.InUse(), r.Stats())
	}
	if v := r.Feed(&a, 1001+500, pq[500:], 2, nil, &h); v != VerdictPending {
		t.Fatal(v)
	}
	if !r.Open(&a, 1000, 3) { // a SYN retransmitted late keeps what is held
		t.Fatal("late SYN")
	}
	if v := r.Feed(&a, 1001, pq[:500], 4, nil, &h); v != VerdictComplete {
		t.Fatalf("after a late SYN: %v", v)
	}
	// The 5-tuple reused with another ISN starts over.
	r.Open(&a, 1000, 5)
	r.Feed(&a, 1001+500, pq[500:], 6, nil, &h)
	r.Open(&a, 9000, 7)
	if v := r.Feed(&a, 9001, pq[:500], 8, nil, &h); v != VerdictPending || h.Missing != len(pq)-500 {
		t.Fatalf("reused 5-tuple: %v missing %d", v, h.Missing)
	}
	r.Forget(&a)
	// First bytes that are not a ClientHello free the slot.
	r.Open(&b, 0, 10)
	if v := r.Feed(&b, 1, []byte("GET / HTTP/1.1\r\n\r\n"), 11, nil, &h); v != VerdictNotHello || r.InUse() != 0 {
		t.Fatalf("not a hello: %v, in use %d", v, r.InUse())
	}
	// A full table: an opened flow that sent nothing gives way, one that
	// holds bytes does not.
	r.Open(&a, 0, 20)
	r.Open(&b, 0, 21)
	if !r.Open(&c, 0, 22) || r.Stats().Replaced != 1 {
		t.Fatalf("opened flow not replaced: %+v", r.Stats())
	}
	if v := r.Feed(&a, 1+500, pq[500:], 23, nil, &h); v != VerdictNotHello {
		t.Fatalf("the replaced flow is still tracked: %v", v)
	}
	r.Feed(&b, 1, pq[:300], 24, nil, &h)
	r.Feed(&c, 1+300, pq[300:600], 25, nil, &h)
	if r.Open(&a, 0, 26) || r.InUse() != 2 {
		t.Fatal("a flow holding bytes gave way to a SYN")
	}
	if v := r.Feed(&a, 1, pq[:300], 27, nil, &h); v != VerdictUnknown || r.Stats().NoSlot != 1 {
		t.Fatalf("no slot for a hello: %v", v)
	}
	// An opened flow times out like a pending one.
	r.Forget(&b)
	r.Forget(&c)
	r.Open(&a, 0, 30)
	if n := r.Expire(131, 0); n != 1 || r.InUse() != 0 {
		t.Fatalf("opened flow not expired: %d", n)
	}
}

// BenchmarkReassemblerFeedReordered: BenchmarkReassemblerFeed's hello after
// the flow's SYN, its second segment first.
func BenchmarkReassemblerFeedReordered(b *testing.B) {
	pq, _ := goHellos(b)
	r := newReasm(b, ReassemblerConfig{})
	k := flowN(1)
	var h ClientHello
	b.ReportAllocs()
	b.SetBytes(int64(len(pq)))
	defer reportCPU(b)()
	for b.Loop() {
		r.Open(&k, 0, 0)
		r.Feed(&k, 1449, pq[1448:], 0, nil, &h)
		if r.Feed(&k, 1, pq[:1448], 0, nil, &h) != VerdictComplete {
			b.Fatal("not complete")
		}
		r.Forget(&k)
	}
}

// TestReassemblerOpenedByAnotherStream: a slot opened by a SYN whose
// sequence number does not fit the data (a spoofed or stale SYN, or a
// sender that numbers its first byte like its SYN) and that holds nothing
// yet does not swallow the ClientHello: the flow is followed from its
// first segment, as if no SYN had been seen.
func TestReassemblerOpenedByAnotherStream(t *testing.T) {
	pq, _ := goHellos(t)
	segs := cuts(pq, 700)
	want := scan(t, pq, HelloComplete)
	for _, syn := range []uint32{5000, 4999, 9000} {
		r := newReasm(t, ReassemblerConfig{Slots: 2})
		k := flowN(41)
		r.Open(&k, syn, 0)
		var h ClientHello
		var v Verdict
		for i, s := range segs {
			v = r.Feed(&k, 5000+uint32(s[0]), pq[s[0]:s[1]], int64(i+1), nil, &h)
		}
		if v != VerdictComplete || !sameHello(&h, want) {
			t.Errorf("SYN at %d, data from 5000: %v, want complete", syn, v)
		}
	}
}

// TestReassemblerLinear: a ClientHello in 1-byte TLS records, one record
// per segment, in order and with every segment sent twice, is walked once:
// the scan's steps (record headers and body items) stay within a small
// multiple of the segments, where a rescan from byte 0 on each segment
// takes about segments²/2.
func TestReassemblerLinear(t *testing.T) {
	pq, _ := goHellos(t)
	stream, segs := tinyRecordSegments(handshakeOf(pq))
	want := scan(t, pq, HelloComplete)
	for _, twice := range []bool{false, true} {
		r := newReasm(t, ReassemblerConfig{})
		k := flowN(3)
		r.Open(&k, 0, 0)
		var h ClientHello
		v := VerdictPending
		for i, s := range segs {
			sends := 1
			if twice && i < len(segs)-1 {
				sends = 2 // a duplicate of every segment but the one that completes
			}
			for range sends {
				if v != VerdictPending {
					t.Fatalf("segment %d: %v before the end", i, v)
				}
				v = r.Feed(&k, 1+uint32(s[0]), stream[s[0]:s[1]], 0, nil, &h)
			}
		}
		if v != VerdictComplete || !sameHello(&h, want) {
			t.Fatalf("twice %v: %v %+v", twice, v, h)
		}
		if limit := uint64(4 * len(segs)); r.scanSteps > limit {
			t.Errorf("twice %v: %d scan steps for %d segments (limit %d)", twice, r.scanSteps, len(segs), limit)
		}
	}
}

// copyTo must hand over every exported field of ClientHello: a field
// added later and not copied would read zero after a resumed scan.
func TestReassemblerCopiesEveryField(t *testing.T) {
	var sc reasmScan
	v := reflect.ValueOf(&sc.hello).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Uint8, reflect.Uint16:
			f.SetUint(uint64(i + 1))
		case reflect.Slice:
			f.SetBytes([]byte{byte(i)})
		default:
			t.Fatalf("field %s of kind %v: teach this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	var out ClientHello
	sc.copyTo(&out)
	if !reflect.DeepEqual(out, sc.hello) {
		t.Fatalf("copyTo lost a field:\n%+v\n%+v", out, sc.hello)
	}
}

// Decided markers: a repeated SYN keeps one, a SYN with another ISN (a new
// connection) starts over, a SYN flood replaces opened slots before any
// marker, and Expire frees them after the timeout, at most budget a call.
func TestReassemblerDecidedMarkers(t *testing.T) {
	pq, _ := goHellos(t)
	r := newReasm(t, ReassemblerConfig{Slots: 4, Timeout: 100})
	var h ClientHello
	decide := func(k *FlowKey, isn uint32, now int64) {
		t.Helper()
		r.Open(k, isn, now)
		r.Feed(k, isn+1, pq[:700], now, nil, &h)
		if v := r.Feed(k, isn+701, pq[700:], now, nil, &h); v != VerdictComplete {
			t.Fatalf("hello: %v", v)
		}
	}
	a, b := flowN(60), flowN(61)
	decide(&a, 1000, 0)
	decide(&b, 1000, 0)
	if r.Open(&a, 1000, 1); r.Tracks(&a) != TrackingDecided {
		t.Fatal("a repeated SYN dropped the marker")
	}
	if r.Open(&a, 5000, 2); r.Tracks(&a) != TrackingCollecting {
		t.Fatal("a new connection's SYN kept the old verdict")
	}
	for i := range 10 { // a SYN flood: two slots left for it
		k := flowN(100 + i)
		r.Open(&k, 1, 3)
	}
	if r.Tracks(&b) != TrackingDecided || r.Stats().Replaced != 8 {
		t.Fatalf("the SYN flood took a marker: %v, replaced %d", r.Tracks(&b), r.Stats().Replaced)
	}
	if n := r.Expire(101, 1); n != 1 || r.Tracks(&b) != TrackingNone {
		t.Fatalf("expired %d, b %v", n, r.Tracks(&b))
	}
	if n := r.Expire(200, 0); n != 3 || r.InUse()+r.Decided() != 0 {
		t.Fatalf("expired %d, %d in use, %d decided", n, r.InUse(), r.Decided())
	}
}
