// This file issues and checks MigrationTokens: the HMAC key
// derived from the ticket's PSK, the signature over every field before it,
// and the ordered checks of VerifyToken with one named Reason per rejection.

package migration

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"golang.org/x/crypto/hkdf"
)

// Reason names why a token was rejected; it is what metrics count.
type Reason string

// The rejection reasons, in VerifyToken's check order.
const (
	ReasonMalformed        Reason = "malformed"
	ReasonNoTicket         Reason = "no_ticket"
	ReasonForged           Reason = "forged"
	ReasonOtherSession     Reason = "other_session"
	ReasonExpired          Reason = "expired"
	ReasonWrongTarget      Reason = "wrong_target"
	ReasonReplayed         Reason = "replayed"
	ReasonStoreUnavailable Reason = "store_unavailable" // replay store down/full: fail closed
)

// Reasons lists every Reason, so that metrics can pre-register all of them.
var Reasons = []Reason{
	ReasonForged,
	ReasonOtherSession,
	ReasonExpired,
	ReasonReplayed,
	ReasonWrongTarget,
	ReasonMalformed,
	ReasonNoTicket,
	ReasonStoreUnavailable,
}

// RejectError is VerifyToken's error: the Reason, and the detail behind it.
type RejectError struct {
	Reason Reason
	Err    error
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return "migration: token rejected: " + string(e.Reason)
	}
	return "migration: token rejected: " + string(e.Reason) + ": " + e.Err.Error()
}

func (e *RejectError) Unwrap() error { return e.Err }

func reject(r Reason, err error) error { return &RejectError{Reason: r, Err: err} }

// TokenKeyLen is the length of the HMAC-SHA256 key and of the signature.
const TokenKeyLen = sha256.Size

// tokenKeyLabel is the HKDF-Expand-Label label of the token key.
const tokenKeyLabel = "mig token"

// TokenKey derives the token's HMAC key from the PSK of the ticket it rides
// with: HKDF-Expand-Label(SHA-256, psk, "mig token", "", 32) with RFC 8446
// §7.1's label encoding. The hash is SHA-256 whatever the cipher suite, so
// that a token does not depend on which suite a node negotiated; the PSK of a
// SHA-384 suite is simply a 48-byte HMAC key.
func TokenKey(psk []byte) []byte {
	return expandLabel(psk, tokenKeyLabel, nil, TokenKeyLen)
}

