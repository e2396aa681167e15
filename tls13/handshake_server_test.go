package tls13

// Raw-socket conformance tests of the server's first flight: each case
// writes handcrafted records to a tls13 server over a real loopback socket
// and asserts the alert that comes back (RFC 8446 and TLS13-CHECKLIST.md).

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13/internal/oracle"

	"golang.org/x/crypto/cryptobyte"
)

// verRawServer starts a tls13 server for one connection and returns the
// client side of the socket and the server's handshake result.
func verRawServer(t *testing.T, cfg *Config) (net.Conn, <-chan error) {
	t.Helper()
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error {
		return Server(c, cfg).Handshake()
	})
	return verDial(t, ln.Addr().String()), done
}

// verExpectAlert writes recs and asserts that the server answers with a
// fatal alert desc and that its Handshake fails with that same alert.
func verExpectAlert(t *testing.T, cfg *Config, want uint8, recs ...[]byte) {
	t.Helper()
	verExpectAlertMaybeEncrypted(t, cfg, want, false, recs...)
}

// verExpectAlertMaybeEncrypted is verExpectAlert for violations the server
// can only see after it sent its ServerHello: its alert is then protected
// with the server handshake key, so only the server's own error tells the
// description.
func verExpectAlertMaybeEncrypted(t *testing.T, cfg *Config, want uint8, encrypted bool, recs ...[]byte) {
	t.Helper()
	c, done := verRawServer(t, cfg)
	for _, r := range recs {
		if _, err := c.Write(r); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if !encrypted {
		level, desc, err := verReadAlert(c)
		if err != nil {
			t.Fatalf("want alert %d: %v", want, err)
		}
		if desc != want || level != 2 {
			t.Errorf("alert: got level %d desc %d (%v), want fatal %d (%v)", level, desc, Alert(desc), want, Alert(want))
		}
	}
	c.Close()
	serr := verWaitErr(t, done, "server handshake")
	if serr == nil {
		t.Fatalf("server handshake succeeded, want alert %d", want)
	}
	if a, received, ok := verAlertOf(serr); !ok || received || uint8(a) != want {
		t.Errorf("server error %q: want a sent alert %d", serr, want)
	}
}

// verExpectServerHello writes recs and asserts a ServerHello (not an HRR)
// answers; it returns the echoed legacy_session_id.
func verExpectServerHello(t *testing.T, cfg *Config, recs ...[]byte) []byte {
	t.Helper()
	c, _ := verRawServer(t, cfg)
	for _, r := range recs {
		if _, err := c.Write(r); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	isSH, isHRR, echo, err := verReadServerHello(c)
	if err != nil || !isSH || isHRR {
		t.Fatalf("want ServerHello: sh=%v hrr=%v err=%v", isSH, isHRR, err)
	}
	return echo
}

func TestNegativeRawClientHello(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	cfg := verTLS13ServerConfig(t, p)
	share := verNewX25519Share(t)
	hello := func(mod func(h *verHello)) []byte {
		h := verDefaultHello(t)
		h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, share}))
		mod(h)
		return h.record()
	}
	cases := []struct {
		name string
		recs [][]byte
		want uint8
	}{
		{"no supported_versions", [][]byte{hello(func(h *verHello) { h.remove(verExtSupportedVersions) })}, verAlertProtocolVersion},
		{"supported_versions TLS 1.2 only", [][]byte{hello(func(h *verHello) { h.set(verExtSupportedVersions, verU16List(1, 0x0303)) })}, verAlertProtocolVersion},
		{"TLS 1.2 ClientHello without extensions", [][]byte{hello(func(h *verHello) { h.exts = nil; h.suites = []uint16{0xc02b, 0xc02f} })}, verAlertProtocolVersion},
		{"compression [0 1]", [][]byte{hello(func(h *verHello) { h.compression = []byte{0, 1} })}, verAlertIllegalParameter},
		{"compression [1]", [][]byte{hello(func(h *verHello) { h.compression = []byte{1} })}, verAlertIllegalParameter},
		{"duplicate server_name", [][]byte{hello(func(h *verHello) {
			h.exts = append(h.exts, verExt{verExtServerName, verSNIExt(verServerName)})
		})}, verAlertIllegalParameter},
		{"duplicate unknown extension", [][]byte{hello(func(h *verHello) {
			h.exts = append(h.exts, verExt{0x7777, nil}, verExt{0x7777, []byte{1}})
		})}, verAlertIllegalParameter},
		{"pre_shared_key not last", [][]byte{hello(func(h *verHello) {
			h.set(verExtPreSharedKey, verPSKExt([]byte("not-a-ticket"), 32))
			h.exts = append(h.exts, verExt{0x7777, nil})
		})}, verAlertIllegalParameter},
		{"pre_shared_key without psk_key_exchange_modes", [][]byte{hello(func(h *verHello) {
			h.remove(verExtPSKModes)
			h.set(verExtPreSharedKey, verPSKExt([]byte("not-a-ticket"), 32))
		})}, verAlertMissingExtension},
		{"key_share group not in supported_groups", [][]byte{hello(func(h *verHello) {
			h.set(verExtSupportedGroups, verU16List(2, verGroupP256))
		})}, verAlertIllegalParameter},
		{"duplicate key_share group", [][]byte{hello(func(h *verHello) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, share}, verExt{verGroupX25519, share}))
		})}, verAlertIllegalParameter},
		{"key_share order differs from supported_groups", [][]byte{hello(func(h *verHello) {
			h.set(verExtSupportedGroups, verU16List(2, verGroupX25519, verGroupP256))
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupP256, verP256Point(t)}, verExt{verGroupX25519, share}))
		})}, verAlertIllegalParameter},
		{"X25519 share of 31 bytes", [][]byte{hello(func(h *verHello) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, share[:31]}))
		})}, verAlertIllegalParameter},
		{"X25519 all-zero share", [][]byte{hello(func(h *verHello) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, make([]byte, 32)}))
		})}, verAlertIllegalParameter},
		{"P-256 share not on the curve", [][]byte{hello(func(h *verHello) {
			bad := verP256Point(t)
			bad[64] ^= 1
			h.set(verExtSupportedGroups, verU16List(2, verGroupP256))
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupP256, bad}))
		})}, verAlertIllegalParameter},
		{"X25519MLKEM768 share too short", [][]byte{hello(func(h *verHello) {
			h.set(verExtSupportedGroups, verU16List(2, verGroupX25519ML))
			h.set(verExtKeyShare, verKeyShareExt(verExt{verGroupX25519ML, make([]byte, 1184)}))
		})}, verAlertIllegalParameter},
		{"no signature_algorithms", [][]byte{hello(func(h *verHello) { h.remove(verExtSignatureAlgorithms) })}, verAlertMissingExtension},
		{"supported_groups without key_share", [][]byte{hello(func(h *verHello) { h.remove(verExtKeyShare) })}, verAlertMissingExtension},
		{"key_share without supported_groups", [][]byte{hello(func(h *verHello) { h.remove(verExtSupportedGroups) })}, verAlertMissingExtension},
		{"no common cipher suite", [][]byte{hello(func(h *verHello) { h.suites = []uint16{0x1304, 0x1305} })}, verAlertHandshakeFailure},
		{"no common group", [][]byte{hello(func(h *verHello) {
			// brainpoolP256r1tls13 (0x001f): not implemented
			h.set(verExtSupportedGroups, verU16List(2, 0x001f))
			h.set(verExtKeyShare, verKeyShareExt(verExt{0x001f, bytes.Repeat([]byte{4}, 65)}))
		})}, verAlertHandshakeFailure},
		{"no common signature scheme", [][]byte{hello(func(h *verHello) {
			h.set(verExtSignatureAlgorithms, verU16List(2, 0x0401, 0x0201))
		})}, verAlertHandshakeFailure},
		{"legacy_session_id of 33 bytes", [][]byte{hello(func(h *verHello) { h.sessionID = make([]byte, 33) })}, verAlertDecodeError},
		{"extensions overrun the message", [][]byte{verRecord(verRecordHandshake, verCorruptExtLen(hello(func(*verHello) {})[5:]))}, verAlertDecodeError},
		{"trailing bytes after extensions", [][]byte{verRecord(verRecordHandshake, verAppendTrailing(hello(func(*verHello) {})[5:]))}, verAlertDecodeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verExpectAlert(t, cfg, tc.want, tc.recs...)
		})
	}
}

