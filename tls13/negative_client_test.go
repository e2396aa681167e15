package tls13

// The client's side of §4.1.3 and §4.1.4: a scripted raw server reads the
// tls13 client's ClientHello and answers with a handcrafted ServerHello or
// HelloRetryRequest that breaks one rule; the client must abort with the
// alert the RFC names, in plaintext (it has no keys yet).

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// verSH is a ServerHello or HelloRetryRequest built field by field.
type verSH struct {
	legacyVersion uint16
	random        []byte
	sessionID     []byte
	suite         uint16
	compression   uint8
	exts          []verExt
}

func (s *verSH) record() []byte {
	var b cryptobyte.Builder
	b.AddUint8(2)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(s.legacyVersion)
		b.AddBytes(s.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.sessionID) })
		b.AddUint16(s.suite)
		b.AddUint8(s.compression)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range s.exts {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
			}
		})
	})
	return verRecord(verRecordHandshake, b.BytesOrPanic())
}

func (s *verSH) set(typ uint16, data []byte) *verSH {
	for i := range s.exts {
		if s.exts[i].typ == typ {
			s.exts[i].data = data
			return s
		}
	}
	s.exts = append(s.exts, verExt{typ, data})
	return s
}

func (s *verSH) remove(typ uint16) *verSH {
	out := s.exts[:0]
	for _, e := range s.exts {
		if e.typ != typ {
			out = append(out, e)
		}
	}
	s.exts = out
	return s
}

// verSeenHello is what the scripted server read of a ClientHello.
type verSeenHello struct {
	sessionID []byte
	shares    []uint16
}

// readClientHello reads one ClientHello handshake message (it may span
// records) and extracts the session id and the shared groups.
func (r *verRecReader) readClientHello() (*verSeenHello, error) {
	var msg []byte
	for {
		if len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
			break
		}
		rec, err := r.next()
		if err != nil {
			return nil, err
		}
		switch rec[0] {
		case verRecordCCS:
			continue
		case verRecordHandshake:
			msg = append(msg, rec[5:]...)
		default:
			return nil, errors.New("non-handshake record before the ClientHello completed")
		}
	}
	s := cryptobyte.String(msg[4:])
	var random, sid, suites, comp, exts cryptobyte.String
	var vers uint16
	if !s.ReadUint16(&vers) || !s.ReadBytes((*[]byte)(&random), 32) || !s.ReadUint8LengthPrefixed(&sid) ||
		!s.ReadUint16LengthPrefixed(&suites) || !s.ReadUint8LengthPrefixed(&comp) || !s.ReadUint16LengthPrefixed(&exts) {
		return nil, errors.New("malformed ClientHello")
	}
	h := &verSeenHello{sessionID: sid}
	for !exts.Empty() {
		var et uint16
		var ed cryptobyte.String
		if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&ed) {
			return nil, errors.New("malformed extensions")
		}
		if et == verExtKeyShare {
			var list cryptobyte.String
			ed.ReadUint16LengthPrefixed(&list)
			for !list.Empty() {
				var g uint16
				var kx cryptobyte.String
				if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&kx) {
					return nil, errors.New("malformed key_share")
				}
				h.shares = append(h.shares, g)
			}
		}
	}
	return h, nil
}

// verServerShareExt is a ServerHello key_share body.
func verServerShareExt(group uint16, kx []byte) []byte {
	var b cryptobyte.Builder
	b.AddUint16(group)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(kx) })
	return b.BytesOrPanic()
}

// verGoodSH is a ServerHello a TLS 1.3 client would accept for ch.
func verGoodSH(t *testing.T, ch *verSeenHello) *verSH {
	random := make([]byte, 32)
	rand.Read(random)
	return &verSH{
		legacyVersion: 0x0303, random: random, sessionID: ch.sessionID, suite: verSuiteAES128GCM,
		exts: []verExt{
			{verExtSupportedVersions, []byte{0x03, 0x04}},
			{verExtKeyShare, verServerShareExt(verGroupX25519, verNewX25519Share(t))},
		},
	}
}

// verHRRMsg is a HelloRetryRequest for ch selecting group.
func verHRRMsg(ch *verSeenHello, group uint16) *verSH {
	return &verSH{
		legacyVersion: 0x0303, random: verHRRRandom, sessionID: ch.sessionID, suite: verSuiteAES128GCM,
		exts: []verExt{
			{verExtSupportedVersions, []byte{0x03, 0x04}},
			{verExtKeyShare, []byte{byte(group >> 8), byte(group)}},
		},
	}
}