// expandLabel is RFC 8446 §7.1's HKDF-Expand-Label over SHA-256:
// HkdfLabel = uint16 length | opaque label<7..255> ("tls13 " + label) |
// opaque context<0..255>.
func expandLabel(secret []byte, label string, context []byte, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 2+1+len(prefix)+len(label)+1+len(context))
	info = append(info, byte(length>>8), byte(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	out := make([]byte, length)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, secret, info), out); err != nil {
		// Only a length beyond 255 hash blocks fails, and every caller asks
		// for one block.
		panic("migration: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// nonceLen is the length of the nonces IssueToken draws.
const nonceLen = 16

// IssueToken makes a signed token naming target for the session whose ticket
// carries psk. sessionID is the caller's random session binding (also sealed
// in the ticket), expiry is when the token stops being valid, rand supplies
// the 16-byte nonce (nil = crypto/rand). A 4-in-6 target is unmapped.
func IssueToken(psk []byte, target netip.AddrPort, sessionID []byte, expiry time.Time, rand io.Reader) (*Token, error) {
	if len(psk) == 0 {
		return nil, errors.New("migration: issue token: empty PSK")
	}
	if expiry.Unix() < 0 {
		return nil, fmt.Errorf("migration: issue token: expiry %s before 1970", expiry.UTC().Format(time.RFC3339))
	}
	if rand == nil {
		rand = cryptoRand
	}
	tok := &Token{
		Target:    netip.AddrPortFrom(target.Addr().Unmap(), target.Port()),
		SessionID: append([]byte(nil), sessionID...),
		Expiry:    uint64(expiry.Unix()),
		Nonce:     make([]byte, nonceLen),
	}
	if !target.IsValid() {
		tok.Target = netip.AddrPort{}
	}
	if _, err := io.ReadFull(rand, tok.Nonce); err != nil {
		return nil, fmt.Errorf("migration: issue token: nonce: %w", err)
	}
	signed, err := tok.signedBytes()
	if err != nil {
		return nil, err
	}
	tok.Signature = tokenMAC(TokenKey(psk), signed)
	return tok, nil
}

var cryptoRand = rand.Reader

func tokenMAC(key, signed []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(signed)
	return mac.Sum(nil)
}

// VerifyInput is what a node knows when a resuming ClientHello carries a
// migration_token.
type VerifyInput struct {
	Raw       []byte         // migration_token extension data from the resuming ClientHello
	PSK       []byte         // PSK of the ticket the server resumed; nil if no ticket was resumed
	SessionID []byte         // session_id the server sealed into that ticket (nil if none)
	Local     netip.AddrPort // local address+port the ClientHello arrived on
	Now       time.Time
}

// maxExpiry is the latest expiry ExpiryTime returns (the end of year 9999):
// time.Time compares wrongly from about 2^63 - 2^36 seconds on.
var maxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()

// ExpiryTime is the instant t stops being valid. Expiries beyond year 9999
// are clamped to its end.
func (t *Token) ExpiryTime() time.Time {
	if t.Expiry > uint64(maxExpiry) {
		return time.Unix(maxExpiry, 0)
	}
	return time.Unix(int64(t.Expiry), 0)
}

// VerifyToken returns the token when it is accepted, else a *RejectError.
//
// The checks run in this order, so that a bad token never burns a nonce:
// malformed → no_ticket → forged (hmac.Equal) → other_session (constant
// time) → expired (valid strictly before expiry_timestamp) → wrong_target
// (both sides unmapped, zones ignored, ports equal) → the replay store's
// Claim (false → replayed; an error, or no store → store_unavailable, the
// node fails closed).
func VerifyToken(ctx context.Context, in VerifyInput, store ReplayStore) (*Token, error) {
	tok, signedLen, err := parseToken(in.Raw, false)
	if err != nil {
		return nil, reject(ReasonMalformed, err)
	}
	if len(in.PSK) == 0 {
		return nil, reject(ReasonNoTicket, errors.New("no ticket was resumed"))
	}
	if !hmac.Equal(tokenMAC(TokenKey(in.PSK), in.Raw[:signedLen]), tok.Signature) {
		return nil, reject(ReasonForged, errors.New("signature does not match the ticket's key"))
	}
	if subtle.ConstantTimeCompare(tok.SessionID, in.SessionID) != 1 {
		return nil, reject(ReasonOtherSession, errors.New("session_id is not the resumed ticket's"))
	}
	expiry := tok.ExpiryTime()
	if !in.Now.Before(expiry) {
		return nil, reject(ReasonExpired, fmt.Errorf("expired at %s", expiry.UTC().Format(time.RFC3339)))
	}
	target := netip.AddrPortFrom(tok.Target.Addr().Unmap(), tok.Target.Port())
	local := netip.AddrPortFrom(in.Local.Addr().Unmap().WithZone(""), in.Local.Port())
	if target != local {
		return nil, reject(ReasonWrongTarget, fmt.Errorf("token names %s, arrived on %s", target, local))
	}
	if store == nil {
		return nil, reject(ReasonStoreUnavailable, errors.New("no replay store"))
	}
	first, err := store.Claim(ctx, tok.Nonce, expiry)
	if err != nil {
		return nil, reject(ReasonStoreUnavailable, err)
	}
	if !first {
		return nil, reject(ReasonReplayed, errors.New("nonce already used"))
	}
	// The caller may keep the token after Raw is reused.
	return &Token{
		Target:    tok.Target,
		SessionID: append([]byte(nil), tok.SessionID...),
		Expiry:    tok.Expiry,
		Nonce:     append([]byte(nil), tok.Nonce...),
		Signature: append([]byte(nil), tok.Signature...),
	}, nil
}