// verCorruptExtLen makes the extensions length of a ClientHello message one
// larger than the bytes that follow it.
func verCorruptExtLen(msg []byte) []byte {
	m := append([]byte(nil), msg...)
	off := 4 + 2 + 32
	off += 1 + int(m[off])
	off += 2 + (int(m[off])<<8 | int(m[off+1]))
	off += 1 + int(m[off])
	n := int(m[off])<<8 | int(m[off+1]) + 1
	m[off], m[off+1] = byte(n>>8), byte(n)
	return m
}

// verAppendTrailing adds two bytes after the extensions and fixes the
// handshake length, so only the ClientHello body is wrong.
func verAppendTrailing(msg []byte) []byte {
	m := append(append([]byte(nil), msg...), 0, 0)
	n := len(m) - 4
	m[1], m[2], m[3] = byte(n>>16), byte(n>>8), byte(n)
	return m
}

func TestNegativeRawRecordLayer(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	cfg := verTLS13ServerConfig(t, p)
	ch := verDefaultHello(t).marshal()
	cases := []struct {
		name      string
		recs      [][]byte
		want      uint8
		encrypted bool
	}{
		{"plaintext record of 2^14+1 bytes", [][]byte{verRecord(verRecordHandshake, append(ch, make([]byte, 1<<14+1-len(ch))...))}, verAlertRecordOverflow, false},
		{"zero-length handshake record", [][]byte{verRecord(verRecordHandshake, nil)}, verAlertUnexpectedMessage, false},
		{"zero-length alert record", [][]byte{verRecord(verRecordAlert, nil)}, verAlertUnexpectedMessage, false},
		{"application data before the handshake", [][]byte{verRecord(verRecordAppData, []byte("GET / HTTP/1.1\r\n"))}, verAlertUnexpectedMessage, false},
		{"unknown record type 99", [][]byte{verRecord(99, []byte{1, 2, 3})}, verAlertUnexpectedMessage, false},
		{"ChangeCipherSpec before ClientHello", [][]byte{verRecord(verRecordCCS, []byte{1})}, verAlertUnexpectedMessage, false},
		{"ServerHello sent to a server", [][]byte{verRecord(verRecordHandshake, []byte{2, 0, 0, 2, 3, 3})}, verAlertUnexpectedMessage, false},
		{"ClientHello split by a ChangeCipherSpec", [][]byte{
			verRecord(verRecordHandshake, ch[:40]), verRecord(verRecordCCS, []byte{1}), verRecord(verRecordHandshake, ch[40:]),
		}, verAlertUnexpectedMessage, false},
		{"ClientHello split by an alert", [][]byte{
			verRecord(verRecordHandshake, ch[:40]), verRecord(verRecordAlert, []byte{1, 0}), verRecord(verRecordHandshake, ch[40:]),
		}, verAlertUnexpectedMessage, false},
		{"one-byte alert record", [][]byte{verRecord(verRecordAlert, []byte{2})}, verAlertDecodeError, false},
		// The key change after ServerHello must fall on a record boundary.
		{"ClientHello followed by a second ClientHello in the same record", [][]byte{verRecord(verRecordHandshake, append(append([]byte(nil), ch...), ch...))}, verAlertUnexpectedMessage, true},
		{"ClientHello then plaintext handshake record after ServerHello", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordHandshake, []byte{20, 0, 0, 32})}, verAlertUnexpectedMessage, true},
		{"ClientHello then a ChangeCipherSpec of value 2", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordCCS, []byte{2})}, verAlertUnexpectedMessage, true},
		{"ClientHello then a two-byte ChangeCipherSpec", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordCCS, []byte{1, 1})}, verAlertUnexpectedMessage, true},
		{"ClientHello then garbage protected record", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordAppData, make([]byte, 40))}, verAlertBadRecordMAC, true},
		{"ClientHello then protected record shorter than the tag", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordAppData, make([]byte, 5))}, verAlertBadRecordMAC, true},
		{"ClientHello then protected record of 2^14+257 bytes", [][]byte{verRecord(verRecordHandshake, ch), verRecord(verRecordAppData, make([]byte, 1<<14+257))}, verAlertRecordOverflow, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verExpectAlertMaybeEncrypted(t, cfg, tc.want, tc.encrypted, tc.recs...)
		})
	}
}

