package migration

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTokenKeyMatchesHandBuiltHKDF recomputes TokenKey from RFC 5869 and RFC
// 8446 §7.1 with nothing but HMAC: the HkdfLabel is written out byte by byte
// and the single output block is T(1) = HMAC(PRK, info | 0x01).
func TestTokenKeyMatchesHandBuiltHKDF(t *testing.T) {
	info := []byte{0x00, 0x20, 15}
	info = append(info, "tls13 mig token"...)
	info = append(info, 0x00)
	for _, psk := range [][]byte{fill(32, 0xa5), fill(48, 0x3c), []byte("short")} {
		mac := hmac.New(sha256.New, psk)
		mac.Write(info)
		mac.Write([]byte{0x01})
		want := mac.Sum(nil)
		if got := TokenKey(psk); !bytes.Equal(got, want) {
			t.Fatalf("TokenKey(%d-byte psk) = %x, want %x", len(psk), got, want)
		}
	}
}

// TestExpandLabelRFC8448 checks the label encoding against RFC 8448's
// simple 1-RTT trace, once with a hash as context and once with none.
func TestExpandLabelRFC8448(t *testing.T) {
	early := unhex(t, `33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a`)
	emptyHash := sha256.Sum256(nil)
	want := unhex(t, `6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba`)
	if got := expandLabel(early, "derived", emptyHash[:], 32); !bytes.Equal(got, want) {
		t.Fatalf("derived = %x, want %x", got, want)
	}
	sHS := unhex(t, `b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38`)
	wantKey := unhex(t, `3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc`)
	if got := expandLabel(sHS, "key", nil, 16); !bytes.Equal(got, wantKey) {
		t.Fatalf("server handshake key = %x, want %x", got, wantKey)
	}
}

// fixture is one session's state: a ticket PSK, its sealed session_id, and
// the node's unicast address the token names.
type fixture struct {
	psk       []byte
	sessionID []byte
	target    netip.AddrPort
	now       time.Time
	expiry    time.Time
}

func newFixture() fixture {
	now := time.Unix(1_800_000_000, 0)
	return fixture{
		psk:       fill(32, 0x11),
		sessionID: fill(32, 0x22),
		target:    netip.MustParseAddrPort("192.0.2.10:8443"),
		now:       now,
		expiry:    now.Add(5 * time.Minute),
	}
}

func (f fixture) issue(t *testing.T) (*Token, []byte) {
	t.Helper()
	tok, err := IssueToken(f.psk, f.target, f.sessionID, f.expiry, nil)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	raw, err := tok.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return tok, raw
}

func (f fixture) input(raw []byte) VerifyInput {
	return VerifyInput{Raw: raw, PSK: f.psk, SessionID: f.sessionID, Local: f.target, Now: f.now}
}

// countingStore records every Claim, so tests can prove a rejected token
// never reached the replay store.
type countingStore struct {
	mu     sync.Mutex
	inner  ReplayStore
	claims int
}

func (s *countingStore) Claim(ctx context.Context, nonce []byte, expiry time.Time) (bool, error) {
	s.mu.Lock()
	s.claims++
	s.mu.Unlock()
	return s.inner.Claim(ctx, nonce, expiry)
}

type failingStore struct{ err error }

func (s failingStore) Claim(context.Context, []byte, time.Time) (bool, error) { return false, s.err }

func newMemoryStoreAt(capacity int, now time.Time) *MemoryReplayStore {
	s := NewMemoryReplayStore(capacity)
	s.now = func() time.Time { return now }
	return s
}

func TestIssueTokenSignsEveryFieldBeforeTheSignature(t *testing.T) {
	f := newFixture()
	tok, raw := f.issue(t)
	if len(tok.Nonce) != 16 || len(tok.Signature) != 32 {
		t.Fatalf("nonce %d bytes, signature %d bytes; want 16 and 32", len(tok.Nonce), len(tok.Signature))
	}
	if tok.Expiry != uint64(f.expiry.Unix()) || tok.Target != f.target || !bytes.Equal(tok.SessionID, f.sessionID) {
		t.Fatalf("IssueToken = %+v", tok)
	}
	mac := hmac.New(sha256.New, TokenKey(f.psk))
	mac.Write(raw[:len(raw)-1-32])
	if want := mac.Sum(nil); !bytes.Equal(tok.Signature, want) {
		t.Fatalf("signature %x, want HMAC over the first %d bytes = %x", tok.Signature, len(raw)-33, want)
	}
	f.sessionID[0] ^= 0xff
	if bytes.Equal(tok.SessionID, f.sessionID) {
		t.Fatal("IssueToken kept the caller's sessionID slice")
	}
}

