// This file holds the Redis replay store, which the nodes of a pool share so
// that a nonce used at one node is refused at every other.

package migration

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisReplayStore is a ReplayStore in Redis: a claim is
// `SET prefix+hex(nonce) 1 NX PX ttl`, so the first node to claim a nonce
// wins atomically and Redis forgets it when the token expires. A Redis that
// does not answer makes Claim return an error (the caller fails closed).
type RedisReplayStore struct {
	client *redis.Client
	prefix string
	now    func() time.Time
}

// NewRedisReplayStore returns a store whose keys are prefix+hex(nonce). It
// does not own client: closing it is the caller's.
func NewRedisReplayStore(client *redis.Client, prefix string) *RedisReplayStore {
	return &RedisReplayStore{client: client, prefix: prefix, now: time.Now}
}

// Claim implements ReplayStore. The TTL is the time left until expiry,
// rounded up to whole milliseconds and at least 1 ms: an expiry that has
// already passed is a claim that lapses at once (true unless the nonce is
// held, and held for 1 ms).
func (s *RedisReplayStore) Claim(ctx context.Context, nonce []byte, expiry time.Time) (bool, error) {
	ms := claimTTLMillis(expiry, s.now())
	key := make([]byte, 0, len(s.prefix)+hex.EncodedLen(len(nonce)))
	key = append(key, s.prefix...)
	key = hex.AppendEncode(key, nonce)
	err := s.client.Do(ctx, "SET", string(key), "1", "NX", "PX", ms).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, fmt.Errorf("migration: redis replay store: %w", err)
	}
}

// claimTTLMillis is the PX of a claim: the time from now to expiry in
// milliseconds, rounded up so the nonce is held for all of the token's life,
// and at least 1 (Redis refuses PX 0).
func claimTTLMillis(expiry, now time.Time) int64 {
	ttl := expiry.Sub(now)
	if ttl <= 0 {
		return 1
	}
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// Ping checks that Redis answers, e.g. to warn at start.
func (s *RedisReplayStore) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("migration: redis replay store %s: %w", s.client.Options().Addr, err)
	}
	return nil
}