func TestNegativeRawAccepted(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	cfg := verTLS13ServerConfig(t, p)
	t.Run("valid hello", func(t *testing.T) {
		h := verDefaultHello(t)
		if echo := verExpectServerHello(t, cfg, h.record()); !bytes.Equal(echo, h.sessionID) {
			t.Errorf("legacy_session_id echo %x, want %x", echo, h.sessionID)
		}
	})
	t.Run("legacy record version 0x0301", func(t *testing.T) {
		verExpectServerHello(t, cfg, verRecordV(verRecordHandshake, 0x0301, verDefaultHello(t).marshal()))
	})
	t.Run("ClientHello fragmented over three records", func(t *testing.T) {
		ch := verDefaultHello(t).marshal()
		verExpectServerHello(t, cfg, verRecord(verRecordHandshake, ch[:3]), verRecord(verRecordHandshake, ch[3:100]), verRecord(verRecordHandshake, ch[100:]))
	})
	t.Run("GREASE and unknown extensions are ignored", func(t *testing.T) {
		h := verDefaultHello(t)
		h.suites = []uint16{0x0a0a, verSuiteAES128GCM}
		h.set(verExtSupportedVersions, verU16List(1, 0x1a1a, 0x0304))
		h.set(verExtSupportedGroups, verU16List(2, 0x2a2a, verGroupX25519))
		h.set(verExtKeyShare, verKeyShareExt(verExt{0x2a2a, []byte{0}}, verExt{verGroupX25519, verNewX25519Share(t)}))
		h.exts = append([]verExt{{0x3a3a, nil}}, h.exts...)
		h.exts = append(h.exts, verExt{0x7777, []byte("unknown")}, verExt{0xfe4d, nil})
		verExpectServerHello(t, cfg, h.record())
	})
	t.Run("empty legacy_session_id is echoed empty", func(t *testing.T) {
		h := verDefaultHello(t)
		h.sessionID = nil
		if echo := verExpectServerHello(t, cfg, h.record()); len(echo) != 0 {
			t.Errorf("legacy_session_id echo %x, want empty", echo)
		}
	})
	t.Run("pre_shared_key with an unknown ticket falls back to a full handshake", func(t *testing.T) {
		h := verDefaultHello(t)
		h.set(verExtPreSharedKey, verPSKExt(bytes.Repeat([]byte{7}, 100), 32))
		verExpectServerHello(t, cfg, h.record())
	})
}

