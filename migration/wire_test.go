package migration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// rawToken builds a token encoding by hand, field by field, so malformed
// encodings can be made without Marshal's checks.
type rawToken struct {
	typ       uint8
	addr      []byte
	port      uint16
	sessionID []byte
	expiry    uint64
	nonce     []byte
	signature []byte
}

func (r rawToken) bytes() []byte {
	var b []byte
	b = append(b, r.typ)
	b = append(b, r.addr...)
	b = binary.BigEndian.AppendUint16(b, r.port)
	b = append(b, byte(len(r.sessionID)))
	b = append(b, r.sessionID...)
	b = binary.BigEndian.AppendUint64(b, r.expiry)
	b = append(b, byte(len(r.nonce)))
	b = append(b, r.nonce...)
	b = append(b, byte(len(r.signature)))
	b = append(b, r.signature...)
	return b
}

func fill(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

func validRawV4() rawToken {
	return rawToken{typ: 0, addr: []byte{192, 0, 2, 7}, port: 8443,
		sessionID: fill(32, 0x51), expiry: 1_900_000_000, nonce: fill(16, 0x4e), signature: fill(32, 0x5a)}
}

func validRawV6() rawToken {
	a := netip.MustParseAddr("2001:db8::7").As16()
	return rawToken{typ: 1, addr: a[:], port: 443,
		sessionID: fill(255, 0x52), expiry: 1<<64 - 1, nonce: fill(255, 0x4f), signature: fill(255, 0x5b)}
}

func TestTokenMarshalMatchesSeedLayout(t *testing.T) {
	for _, raw := range []rawToken{validRawV4(), validRawV6()} {
		addr, _ := netip.AddrFromSlice(raw.addr)
		tok := &Token{Target: netip.AddrPortFrom(addr, raw.port), SessionID: raw.sessionID,
			Expiry: raw.expiry, Nonce: raw.nonce, Signature: raw.signature}
		got, err := tok.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%v): %v", tok.Target, err)
		}
		if want := raw.bytes(); !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%v) =\n%x\nwant\n%x", tok.Target, got, want)
		}
		back, err := ParseToken(got)
		if err != nil {
			t.Fatalf("ParseToken(Marshal): %v", err)
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip changed the encoding: %x, %v", again, err)
		}
		if back.Target != tok.Target || back.Expiry != tok.Expiry ||
			!bytes.Equal(back.SessionID, tok.SessionID) || !bytes.Equal(back.Nonce, tok.Nonce) ||
			!bytes.Equal(back.Signature, tok.Signature) {
			t.Fatalf("ParseToken = %+v, want %+v", back, tok)
		}
	}
}

func TestTokenMaxLen(t *testing.T) {
	if n := len(validRawV6().bytes()); n != MaxTokenLen {
		t.Fatalf("largest token is %d bytes, MaxTokenLen = %d", n, MaxTokenLen)
	}
}