func TestIssueTokenNonce(t *testing.T) {
	f := newFixture()
	tok, err := IssueToken(f.psk, f.target, f.sessionID, f.expiry, bytes.NewReader(fill(16, 0x7e)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Nonce, fill(16, 0x7e)) {
		t.Fatalf("nonce %x, want it read from rand", tok.Nonce)
	}
	a, _ := f.issue(t)
	b, _ := f.issue(t)
	if bytes.Equal(a.Nonce, b.Nonce) {
		t.Fatal("two tokens from crypto/rand share a nonce")
	}
}

func TestIssueTokenUnmapsTarget(t *testing.T) {
	f := newFixture()
	tok, err := IssueToken(f.psk, netip.MustParseAddrPort("[::ffff:192.0.2.10]:8443"), f.sessionID, f.expiry, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Target != f.target {
		t.Fatalf("target %v, want %v", tok.Target, f.target)
	}
}

func TestIssueTokenRejects(t *testing.T) {
	f := newFixture()
	cases := []struct {
		name string
		run  func() (*Token, error)
		want string
	}{
		{"empty psk", func() (*Token, error) { return IssueToken(nil, f.target, f.sessionID, f.expiry, nil) }, "PSK"},
		{"short session_id", func() (*Token, error) { return IssueToken(f.psk, f.target, fill(31, 1), f.expiry, nil) }, "session_id"},
		{"no target", func() (*Token, error) {
			return IssueToken(f.psk, netip.AddrPort{}, f.sessionID, f.expiry, nil)
		}, "target"},
		{"zoned target", func() (*Token, error) {
			return IssueToken(f.psk, netip.MustParseAddrPort("[fe80::1%lo]:443"), f.sessionID, f.expiry, nil)
		}, "zone"},
		{"expiry before 1970", func() (*Token, error) {
			return IssueToken(f.psk, f.target, f.sessionID, time.Unix(-1, 0), nil)
		}, "1970"},
		{"rand fails", func() (*Token, error) {
			return IssueToken(f.psk, f.target, f.sessionID, f.expiry, bytes.NewReader(fill(15, 0)))
		}, "nonce"},
	}
	for _, c := range cases {
		tok, err := c.run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: IssueToken = %v, %v; want an error naming %q", c.name, tok, err, c.want)
		}
	}
}

func TestVerifyTokenAccepts(t *testing.T) {
	f := newFixture()
	issued, raw := f.issue(t)
	store := newMemoryStoreAt(16, f.now)
	tok, err := VerifyToken(context.Background(), f.input(raw), store)
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	if !bytes.Equal(tok.Nonce, issued.Nonce) || tok.Target != f.target {
		t.Fatalf("VerifyToken = %+v, want %+v", tok, issued)
	}
	raw[len(raw)-1] ^= 1
	if tok.Signature[31] == raw[len(raw)-1] {
		t.Fatal("the accepted token aliases Raw")
	}
	if store.Len() != 1 {
		t.Fatalf("store holds %d nonces, want 1", store.Len())
	}
}

func TestVerifyTokenAcceptsUntilExpiryAndOnDualStack(t *testing.T) {
	f := newFixture()
	_, raw := f.issue(t)
	in := f.input(raw)
	in.Now = f.expiry.Add(-time.Nanosecond)
	in.Local = netip.MustParseAddrPort("[::ffff:192.0.2.10]:8443")
	if _, err := VerifyToken(context.Background(), in, newMemoryStoreAt(16, f.now)); err != nil {
		t.Fatalf("one nanosecond before expiry, on a 4-in-6 local address: %v", err)
	}

	f6 := newFixture()
	f6.target = netip.MustParseAddrPort("[2001:db8::10]:443")
	_, raw6 := f6.issue(t)
	in6 := f6.input(raw6)
	in6.Local = netip.MustParseAddrPort("[2001:db8::10%eth0]:443")
	if _, err := VerifyToken(context.Background(), in6, newMemoryStoreAt(16, f.now)); err != nil {
		t.Fatalf("IPv6 target, local address with a zone: %v", err)
	}
}

func reasonOf(t *testing.T, err error) Reason {
	t.Helper()
	var rej *RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v (%T), want a *RejectError", err, err)
	}
	return rej.Reason
}

