package main

import (
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets (as HDR histograms
// do): each power of two of microseconds is split into subBuckets equal
// parts, so a quantile is known to within 1/subBuckets (3%) of its value
// with fixed memory, however many samples arrive. Durations below 1µs
// count as 1µs; above 2^45µs (a year) as the top bucket. Not safe for
// concurrent use (load keeps one per worker and merges them).
type histogram struct {
	counts   [histExponents * subBuckets]uint64
	n        uint64
	min, max time.Duration
}

const (
	subBucketBits = 5
	subBuckets    = 1 << subBucketBits
	histExponents = 41
)

func bucketOf(d time.Duration) int {
	us := uint64(max(d/time.Microsecond, 1))
	if us < subBuckets {
		return int(us) // exact below 32µs
	}
	exp := bits.Len64(us) - 1 // us is in [2^exp, 2^(exp+1))
	sub := (us >> (exp - subBucketBits)) & (subBuckets - 1)
	i := (exp-subBucketBits+1)*subBuckets + int(sub)
	return min(i, len(histogram{}.counts)-1)
}

// bucketTop is the largest duration that falls into bucket i.
func bucketTop(i int) time.Duration {
	if i < subBuckets {
		return time.Duration(i) * time.Microsecond
	}
	exp := i/subBuckets + subBucketBits - 1
	sub := uint64(i % subBuckets)
	lo := (uint64(1) << exp) + sub<<(exp-subBucketBits)
	width := uint64(1) << (exp - subBucketBits)
	return time.Duration(lo+width-1) * time.Microsecond
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// quantile returns the q-quantile (0 < q ≤ 1): the top of the bucket that
// holds the ceil(q·n)-th smallest sample, clamped to the observed range.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketTop(i), h.min), h.max)
		}
	}
	return h.max
}