// verScriptedServer runs script against one tls13 client connection and
// returns the client's handshake error and the alert on the wire.
func verScriptedServer(t *testing.T, script func(t *testing.T, rr *verRecReader, c net.Conn) error) (clientErr error, wireAlert uint8, wireErr error) {
	t.Helper()
	p := verGetPKI(t, verECDSA)
	ln := verListen(t)
	type res struct {
		desc uint8
		err  error
	}
	out := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- res{err: err}
			return
		}
		defer c.Close()
		rr := &verRecReader{c: c}
		if err := script(t, rr, c); err != nil {
			out <- res{err: err}
			return
		}
		// The client's answer: the next alert record.
		for {
			rec, err := rr.next()
			if err != nil {
				out <- res{err: errors.New("no alert from the client: " + err.Error())}
				return
			}
			if rec[0] == verRecordAlert && len(rec) == 7 {
				out <- res{desc: rec[6]}
				return
			}
			if rec[0] == verRecordAppData {
				out <- res{err: errors.New("client sent a protected record instead of a plaintext alert")}
				return
			}
		}
	}()
	cfg := verTLS13ClientConfig(p)
	cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	clientErr = Client(verDial(t, ln.Addr().String()), cfg).Handshake()
	r := <-out
	return clientErr, r.desc, r.err
}

func TestNegativeClientServerHello(t *testing.T) {
	downgrade12 := []byte{0x44, 0x4F, 0x57, 0x4E, 0x47, 0x52, 0x44, 0x01}
	downgrade11 := []byte{0x44, 0x4F, 0x57, 0x4E, 0x47, 0x52, 0x44, 0x00}
	cases := []struct {
		name string
		mod  func(t *testing.T, sh *verSH, ch *verSeenHello)
		want Alert
	}{
		{"TLS 1.2 ServerHello (no supported_versions)", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.remove(verExtSupportedVersions).remove(verExtKeyShare)
			sh.suite = 0xc02b
		}, AlertProtocolVersion},
		{"TLS 1.2 ServerHello with the TLS 1.2 downgrade sentinel", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.remove(verExtSupportedVersions).remove(verExtKeyShare)
			sh.suite = 0xc02b
			copy(sh.random[24:], downgrade12)
		}, AlertIllegalParameter},
		{"TLS 1.1 ServerHello with the TLS 1.1 downgrade sentinel", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.remove(verExtSupportedVersions).remove(verExtKeyShare)
			sh.legacyVersion = 0x0302
			sh.suite = 0xc013
			copy(sh.random[24:], downgrade11)
		}, AlertIllegalParameter},
		{"supported_versions selects TLS 1.2", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtSupportedVersions, []byte{0x03, 0x03})
		}, AlertIllegalParameter},
		{"cipher suite not offered", func(t *testing.T, sh *verSH, ch *verSeenHello) { sh.suite = 0x1304 }, AlertIllegalParameter},
		{"legacy_session_id not echoed", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.sessionID = bytes.Repeat([]byte{9}, 32)
		}, AlertIllegalParameter},
		{"compression method 1", func(t *testing.T, sh *verSH, ch *verSeenHello) { sh.compression = 1 }, AlertIllegalParameter},
		{"key_share for a group the client did not share", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtKeyShare, verServerShareExt(verGroupP256, verP256Point(t)))
		}, AlertIllegalParameter},
		{"all-zero X25519 share", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtKeyShare, verServerShareExt(verGroupX25519, make([]byte, 32)))
		}, AlertIllegalParameter},
		{"X25519 share of 33 bytes", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtKeyShare, verServerShareExt(verGroupX25519, make([]byte, 33)))
		}, AlertIllegalParameter},
		{"no key_share", func(t *testing.T, sh *verSH, ch *verSeenHello) { sh.remove(verExtKeyShare) }, AlertMissingExtension},
		{"unknown extension", func(t *testing.T, sh *verSH, ch *verSeenHello) { sh.set(0x7777, nil) }, AlertUnsupportedExtension},
		{"pre_shared_key not offered", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtPreSharedKey, []byte{0, 0})
		}, AlertUnsupportedExtension},
		{"cookie in a ServerHello", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.set(verExtCookie, verCookieExt([]byte("c")))
		}, AlertIllegalParameter},
		{"duplicate extension", func(t *testing.T, sh *verSH, ch *verSeenHello) {
			sh.exts = append(sh.exts, verExt{verExtSupportedVersions, []byte{0x03, 0x04}})
		}, AlertIllegalParameter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cerr, desc, werr := verScriptedServer(t, func(t *testing.T, rr *verRecReader, c net.Conn) error {
				ch, err := rr.readClientHello()
				if err != nil {
					return err
				}
				sh := verGoodSH(t, ch)
				tc.mod(t, sh, ch)
				_, err = c.Write(sh.record())
				return err
			})
			verWantAlert(t, "client handshake", cerr, tc.want, false)
			if werr != nil || desc != uint8(tc.want) {
				t.Errorf("alert on the wire: %d, %v; want %d", desc, werr, tc.want)
			}
		})
	}
	t.Run("EncryptedExtensions instead of ServerHello", func(t *testing.T) {
		cerr, desc, werr := verScriptedServer(t, func(t *testing.T, rr *verRecReader, c net.Conn) error {
			if _, err := rr.readClientHello(); err != nil {
				return err
			}
			_, err := c.Write(verRecord(verRecordHandshake, []byte{8, 0, 0, 2, 0, 0}))
			return err
		})
		verWantAlert(t, "client handshake", cerr, AlertUnexpectedMessage, false)
		if werr != nil || desc != uint8(AlertUnexpectedMessage) {
			t.Errorf("alert on the wire: %d, %v", desc, werr)
		}
	})
}

