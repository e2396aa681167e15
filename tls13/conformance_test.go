package tls13

// Raw-socket tests of the rules an independent TLS 1.3 conformance suite
// found broken: 0-RTT skipping (RFC 8446 §4.2.10), legacy_version
// (Appendix D.5), TLSInnerPlaintext length (§5.4), ChangeCipherSpec and
// no-op floods (§5, Appendix D.4), plaintext alerts after the server's
// Finished, oversized handshake messages, many key shares (§4.2.8).
//
// rawClient plays the client from a raw socket past the server's first
// flight: it learns the traffic secrets from the server's key log (the
// server writes them before its flight leaves) and computes its own
// Finished from RFC 8446 §4.4.4, so a test can send any record under the
// client's keys.

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13/internal/oracle"

	"golang.org/x/crypto/cryptobyte"
)

const verExtEarlyData = 42

// rawClient is one raw-socket client connection to a tls13 server.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	rr   *verRecReader
	kl   *oracle.KeyLog
	done <-chan error // the server's result (Handshake, then serve's)

	transcript []byte // handshake messages so far (SHA-256 suites only)
	serverMsgs [][]byte
	aead       cipher.AEAD
	iv         []byte
	seq        uint64
}

// newRawClient starts a server for one connection; after its handshake
// the server runs serve (nil: return the handshake's result).
func newRawClient(t *testing.T, cfg *Config, serve func(*Conn) error) *rawClient {
	t.Helper()
	kl := &oracle.KeyLog{}
	scfg := *cfg
	scfg.KeyLogWriter = kl
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := Server(c, &scfg)
		if err := s.Handshake(); err != nil {
			return err
		}
		if serve != nil {
			return serve(s)
		}
		return nil
	})
	c := verDial(t, ln.Addr().String())
	return &rawClient{t: t, c: c, rr: &verRecReader{c: c}, kl: kl, done: done}
}

func (rc *rawClient) write(recs ...[]byte) {
	rc.t.Helper()
	for _, r := range recs {
		if _, err := rc.c.Write(r); err != nil {
			rc.t.Fatalf("write: %v", err)
		}
	}
}

// sendHello sends a ClientHello message (in records of at most 2^14
// bytes) and adds it to the transcript.
func (rc *rawClient) sendHello(msg []byte) {
	rc.t.Helper()
	rc.transcript = append(rc.transcript, msg...)
	for len(msg) > 0 {
		n := min(len(msg), maxPlaintext)
		rc.write(verRecord(verRecordHandshake, msg[:n]))
		msg = msg[n:]
	}
}

// readServerFlight reads ServerHello through the server's Finished,
// decrypting with the server's handshake key from the key log.
func (rc *rawClient) readServerFlight() error {
	var open cipher.AEAD
	var iv []byte
	var seq uint64
	var hs []byte
	for {
		rec, err := rc.rr.next()
		if err != nil {
			return fmt.Errorf("server flight: %w", err)
		}
		typ, body := rec[0], rec[5:]
		switch typ {
		case verRecordCCS:
			continue
		case verRecordAlert:
			return fmt.Errorf("plaintext alert %v", body)
		case verRecordHandshake:
			hs = append(hs, body...)
		case verRecordAppData:
			if open == nil {
				secret := rc.kl.Secret("SERVER_HANDSHAKE_TRAFFIC_SECRET")
				if secret == nil {
					return errors.New("no server handshake secret in the key log")
				}
				open, iv = rawKeys(secret)
			}
			plain, err := open.Open(nil, rawNonce(iv, seq), body, rec[:5])
			seq++
			if err != nil {
				return fmt.Errorf("server record: %v", err)
			}
			plain = bytes.TrimRight(plain, "\x00")
			if len(plain) == 0 {
				return errors.New("empty inner plaintext")
			}
			inner := plain[len(plain)-1]
			if inner == verRecordAlert {
				return fmt.Errorf("encrypted alert %v", plain[:len(plain)-1])
			}
			hs = append(hs, plain[:len(plain)-1]...)
		}
		for len(hs) >= 4 {
			n := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			if len(hs) < n {
				break
			}
			msg := append([]byte(nil), hs[:n]...)
			hs = hs[n:]
			rc.serverMsgs = append(rc.serverMsgs, msg)
			rc.transcript = append(rc.transcript, msg...)
			if msg[0] == 20 {
				return nil
			}
		}
	}
}