func TestParseTokenCopiesItsInput(t *testing.T) {
	b := validRawV4().bytes()
	tok, err := ParseToken(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	if !bytes.Equal(tok.SessionID, fill(32, 0x51)) || !bytes.Equal(tok.Nonce, fill(16, 0x4e)) ||
		!bytes.Equal(tok.Signature, fill(32, 0x5a)) {
		t.Fatal("the parsed token aliases its input")
	}
}

func TestParseTokenRejectsEveryTruncation(t *testing.T) {
	for _, raw := range []rawToken{validRawV4(), validRawV6()} {
		b := raw.bytes()
		for i := 0; i < len(b); i++ {
			if _, err := ParseToken(b[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("type %d truncated to %d of %d bytes: err = %v, want ErrMalformed", raw.typ, i, len(b), err)
			}
		}
	}
}

func TestParseTokenRejectsMalformed(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:192.0.2.7").As16()
	cases := []struct {
		name string
		b    []byte
		want string // in the error
	}{
		{"empty", nil, "address type"},
		{"type 2", func() []byte { r := validRawV4(); r.typ = 2; return r.bytes() }(), "unknown address type 2"},
		{"type 255", func() []byte { r := validRawV6(); r.typ = 255; return r.bytes() }(), "unknown address type 255"},
		{"ipv4 type with 16-byte address", func() []byte { r := validRawV6(); r.typ = 0; return r.bytes() }(), ""},
		{"ipv6 type with 4-byte address", func() []byte { r := validRawV4(); r.typ = 1; return r.bytes() }(), ""},
		{"4-in-6 mapped", func() []byte { r := validRawV4(); r.typ = 1; r.addr = mapped[:]; return r.bytes() }(), "4-in-6"},
		{"session_id 0", func() []byte { r := validRawV4(); r.sessionID = nil; return r.bytes() }(), "session_id"},
		{"session_id 31", func() []byte { r := validRawV4(); r.sessionID = fill(31, 1); return r.bytes() }(), "session_id"},
		{"nonce 0", func() []byte { r := validRawV4(); r.nonce = nil; return r.bytes() }(), "nonce"},
		{"nonce 15", func() []byte { r := validRawV4(); r.nonce = fill(15, 1); return r.bytes() }(), "nonce"},
		{"signature 0", func() []byte { r := validRawV4(); r.signature = nil; return r.bytes() }(), "signature"},
		{"signature 31", func() []byte { r := validRawV4(); r.signature = fill(31, 1); return r.bytes() }(), "signature"},
		{"trailing byte", append(validRawV4().bytes(), 0), "1 trailing bytes"},
		{"trailing token", append(validRawV4().bytes(), validRawV4().bytes()...), "trailing bytes"},
		{"session_id length beyond the input", func() []byte {
			b := validRawV4().bytes()
			return b[:1+4+2+1+10] // the length byte says 32, 10 follow
		}(), "session_id"},
		{"signature length 255, 32 bytes follow", func() []byte {
			b := validRawV4().bytes()
			b[len(b)-33] = 255
			return b
		}(), "signature"},
		{"nonce length 255 swallows the signature", func() []byte {
			r := validRawV4()
			b := r.bytes()
			b[1+4+2+1+32+8] = 255
			return b
		}(), "nonce"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseToken(c.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to name %q", err, c.want)
			}
		})
	}
}

func TestTokenMarshalNamesTheBadField(t *testing.T) {
	good := func() *Token {
		return &Token{Target: netip.MustParseAddrPort("192.0.2.7:443"), SessionID: fill(32, 1),
			Expiry: 1, Nonce: fill(16, 2), Signature: fill(32, 3)}
	}
	cases := []struct {
		name   string
		mutate func(*Token)
		want   string
	}{
		{"no target", func(t *Token) { t.Target = netip.AddrPort{} }, "target"},
		{"zone", func(t *Token) { t.Target = netip.MustParseAddrPort("[fe80::1%eth0]:443") }, "zone"},
		{"4-in-6", func(t *Token) { t.Target = netip.MustParseAddrPort("[::ffff:192.0.2.7]:443") }, "4-in-6"},
		{"session_id 31", func(t *Token) { t.SessionID = fill(31, 1) }, "session_id length 31"},
		{"session_id 256", func(t *Token) { t.SessionID = fill(256, 1) }, "session_id length 256"},
		{"nonce 15", func(t *Token) { t.Nonce = fill(15, 1) }, "nonce length 15"},
		{"nonce 256", func(t *Token) { t.Nonce = fill(256, 1) }, "nonce length 256"},
		{"signature 31", func(t *Token) { t.Signature = fill(31, 1) }, "signature length 31"},
		{"signature 256", func(t *Token) { t.Signature = fill(256, 1) }, "signature length 256"},
		{"signature nil", func(t *Token) { t.Signature = nil }, "signature length 0"},
	}
	if _, err := good().Marshal(); err != nil {
		t.Fatalf("the base token does not marshal: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := good()
			c.mutate(tok)
			b, err := tok.Marshal()
			if err == nil {
				t.Fatalf("Marshal = %x, want an error", b)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to name %q", err, c.want)
			}
		})
	}
}

func TestEmptyExtensions(t *testing.T) {
	for name, pair := range map[string]struct {
		marshal func() []byte
		parse   func([]byte) error
	}{
		"migration_support": {MarshalMigrationSupport, ParseMigrationSupport},
		"migration_allowed": {MarshalMigrationAllowed, ParseMigrationAllowed},
	} {
		b := pair.marshal()
		if len(b) != 0 {
			t.Fatalf("%s: Marshal = %x, want empty", name, b)
		}
		if err := pair.parse(b); err != nil {
			t.Fatalf("%s: parse(empty): %v", name, err)
		}
		if err := pair.parse(nil); err != nil {
			t.Fatalf("%s: parse(nil): %v", name, err)
		}
		for _, bad := range [][]byte{{0}, {0, 0}, fill(300, 9)} {
			if err := pair.parse(bad); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: parse(%d bytes) = %v, want ErrMalformed", name, len(bad), err)
			}
		}
	}
}

func TestMigrateRequestRoundTrip(t *testing.T) {
	for _, target := range []string{"", "192.0.2.1:443", "[2001:db8::1]:8443", "node-7.pool-a", strings.Repeat("x", MaxTargetLen)} {
		m := &MigrateRequest{Target: target}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%d bytes): %v", len(target), err)
		}
		if len(b) != 2+len(target) || int(binary.BigEndian.Uint16(b)) != len(target) || string(b[2:]) != target {
			t.Fatalf("Marshal(%.20q) = %.40x", target, b)
		}
		back, err := ParseMigrateRequest(b)
		if err != nil || back.Target != target {
			t.Fatalf("ParseMigrateRequest(Marshal(%.20q)) = %v, %v", target, back, err)
		}
	}
}