// verRecReader reads whole plaintext records from a raw socket.
type verRecReader struct {
	c   net.Conn
	buf []byte
}

// next returns the next record, or an error at EOF or the deadline.
func (r *verRecReader) next() ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(verWait))
	tmp := make([]byte, 4096)
	for {
		if recs, rest := verSplitRecords(r.buf); len(recs) > 0 {
			rec := recs[0]
			r.buf = append(rest[:0:0], r.buf[len(rec):]...)
			return rec, nil
		}
		n, err := r.c.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

// verHRR is what a client needs from a HelloRetryRequest.
type verHRR struct {
	group  uint16
	cookie []byte
	suite  uint16
}

// readHRR reads until the server's first handshake message and parses it
// as a HelloRetryRequest.
func (r *verRecReader) readHRR() (*verHRR, error) {
	for {
		rec, err := r.next()
		if err != nil {
			return nil, err
		}
		switch rec[0] {
		case verRecordAlert:
			return nil, fmt.Errorf("alert %v instead of HelloRetryRequest", rec[5:])
		case verRecordCCS:
			continue
		}
		s := cryptobyte.String(rec[5:])
		var typ uint8
		var body, random, sid, exts cryptobyte.String
		var vers, suite uint16
		var comp uint8
		if !s.ReadUint8(&typ) || typ != 2 || !s.ReadUint24LengthPrefixed(&body) ||
			!body.ReadUint16(&vers) || !body.ReadBytes((*[]byte)(&random), 32) || !body.ReadUint8LengthPrefixed(&sid) ||
			!body.ReadUint16(&suite) || !body.ReadUint8(&comp) || !body.ReadUint16LengthPrefixed(&exts) {
			return nil, errors.New("first server message is not a ServerHello")
		}
		if !bytes.Equal(random, verHRRRandom) {
			return nil, errors.New("ServerHello instead of HelloRetryRequest")
		}
		h := &verHRR{suite: suite}
		for !exts.Empty() {
			var et uint16
			var ed cryptobyte.String
			if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&ed) {
				return nil, errors.New("malformed HelloRetryRequest extensions")
			}
			switch et {
			case verExtKeyShare:
				ed.ReadUint16(&h.group)
			case verExtCookie:
				var ck cryptobyte.String
				ed.ReadUint16LengthPrefixed(&ck)
				h.cookie = ck
			}
		}
		return h, nil
	}
}