// rawKeys derives a SHA-256 suite's AES-128-GCM key and IV from secret.
func rawKeys(secret []byte) (cipher.AEAD, []byte) {
	_, keyLen, newAEAD := oracle.SuiteParams(verSuiteAES128GCM)
	aead, err := newAEAD(oracle.ExpandLabel(sha256.New, secret, "key", keyLen))
	if err != nil {
		panic(err)
	}
	return aead, oracle.ExpandLabel(sha256.New, secret, "iv", 12)
}

func rawNonce(iv []byte, seq uint64) []byte {
	n := append([]byte(nil), iv...)
	for i := 0; i < 8; i++ {
		n[len(n)-1-i] ^= byte(seq >> (8 * i))
	}
	return n
}

// useKey makes seal protect with the client's key log secret label.
func (rc *rawClient) useKey(label string) {
	rc.t.Helper()
	secret := rc.kl.Secret(label)
	if secret == nil {
		rc.t.Fatalf("no %s in the key log", label)
	}
	rc.aead, rc.iv = rawKeys(secret)
	rc.seq = 0
}

// seal returns a protected record: content, its type, padding zeros.
func (rc *rawClient) seal(typ uint8, content []byte, padding int) []byte {
	inner := append(append(append([]byte(nil), content...), typ), make([]byte, padding)...)
	n := len(inner) + rc.aead.Overhead()
	hdr := []byte{verRecordAppData, 3, 3, byte(n >> 8), byte(n)}
	rec := rc.aead.Seal(hdr, rawNonce(rc.iv, rc.seq), inner, hdr)
	rc.seq++
	return rec
}

// finished is the client's Finished message for the transcript so far.
func (rc *rawClient) finished() []byte {
	secret := rc.kl.Secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
	key := oracle.ExpandLabel(sha256.New, secret, "finished", 32)
	th := sha256.Sum256(rc.transcript)
	mac := hmac.New(sha256.New, key)
	mac.Write(th[:])
	return append([]byte{20, 0, 0, 32}, mac.Sum(nil)...)
}

// serverErr waits for the server's result.
func (rc *rawClient) serverErr() error {
	rc.t.Helper()
	return verWaitErr(rc.t, rc.done, "server")
}

// wantServerAlert asserts the server failed with a sent alert want.
func (rc *rawClient) wantServerAlert(want Alert) {
	rc.t.Helper()
	rc.c.Close()
	err := rc.serverErr()
	if a, received, ok := verAlertOf(err); !ok || received || a != want {
		rc.t.Fatalf("server error %v, want a sent %v", err, want)
	}
}

// completeHandshake sends the client's Finished under its handshake key
// and asserts the server's handshake succeeds; records then go under the
// client's application key.
func (rc *rawClient) completeHandshake(before ...[]byte) {
	rc.t.Helper()
	rc.useKey("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
	rc.write(before...)
	rc.write(rc.seal(verRecordHandshake, rc.finished(), 0))
	rc.useKey("CLIENT_TRAFFIC_SECRET_0")
}

// encryptedExtensionTypes returns the extension types of the server's
// EncryptedExtensions.
func (rc *rawClient) encryptedExtensionTypes() []uint16 {
	rc.t.Helper()
	for _, m := range rc.serverMsgs {
		if m[0] != 8 {
			continue
		}
		s := cryptobyte.String(m[4:])
		var exts cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&exts) {
			rc.t.Fatal("malformed EncryptedExtensions")
		}
		var types []uint16
		for !exts.Empty() {
			var typ uint16
			var body cryptobyte.String
			if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
				rc.t.Fatal("malformed EncryptedExtensions")
			}
			types = append(types, typ)
		}
		return types
	}
	rc.t.Fatal("no EncryptedExtensions")
	return nil
}

