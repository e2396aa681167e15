package tls13

// The client's side of §4.1.3 and §4.1.4: a scripted raw server reads the
// tls13 client's ClientHello and answers with a handcrafted ServerHello or
// HelloRetryRequest that breaks one rule; the client must abort with the
// alert the RFC names, in plaintext (it has no keys yet).

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13/internal/oracle"

	"golang.org/x/crypto/cryptobyte"
)

// verSH is a ServerHello or HelloRetryRequest built field by field.
type verSH struct {
	legacyVersion uint16
	random        []byte
	sessionID     []byte
	suite         uint16
	compression   uint8
	exts          verExts
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
		s.exts.add(b)
	})
	return verRecord(verRecordHandshake, b.BytesOrPanic())
}

func (s *verSH) set(typ uint16, data []byte) *verSH { s.exts.set(typ, data); return s }

func (s *verSH) remove(typ uint16) *verSH { s.exts.remove(typ); return s }

// verSeenHello is what the scripted server read of a ClientHello.
type verSeenHello struct {
	raw       []byte // the handshake message, for the transcript
	sessionID []byte
	shares    []uint16
	x25519    []byte // the client's X25519 share, if any
	cookie    []byte // the echoed HelloRetryRequest cookie, if any
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
	h := &verSeenHello{raw: msg, sessionID: sid}
	for !exts.Empty() {
		var et uint16
		var ed cryptobyte.String
		if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&ed) {
			return nil, errors.New("malformed extensions")
		}
		if et == verExtCookie {
			var ck cryptobyte.String
			ed.ReadUint16LengthPrefixed(&ck)
			h.cookie = ck
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
				if g == verGroupX25519 {
					h.x25519 = kx
				}
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
	// hrrThenAnotherSuite asks for a P-256 share (with cookie, when not
	// nil, which the second ClientHello must echo), then answers the
	// second ClientHello with a ServerHello whose suite differs from the
	// HelloRetryRequest's.
	hrrThenAnotherSuite := func(cookie []byte) func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
		return func(t *testing.T, rr *verRecReader, c net.Conn, ch *verSeenHello) error {
			hrr := verHRRMsg(ch, verGroupP256)
			if cookie != nil {
				hrr.set(verExtCookie, verCookieExt(cookie))
			}
			if _, err := c.Write(hrr.record()); err != nil {
				return err
			}
			ch2, err := rr.readClientHello()
			if err != nil {
				return err
			}
			if cookie != nil && !bytes.Equal(ch2.cookie, cookie) {
				return errors.New("second ClientHello does not echo the cookie")
			}
			sh := verGoodSH(t, ch2)
			sh.suite = verSuiteAES256GCM
			sh.set(verExtKeyShare, verServerShareExt(verGroupP256, verP256Point(t)))
			_, err = c.Write(sh.record())
			return err
		}
	}
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
		{"HRR cookie is echoed, then a ServerHello with another suite", hrrThenAnotherSuite([]byte("opaque cookie")), AlertIllegalParameter},
		{"ServerHello after HRR with another suite", hrrThenAnotherSuite(nil), AlertIllegalParameter},
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

// ---------------------------------------------------------------------------
// A scripted TLS 1.3 server with its own key schedule (RFC 8446 §7), so a
// test can break exactly one rule of the encrypted flight and watch the
// tls13 client's answer, which it decrypts with the client handshake key.

// verFlight is the server's encrypted flight, message by message; tests
// edit it before it is sealed.
type verFlight struct {
	ee, cert, cv, fin []byte
	// extra goes right after the ServerHello, inside its plaintext record
	// (to break the record-boundary rule).
	extra []byte
	// after, if set, runs with the application keys once the client's
	// Finished arrived (for post-handshake messages).
	after func(t *testing.T, send func(inner []byte))
}

// verMsg frames a handshake message.
func verMsg(typ uint8, body []byte) []byte {
	return append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// verSealer protects records with one traffic secret.
type verSealer struct {
	aead cipher.AEAD
	iv   []byte
	seq  uint64
}

func verNewSealer(secret []byte) *verSealer {
	key := oracle.ExpandLabel(sha256.New, secret, "key", 16)
	b, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(b)
	return &verSealer{aead: aead, iv: oracle.ExpandLabel(sha256.New, secret, "iv", 12)}
}

func (s *verSealer) nonce() []byte {
	n := append([]byte(nil), s.iv...)
	for i := 0; i < 8; i++ {
		n[11-i] ^= byte(s.seq >> (8 * i))
	}
	s.seq++
	return n
}

func (s *verSealer) seal(inner []byte) []byte {
	n := len(inner) + 16
	hdr := []byte{verRecordAppData, 3, 3, byte(n >> 8), byte(n)}
	return s.aead.Seal(hdr, s.nonce(), inner, hdr)
}

func (s *verSealer) open(rec []byte) ([]byte, error) {
	return s.aead.Open(nil, s.nonce(), rec[5:], rec[:5])
}

// verRunScriptedTLS13 serves one tls13 client with a correct TLS 1.3
// flight (ECDSA P-256 certificate, X25519, AES-128-GCM) that edit may
// break. It returns the client's handshake error (after a Read when the
// handshake itself passed) and the alert the client sent, decrypted.
func verRunScriptedTLS13(t *testing.T, edit func(t *testing.T, f *verFlight, ch *verSeenHello)) (clientErr error, wireAlert int) {
	t.Helper()
	p := verGetPKI(t, verECDSA)
	ln := verListen(t)
	alertCh := make(chan int, 1)
	go func() {
		alert := -1
		defer func() { alertCh <- alert }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rr := &verRecReader{c: c}
		ch, err := rr.readClientHello()
		if err != nil || ch.x25519 == nil {
			return
		}
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		peer, err := ecdh.X25519().NewPublicKey(ch.x25519)
		if err != nil {
			return
		}
		shared, _ := priv.ECDH(peer)
		sh := verGoodSH(t, ch)
		sh.set(verExtKeyShare, verServerShareExt(verGroupX25519, priv.PublicKey().Bytes()))
		shRec := sh.record()
		shMsg := shRec[5:]

		th := func(msgs ...[]byte) []byte {
			h := sha256.New()
			for _, m := range msgs {
				h.Write(m)
			}
			return h.Sum(nil)
		}
		zeros := make([]byte, 32)
		early, _ := hkdf.Extract(sha256.New, zeros, nil)
		derived := oracle.ExpandLabelContext(sha256.New, early, "derived", th(), 32)
		hsSecret, _ := hkdf.Extract(sha256.New, shared, derived)
		chsh := th(ch.raw, shMsg)
		cHS := oracle.ExpandLabelContext(sha256.New, hsSecret, "c hs traffic", chsh, 32)
		sHS := oracle.ExpandLabelContext(sha256.New, hsSecret, "s hs traffic", chsh, 32)

		f := &verFlight{ee: verMsg(8, []byte{0, 0})}
		var certBody cryptobyte.Builder
		certBody.AddUint8(0)
		certBody.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(p.leaf.Certificate[0]) })
			b.AddUint16(0)
		})
		f.cert = verMsg(11, certBody.BytesOrPanic())
		signed := append(bytes.Repeat([]byte{0x20}, 64), []byte("TLS 1.3, server CertificateVerify\x00")...)
		signed = append(signed, th(ch.raw, shMsg, f.ee, f.cert)...)
		digest := sha256.Sum256(signed)
		sig, err := p.leaf.PrivateKey.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return
		}
		f.cv = verMsg(15, append([]byte{0x04, 0x03, byte(len(sig) >> 8), byte(len(sig))}, sig...))
		finishedKey := oracle.ExpandLabel(sha256.New, sHS, "finished", 32)
		mac := hmac.New(sha256.New, finishedKey)
		mac.Write(th(ch.raw, shMsg, f.ee, f.cert, f.cv))
		f.fin = verMsg(20, mac.Sum(nil))
		edit(t, f, ch)

		if f.extra != nil {
			shRec = verRecord(verRecordHandshake, append(append([]byte(nil), shMsg...), f.extra...))
		}
		out := append(shRec, verRecord(verRecordCCS, []byte{1})...)
		sealer := verNewSealer(sHS)
		flight := append(append(append(append([]byte(nil), f.ee...), f.cert...), f.cv...), f.fin...)
		out = append(out, sealer.seal(append(flight, verRecordHandshake))...)
		if _, err := c.Write(out); err != nil {
			return
		}
		// Read the client's answer with the client handshake key: its
		// Finished, or an alert.
		opener := verNewSealer(cHS)
		for {
			rec, err := rr.next()
			if err != nil {
				return
			}
			if rec[0] == verRecordAlert && len(rec) == 7 {
				alert = int(rec[6]) // an unprotected alert (before keys)
				return
			}
			if rec[0] != verRecordAppData {
				continue
			}
			inner, err := opener.open(rec)
			if err != nil || len(inner) == 0 {
				return
			}
			i := len(inner) - 1
			for i > 0 && inner[i] == 0 {
				i--
			}
			switch inner[i] {
			case verRecordAlert:
				if i == 2 {
					alert = int(inner[1])
				}
				return
			case verRecordHandshake:
				if inner[0] != 20 || f.after == nil {
					continue
				}
				// Client Finished: on to application keys.
				derived2 := oracle.ExpandLabelContext(sha256.New, hsSecret, "derived", th(), 32)
				master, _ := hkdf.Extract(sha256.New, zeros, derived2)
				full := th(ch.raw, shMsg, f.ee, f.cert, f.cv, f.fin)
				sAP := verNewSealer(oracle.ExpandLabelContext(sha256.New, master, "s ap traffic", full, 32))
				opener = verNewSealer(oracle.ExpandLabelContext(sha256.New, master, "c ap traffic", full, 32))
				f.after(t, func(inner []byte) { c.Write(sAP.seal(inner)) })
			}
		}
	}()
	cfg := verTLS13ClientConfig(p)
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	cfg.CipherSuites = []uint16{TLS_AES_128_GCM_SHA256}
	cfg.OnNewSessionTicket = func(*Conn, *ClientSession) {}
	c := Client(verDial(t, ln.Addr().String()), cfg)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
	}
	c.Close()
	select {
	case wireAlert = <-alertCh:
	case <-time.After(verWait):
		t.Fatal("scripted server did not finish")
	}
	return clientErr, wireAlert
}

