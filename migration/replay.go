// This file holds the nonce replay store interface, the bounded in-memory
// store a single node uses by default, and OpenReplayStore, which turns
// anynode's --replay value into a store.

package migration

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplayStore remembers which token nonces were used.
type ReplayStore interface {
	// Claim marks nonce used until expiry. true: first use. false: seen
	// before. error: the store cannot answer (the caller fails closed).
	Claim(ctx context.Context, nonce []byte, expiry time.Time) (bool, error)
}

// ErrReplayStoreFull is the error of MemoryReplayStore.Claim when every slot
// holds a nonce that has not expired yet: the store cannot remember one more,
// so the token is refused (fail closed) rather than an old nonce forgotten.
var ErrReplayStoreFull = errors.New("migration: replay store full of live nonces")

// DefaultReplayCapacity is the capacity of the default in-memory store:
// with 5-minute tokens it sustains about 870 migrations a second, in a few
// tens of MiB at most.
const DefaultReplayCapacity = 1 << 18

// MemoryReplayStore is a ReplayStore for one node. It holds at most its
// capacity of nonces; a nonce is dropped when its expiry passes (a min-heap
// by expiry finds those), and a Claim that finds the store full of live
// nonces returns ErrReplayStoreFull. It is safe for concurrent use.
type MemoryReplayStore struct {
	mu       sync.Mutex
	capacity int
	byNonce  map[string]int // nonce → index in byExpiry
	byExpiry expiryHeap
	now      func() time.Time
}

// NewMemoryReplayStore returns an empty store holding at most capacity
// nonces (capacity < 1 means DefaultReplayCapacity).
func NewMemoryReplayStore(capacity int) *MemoryReplayStore {
	if capacity < 1 {
		capacity = DefaultReplayCapacity
	}
	s := &MemoryReplayStore{capacity: capacity, now: time.Now}
	s.byExpiry.index = func(key string, i int) { s.byNonce[key] = i }
	s.byNonce = make(map[string]int)
	return s
}

// Claim implements ReplayStore. An expiry that has already passed is a claim
// that lapses at once: Claim answers as for a live nonce (true unless the
// nonce is held) and keeps nothing.
func (s *MemoryReplayStore) Claim(ctx context.Context, nonce []byte, expiry time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	for len(s.byExpiry.entries) > 0 && s.byExpiry.entries[0].expiry <= now {
		delete(s.byNonce, heap.Pop(&s.byExpiry).(expiryEntry).nonce)
	}
	if _, held := s.byNonce[string(nonce)]; held {
		return false, nil
	}
	exp := expiry.UnixNano()
	if exp <= now {
		return true, nil
	}
	if len(s.byNonce) >= s.capacity {
		return false, ErrReplayStoreFull
	}
	key := string(nonce)
	s.byNonce[key] = len(s.byExpiry.entries)
	heap.Push(&s.byExpiry, expiryEntry{expiry: exp, nonce: key})
	return true, nil
}

// Len returns how many nonces the store holds, expired ones not yet dropped
// included.
func (s *MemoryReplayStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byNonce)
}

// Capacity returns the most nonces the store will hold.
func (s *MemoryReplayStore) Capacity() int { return s.capacity }

type expiryEntry struct {
	expiry int64 // Unix nanoseconds
	nonce  string
}

// expiryHeap is a min-heap of entries by expiry; index keeps the map's
// positions current as entries move.
type expiryHeap struct {
	entries []expiryEntry
	index   func(nonce string, i int)
}

func (h *expiryHeap) Len() int           { return len(h.entries) }
func (h *expiryHeap) Less(i, j int) bool { return h.entries[i].expiry < h.entries[j].expiry }
func (h *expiryHeap) Swap(i, j int) {
	h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
	h.index(h.entries[i].nonce, i)
	h.index(h.entries[j].nonce, j)
}
func (h *expiryHeap) Push(x any) { h.entries = append(h.entries, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	last := h.entries[len(h.entries)-1]
	h.entries[len(h.entries)-1] = expiryEntry{}
	h.entries = h.entries[:len(h.entries)-1]
	return last
}

// ReplayKeyPrefix is the Redis key prefix of the stores OpenReplayStore
// makes.
const ReplayKeyPrefix = "anysched:mig:nonce:"

// OpenReplayStore parses anynode's --replay value: "memory" (a
// MemoryReplayStore of DefaultReplayCapacity) or
// "redis://[[USER]:PASSWORD@]HOST:PORT[/DB]" (a RedisReplayStore, keys under
// ReplayKeyPrefix). The Closer releases the store's connections. It does not
// contact Redis: a store that cannot answer makes tokens fail closed at run
// time, and RedisReplayStore.Ping checks it at start. Errors name the part
// of spec that is wrong.
func OpenReplayStore(spec string) (ReplayStore, io.Closer, error) {
	if spec == "memory" {
		return NewMemoryReplayStore(DefaultReplayCapacity), nopCloser{}, nil
	}
	opts, err := parseRedisSpec(spec)
	if err != nil {
		return nil, nil, err
	}
	client := redis.NewClient(opts)
	return NewRedisReplayStore(client, ReplayKeyPrefix), client, nil
}

// RedisReplayTimeout bounds each dial, read and write of the Redis client
// OpenReplayStore makes.
const RedisReplayTimeout = time.Second

func parseRedisSpec(spec string) (*redis.Options, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("migration: replay store %q: %s (want memory or redis://HOST:PORT[/DB])", redactSpec(spec), fmt.Sprintf(format, args...))
	}
	scheme, _, found := strings.Cut(spec, "://")
	if !found {
		return nil, bad("unknown store")
	}
	if scheme != "redis" {
		return nil, bad("scheme %q is not redis", scheme)
	}
	u, err := url.Parse(spec)
	if err != nil {
		// url.Error repeats the whole spec, password included: keep only
		// what is wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, bad("%v", err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, bad("query %q is not supported", u.RawQuery)
	}
	if u.Fragment != "" {
		return nil, bad("fragment %q is not supported", u.Fragment)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, bad("host %q: want HOST:PORT", u.Host)
	}
	if host == "" {
		return nil, bad("host missing")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, bad("port %q: want 1..65535", port)
	}
	db := 0
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, bad("database %q: want a number", p)
		}
		db = int(n)
	}
	opts := &redis.Options{
		Addr: net.JoinHostPort(host, port),
		DB:   db,
		// A handshake waits on Claim, and a store that cannot answer only
		// costs a full handshake: give up fast rather than stall clients.
		DialTimeout:           RedisReplayTimeout,
		ReadTimeout:           RedisReplayTimeout,
		WriteTimeout:          RedisReplayTimeout,
		PoolTimeout:           RedisReplayTimeout,
		MaxRetries:            1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	}
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	return opts, nil
}

// redactSpec hides a password in spec before it goes into an error, also
// when spec does not parse as a URL.
func redactSpec(spec string) string {
	slashes := strings.Index(spec, "//")
	if slashes < 0 {
		return spec
	}
	head, rest := spec[:slashes+2], spec[slashes+2:]
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return spec
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return spec
	}
	return head + user + ":xxxxx" + rest[at:]
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