// earlyDataHello is a ClientHello offering early_data with a ticket the
// server cannot open (a client holding another server's ticket).
func earlyDataHello(t *testing.T) *verHello {
	h := verDefaultHello(t)
	h.set(verExtEarlyData, nil)
	h.set(verExtPreSharedKey, verPSKExt(bytes.Repeat([]byte{7}, 64), 32))
	return h
}

// garbageRecords are n application_data records of size bytes that no
// key of this connection opens: 0-RTT data under an early key the server
// does not have.
func garbageRecords(n, size int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = verRecord(verRecordAppData, bytes.Repeat([]byte{byte(i + 1)}, size))
	}
	return recs
}

// TestConformanceEarlyDataSkipped: a server that does not accept early
// data skips the 0-RTT records it cannot decrypt, up to a bound, then
// completes the handshake (RFC 8446 §4.2.10); it never accepts them.
func TestConformanceEarlyDataSkipped(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	t.Run("0-RTT records are skipped and the handshake completes", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(earlyDataHello(t).marshal())
		rc.write(verRecord(verRecordCCS, []byte{1}))
		rc.write(garbageRecords(3, 1000)...)
		rc.write(verRecord(verRecordAppData, make([]byte, 10))) // shorter than a tag
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		for _, typ := range rc.encryptedExtensionTypes() {
			if typ == verExtEarlyData {
				t.Fatal("EncryptedExtensions accepts early_data")
			}
		}
		rc.completeHandshake()
		if err := rc.serverErr(); err != nil {
			t.Fatalf("server handshake after skipped 0-RTT records: %v", err)
		}
	})
	t.Run("0-RTT beyond the bound is refused", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(earlyDataHello(t).marshal())
		n := maxEarlyDataSkip/maxPlaintext + 1
		rc.write(garbageRecords(n, maxPlaintext)...)
		rc.wantServerAlert(AlertUnexpectedMessage)
	})
	t.Run("without early_data an undecryptable record is bad_record_mac", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(verDefaultHello(t).marshal())
		rc.write(garbageRecords(1, 100)...)
		rc.wantServerAlert(AlertBadRecordMAC)
	})
	t.Run("after the first record that decrypts, skipping stops", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(earlyDataHello(t).marshal())
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		rc.useKey("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
		rc.write(rc.seal(verRecordAlert, []byte{1, byte(AlertUserCanceled)}, 0))
		rc.write(garbageRecords(1, 100)...)
		rc.wantServerAlert(AlertBadRecordMAC)
	})
}

// TestConformanceEarlyDataAfterHRR: after a HelloRetryRequest the server
// skips application_data records until the second ClientHello
// (§4.2.10), which must not offer early_data again.
func TestConformanceEarlyDataAfterHRR(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	retry := func(t *testing.T, keepEarlyData bool) (*rawClient, []byte) {
		rc := newRawClient(t, cfg, nil)
		h := verDefaultHello(t)
		h.set(verExtEarlyData, nil)
		h.set(verExtKeyShare, verKeyShareExt())
		rc.write(h.record())
		rc.write(garbageRecords(4, 2000)...)
		hrr, err := rc.rr.readHRR()
		if err != nil {
			t.Fatalf("want HelloRetryRequest: %v", err)
		}
		if !keepEarlyData {
			h.remove(verExtEarlyData)
		}
		h.set(verExtKeyShare, verKeyShareExt(verExt{hrr.group, verNewX25519Share(t)}))
		if hrr.cookie != nil {
			h.set(verExtCookie, verCookieExt(hrr.cookie))
		}
		rc.write(verRecord(verRecordCCS, []byte{1}))
		rc.write(garbageRecords(2, 500)...) // still in flight when the HRR left
		return rc, h.record()
	}
	t.Run("application data before the second ClientHello is skipped", func(t *testing.T) {
		rc, ch2 := retry(t, false)
		rc.write(ch2)
		if isSH, isHRR, _, err := verReadServerHello(rc.c); err != nil || !isSH || isHRR {
			t.Fatalf("want ServerHello after skipped 0-RTT records: sh=%v hrr=%v %v", isSH, isHRR, err)
		}
	})
	t.Run("second ClientHello with early_data", func(t *testing.T) {
		rc, ch2 := retry(t, true)
		rc.write(ch2)
		if _, desc, err := verReadAlert(rc.c); err != nil || Alert(desc) != AlertIllegalParameter {
			t.Fatalf("alert %d, %v; want illegal_parameter", desc, err)
		}
		rc.wantServerAlert(AlertIllegalParameter)
	})
	t.Run("no early_data: unprotected application data is unexpected_message", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		h := verDefaultHello(t)
		h.set(verExtKeyShare, verKeyShareExt())
		rc.write(h.record())
		if _, err := rc.rr.readHRR(); err != nil {
			t.Fatalf("want HelloRetryRequest: %v", err)
		}
		rc.write(garbageRecords(1, 100)...)
		rc.wantServerAlert(AlertUnexpectedMessage)
	})
}