// verCookieExt encodes a cookie extension body.
func verCookieExt(cookie []byte) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cookie) })
	return b.BytesOrPanic()
}

// TestNegativeRawHelloRetryRequest checks the server's side of §4.1.4: a
// ClientHello without a usable share gets one HelloRetryRequest, and the
// second ClientHello may change only what the RFC allows.
func TestNegativeRawHelloRetryRequest(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	cfg := verTLS13ServerConfig(t, p)
	// CH1 offers X25519 and P-256 but no share: the server must ask.
	first := func(t *testing.T) (*verHello, net.Conn, *verRecReader, *verHRR, <-chan error) {
		t.Helper()
		h := verDefaultHello(t)
		h.set(verExtSupportedGroups, verU16List(2, verGroupX25519, verGroupP256))
		h.set(verExtKeyShare, verKeyShareExt())
		c, done := verRawServer(t, cfg)
		c.Write(h.record())
		rr := &verRecReader{c: c}
		hrr, err := rr.readHRR()
		if err != nil {
			t.Fatalf("want HelloRetryRequest: %v", err)
		}
		if hrr.group != verGroupX25519 && hrr.group != verGroupP256 {
			t.Fatalf("HelloRetryRequest selects group %#04x, not an offered one", hrr.group)
		}
		return h, c, rr, hrr, done
	}
	share := func(t *testing.T, group uint16) []byte {
		if group == verGroupP256 {
			return verP256Point(t)
		}
		return verNewX25519Share(t)
	}
	t.Run("valid second ClientHello after a ChangeCipherSpec", func(t *testing.T) {
		h, c, rr, hrr, _ := first(t)
		h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
		if hrr.cookie != nil {
			h.set(verExtCookie, verCookieExt(hrr.cookie))
		}
		c.Write(verRecord(verRecordCCS, []byte{1}))
		c.Write(h.record())
		for {
			rec, err := rr.next()
			if err != nil {
				t.Fatalf("no ServerHello after the second ClientHello: %v", err)
			}
			if rec[0] == verRecordHandshake {
				if len(rec) < 5+38 || rec[5] != 2 || bytes.Equal(rec[5+6:5+38], verHRRRandom) {
					t.Fatalf("second ClientHello answered with % x, want a ServerHello", rec[5:min(len(rec), 16)])
				}
				return
			}
			if rec[0] == verRecordAlert {
				t.Fatalf("alert %v after a valid second ClientHello", rec[5:])
			}
		}
	})
	cases := []struct {
		name string
		mod  func(t *testing.T, h *verHello, hrr *verHRR)
		want uint8
	}{
		{"still no key share", func(t *testing.T, h *verHello, hrr *verHRR) {}, verAlertIllegalParameter},
		{"share for a group other than the requested", func(t *testing.T, h *verHello, hrr *verHRR) {
			other := uint16(verGroupP256)
			if hrr.group == verGroupP256 {
				other = verGroupX25519
			}
			h.set(verExtKeyShare, verKeyShareExt(verExt{other, share(t, other)}))
		}, verAlertIllegalParameter},
		{"cipher suites changed", func(t *testing.T, h *verHello, hrr *verHRR) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
			h.suites = []uint16{verSuiteAES256GCM, verSuiteAES128GCM}
		}, verAlertIllegalParameter},
		{"server_name changed", func(t *testing.T, h *verHello, hrr *verHRR) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
			h.set(verExtServerName, verSNIExt("other.test"))
		}, verAlertIllegalParameter},
		{"extension added", func(t *testing.T, h *verHello, hrr *verHRR) {
			h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
			h.exts = append(h.exts, verExt{verExtALPN, []byte{0, 3, 2, 'h', '2'}})
		}, verAlertIllegalParameter},
		{"cookie left out", func(t *testing.T, h *verHello, hrr *verHRR) {
			if hrr.cookie == nil {
				t.Skip("server sent no cookie")
			}
			h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
			h.remove(verExtCookie)
		}, verAlertIllegalParameter},
		{"cookie altered", func(t *testing.T, h *verHello, hrr *verHRR) {
			if hrr.cookie == nil {
				t.Skip("server sent no cookie")
			}
			h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, share(t, hrr.group)}))
			ck := append([]byte(nil), hrr.cookie...)
			ck[0] ^= 1
			h.set(verExtCookie, verCookieExt(ck))
		}, verAlertIllegalParameter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, c, _, hrr, done := first(t)
			if hrr.cookie != nil {
				h.set(verExtCookie, verCookieExt(hrr.cookie))
			}
			tc.mod(t, h, hrr)
			c.Write(h.record())
			_, desc, err := verReadAlert(c)
			if err != nil || desc != tc.want {
				t.Errorf("second ClientHello: alert %d (%v), err %v; want %d (%v)", desc, Alert(desc), err, tc.want, Alert(tc.want))
			}
			c.Close()
			if a, received, ok := verAlertOf(verWaitErr(t, done, "server")); !ok || received || uint8(a) != tc.want {
				t.Errorf("server error: alert %v, want sent %v", a, Alert(tc.want))
			}
		})
	}
}

