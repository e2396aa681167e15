// This file benchmarks the token's cost on a node: issuing one per
// NewSessionTicket, and verifying one per migrating resumption against the
// in-memory store and against a real Redis on loopback.

package migration

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/redistest"
)

func BenchmarkTokenIssue(b *testing.B) {
	psk := fill(32, 0x11)
	sessionID := fill(32, 0x22)
	target := netip.MustParseAddrPort("192.0.2.10:8443")
	expiry := time.Now().Add(5 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := IssueToken(psk, target, sessionID, expiry, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tok.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// verifyBatch is how many tokens BenchmarkTokenVerify makes at a time, with
// the timer stopped: every verification needs a fresh nonce.
const verifyBatch = 4096

func BenchmarkTokenVerify(b *testing.B) {
	const batch = verifyBatch
	// fresh returns the store for the next batch: a bounded memory store is
	// replaced before it fills (the benchmark's tokens never expire while it
	// runs), Redis is kept.
	run := func(b *testing.B, fresh func(prev ReplayStore) ReplayStore) {
		psk := fill(32, 0x11)
		sessionID := fill(32, 0x22)
		target := netip.MustParseAddrPort("192.0.2.10:8443")
		now := time.Now()
		raws := make([][]byte, 0, batch)
		refill := func() {
			raws = raws[:0]
			for range batch {
				tok, err := IssueToken(psk, target, sessionID, now.Add(5*time.Minute), nil)
				if err != nil {
					b.Fatal(err)
				}
				raw, err := tok.Marshal()
				if err != nil {
					b.Fatal(err)
				}
				raws = append(raws, raw)
			}
		}
		ctx := context.Background()
		var store ReplayStore
		b.ReportAllocs()
		i := batch
		for b.Loop() {
			if i == batch {
				b.StopTimer()
				refill()
				store = fresh(store)
				i = 0
				b.StartTimer()
			}
			in := VerifyInput{Raw: raws[i], PSK: psk, SessionID: sessionID, Local: target, Now: now}
			if _, err := VerifyToken(ctx, in, store); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("memory", func(b *testing.B) {
		run(b, func(prev ReplayStore) ReplayStore {
			if mem, ok := prev.(*MemoryReplayStore); ok && mem.Len()+batch <= mem.Capacity() {
				return mem
			}
			return NewMemoryReplayStore(DefaultReplayCapacity)
		})
	})
	b.Run("redis", func(b *testing.B) {
		store, closer, err := OpenReplayStore("redis://" + redistest.Start(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { closer.Close() })
		run(b, func(ReplayStore) ReplayStore { return store })
	})
}