// TestConformanceLegacyVersion: ClientHello.legacy_version 0x0300 or less
// is protocol_version even when supported_versions offers TLS 1.3
// (Appendix D.5); 0x0301 and 0x0302 are tolerated like 0x0303.
func TestConformanceLegacyVersion(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	for _, v := range []uint16{0x0300, 0x0200, 0x0000} {
		t.Run(fmt.Sprintf("%#04x", v), func(t *testing.T) {
			h := verDefaultHello(t)
			h.legacyVersion = v
			verExpectAlert(t, cfg, verAlertProtocolVersion, h.record())
		})
	}
	for _, v := range []uint16{0x0301, 0x0302} {
		t.Run(fmt.Sprintf("%#04x accepted", v), func(t *testing.T) {
			h := verDefaultHello(t)
			h.legacyVersion = v
			verExpectServerHello(t, cfg, h.record())
		})
	}
}

// TestConformanceInnerPlaintextLength: TLSInnerPlaintext (content, type,
// padding) is at most 2^14 + 1 bytes (§5.4), padding included.
func TestConformanceInnerPlaintextLength(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	run := func(t *testing.T, innerLen int) *rawClient {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(verDefaultHello(t).marshal())
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		rc.useKey("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
		fin := rc.finished()
		rc.write(rc.seal(verRecordHandshake, fin, innerLen-len(fin)-1))
		return rc
	}
	t.Run("2^14+1 bytes with padding is accepted", func(t *testing.T) {
		rc := run(t, maxPlaintext+1)
		if err := rc.serverErr(); err != nil {
			t.Fatalf("server: %v", err)
		}
	})
	t.Run("2^14+2 bytes is record_overflow", func(t *testing.T) {
		run(t, maxPlaintext+2).wantServerAlert(AlertRecordOverflow)
	})
}

// TestConformanceChangeCipherSpec: one compatibility ChangeCipherSpec is
// allowed during the handshake, a second is unexpected_message (§5).
func TestConformanceChangeCipherSpec(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	ccs := verRecord(verRecordCCS, []byte{1})
	t.Run("one is skipped", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(verDefaultHello(t).marshal())
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		rc.completeHandshake(ccs)
		if err := rc.serverErr(); err != nil {
			t.Fatalf("server: %v", err)
		}
	})
	t.Run("two are unexpected_message", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(verDefaultHello(t).marshal())
		rc.write(ccs, ccs)
		rc.wantServerAlert(AlertUnexpectedMessage)
	})
	t.Run("one before and one after the HelloRetryRequest", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		h := verDefaultHello(t)
		h.set(verExtKeyShare, verKeyShareExt())
		rc.write(h.record(), ccs)
		if _, err := rc.rr.readHRR(); err != nil {
			t.Fatalf("want HelloRetryRequest: %v", err)
		}
		rc.write(ccs)
		rc.wantServerAlert(AlertUnexpectedMessage)
	})
}

// readServer is a serve function that reads until an error and reports
// the data read before it.
func readServer(got chan<- string) func(*Conn) error {
	return func(s *Conn) error {
		var all []byte
		buf := make([]byte, 100)
		for {
			n, err := s.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- string(all)
				return err
			}
		}
	}
}