// verBinderHello returns hello h (which must end with a pre_shared_key
// extension for sess made by verPSKExt with a 32-byte binder) as a
// record, with the binder computed from sess's PSK as RFC 8446 §4.2.11.2
// says, independently of the engine.
func verBinderHello(t *testing.T, h *verHello, sess *ClientSession) []byte {
	t.Helper()
	hf, _, _ := oracle.SuiteParams(sess.CipherSuite())
	if hf().Size() != 32 {
		t.Fatal("verBinderHello handles SHA-256 suites only")
	}
	msg := h.marshal()
	bindersLen := 2 + 1 + 32
	truncated := msg[:len(msg)-bindersLen]
	early, err := hkdf.Extract(hf, sess.PSK(), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	emptyHash := sha256.Sum256(nil)
	binderKey := oracle.ExpandLabelContext(hf, early, "res binder", emptyHash[:], 32)
	finishedKey := oracle.ExpandLabelContext(hf, binderKey, "finished", nil, 32)
	th := sha256.Sum256(truncated)
	mac := hmac.New(hf, finishedKey)
	mac.Write(th[:])
	copy(msg[len(msg)-32:], mac.Sum(nil))
	return verRecord(verRecordHandshake, msg)
}

// verServerHelloExts reads the server's first handshake message and
// returns the extension types of its ServerHello.
func verServerHelloExts(t *testing.T, c net.Conn) []uint16 {
	t.Helper()
	rr := &verRecReader{c: c}
	for {
		rec, err := rr.next()
		if err != nil {
			t.Fatalf("no ServerHello: %v", err)
		}
		if rec[0] == verRecordAlert {
			t.Fatalf("alert %v instead of ServerHello", rec[5:])
		}
		if rec[0] != verRecordHandshake {
			continue
		}
		s := cryptobyte.String(rec[5:])
		var typ, comp uint8
		var body, random, sid, exts cryptobyte.String
		var vers, suite uint16
		if !s.ReadUint8(&typ) || typ != 2 || !s.ReadUint24LengthPrefixed(&body) ||
			!body.ReadUint16(&vers) || !body.ReadBytes((*[]byte)(&random), 32) || !body.ReadUint8LengthPrefixed(&sid) ||
			!body.ReadUint16(&suite) || !body.ReadUint8(&comp) || !body.ReadUint16LengthPrefixed(&exts) {
			t.Fatalf("malformed ServerHello")
		}
		var types []uint16
		for !exts.Empty() {
			var et uint16
			var ed cryptobyte.String
			exts.ReadUint16(&et)
			exts.ReadUint16LengthPrefixed(&ed)
			types = append(types, et)
		}
		return types
	}
}

// TestNegativeRawPSKModes offers a real ticket with a correct binder: with
// psk_dhe_ke the server resumes (pre_shared_key in its ServerHello); with
// only psk_ke it must run a full handshake instead (§4.2.9: we do not
// support psk_ke), and a wrong binder gets decrypt_error.
func TestNegativeRawPSKModes(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	scfg := verTLS13ServerConfig(t, p)
	ccfg := verTLS13ClientConfig(p)
	ccfg.CipherSuites = []uint16{TLS_AES_128_GCM_SHA256}
	sess := verResumeCatch(t, ccfg, scfg)
	build := func(modes []byte, flip bool) []byte {
		h := verDefaultHello(t)
		h.set(verExtPSKModes, modes)
		// obfuscated_ticket_age = age in ms + ticket_age_add (mod 2^32)
		age := uint32(time.Since(sess.ReceivedAt).Milliseconds()) + sess.ageAdd
		var b cryptobyte.Builder
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sess.Ticket()) })
			b.AddUint32(age)
		})
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
		})
		h.remove(verExtPreSharedKey)
		h.exts = append(h.exts, verExt{verExtPreSharedKey, b.BytesOrPanic()})
		rec := verBinderHello(t, h, sess)
		if flip {
			rec[len(rec)-1] ^= 1
		}
		return rec
	}
	has := func(types []uint16, want uint16) bool {
		for _, ty := range types {
			if ty == want {
				return true
			}
		}
		return false
	}
	t.Run("psk_dhe_ke resumes", func(t *testing.T) {
		c, _ := verRawServer(t, scfg)
		c.Write(build([]byte{1, 1}, false))
		if !has(verServerHelloExts(t, c), verExtPreSharedKey) {
			t.Fatalf("a valid ticket with a correct binder was not accepted (test binder wrong, or resumption broken)")
		}
	})
	t.Run("psk_ke only gets a full handshake", func(t *testing.T) {
		c, _ := verRawServer(t, scfg)
		c.Write(build([]byte{1, 0}, false))
		if has(verServerHelloExts(t, c), verExtPreSharedKey) {
			t.Fatalf("server resumed with psk_ke, which it must not support")
		}
	})
	t.Run("psk_ke and psk_dhe_ke resumes with DHE", func(t *testing.T) {
		c, _ := verRawServer(t, scfg)
		c.Write(build([]byte{2, 0, 1}, false))
		types := verServerHelloExts(t, c)
		if !has(types, verExtPreSharedKey) || !has(types, verExtKeyShare) {
			t.Fatalf("ServerHello extensions %v: want pre_shared_key and key_share", types)
		}
	})
	t.Run("wrong binder is decrypt_error", func(t *testing.T) {
		verExpectAlert(t, scfg, verAlertDecryptError, build([]byte{1, 1}, true))
	})
}

