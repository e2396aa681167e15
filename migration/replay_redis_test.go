package migration

import (
	"context"
	"encoding/hex"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anysched/anysched/internal/redistest"
)

func newRedisClient(t *testing.T, addr string, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClaimTTLMillis(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		expiry time.Time
		want   int64
	}{
		{now.Add(5 * time.Minute), 300_000},
		{now.Add(1500 * time.Microsecond), 2},
		{now.Add(time.Nanosecond), 1},
		{now, 1},
		{now.Add(-time.Hour), 1},
		{time.Unix(1<<40, 0), int64(math.MaxInt64/int64(time.Millisecond)) + 1},
	}
	for _, c := range cases {
		if got := claimTTLMillis(c.expiry, now); got != c.want {
			t.Fatalf("claimTTLMillis(now%+v) = %d, want %d", c.expiry.Sub(now), got, c.want)
		}
	}
}

func TestRedisReplayStoreSetsNXWithTTL(t *testing.T) {
	addr := redistest.Start(t)
	client := newRedisClient(t, addr, 0)
	s := NewRedisReplayStore(client, "test:")
	ctx := context.Background()
	nonce := nonceN(42)
	mustClaim(t, s, nonce, time.Now().Add(10*time.Second), true)
	mustClaim(t, s, nonce, time.Now().Add(10*time.Second), false)
	mustClaim(t, s, nonceN(43), time.Now().Add(10*time.Second), true)

	key := "test:" + hex.EncodeToString(nonce)
	if v, err := client.Get(ctx, key).Result(); err != nil || v != "1" {
		t.Fatalf("GET %s = %q, %v; want \"1\"", key, v, err)
	}
	pttl, err := client.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > 10*time.Second {
		t.Fatalf("PTTL %s = %v, want in (0, 10s]", key, pttl)
	}
}

func TestRedisReplayStorePastExpiry(t *testing.T) {
	addr := redistest.Start(t)
	client := newRedisClient(t, addr, 0)
	s := NewRedisReplayStore(client, "test:")
	ctx := context.Background()
	// A lapsed claim on a fresh nonce answers true and leaves a key that
	// lives 1 ms at most.
	mustClaim(t, s, nonceN(1), time.Now().Add(-time.Hour), true)
	pttl, err := client.PTTL(ctx, "test:"+hex.EncodeToString(nonceN(1))).Result()
	if err != nil {
		t.Fatal(err)
	}
	// -2 (go-redis: -2ns) is "no such key": it may already have expired.
	if pttl > time.Millisecond || (pttl < 0 && pttl != -2) {
		t.Fatalf("PTTL after a lapsed claim = %v, want gone or ≤ 1 ms", pttl)
	}
	// A held nonce stays a replay whatever expiry the second claim names.
	mustClaim(t, s, nonceN(2), time.Now().Add(time.Minute), true)
	mustClaim(t, s, nonceN(2), time.Now().Add(-time.Hour), false)
}

// TestRedisReplayStoreSharedByTwoNodes is the pool case: two nodes with
// their own connections to one Redis, and a token verified at one is a
// replay at the other.
func TestRedisReplayStoreSharedByTwoNodes(t *testing.T) {
	addr := redistest.Start(t)
	nodeA := NewRedisReplayStore(newRedisClient(t, addr, 0), ReplayKeyPrefix)
	nodeB := NewRedisReplayStore(newRedisClient(t, addr, 0), ReplayKeyPrefix)

	mustClaim(t, nodeA, nonceN(7), time.Now().Add(time.Minute), true)
	mustClaim(t, nodeB, nonceN(7), time.Now().Add(time.Minute), false)
	mustClaim(t, nodeB, nonceN(8), time.Now().Add(time.Minute), true)
	mustClaim(t, nodeA, nonceN(8), time.Now().Add(time.Minute), false)

	// End to end: a pool shares ticket keys (so both nodes know the PSK)
	// and the token names the address both nodes see the resumption on.
	f := newFixture()
	f.now = time.Now()
	f.expiry = f.now.Add(time.Minute)
	_, raw := f.issue(t)
	if _, err := VerifyToken(context.Background(), f.input(raw), nodeA); err != nil {
		t.Fatalf("node A: %v", err)
	}
	_, err := VerifyToken(context.Background(), f.input(raw), nodeB)
	if got := reasonOf(t, err); got != ReasonReplayed {
		t.Fatalf("node B: reason %q, want replayed", got)
	}

	// Another prefix is another namespace.
	other := NewRedisReplayStore(newRedisClient(t, addr, 0), "other:")
	mustClaim(t, other, nonceN(7), time.Now().Add(time.Minute), true)
}

