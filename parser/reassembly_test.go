package parser

import (
	"math/rand/v2"
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
	// A segment starting before the first byte held but reaching past it.
	if v := r.Feed(&k, isn, pq[:300], 0, nil, &h); v != VerdictPending {
		t.Fatal(v)
	}
	withPrefix := append([]byte("xxxxx"), pq[:700]...)
	if v := r.Feed(&k, isn-5, withPrefix, 0, nil, &h); v != VerdictPending || h.Missing != len(pq)-700 {
		t.Fatalf("%v missing %d", v, h.Missing)
	}
	// Overlapping bytes keep what was received first.
	bad := append([]byte(nil), pq[600:]...)
	bad[0] ^= 0xff
	if v := r.Feed(&k, isn+600, bad, 0, nil, &h); v != VerdictComplete || string(h.SNI) != "example.com" {
		t.Fatal(v)
	}
	if h2 := scan(t, pq, HelloComplete); h2.Extensions != h.Extensions {
		t.Fatal("reassembled hello differs")
	}
}

func TestReassemblerUnknown(t *testing.T) {
	pq, _ := goHellos(t)
	var h ClientHello
	t.Run("gap", func(t *testing.T) {
		r := newReasm(t, ReassemblerConfig{})
		k := flowN(5)
		r.Feed(&k, 100, pq[:500], 0, nil, &h)
		if v := r.Feed(&k, 100+600, pq[600:], 0, nil, &h); v != VerdictUnknown || r.InUse() != 0 || r.Stats().OutOfOrder != 1 {
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
		if n := r.Expire(1000); n != 3 || r.InUse() != 0 {
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
		{ReassemblerConfig{Slots: MaxReassemblySlots, MaxBytes: MaxReassemblyBytes}, "Slots*MaxBytes"},
		{ReassemblerConfig{Timeout: -1}, "Timeout"},
	} {
		_, err := NewReassembler(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
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
	model := map[FlowKey]bool{}
	var h ClientHello
	for step := range 20000 {
		k := flowN(rng.IntN(40))
		switch rng.IntN(3) {
		case 0:
			v := r.Feed(&k, 1, pq[:100], int64(step), nil, &h)
			switch {
			case model[k] && v != VerdictPending:
				t.Fatalf("step %d: tracked flow got %v", step, v)
			case !model[k] && len(model) < 16 && v != VerdictPending:
				t.Fatalf("step %d: new flow got %v", step, v)
			case !model[k] && len(model) == 16 && v != VerdictUnknown:
				t.Fatalf("step %d: full table got %v", step, v)
			}
			if v == VerdictPending {
				model[k] = true
			}
		case 1:
			r.Forget(&k)
			delete(model, k)
		case 2:
			v := r.Feed(&k, 101, pq[100:], int64(step), nil, &h)
			if model[k] != (v == VerdictComplete) {
				t.Fatalf("step %d: tracked %v, verdict %v", step, model[k], v)
			}
			delete(model, k)
		}
		if r.InUse() != len(model) {
			t.Fatalf("step %d: in use %d, model %d", step, r.InUse(), len(model))
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
		r.Expire(10)
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
	if names := len(verdictNames); names != int(NumVerdict) || NumVerdict.String() != "unknown_verdict" || VerdictPending.String() != "pending" {
		t.Fatal("verdict names")
	}
}