// TestConformanceNoOpFloods: records that deliver nothing (empty
// application data, user_canceled warnings) are absorbed up to 16 in a
// row, as crypto/tls does; the 17th is unexpected_message.
func TestConformanceNoOpFloods(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	for _, kind := range []string{"empty application data", "user_canceled"} {
		noop := func(rc *rawClient) []byte {
			if kind == "user_canceled" {
				return rc.seal(verRecordAlert, []byte{1, byte(AlertUserCanceled)}, 0)
			}
			return rc.seal(verRecordAppData, nil, 0)
		}
		start := func(t *testing.T) (*rawClient, chan string) {
			got := make(chan string, 1)
			rc := newRawClient(t, cfg, readServer(got))
			rc.sendHello(verDefaultHello(t).marshal())
			if err := rc.readServerFlight(); err != nil {
				t.Fatal(err)
			}
			rc.completeHandshake()
			return rc, got
		}
		t.Run(kind+": 16 in a row then data", func(t *testing.T) {
			rc, got := start(t)
			for i := 0; i < maxUselessRecords; i++ {
				rc.write(noop(rc))
			}
			rc.write(rc.seal(verRecordAppData, []byte("data"), 0))
			for i := 0; i < maxUselessRecords; i++ {
				rc.write(noop(rc))
			}
			rc.write(rc.seal(verRecordAlert, []byte{1, 0}, 0)) // close_notify
			if err := rc.serverErr(); err != io.EOF {
				t.Fatalf("server read: %v, want EOF", err)
			}
			if s := <-got; s != "data" {
				t.Fatalf("server read %q, want %q", s, "data")
			}
		})
		t.Run(kind+": 17 in a row", func(t *testing.T) {
			rc, got := start(t)
			for i := 0; i <= maxUselessRecords; i++ {
				rc.write(noop(rc))
			}
			rc.wantServerAlert(AlertUnexpectedMessage)
			<-got
		})
	}
}

// TestConformancePostHandshakeRate: the post-handshake message bound is
// a rate (a burst refilled per minute of Config.Time), so a long-lived
// connection is not cut off by a lifetime count.
func TestConformancePostHandshakeRate(t *testing.T) {
	const migrateRequest = 0xFD
	p := verGetPKI(t, verECDSA)
	clock := &verFakeClock{now: time.Now()}
	ccfg := verTLS13ClientConfig(p)
	ccfg.HandshakeMessageTypes = []uint8{migrateRequest}
	ccfg.MaxPostHandshakeMessages = 3
	ccfg.Time = clock.time
	ccfg.OnHandshakeMessage = func(*Conn, uint8, []byte) error { return nil }
	scfg := verTLS13ServerConfig(t, p)
	scfg.HandshakeMessageTypes = []uint8{migrateRequest}
	scfg.TicketsPerHandshake = -1
	pr := verTLS13Pair(t, ccfg, scfg)
	buf := make([]byte, 1)
	for round := 0; round < 4; round++ {
		for i := 0; i < 3; i++ {
			if err := pr.server.SendHandshakeMessage(migrateRequest, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		pr.server.Write([]byte("x"))
		if _, err := pr.client.Read(buf); err != nil {
			t.Fatalf("round %d: a full burst once per minute refused: %v", round, err)
		}
		clock.advance(postHandshakeWindow)
	}
	for i := 0; i < 4; i++ {
		pr.server.SendHandshakeMessage(migrateRequest, []byte{byte(i)})
	}
	_, err := pr.client.Read(buf)
	verWantAlert(t, "client read", err, AlertUnexpectedMessage, false)
}

// verFakeClock is a Config.Time that moves only when told.
type verFakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *verFakeClock) time() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *verFakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestConformancePlaintextAlertAfterServerFinished: a client that refuses
// the certificate may send its alert unprotected; the server reports the
// peer's alert (not an unexpected_message of its own) and closes without
// answering, as OpenSSL does.
func TestConformancePlaintextAlertAfterServerFinished(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	rc := newRawClient(t, cfg, nil)
	rc.sendHello(verDefaultHello(t).marshal())
	if err := rc.readServerFlight(); err != nil {
		t.Fatal(err)
	}
	rc.write(verRecord(verRecordAlert, []byte{2, byte(AlertUnknownCA)}))
	err := rc.serverErr()
	a, received, ok := verAlertOf(err)
	if !ok || !received || a != AlertUnknownCA {
		t.Fatalf("server error %v, want the received unknown_ca", err)
	}
	if !strings.Contains(err.Error(), "rejected our certificate") || strings.Count(err.Error(), "tls13:") != 1 {
		t.Errorf("error text %q: want one prefix and the reason", err)
	}
	// Nothing comes back but the end of the connection.
	for {
		rec, err := rc.rr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the alert: %v, want EOF", err)
			}
			break
		}
		if rec[0] == verRecordAlert || rec[0] == verRecordAppData && len(rec) < 5+40 {
			// Tickets of the first flight are large; a short record
			// now would be an alert of our own.
			t.Fatalf("server answered the peer's fatal alert with % x", rec)
		}
	}
}