// TestVerifyTokenReasons gives every Reason one case, and proves that no
// rejection before the replay check claims the nonce.
func TestVerifyTokenReasons(t *testing.T) {
	f := newFixture()
	other := f
	other.psk = fill(32, 0x99)
	storeDown := errors.New("connection refused")

	cases := []struct {
		name   string
		reason Reason
		input  func(raw []byte) VerifyInput
		store  ReplayStore // nil: a fresh memory store
	}{
		{"truncated", ReasonMalformed, func(raw []byte) VerifyInput { return f.input(raw[:len(raw)-1]) }, nil},
		{"trailing byte", ReasonMalformed, func(raw []byte) VerifyInput { return f.input(append(raw, 0)) }, nil},
		{"unknown address type", ReasonMalformed, func(raw []byte) VerifyInput { raw[0] = 7; return f.input(raw) }, nil},
		{"empty", ReasonMalformed, func([]byte) VerifyInput { return f.input(nil) }, nil},
		{"no ticket", ReasonNoTicket, func(raw []byte) VerifyInput { in := f.input(raw); in.PSK = nil; return in }, nil},
		{"signature flipped", ReasonForged, func(raw []byte) VerifyInput { raw[len(raw)-1] ^= 1; return f.input(raw) }, nil},
		{"target rewritten", ReasonForged, func(raw []byte) VerifyInput { raw[4] ^= 1; return f.input(raw) }, nil},
		{"expiry extended", ReasonForged, func(raw []byte) VerifyInput { raw[1+4+2+1+32] ^= 0x80; return f.input(raw) }, nil},
		{"another ticket's PSK", ReasonForged, func(raw []byte) VerifyInput { return other.input(raw) }, nil},
		{"signature padded to 33 bytes", ReasonForged, func(raw []byte) VerifyInput {
			raw[len(raw)-33] = 33
			return f.input(append(raw, 0))
		}, nil},
		{"another session", ReasonOtherSession, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.SessionID = fill(32, 0x23)
			return in
		}, nil},
		{"ticket without session_id", ReasonOtherSession, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.SessionID = nil
			return in
		}, nil},
		{"at expiry", ReasonExpired, func(raw []byte) VerifyInput { in := f.input(raw); in.Now = f.expiry; return in }, nil},
		{"after expiry", ReasonExpired, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.Now = f.expiry.Add(time.Hour)
			return in
		}, nil},
		{"other port", ReasonWrongTarget, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.Local = netip.MustParseAddrPort("192.0.2.10:443")
			return in
		}, nil},
		{"other address", ReasonWrongTarget, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.Local = netip.MustParseAddrPort("192.0.2.11:8443")
			return in
		}, nil},
		{"arrived on the VIP's IPv6", ReasonWrongTarget, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.Local = netip.MustParseAddrPort("[2001:db8::10]:8443")
			return in
		}, nil},
		{"no local address", ReasonWrongTarget, func(raw []byte) VerifyInput {
			in := f.input(raw)
			in.Local = netip.AddrPort{}
			return in
		}, nil},
		{"store down", ReasonStoreUnavailable, f.input, failingStore{storeDown}},
		{"store full", ReasonStoreUnavailable, f.input, func() ReplayStore {
			s := newMemoryStoreAt(1, f.now)
			if ok, err := s.Claim(context.Background(), fill(16, 0xee), f.expiry); !ok || err != nil {
				t.Fatalf("filling the store: %v, %v", ok, err)
			}
			return s
		}()},
	}
	seen := map[Reason]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, raw := f.issue(t)
			inner := c.store
			if inner == nil {
				inner = newMemoryStoreAt(16, f.now)
			}
			store := &countingStore{inner: inner}
			tok, err := VerifyToken(context.Background(), c.input(raw), store)
			if tok != nil {
				t.Fatalf("VerifyToken accepted %+v", tok)
			}
			if got := reasonOf(t, err); got != c.reason {
				t.Fatalf("reason %q, want %q (err %v)", got, c.reason, err)
			}
			if wantClaims := map[bool]int{true: 1, false: 0}[c.reason == ReasonStoreUnavailable]; store.claims != wantClaims {
				t.Fatalf("%d claims, want %d", store.claims, wantClaims)
			}
			if c.reason == ReasonStoreUnavailable && c.store == (failingStore{storeDown}) && !errors.Is(err, storeDown) {
				t.Fatalf("err %v does not wrap the store's error", err)
			}
			seen[c.reason] = true
		})
	}

	t.Run("replayed", func(t *testing.T) {
		_, raw := f.issue(t)
		store := newMemoryStoreAt(16, f.now)
		if _, err := VerifyToken(context.Background(), f.input(raw), store); err != nil {
			t.Fatalf("first use: %v", err)
		}
		_, err := VerifyToken(context.Background(), f.input(raw), store)
		if got := reasonOf(t, err); got != ReasonReplayed {
			t.Fatalf("second use: reason %q, want replayed", got)
		}
		seen[ReasonReplayed] = true
	})
	t.Run("no store", func(t *testing.T) {
		_, raw := f.issue(t)
		_, err := VerifyToken(context.Background(), f.input(raw), nil)
		if got := reasonOf(t, err); got != ReasonStoreUnavailable {
			t.Fatalf("reason %q, want store_unavailable", got)
		}
	})
	for _, r := range Reasons {
		if !seen[r] {
			t.Errorf("no case for reason %q", r)
		}
	}
}

