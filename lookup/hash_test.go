package lookup

import (
	"math/rand/v2"
	"testing"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

// Reference vectors of SipHash-2-4 (the SipHash paper, appendix A, and
// the reference implementation's vectors.h): key 00 01 .. 0f, message
// 00 01 .. (n-1).
var sip24Vectors = map[int]uint64{
	0:  0x726fdb47dd0e0e31,
	1:  0x74f839c593dc67fd,
	2:  0x0d6c8009d9a94f5a,
	3:  0x85676696d7fb7e2d,
	15: 0xa129ca6149be45e5,
}

func refKey() HashKey {
	var s Seed
	for i := range s {
		s[i] = byte(i)
	}
	return s.Key()
}

func TestSipHash24Vectors(t *testing.T) {
	k := refKey()
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, want := range sip24Vectors {
		if got := sipHash(k, 2, 4, msg[:n]); got != want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", n, got, want)
		}
	}
}

var randomKey = packettest.RandomFlowKey

// HashFlow is the generic SipHash-1-3 of flowMessage, specialised.
func TestHashFlowMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var s Seed
		for j := range s {
			s[j] = byte(r.Uint32())
		}
		k := randomKey(r, i%2 == 1)
		msg := flowMessage(&k)
		if want := map[bool]int{false: flowMessageLenV4, true: flowMessageLenV6}[i%2 == 1]; len(msg) != want {
			t.Fatalf("message length %d, want %d", len(msg), want)
		}
		if got, want := HashFlow(s.Key(), &k), sipHash(s.Key(), 1, 3, msg); got != want {
			t.Fatalf("HashFlow(%v) = %#x, generic SipHash-1-3 = %#x", k, got, want)
		}
		if got, want := hashFlow24(s.Key(), &k), sipHash(s.Key(), 2, 4, msg); got != want {
			t.Fatalf("hashFlow24 mismatch")
		}
	}
}

// The hash depends on every field and on the seed.
func TestHashFlowSensitivity(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	k := randomKey(r, true)
	key := refKey()
	base := HashFlow(key, &k)
	mut := []func(*parser.FlowKey){
		func(k *parser.FlowKey) { k.Src[0] ^= 1 },
		func(k *parser.FlowKey) { k.Src[15] ^= 1 },
		func(k *parser.FlowKey) { k.Dst[7] ^= 1 },
		func(k *parser.FlowKey) { k.SrcPort ^= 1 },
		func(k *parser.FlowKey) { k.DstPort ^= 0x100 },
		func(k *parser.FlowKey) { k.Proto = 17 },
	}
	for i, m := range mut {
		k2 := k
		m(&k2)
		if HashFlow(key, &k2) == base {
			t.Errorf("mutation %d did not change the hash", i)
		}
	}
	other := key
	other.K1 ^= 1
	if HashFlow(other, &k) == base {
		t.Error("the seed does not change the hash")
	}
}

func TestHashFlowAllocs(t *testing.T) {
	k := randomKey(rand.New(rand.NewPCG(5, 6)), true)
	key := refKey()
	var sink uint64
	if n := testing.AllocsPerRun(1000, func() { sink += HashFlow(key, &k) }); n != 0 {
		t.Fatalf("HashFlow allocates %v times", n)
	}
	_ = sink
}

// Slots chosen by reduce are uniform: a chi-square check over 64 bins.
func TestReduceUniform(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	key := refKey()
	const bins, n = 64, 64 * 2000
	var count [bins]int
	for range n {
		k := randomKey(r, false)
		count[reduce(HashFlow(key, &k), bins)]++
	}
	exp := float64(n) / bins
	chi := 0.0
	for _, c := range count {
		d := float64(c) - exp
		chi += d * d / exp
	}
	// 63 degrees of freedom: p=0.001 critical value is about 103.
	if chi > 103 {
		t.Fatalf("chi-square %v over %d bins: not uniform", chi, bins)
	}
}

func BenchmarkFlowHash(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	key := refKey()
	for _, c := range []struct {
		name string
		v6   bool
		f    func(HashKey, *parser.FlowKey) uint64
	}{
		{"v4", false, HashFlow},
		{"v6", true, HashFlow},
		{"v4-siphash24", false, hashFlow24},
		{"v6-siphash24", true, hashFlow24},
	} {
		b.Run(c.name, func(b *testing.B) {
			var keys [256]parser.FlowKey
			for i := range keys {
				keys[i] = randomKey(r, c.v6)
			}
			b.ReportAllocs()
			var sink uint64
			i := 0
			for b.Loop() {
				sink += c.f(key, &keys[i&255])
				i++
			}
			_ = sink
		})
	}
}

// Finding 3 of issue 11: when the destination was XOR-folded into the
// source, the flow (S^V1^V2, sp^p1^p2) → V2:p2 had exactly the hash of
// S:sp → V1:p1 under every seed (same slot, bucket and tag), so anyone
// could aim a flow at a chosen pin. With the whole 5-tuple under the key
// the constructed flow's hash is unrelated; so are the swapped tuple's
// (the hash is not symmetric in source and destination).
func TestHashFlowNoConstructedCollision(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 5000 {
		var s Seed
		for j := range s {
			s[j] = byte(r.Uint32())
		}
		victim := randomKey(r, i%2 == 1)
		other := randomKey(r, i%2 == 1) // another VIP:port of the same family
		forged := victim
		for j := range forged.Src {
			forged.Src[j] = victim.Src[j] ^ victim.Dst[j] ^ other.Dst[j]
		}
		forged.SrcPort = victim.SrcPort ^ victim.DstPort ^ other.DstPort
		forged.Dst, forged.DstPort = other.Dst, other.DstPort
		swapped := victim
		swapped.Src, swapped.Dst = victim.Dst, victim.Src
		swapped.SrcPort, swapped.DstPort = victim.DstPort, victim.SrcPort
		hv := HashFlow(s.Key(), &victim)
		for name, k := range map[string]*parser.FlowKey{"XOR-constructed": &forged, "swapped": &swapped} {
			if *k == victim {
				continue
			}
			if h := HashFlow(s.Key(), k); h == hv || tagOf(h) == tagOf(hv) && h&0xffff == hv&0xffff {
				t.Fatalf("%s flow %v collides with %v (hash %#x, %#x)", name, k, victim, h, hv)
			}
		}
	}
}