func TestNegativeClientEncryptedFlight(t *testing.T) {
	t.Run("control: the scripted server is correct", func(t *testing.T) {
		err, alert := verRunScriptedTLS13(t, func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.after = func(t *testing.T, send func([]byte)) {
				send([]byte("ok\x17"))
			}
		})
		// The client read "ok", then closed with close_notify (0).
		if err != nil || alert != int(AlertCloseNotify) {
			t.Fatalf("client against a correct scripted server: %v (alert %d)", err, alert)
		}
	})
	cases := []struct {
		name string
		edit func(t *testing.T, f *verFlight, ch *verSeenHello)
		want Alert
	}{
		{"CertificateVerify signature altered", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cv[len(f.cv)-5] ^= 0x10
		}, AlertDecryptError},
		{"CertificateVerify claims rsa_pkcs1_sha256", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cv[4], f.cv[5] = 0x04, 0x01
		}, AlertIllegalParameter},
		{"CertificateVerify scheme not offered (ecdsa_secp521r1_sha512)", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cv[4], f.cv[5] = 0x06, 0x03
		}, AlertIllegalParameter},
		{"Finished altered", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.fin[len(f.fin)-1] ^= 1
		}, AlertDecryptError},
		{"Finished of 31 bytes", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.fin = verMsg(20, f.fin[4:35])
		}, AlertDecodeError},
		{"empty Certificate", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cert = verMsg(11, []byte{0, 0, 0, 0})
		}, AlertDecodeError},
		{"Certificate with a request context", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			body := append([]byte{1, 7}, f.cert[5:]...)
			f.cert = verMsg(11, body)
		}, AlertIllegalParameter},
		{"Certificate that is not DER", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cert = verMsg(11, []byte{0, 0, 0, 9, 0, 0, 4, 1, 2, 3, 4, 0, 0})
		}, AlertBadCertificate},
		{"EncryptedExtensions with an unsolicited extension", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.ee = verMsg(8, []byte{0, 4, 0x77, 0x77, 0, 0})
		}, AlertUnsupportedExtension},
		{"EncryptedExtensions with ALPN not offered", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.ee = verMsg(8, []byte{0, 9, 0, 16, 0, 5, 0, 3, 2, 'h', '2'})
		}, AlertUnsupportedExtension},
		{"EncryptedExtensions with key_share (not allowed there)", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.ee = verMsg(8, []byte{0, 6, 0, 51, 0, 2, 0, 0x1d})
		}, AlertIllegalParameter},
		{"CertificateVerify missing", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.cv = nil
		}, AlertUnexpectedMessage},
		{"handshake bytes after ServerHello in its record", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.extra = []byte{8, 0, 0, 2}
		}, AlertUnexpectedMessage},
		{"NewSessionTicket lifetime over 7 days", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.after = func(t *testing.T, send func([]byte)) {
				nst := verMsg(4, []byte{0, 0x09, 0x3a, 0x81, 1, 2, 3, 4, 0, 0, 1, 'x', 0, 0}) // 604801 s
				send(append(nst, verRecordHandshake))
			}
		}, AlertIllegalParameter},
		{"NewSessionTicket with an empty ticket", func(t *testing.T, f *verFlight, ch *verSeenHello) {
			f.after = func(t *testing.T, send func([]byte)) {
				send(append(verMsg(4, []byte{0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 0, 0, 0}), verRecordHandshake))
			}
		}, AlertDecodeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err, alert := verRunScriptedTLS13(t, tc.edit)
			verWantAlert(t, "client", err, tc.want, false)
			if alert != int(tc.want) {
				t.Errorf("alert on the wire %d, want %d (%v)", alert, tc.want, tc.want)
			}
		})
	}
}