func TestMigrateRequestRejects(t *testing.T) {
	if _, err := (&MigrateRequest{Target: strings.Repeat("x", MaxTargetLen+1)}).Marshal(); err == nil ||
		!strings.Contains(err.Error(), "target length 65536") {
		t.Fatalf("Marshal of a 65536-byte target: err = %v", err)
	}
	good, _ := (&MigrateRequest{Target: "[2001:db8::1]:443"}).Marshal()
	for i := 0; i < len(good); i++ {
		if _, err := ParseMigrateRequest(good[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrMalformed", i, err)
		}
	}
	cases := map[string][]byte{
		"trailing byte":            append(append([]byte(nil), good...), 0),
		"length beyond the body":   {0xff, 0xff, 'a'},
		"length one past the body": {0, 2, 'a'},
	}
	for name, b := range cases {
		if _, err := ParseMigrateRequest(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseTarget(t *testing.T) {
	good := []struct{ in, want string }{
		{"192.0.2.1:443", "192.0.2.1:443"},
		{"[2001:db8::1]:8443", "[2001:db8::1]:8443"},
		{"[2001:0db8:0:0::1]:443", "[2001:db8::1]:443"},
		{"[::ffff:192.0.2.1]:443", "192.0.2.1:443"},
		{"127.0.0.1:65535", "127.0.0.1:65535"},
		{"[::1]:1", "[::1]:1"},
	}
	for _, c := range good {
		ap, err := ParseTarget(c.in)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", c.in, err)
		}
		if got := FormatTarget(ap); got != c.want {
			t.Fatalf("FormatTarget(ParseTarget(%q)) = %q, want %q", c.in, got, c.want)
		}
		if again, err := ParseTarget(FormatTarget(ap)); err != nil || again != ap {
			t.Fatalf("ParseTarget(FormatTarget(%v)) = %v, %v", ap, again, err)
		}
	}
	bad := map[string]string{
		"":                    "empty",
		"192.0.2.1":           "IP:port",
		"192.0.2.1:":          "IP:port",
		"192.0.2.1:0":         "port 0",
		"192.0.2.1:65536":     "IP:port",
		"2001:db8::1:443":     "IP:port",
		"[2001:db8::1]":       "IP:port",
		"example.com:443":     "IP:port",
		"[fe80::1%eth0]:443":  "zone",
		"192.0.2.1:443 ":      "IP:port",
		"192.000.2.1:443":     "IP:port",
		"[192.0.2.1]:443":     "IP:port",
		"192.0.2.1:443/extra": "IP:port",
	}
	for in, want := range bad {
		_, err := ParseTarget(in)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParseTarget(%q) = %v, want ErrMalformed naming %q", in, err, want)
		}
	}
	if got := FormatTarget(netip.AddrPort{}); got != "" {
		t.Fatalf("FormatTarget(zero) = %q, want \"\"", got)
	}
}

func TestNotifyAlert(t *testing.T) {
	b := MarshalNotifyAlert(240)
	if !bytes.Equal(b, []byte{1, 240}) {
		t.Fatalf("MarshalNotifyAlert(240) = %x, want 01f0", b)
	}
	if err := ParseNotifyAlert(b, 240); err != nil {
		t.Fatalf("ParseNotifyAlert: %v", err)
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":            {nil, "0 bytes"},
		"one byte":         {[]byte{1}, "1 bytes"},
		"three bytes":      {[]byte{1, 240, 0}, "3 bytes"},
		"fatal level":      {[]byte{2, 240}, "level 2"},
		"other desc":       {[]byte{1, 241}, "description 241"},
		"close_notify":     {[]byte{1, 0}, "description 0"},
		"unknown level 0":  {[]byte{0, 240}, "level 0"},
		"unknown level ff": {[]byte{0xff, 240}, "level 255"},
	}
	for name, c := range cases {
		err := ParseNotifyAlert(c.b, 240)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: err = %v, want ErrMalformed naming %q", name, err, c.want)
		}
	}
}

func TestDefaultCodePoints(t *testing.T) {
	got := DefaultCodePoints()
	want := CodePoints{Support: 0xFE4D, Token: 0xFE4F, Allowed: 0xFE4E, Request: 0xFD, Notify: 240}
	if got != want {
		t.Fatalf("DefaultCodePoints() = %+v, want %+v", got, want)
	}
}