func TestNegativeClientHelloRetryRequest(t *testing.T) {
	cases := []struct {
		name   string
		script func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error
		want   Alert
	}{
		{"selects a group the client did not offer", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			_, err := c.Write(verHRRMsg(ch, 0x0018).record())
			return err
		}, AlertIllegalParameter},
		{"selects the group the client already shared", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			_, err := c.Write(verHRRMsg(ch, verGroupX25519).record())
			return err
		}, AlertIllegalParameter},
		{"changes nothing", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			_, err := c.Write(verHRRMsg(ch, 0).remove(verExtKeyShare).record())
			return err
		}, AlertIllegalParameter},
		{"cipher suite not offered", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			h := verHRRMsg(ch, verGroupP256)
			h.suite = 0x1304
			_, err := c.Write(h.record())
			return err
		}, AlertIllegalParameter},
		{"second HelloRetryRequest", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			if _, err := c.Write(verHRRMsg(ch, verGroupP256).record()); err != nil {
				return err
			}
			ch2, err := rr.readClientHello()
			if err != nil {
				return err
			}
			if len(ch2.shares) != 1 || ch2.shares[0] != verGroupP256 {
				return errors.New("second ClientHello does not share exactly the requested group")
			}
			_, err = c.Write(verHRRMsg(ch2, verGroupP256).set(verExtCookie, verCookieExt([]byte("again"))).record())
			return err
		}, AlertUnexpectedMessage},
		{"ServerHello after HRR with another suite", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			if _, err := c.Write(verHRRMsg(ch, verGroupP256).record()); err != nil {
				return err
			}
			ch2, err := rr.readClientHello()
			if err != nil {
				return err
			}
			sh := verGoodSH(t, ch2)
			sh.suite = verSuiteAES256GCM
			sh.set(verExtKeyShare, verServerShareExt(verGroupP256, verP256Point(t)))
			_, err = c.Write(sh.record())
			return err
		}, AlertIllegalParameter},
		{"ServerHello after HRR with another group", func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			if _, err := c.Write(verHRRMsg(ch, verGroupP256).record()); err != nil {
				return err
			}
			ch2, err := rr.readClientHello()
			if err != nil {
				return err
			}
			_, err = c.Write(verGoodSH(t, ch2).record()) // X25519 share
			return err
		}, AlertIllegalParameter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cerr, desc, werr := verScriptedServer(t, func(t *testing.T, rr *verRecReader, c net.Conn) error {
				ch, err := rr.readClientHello()
				if err != nil {
					return err
				}
				return tc.script(t, rr, c, ch)
			})
			verWantAlert(t, "client handshake", cerr, tc.want, false)
			if werr != nil || desc != uint8(tc.want) {
				t.Errorf("alert on the wire: %d, %v; want %d", desc, werr, tc.want)
			}
		})
	}
}