// TestRedisDownFailsClosed takes Redis away mid-test: Claim errors, and
// VerifyToken answers store_unavailable rather than accepting the token.
func TestRedisDownFailsClosed(t *testing.T) {
	srv := redistest.StartServer(t)
	// The store anynode's --replay makes, with its client's timeouts.
	opened, closer, err := OpenReplayStore("redis://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	s := opened.(*RedisReplayStore)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping while Redis runs: %v", err)
	}
	mustClaim(t, s, nonceN(1), time.Now().Add(time.Minute), true)

	srv.Kill()

	ok, err := s.Claim(ctx, nonceN(2), time.Now().Add(time.Minute))
	if ok || err == nil {
		t.Fatalf("Claim with Redis down = %v, %v; want an error", ok, err)
	}
	if !strings.Contains(err.Error(), "redis replay store") {
		t.Fatalf("err = %q, want it to name the redis replay store", err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("Ping with Redis down = %v, want an error naming %s", err, srv.Addr)
	}

	f := newFixture()
	f.now = time.Now()
	f.expiry = f.now.Add(time.Minute)
	_, raw := f.issue(t)
	tok, err := VerifyToken(ctx, f.input(raw), s)
	if tok != nil {
		t.Fatal("a token was accepted with Redis down")
	}
	if got := reasonOf(t, err); got != ReasonStoreUnavailable {
		t.Fatalf("reason %q, want store_unavailable", got)
	}
}

func TestOpenReplayStoreMemory(t *testing.T) {
	store, closer, err := OpenReplayStore("memory")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	mem, ok := store.(*MemoryReplayStore)
	if !ok || mem.Capacity() != DefaultReplayCapacity {
		t.Fatalf("OpenReplayStore(memory) = %T", store)
	}
	mustClaim(t, store, nonceN(1), time.Now().Add(time.Minute), true)
	mustClaim(t, store, nonceN(1), time.Now().Add(time.Minute), false)
}

func TestOpenReplayStoreRedis(t *testing.T) {
	addr := redistest.Start(t)
	for _, c := range []struct {
		spec string
		db   int
	}{
		{"redis://" + addr, 0},
		{"redis://" + addr + "/", 0},
		{"redis://" + addr + "/3", 3},
	} {
		store, closer, err := OpenReplayStore(c.spec)
		if err != nil {
			t.Fatalf("OpenReplayStore(%q): %v", c.spec, err)
		}
		nonce := nonceN(uint64(100 + c.db))
		if c.spec == "redis://"+addr+"/" {
			nonce = nonceN(200)
		}
		mustClaim(t, store, nonce, time.Now().Add(time.Minute), true)
		mustClaim(t, store, nonce, time.Now().Add(time.Minute), false)
		if err := closer.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		key := ReplayKeyPrefix + hex.EncodeToString(nonce)
		n, err := newRedisClient(t, addr, c.db).Exists(context.Background(), key).Result()
		if err != nil || n != 1 {
			t.Fatalf("%s: EXISTS %s in DB %d = %d, %v; want 1", c.spec, key, c.db, n, err)
		}
	}
}

func TestOpenReplayStoreDoesNotNeedRedisUp(t *testing.T) {
	srv := redistest.StartServer(t)
	srv.Kill()
	store, closer, err := OpenReplayStore("redis://" + srv.Addr)
	if err != nil {
		t.Fatalf("OpenReplayStore with Redis down: %v", err)
	}
	defer closer.Close()
	if ok, err := store.Claim(context.Background(), nonceN(1), time.Now().Add(time.Minute)); ok || err == nil {
		t.Fatalf("Claim = %v, %v; want an error", ok, err)
	}
}

