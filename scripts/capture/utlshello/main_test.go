package main

import (
	"encoding/binary"
	"net/netip"
	"testing"

	utls "github.com/refraction-networking/utls"
)

// The token must have the seed's MigrationToken layout, so the capture
// shows what a router would really see.
func TestMigrationTokenLayout(t *testing.T) {
	for _, tc := range []struct {
		target  string
		family  byte
		addrLen int
	}{
		{"203.0.113.10:443", 0, 4},
		{"[2001:db8:5::10]:443", 1, 16},
	} {
		ap := netip.MustParseAddrPort(tc.target)
		b := migrationToken(ap)
		if b[0] != tc.family {
			t.Fatalf("%s: address type %d", tc.target, b[0])
		}
		off := 1 + tc.addrLen
		if got, _ := netip.AddrFromSlice(b[1:off]); got != ap.Addr() {
			t.Errorf("%s: address %v", tc.target, got)
		}
		if port := binary.BigEndian.Uint16(b[off:]); port != ap.Port() {
			t.Errorf("%s: port %d", tc.target, port)
		}
		off += 2
		vector := func(name string, min int) {
			t.Helper()
			n := int(b[off])
			if n < min || off+1+n > len(b) {
				t.Fatalf("%s: %s length %d", tc.target, name, n)
			}
			off += 1 + n
		}
		vector("session_id", 32)
		off += 8 // expiry_timestamp
		vector("nonce", 16)
		vector("signature", 32)
		if off != len(b) {
			t.Errorf("%s: %d trailing bytes", tc.target, len(b)-off)
		}
	}
}

func extIDs(spec utls.ClientHelloSpec) []uint16 {
	var ids []uint16
	for _, e := range spec.Extensions {
		switch e := e.(type) {
		case *utls.GenericExtension:
			ids = append(ids, e.Id)
		case *utls.KeyShareExtension:
			ids = append(ids, 51)
		default:
			ids = append(ids, 0xFFFF) // some other standard extension
		}
	}
	return ids
}

func TestHelloSpecPlacement(t *testing.T) {
	const support, token = 0xFE4D, 0xFE4F
	first := extIDs(helloSpec("first", true, 0, support, token, nil))
	if first[0] != support {
		t.Errorf("first: extensions %x", first)
	}
	last := extIDs(helloSpec("last", true, 100, support, token, []byte{1}))
	n := len(last)
	if last[n-1] != token || last[n-2] != support || last[n-3] != 21 {
		t.Errorf("last with padding and token: extensions %x", last)
	}
	for _, id := range extIDs(helloSpec("none", false, 0, support, token, nil)) {
		if id == support || id == token {
			t.Errorf("none: extension %x present", id)
		}
	}
}