// TestNegativeRawHugeHandshakeLength announces a 16 MiB ClientHello: the
// server must refuse at the header instead of buffering (memory
// exhaustion, checklist "limit ... their size").
func TestNegativeRawHugeHandshakeLength(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	c, done := verRawServer(t, verTLS13ServerConfig(t, p))
	body := make([]byte, 1000)
	body[0], body[1], body[2], body[3] = 1, 0xff, 0xff, 0xff
	c.Write(verRecord(verRecordHandshake, body))
	level, desc, err := verReadAlert(c)
	if err != nil || level != 2 {
		t.Fatalf("want a fatal alert at the header: level %d desc %d, %v", level, desc, err)
	}
	t.Logf("alert %v", Alert(desc))
	c.Close()
	if verWaitErr(t, done, "server") == nil {
		t.Fatal("server handshake succeeded")
	}
}

// rawHello builds a ClientHello offering X25519 and P-256 but sharing
// only X25519, so a server preferring P-256 must send a HelloRetryRequest.
func rawHello(t *testing.T) (*clientHelloMsg, []byte) {
	_, x, err := newClientKeyShare(X25519)
	if err != nil {
		t.Fatal(err)
	}
	return &clientHelloMsg{
		vers: 0x0303, random: make([]byte, 32), sessionID: make([]byte, 32),
		cipherSuites: []uint16{TLS_AES_128_GCM_SHA256}, compressionMethods: []uint8{0},
		serverName: "example.test", supportedGroups: []tls.CurveID{X25519, CurveP256},
		sigAlgs: supportedSignatureSchemes, supportedVersions: []uint16{VersionTLS13},
		pskModes: []uint8{pskModeDHE}, keyShares: []keyShare{{group: X25519, data: x}},
		customExtensions: []Extension{{Type: 0xFE4D, Data: []byte{1}}},
	}, x
}