func TestOpenReplayStoreErrorsNameTheBadPart(t *testing.T) {
	cases := map[string]string{
		"":                             "unknown store",
		"mem":                          "unknown store",
		"Memory":                       "unknown store",
		"rediss://127.0.0.1:6379":      `scheme "rediss"`,
		"http://127.0.0.1:6379":        `scheme "http"`,
		"redis://":                     `host ""`,
		"redis://127.0.0.1":            `host "127.0.0.1"`,
		"redis://:6379":                "host missing",
		"redis://127.0.0.1:0":          `port "0"`,
		"redis://127.0.0.1:65536":      `port "65536"`,
		"redis://127.0.0.1:x":          `invalid port ":x"`,
		"redis://127.0.0.1:6379/x":     `database "x"`,
		"redis://127.0.0.1:6379/1/2":   `database "1/2"`,
		"redis://127.0.0.1:6379/-1":    `database "-1"`,
		"redis://127.0.0.1:6379/0?x=1": `query "x=1"`,
		"redis://127.0.0.1:6379/0?":    "query",
		"redis://127.0.0.1:6379#frag":  `fragment "frag"`,
		"redis://[::1:6379":            "missing ']'",
	}
	for spec, want := range cases {
		store, closer, err := OpenReplayStore(spec)
		if err == nil {
			closer.Close()
			t.Fatalf("OpenReplayStore(%q) = %T, want an error", spec, store)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("OpenReplayStore(%q): %q, want it to name %q", spec, err, want)
		}
		if !strings.Contains(err.Error(), "redis://HOST:PORT") {
			t.Fatalf("OpenReplayStore(%q): %q, want the accepted forms", spec, err)
		}
	}
}

func TestOpenReplayStoreHidesThePassword(t *testing.T) {
	for _, spec := range []string{"redis://user:hunter2@127.0.0.1:0", "redis://user:hunter2@127.0.0.1:x", "redis://:hunter2@[::1"} {
		_, _, err := OpenReplayStore(spec)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), ":xxxxx@") {
			t.Fatalf("OpenReplayStore(%q): err = %v, want an error with the password redacted", spec, err)
		}
	}
	opts, err := parseRedisSpec("redis://user:hunter2@127.0.0.1:6379/2")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Username != "user" || opts.Password != "hunter2" || opts.Addr != "127.0.0.1:6379" || opts.DB != 2 {
		t.Fatalf("options = %+v", opts)
	}
	opts, err = parseRedisSpec("redis://[::1]:6380")
	if err != nil || opts.Addr != "[::1]:6380" {
		t.Fatalf("IPv6 host: %+v, %v", opts, err)
	}
}

// TestVerifyTokenOverRedisWithTargetOfSibling is re-targeting: a token that
// names a sibling is refused at the node that issued it and accepted at the
// sibling, which shares the ticket keys and the Redis.
func TestVerifyTokenOverRedisWithTargetOfSibling(t *testing.T) {
	addr := redistest.Start(t)
	store := NewRedisReplayStore(newRedisClient(t, addr, 0), ReplayKeyPrefix)
	f := newFixture()
	f.now = time.Now()
	f.expiry = f.now.Add(time.Minute)
	f.target = netip.MustParseAddrPort("[2001:db8::b]:443")
	_, raw := f.issue(t)
	in := f.input(raw)
	in.Local = netip.MustParseAddrPort("[2001:db8::a]:443")
	_, err := VerifyToken(context.Background(), in, store)
	if got := reasonOf(t, err); got != ReasonWrongTarget {
		t.Fatalf("at the issuing node: reason %q, want wrong_target", got)
	}
	in.Local = f.target
	if _, err := VerifyToken(context.Background(), in, store); err != nil {
		t.Fatalf("at the sibling the token names: %v", err)
	}
}
