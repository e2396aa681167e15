package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBucketsCoverEveryDuration(t *testing.T) {
	// Every duration lands in a bucket whose top is at or above it and
	// within 1/subBuckets of it; buckets are in increasing order.
	prevTop := time.Duration(-1)
	for i := 1; i < len(histogram{}.counts); i++ {
		top := bucketTop(i)
		if top <= prevTop {
			t.Fatalf("bucket %d top %v not above bucket %d top %v", i, top, i-1, prevTop)
		}
		prevTop = top
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.Int64N(int64(10 * time.Minute)))
		if d < time.Microsecond {
			continue
		}
		d = d.Truncate(time.Microsecond)
		top := bucketTop(bucketOf(d))
		if top < d || float64(top-d) > float64(d)/subBuckets {
			t.Fatalf("%v: bucket %d top %v", d, bucketOf(d), top)
		}
	}
}

func TestHistogramQuantilesAgainstSortedSample(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b histogram
	var all []time.Duration
	for i := range 20000 {
		// A long-tailed mix: most near 1ms, some near 50ms.
		d := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		if i%50 == 0 {
			d += 50 * time.Millisecond
		}
		all = append(all, d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		idx := int(q*float64(len(all))+0.999999) - 1
		exact := max(all[idx], time.Microsecond)
		got := a.quantile(q)
		if got < exact.Truncate(time.Microsecond) || float64(got-exact) > float64(exact)/subBuckets+float64(time.Microsecond) {
			t.Errorf("q=%v: got %v, exact %v", q, got, exact)
		}
	}
	if a.n != uint64(len(all)) || a.min != all[0] || a.max != all[len(all)-1] {
		t.Errorf("n/min/max = %d/%v/%v, want %d/%v/%v", a.n, a.min, a.max, len(all), all[0], all[len(all)-1])
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram: quantile not 0")
	}
}