// TestRejectedTokenDoesNotBurnItsNonce: an attacker who alters a token (or
// presents it at the wrong place) must not be able to use up the genuine
// token's nonce.
func TestRejectedTokenDoesNotBurnItsNonce(t *testing.T) {
	f := newFixture()
	_, raw := f.issue(t)
	store := newMemoryStoreAt(16, f.now)
	forged := append([]byte(nil), raw...)
	forged[len(forged)-1] ^= 1
	elsewhere := f.input(raw)
	elsewhere.Local = netip.MustParseAddrPort("192.0.2.99:8443")
	for _, in := range []VerifyInput{f.input(forged), elsewhere} {
		if _, err := VerifyToken(context.Background(), in, store); err == nil {
			t.Fatal("a bad token was accepted")
		}
	}
	if _, err := VerifyToken(context.Background(), f.input(raw), store); err != nil {
		t.Fatalf("the genuine token after the bad ones: %v", err)
	}
}

func TestReasonsAreDistinctAndComplete(t *testing.T) {
	want := []Reason{ReasonForged, ReasonOtherSession, ReasonExpired, ReasonReplayed, ReasonWrongTarget,
		ReasonMalformed, ReasonNoTicket, ReasonStoreUnavailable}
	if len(Reasons) != len(want) {
		t.Fatalf("Reasons has %d entries, want %d", len(Reasons), len(want))
	}
	got := map[Reason]bool{}
	for _, r := range Reasons {
		got[r] = true
	}
	for _, r := range want {
		if !got[r] {
			t.Fatalf("Reasons lacks %q", r)
		}
	}
	for r := range got {
		if r == "" || strings.ContainsAny(string(r), " -") {
			t.Fatalf("reason %q is not a metric label", r)
		}
	}
}

func TestRejectErrorWrapsAndNames(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	err := error(&RejectError{Reason: ReasonMalformed, Err: cause})
	if !errors.Is(err, cause) {
		t.Fatal("errors.Is does not reach the cause")
	}
	if !strings.Contains(err.Error(), "malformed") || !strings.Contains(err.Error(), cause.Error()) {
		t.Fatalf("Error() = %q", err)
	}
	if got := (&RejectError{Reason: ReasonReplayed}).Error(); !strings.Contains(got, "replayed") {
		t.Fatalf("Error() without a cause = %q", got)
	}
}

func TestTokenExpiryTimeClamps(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, e := range []uint64{1<<63 - 1, 1 << 63, 1<<64 - 1, 253402300800} {
		if got := (&Token{Expiry: e}).ExpiryTime(); !now.Before(got) || got.Year() != 9999 {
			t.Fatalf("ExpiryTime of expiry %d = %v, want the end of year 9999", e, got)
		}
	}
	if got := (&Token{Expiry: 1_800_000_000}).ExpiryTime(); !got.Equal(time.Unix(1_800_000_000, 0)) {
		t.Fatalf("ExpiryTime = %v", got)
	}
}