func writePlainRecord(w io.Writer, typ uint8, data []byte) error {
	_, err := w.Write(append([]byte{typ, 3, 3, byte(len(data) >> 8), byte(len(data))}, data...))
	return err
}

// readPlainRecord reads one record, skipping ChangeCipherSpec.
func readPlainRecord(t *testing.T, r io.Reader) (uint8, []byte) {
	t.Helper()
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatalf("reading a record: %v", err)
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("reading a record body: %v", err)
		}
		if hdr[0] != recordTypeChangeCipherSpec {
			return hdr[0], body
		}
	}
}

func TestServerSecondClientHelloRules(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ch2 *clientHelloMsg, hrr *serverHelloMsg)
	}{
		{"application extension changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.customExtensions = []Extension{{Type: 0xFE4D, Data: []byte{2}}}
		}},
		{"cipher suites changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.cipherSuites = []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384}
		}},
		{"random changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.random = append([]byte{1}, make([]byte, 31)...)
		}},
		{"cookie not echoed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.cookie = nil
		}},
		{"share for another group", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			_, x, _ := newClientKeyShare(X25519)
			ch2.keyShares = []keyShare{{group: X25519, data: x}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			scfg := testServerConfig(t)
			scfg.CurvePreferences = []tls.CurveID{CurveP256}
			done := make(chan error, 1)
			go func() { done <- Server(c2, scfg).Handshake() }()
			ch1, _ := rawHello(t)
			if err := writePlainRecord(c1, recordTypeHandshake, ch1.marshal()); err != nil {
				t.Fatal(err)
			}
			typ, body := readPlainRecord(t, c1)
			var hrr serverHelloMsg
			if typ != recordTypeHandshake || !hrr.unmarshal(body) || !hrr.isHelloRetryRequest() || hrr.selectedGroup != CurveP256 {
				t.Fatalf("want a HelloRetryRequest for P-256, got type %d", typ)
			}
			// The compatibility ChangeCipherSpec follows the HRR in the
			// same write; drain it (net.Pipe is unbuffered).
			ccs := make([]byte, 6)
			if _, err := io.ReadFull(c1, ccs); err != nil || ccs[0] != recordTypeChangeCipherSpec {
				t.Fatalf("want a ChangeCipherSpec after the HRR: %x %v", ccs, err)
			}
			ch2 := *ch1
			ch2.raw = nil
			_, p, _ := newClientKeyShare(CurveP256)
			ch2.keyShares = []keyShare{{group: CurveP256, data: p}}
			ch2.cookie = hrr.cookie
			tc.mutate(&ch2, &hrr)
			if err := writePlainRecord(c1, recordTypeHandshake, ch2.marshal()); err != nil {
				t.Fatal(err)
			}
			typ, body = readPlainRecord(t, c1)
			if typ != recordTypeAlert || len(body) != 2 || Alert(body[1]) != AlertIllegalParameter {
				t.Fatalf("got record type %d %x, want an illegal_parameter alert", typ, body)
			}
			if err := <-done; !errors.Is(err, AlertIllegalParameter) {
				t.Fatalf("server error %v", err)
			}
		})
	}
	t.Run("valid retry completes", func(t *testing.T) {
		scfg := testServerConfig(t)
		scfg.CurvePreferences = []tls.CurveID{CurveP256}
		ccfg := testClientConfig(t)
		ccfg.CurvePreferences = []tls.CurveID{X25519, CurveP256}
		s := runSession(t, ccfg, scfg)
		if s.cerr != nil || s.serr != nil || s.client.ConnectionState().Group != CurveP256 {
			t.Fatalf("client %v server %v", s.cerr, s.serr)
		}
	})
}
