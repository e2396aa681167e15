// This file holds the codecs of the draft's wire elements: the empty
// migration_support and migration_allowed extensions, the seed's
// MigrationToken, draft-03's migrate_request body and its target string, and
// the migrate_notify alert. Every parser checks every length before use and
// rejects trailing bytes; every error wraps ErrMalformed.

package migration

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/crypto/cryptobyte"

	"github.com/anysched/anysched/codepoint"
)

// CodePoints are the wire numbers of the draft's elements. The draft leaves
// them TBD, so they are configuration; DefaultCodePoints gives this project's
// defaults (package codepoint).
type CodePoints struct {
	Support uint16 // ClientHello migration_support
	Token   uint16 // migration_token (NewSessionTicket, resuming ClientHello)
	Allowed uint16 // draft-03 migration_allowed (NewSessionTicket)
	Request uint8  // draft-03 migrate_request handshake type
	Notify  uint8  // migrate_notify alert description
}

// DefaultCodePoints returns the code points of package codepoint.
func DefaultCodePoints() CodePoints {
	return CodePoints{
		Support: codepoint.MigrationSupport,
		Token:   codepoint.MigrationToken,
		Allowed: codepoint.MigrationAllowed,
		Request: codepoint.MigrateRequest,
		Notify:  codepoint.MigrateNotify,
	}
}

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("migration: malformed")

// IPAddressType values of the seed's IPAddress structure.
const (
	addrTypeIPv4 uint8 = 0
	addrTypeIPv6 uint8 = 1
)

// Field ranges of the seed's MigrationToken.
const (
	MinSessionIDLen = 32
	MaxSessionIDLen = 255
	MinNonceLen     = 16
	MaxNonceLen     = 255
	MinSignatureLen = 32
	MaxSignatureLen = 255
)

// MaxTokenLen is the largest encoded MigrationToken: ipv6, and every opaque
// field at its maximum.
const MaxTokenLen = 1 + 16 + 2 + 1 + MaxSessionIDLen + 8 + 1 + MaxNonceLen + 1 + MaxSignatureLen

// Token is the seed's MigrationToken.
//
// An IPv4 target is always encoded as ipv4(0). A 4-in-6 mapped address
// (::ffff:a.b.c.d) is rejected both by Marshal and by ParseToken, so that
// every target has exactly one encoding and parse→marshal is the identity;
// IssueToken unmaps the target it is given, and VerifyToken unmaps the local
// address, so a dual-stack listener still matches.
type Token struct {
	Target    netip.AddrPort // IPv4 (not 4-in-6) or IPv6, no zone
	SessionID []byte         // 32..255 bytes
	Expiry    uint64         // Unix seconds; the token is invalid from this instant on
	Nonce     []byte         // 16..255 bytes
	Signature []byte         // 32..255 bytes
}

// Marshal encodes t in the seed's layout. The error names the field that is
// out of range.
func (t *Token) Marshal() ([]byte, error) {
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, t.encodedLen()))
	if err := t.appendSigned(b); err != nil {
		return nil, err
	}
	if err := checkLen("signature", t.Signature, MinSignatureLen, MaxSignatureLen); err != nil {
		return nil, err
	}
	appendOpaque8(b, t.Signature)
	return b.Bytes()
}

// signedBytes returns the encoding of every field before the signature: the
// input of the token's HMAC.
func (t *Token) signedBytes() ([]byte, error) {
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, t.encodedLen()))
	if err := t.appendSigned(b); err != nil {
		return nil, err
	}
	return b.Bytes()
}

func (t *Token) encodedLen() int {
	return 1 + 16 + 2 + 1 + len(t.SessionID) + 8 + 1 + len(t.Nonce) + 1 + len(t.Signature)
}