// TestConformanceOversizedHandshake: a ClientHello as large as any that
// can decode (65.6 KB of signature schemes) is served; one announced
// larger than that, and a padded Finished, are decode_error (§6.2).
func TestConformanceOversizedHandshake(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	t.Run("ClientHello with 32715 signature schemes", func(t *testing.T) {
		h := verDefaultHello(t)
		schemes := make([]uint16, 0, 32715)
		for i := 0; len(schemes) < 32715-1; i++ {
			if v := uint16(0x0100 + i); v != 0x0403 {
				schemes = append(schemes, v)
			}
		}
		schemes = append(schemes, 0x0403)
		h.set(verExtSignatureAlgorithms, verU16List(2, schemes...))
		msg := h.marshal()
		if len(msg) <= 1<<16 {
			t.Fatalf("hello of %d bytes, want over 64 KiB", len(msg))
		}
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(msg)
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		rc.completeHandshake()
		if err := rc.serverErr(); err != nil {
			t.Fatalf("server: %v", err)
		}
	})
	t.Run("ClientHello announced beyond any decodable size", func(t *testing.T) {
		n := maxClientHelloSize + 1
		verExpectAlert(t, cfg, verAlertDecodeError, verRecord(verRecordHandshake, []byte{1, byte(n >> 16), byte(n >> 8), byte(n), 3, 3}))
	})
	t.Run("padded Finished", func(t *testing.T) {
		rc := newRawClient(t, cfg, nil)
		rc.sendHello(verDefaultHello(t).marshal())
		if err := rc.readServerFlight(); err != nil {
			t.Fatal(err)
		}
		rc.useKey("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
		fin := append(rc.finished(), 0)
		fin[3]++
		rc.write(rc.seal(verRecordHandshake, fin, 0))
		rc.wantServerAlert(AlertDecodeError)
	})
}

// TestConformanceManyKeyShares: no cap on the number of key shares (RFC
// 8446 has none); shares of unknown groups are passed over, the order
// rules still hold.
func TestConformanceManyKeyShares(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	hello := func(unknown int, shuffle bool) *verHello {
		h := verDefaultHello(t)
		var groups []uint16
		var shares []verExt
		for i := 0; i < unknown; i++ {
			g := uint16(0x6000 + i)
			groups = append(groups, g)
			shares = append(shares, verExt{g, []byte{byte(i)}})
		}
		groups = append(groups, verGroupX25519)
		shares = append(shares, verExt{verGroupX25519, verNewX25519Share(t)})
		if shuffle {
			shares[0], shares[1] = shares[1], shares[0]
		}
		h.set(verExtSupportedGroups, verU16List(2, groups...))
		h.set(verExtKeyShare, verKeyShareExt(shares...))
		return h
	}
	for _, n := range []int{33, 247, 7000} {
		t.Run(fmt.Sprintf("%d unknown shares then X25519", n), func(t *testing.T) {
			rc := newRawClient(t, cfg, nil)
			rc.sendHello(hello(n, false).marshal())
			if err := rc.readServerFlight(); err != nil {
				t.Fatal(err)
			}
			rc.completeHandshake()
			if err := rc.serverErr(); err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
	t.Run("247 shares out of supported_groups order", func(t *testing.T) {
		verExpectAlert(t, cfg, verAlertIllegalParameter, hello(247, true).record())
	})
}