func (t *Token) appendSigned(b *cryptobyte.Builder) error {
	addr := t.Target.Addr()
	switch {
	case !t.Target.IsValid():
		return errors.New("migration: token target: no address")
	case addr.Zone() != "":
		return fmt.Errorf("migration: token target %s: a zone cannot be encoded", t.Target)
	case addr.Is4In6():
		return fmt.Errorf("migration: token target %s: 4-in-6 mapped address, use the IPv4 form", t.Target)
	}
	if err := checkLen("session_id", t.SessionID, MinSessionIDLen, MaxSessionIDLen); err != nil {
		return err
	}
	if err := checkLen("nonce", t.Nonce, MinNonceLen, MaxNonceLen); err != nil {
		return err
	}
	if addr.Is4() {
		b.AddUint8(addrTypeIPv4)
		a4 := addr.As4()
		b.AddBytes(a4[:])
	} else {
		b.AddUint8(addrTypeIPv6)
		a16 := addr.As16()
		b.AddBytes(a16[:])
	}
	b.AddUint16(t.Target.Port())
	appendOpaque8(b, t.SessionID)
	b.AddUint64(t.Expiry)
	appendOpaque8(b, t.Nonce)
	return nil
}

func appendOpaque8(b *cryptobyte.Builder, v []byte) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

func checkLen(field string, v []byte, lo, hi int) error {
	if len(v) < lo || len(v) > hi {
		return fmt.Errorf("migration: token %s length %d out of range %d..%d", field, len(v), lo, hi)
	}
	return nil
}

// ParseToken decodes a MigrationToken. The returned token's slices are
// copies, so b may be reused. Errors wrap ErrMalformed and name the field.
func ParseToken(b []byte) (*Token, error) {
	tok, _, err := parseToken(b, true)
	return tok, err
}

// parseToken decodes b and also returns the length of its signed part (every
// byte before the signature's length). With copySlices false the token's
// slices alias b.
func parseToken(b []byte, copySlices bool) (*Token, int, error) {
	s := cryptobyte.String(b)
	var typ uint8
	if !s.ReadUint8(&typ) {
		return nil, 0, malformed("token: address type missing")
	}
	var addr netip.Addr
	switch typ {
	case addrTypeIPv4:
		var a4 [4]byte
		if !s.CopyBytes(a4[:]) {
			return nil, 0, malformed("token: ipv4 address truncated")
		}
		addr = netip.AddrFrom4(a4)
	case addrTypeIPv6:
		var a16 [16]byte
		if !s.CopyBytes(a16[:]) {
			return nil, 0, malformed("token: ipv6 address truncated")
		}
		addr = netip.AddrFrom16(a16)
		if addr.Is4In6() {
			return nil, 0, malformed("token: ipv6 address is 4-in-6 mapped")
		}
	default:
		return nil, 0, malformed(fmt.Sprintf("token: unknown address type %d", typ))
	}
	var port uint16
	if !s.ReadUint16(&port) {
		return nil, 0, malformed("token: port truncated")
	}
	tok := &Token{Target: netip.AddrPortFrom(addr, port)}
	var ok bool
	if tok.SessionID, ok = readOpaque8(&s, MinSessionIDLen, copySlices); !ok {
		return nil, 0, malformedField("session_id", MinSessionIDLen, MaxSessionIDLen)
	}
	if !s.ReadUint64(&tok.Expiry) {
		return nil, 0, malformed("token: expiry_timestamp truncated")
	}
	if tok.Nonce, ok = readOpaque8(&s, MinNonceLen, copySlices); !ok {
		return nil, 0, malformedField("nonce", MinNonceLen, MaxNonceLen)
	}
	signedLen := len(b) - len(s)
	if tok.Signature, ok = readOpaque8(&s, MinSignatureLen, copySlices); !ok {
		return nil, 0, malformedField("signature", MinSignatureLen, MaxSignatureLen)
	}
	if !s.Empty() {
		return nil, 0, malformed(fmt.Sprintf("token: %d trailing bytes", len(s)))
	}
	return tok, signedLen, nil
}

// readOpaque8 reads a 1-byte-length-prefixed field of at least lo bytes (the
// 1-byte length caps it at 255).
func readOpaque8(s *cryptobyte.String, lo int, copySlice bool) ([]byte, bool) {
	var v cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&v) || len(v) < lo {
		return nil, false
	}
	if copySlice {
		return append([]byte(nil), v...), true
	}
	return v, true
}

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

func malformedField(field string, lo, hi int) error {
	return malformed(fmt.Sprintf("token: %s truncated or length out of range %d..%d", field, lo, hi))
}

// MarshalMigrationSupport returns the extension data of migration_support
// (ClientHello): always empty.
func MarshalMigrationSupport() []byte { return []byte{} }

// ParseMigrationSupport checks the extension data of migration_support,
// which must be empty.
func ParseMigrationSupport(data []byte) error {
	if len(data) != 0 {
		return malformed(fmt.Sprintf("migration_support: %d bytes, must be empty", len(data)))
	}
	return nil
}

// MarshalMigrationAllowed returns the extension data of draft-03's
// migration_allowed (NewSessionTicket): always empty.
func MarshalMigrationAllowed() []byte { return []byte{} }

// ParseMigrationAllowed checks the extension data of draft-03's
// migration_allowed, which must be empty.
func ParseMigrationAllowed(data []byte) error {
	if len(data) != 0 {
		return malformed(fmt.Sprintf("migration_allowed: %d bytes, must be empty", len(data)))
	}
	return nil
}

// MaxTargetLen is the largest target a migrate_request can carry.
const MaxTargetLen = 1<<16 - 1

// MigrateRequest is draft-03's post-handshake message
// struct { opaque target<0..2^16-1>; }. The target is opaque on the wire;
// ours is "host:port" with an IPv6 host in brackets (ParseTarget,
// FormatTarget), and "" leaves the choice to the client's own policy.
type MigrateRequest struct{ Target string }

// Marshal returns the message body (without the 4-byte handshake header).
func (m *MigrateRequest) Marshal() ([]byte, error) {
	if len(m.Target) > MaxTargetLen {
		return nil, fmt.Errorf("migration: migrate_request target length %d out of range 0..%d", len(m.Target), MaxTargetLen)
	}
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, 2+len(m.Target)))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Target)) })
	return b.Bytes()
}

// ParseMigrateRequest decodes a migrate_request body as
// tls13.Config.OnHandshakeMessage delivers it (after the handshake header).
// The target is returned as sent; ParseTarget interprets ours.
func ParseMigrateRequest(body []byte) (*MigrateRequest, error) {
	s := cryptobyte.String(body)
	var target cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&target) {
		return nil, malformed("migrate_request: target truncated")
	}
	if !s.Empty() {
		return nil, malformed(fmt.Sprintf("migrate_request: %d trailing bytes", len(s)))
	}
	return &MigrateRequest{Target: string(target)}, nil
}

// ParseTarget parses our target form: an IP literal and a port,
// "192.0.2.1:443" or "[2001:db8::1]:443". Host names, zones and port 0 are
// rejected (a target is an address to connect to, meaningful to a client on
// another host); a 4-in-6 mapped address names its IPv4 address and is
// returned unmapped. Errors wrap ErrMalformed.
func ParseTarget(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, malformed("target: empty")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, malformed(fmt.Sprintf("target %s: want IP:port or [IPv6]:port", strconv.Quote(s)))
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, malformed(fmt.Sprintf("target %s: zones are not allowed", strconv.Quote(s)))
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, malformed(fmt.Sprintf("target %s: port 0", strconv.Quote(s)))
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// FormatTarget is ParseTarget's inverse: "IP:port", IPv6 in brackets. The
// zero AddrPort formats as "", the "client's own policy" target.
func FormatTarget(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// alertLevelWarning is RFC 8446's AlertLevel warning(1): migrate_notify is
// not fatal.
const alertLevelWarning = 1

// MarshalNotifyAlert returns the body of a migrate_notify alert record:
// level warning, then desc.
func MarshalNotifyAlert(desc uint8) []byte { return []byte{alertLevelWarning, desc} }

// ParseNotifyAlert checks that b is a warning-level alert with description
// desc. Errors wrap ErrMalformed.
func ParseNotifyAlert(b []byte, desc uint8) error {
	switch {
	case len(b) != 2:
		return malformed(fmt.Sprintf("migrate_notify: alert of %d bytes, want 2", len(b)))
	case b[0] != alertLevelWarning:
		return malformed(fmt.Sprintf("migrate_notify: alert level %d, want warning(1)", b[0]))
	case b[1] != desc:
		return malformed(fmt.Sprintf("migrate_notify: alert description %d, want %d", b[1], desc))
	}
	return nil
}
