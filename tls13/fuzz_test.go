package tls13

// Fuzz targets for every wire decoder of the engine. Each target feeds
// arbitrary bytes to one unmarshal function (which must never panic), and
// when the decoder accepts the input, checks that re-encoding the parsed
// message gives bytes the decoder accepts again with the same meaning: a
// decoder that accepts something its own encoder cannot reproduce is how
// parsers drift apart. Seed corpora from real handshakes (crypto/tls,
// tls13 and OpenSSL peers) live in testdata/fuzz/FuzzXxx; regenerate them
// with TLS13_WRITE_CORPUS=1 go test -run TestVerWriteFuzzCorpus ./tls13.

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13/internal/oracle"
)

// verFuzzSeedMessages adds inline seeds built from the handcrafted hello, so
// the targets have a useful start even without the corpus directory.
func verFuzzSeedHello(f *testing.F) {
	h := verDefaultHello(f)
	f.Add(h.marshal())
	h.set(verExtPreSharedKey, verPSKExt([]byte("ticket"), 32))
	f.Add(h.marshal())
}

// reencodable is a handshake message type whose kept encoding the
// round-trip check can drop, so that marshal encodes from the fields.
type reencodable[T any] interface {
	*T
	handshakeMessage
	dropEncoding()
}

func (m *clientHelloMsg) dropEncoding()         { m.raw = nil }
func (m *serverHelloMsg) dropEncoding()         { m.raw = nil }
func (m *encryptedExtensionsMsg) dropEncoding() { m.raw = nil }
func (m *certificateMsg) dropEncoding()         { m.raw = nil }
func (m *certificateRequestMsg) dropEncoding()  { m.raw = nil }
func (m *certificateVerifyMsg) dropEncoding()   { m.raw = nil }
func (m *finishedMsg) dropEncoding()            { m.raw = nil }
func (m *newSessionTicketMsg) dropEncoding()    { m.raw = nil }
func (m *keyUpdateMsg) dropEncoding()           { m.raw = nil }

// fuzzRoundTrip is the check every handshake message fuzzer shares. The
// decoder must never panic; when it accepts the input, check (if not nil)
// asserts the type's own invariants, and the message is encoded again from
// its fields. With sameMeaning nil the encoding is exact and must give
// the input back; otherwise the re-encoding (unless marshal refuses it)
// must decode again to a message sameMeaning accepts.
func fuzzRoundTrip[T any, M reencodable[T]](f *testing.F, name string, check func(t *testing.T, data []byte, m M), sameMeaning func(in, again M) bool) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var m T
		if !M(&m).unmarshal(data) {
			return
		}
		if check != nil {
			check(t, data, &m)
		}
		m2 := m
		M(&m2).dropEncoding()
		out := M(&m2).marshal()
		if sameMeaning == nil {
			if !bytes.Equal(out, data) {
				t.Fatalf("%s round trip differs:\nin  %x\nout %x", name, data, out)
			}
			return
		}
		if out == nil {
			return // a field longer than its prefix; marshal refuses cleanly
		}
		var again T
		if !M(&again).unmarshal(out) {
			t.Fatalf("re-encoded %s does not parse:\nin  %x\nout %x", name, data, out)
		}
		if !sameMeaning(&m, &again) {
			t.Fatalf("%s changed meaning in a round trip:\nin  %x\nout %x", name, data, out)
		}
	})
}

func FuzzClientHello(f *testing.F) {
	verFuzzSeedHello(f)
	fuzzRoundTrip(f, "ClientHello", func(t *testing.T, data []byte, m *clientHelloMsg) {
		if !bytes.Equal(m.raw, data) {
			t.Fatalf("raw does not alias the input")
		}
		if m.bindersLen() > len(data) {
			t.Fatalf("bindersLen %d exceeds message length %d", m.bindersLen(), len(data))
		}
		if len(m.pskBinders) > 0 && !m.pskNotLast {
			// pre_shared_key is last, so its binders list ends the message.
			if tr := m.truncatedForBinders(); len(tr)+m.bindersLen() != len(data) {
				t.Fatalf("truncated hello %d + binders %d != %d", len(tr), m.bindersLen(), len(data))
			}
		}
	}, func(m, m3 *clientHelloMsg) bool {
		return m3.vers == m.vers && bytes.Equal(m3.random, m.random) && bytes.Equal(m3.sessionID, m.sessionID) &&
			slices.Equal(m3.cipherSuites, m.cipherSuites) && bytes.Equal(m3.compressionMethods, m.compressionMethods) &&
			slices.Equal(m3.supportedVersions, m.supportedVersions) && slices.Equal(m3.supportedGroups, m.supportedGroups) &&
			m3.serverName == m.serverName && len(m3.keyShares) == len(m.keyShares) &&
			len(m3.pskIdentities) == len(m.pskIdentities) && bytes.Equal(m3.cookie, m.cookie)
	})
}

func FuzzServerHello(f *testing.F) {
	fuzzRoundTrip(f, "ServerHello", func(t *testing.T, data []byte, m *serverHelloMsg) {
		_ = m.isHelloRetryRequest()
	}, func(m, m3 *serverHelloMsg) bool {
		return m3.vers == m.vers && bytes.Equal(m3.random, m.random) && m3.cipherSuite == m.cipherSuite &&
			m3.supportedVersion == m.supportedVersion && m3.serverShare.group == m.serverShare.group &&
			bytes.Equal(m3.serverShare.data, m.serverShare.data) && m3.selectedGroup == m.selectedGroup &&
			m3.selectedIdentityPresent == m.selectedIdentityPresent && bytes.Equal(m3.cookie, m.cookie)
	})
}

func FuzzEncryptedExtensions(f *testing.F) {
	f.Add([]byte{8, 0, 0, 2, 0, 0})
	fuzzRoundTrip(f, "EncryptedExtensions", nil, func(m, m3 *encryptedExtensionsMsg) bool {
		return m3.alpnProtocol == m.alpnProtocol && m3.serverNameAck == m.serverNameAck && m3.earlyData == m.earlyData
	})
}

func FuzzCertificate(f *testing.F) {
	fuzzRoundTrip(f, "Certificate", nil, func(m, m3 *certificateMsg) bool {
		return bytes.Equal(m3.context, m.context) && slices.EqualFunc(m3.certificates, m.certificates, bytes.Equal)
	})
}

func FuzzCertificateRequest(f *testing.F) {
	f.Add([]byte{13, 0, 0, 11, 0, 0, 8, 0, 13, 0, 4, 0, 2, 4, 3})
	fuzzRoundTrip(f, "CertificateRequest", nil, func(m, m3 *certificateRequestMsg) bool {
		return bytes.Equal(m3.context, m.context) && slices.Equal(m3.sigAlgs, m.sigAlgs)
	})
}

func FuzzCertificateVerify(f *testing.F) {
	f.Add([]byte{15, 0, 0, 6, 4, 3, 0, 2, 1, 2})
	fuzzRoundTrip[certificateVerifyMsg](f, "CertificateVerify", nil, nil)
}

func FuzzFinished(f *testing.F) {
	f.Add(append([]byte{20, 0, 0, 32}, make([]byte, 32)...))
	fuzzRoundTrip[finishedMsg](f, "Finished", nil, nil)
}

// NewSessionTicket's extensions are written back as received, so its
// encoding is exact.
func FuzzNewSessionTicket(f *testing.F) {
	f.Add([]byte{4, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 1, 9, 0, 2, 7, 7, 0, 0})
	fuzzRoundTrip[newSessionTicketMsg](f, "NewSessionTicket", nil, nil)
}

func FuzzKeyUpdate(f *testing.F) {
	f.Add([]byte{24, 0, 0, 1, 0})
	f.Add([]byte{24, 0, 0, 1, 1})
	f.Add([]byte{24, 0, 0, 1, 2})
	fuzzRoundTrip[keyUpdateMsg](f, "KeyUpdate", nil, nil)
}

// ---------------------------------------------------------------------------
// Record layer and whole-handshake fuzzing.

// verFuzzConn is a net.Conn whose peer is a fixed byte stream; writes are
// dropped.
type verFuzzConn struct {
	r *bytes.Reader
}

func (c *verFuzzConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *verFuzzConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *verFuzzConn) Close() error                       { return nil }
func (c *verFuzzConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *verFuzzConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *verFuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c *verFuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *verFuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// verFuzzSecret is the traffic secret of the established connection that
// FuzzRecord feeds; the test seals records with it.
var verFuzzSecret = bytes.Repeat([]byte{0x42}, 32)

// verFuzzRecords turns fuzz input into a record stream. The input is a
// sequence of {type, pad, len16, payload}: a type with the high bit set
// becomes an unprotected record of type&0x7f; any other type is sealed as
// inner plaintext payload‖type‖pad zero bytes under verFuzzSecret. It also
// returns the application data a correct reader must deliver when every
// record is well-formed application data (ok reports that case): inner
// plaintext at most 2^14+1 bytes with its padding (RFC 8446 §5.4), and no
// run of more than maxUselessRecords empty records, which a reader
// refuses as a busy loop.
func verFuzzRecords(data []byte) (stream, appData []byte, ok bool) {
	suite := suiteByID(TLS_AES_128_GCM_SHA256)
	var seal halfConn
	if err := seal.setTrafficSecret(suite, verFuzzSecret); err != nil {
		panic(err)
	}
	ok = true
	emptyRun := 0
	for len(data) >= 4 {
		typ, pad, n := data[0], int(data[1]), int(data[2])<<8|int(data[3])
		data = data[4:]
		n = min(n, len(data))
		payload := data[:n]
		data = data[n:]
		if typ&0x80 != 0 {
			stream = append(stream, verRecord(typ&0x7f, payload)...)
			ok = false
			continue
		}
		inner := append(append(append([]byte(nil), payload...), typ), make([]byte, pad)...)
		hdr := []byte{recordTypeApplicationData, 3, 3, 0, 0}
		sealedLen := len(inner) + seal.aead.Overhead()
		hdr[3], hdr[4] = byte(sealedLen>>8), byte(sealedLen)
		nonce, _ := seal.nextNonce()
		stream = append(stream, seal.aead.Seal(hdr, nonce, inner, hdr)...)
		if typ != recordTypeApplicationData || len(inner) > maxPlaintext+1 || sealedLen > maxCiphertext {
			ok = false
		}
		if emptyRun = emptyRun + 1; len(payload) > 0 {
			emptyRun = 0
		}
		if emptyRun > maxUselessRecords {
			ok = false
		}
		appData = append(appData, payload...)
	}
	return stream, appData, ok
}

// verFuzzEstablished returns a connection in the state right after a
// handshake: both directions keyed with verFuzzSecret, reading from r.
func verFuzzEstablished(isClient bool, r []byte, cfg *Config) *Conn {
	suite := suiteByID(TLS_AES_128_GCM_SHA256)
	var c *Conn
	if isClient {
		c = Client(&verFuzzConn{r: bytes.NewReader(r)}, cfg)
	} else {
		c = Server(&verFuzzConn{r: bytes.NewReader(r)}, cfg)
	}
	c.suite = suite
	c.resMaster = bytes.Repeat([]byte{7}, 32)
	if err := c.in.setTrafficSecret(suite, verFuzzSecret); err != nil {
		panic(err)
	}
	if err := c.out.setTrafficSecret(suite, bytes.Repeat([]byte{0x24}, 32)); err != nil {
		panic(err)
	}
	c.firstRecord = false
	c.handshakeDone.Store(true)
	return c
}

// FuzzRecord drives the protected record layer of an established client
// and of an established server:
// padding, inner types, fragmentation of post-handshake messages,
// NewSessionTicket, KeyUpdate, alerts, notifications and registered
// messages. Reading must end in an error, never a panic or a hang, and a
// stream of well-formed application data must come out unchanged.
func FuzzRecord(f *testing.F) {
	rec := func(typ, pad uint8, payload []byte) []byte {
		return append([]byte{typ, pad, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	f.Add(rec(23, 0, []byte("hello")))
	f.Add(append(rec(23, 10, []byte("padded")), rec(23, 0, nil)...))
	f.Add(rec(22, 0, []byte{4, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 1, 9, 0, 2, 7, 7, 0, 0}))
	f.Add(append(rec(22, 0, []byte{24, 0, 0, 1, 1}), rec(23, 0, []byte("after"))...))
	f.Add(rec(21, 0, []byte{1, 0}))
	f.Add(rec(21, 0, []byte{1, 240}))
	f.Add(rec(21, 0, []byte{2, 40}))
	f.Add(rec(22, 0, []byte{0xfd, 0, 0, 2, 0, 0}))
	f.Add(append(rec(22, 0, []byte{4, 0, 0}), rec(23, 0, []byte("x"))...))
	f.Add(rec(0x80|20, 0, []byte{1}))
	f.Add(rec(0, 5, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		stream, want, wellFormed := verFuzzRecords(data)
		cfg := &Config{
			NotificationAlerts:    []uint8{240},
			OnNotification:        func(*Conn, uint8) {},
			HandshakeMessageTypes: []uint8{0xfd},
			OnHandshakeMessage:    func(*Conn, uint8, []byte) error { return nil },
			OnNewSessionTicket:    func(*Conn, *ClientSession) {},
		}
		for _, isClient := range []bool{true, false} {
			c := verFuzzEstablished(isClient, stream, cfg)
			var got []byte
			buf := make([]byte, 1000)
			var err error
			for i := 0; i < 10000; i++ {
				var n int
				n, err = c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if err == nil {
				t.Fatalf("client=%v: reading a finite stream never ended", isClient)
			}
			if wellFormed && (!bytes.Equal(got, want) || err != io.EOF) {
				t.Fatalf("client=%v: well-formed application data: got %d bytes and %v, want %d bytes and EOF", isClient, len(got), err, len(want))
			}
		}
	})
}

// FuzzServerHandshake feeds a client's byte stream to a tls13 server: the
// plaintext record layer, ClientHello reassembly and every server-side
// ClientHello rule. It must fail cleanly on anything but a real client.
func FuzzServerHandshake(f *testing.F) {
	verFuzzSeedHello(f)
	h := verDefaultHello(f)
	f.Add(h.record())
	// 0-RTT after a ClientHello with early_data, with and without a
	// HelloRetryRequest; a second ChangeCipherSpec; the added groups.
	early := verDefaultHello(f).set(verExtEarlyData, nil)
	zeroRTT := bytes.Join(garbageRecords(2, 64), nil)
	f.Add(append(append(early.record(), verRecord(verRecordCCS, []byte{1})...), zeroRTT...))
	f.Add(append(verDefaultHello(f).set(verExtEarlyData, nil).set(verExtKeyShare, verKeyShareExt()).record(), zeroRTT...))
	f.Add(append(h.record(), bytes.Repeat(verRecord(verRecordCCS, []byte{1}), 2)...))
	for _, g := range []tls.CurveID{CurveP384, CurveP521, X448, FFDHE2048} {
		gh := verDefaultHello(f)
		gh.set(verExtSupportedGroups, verU16List(2, uint16(g)))
		gh.set(verExtKeyShare, verKeyShareExt(verExt{uint16(g), verGroupShare(f, g)}))
		f.Add(gh.record())
	}
	p := verGetPKI(f, verECDSA)
	keys := NewTicketKeys([32]byte{9})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &Config{Certificates: []tls.Certificate{p.leaf}, TicketKeys: keys}
		c := Server(&verFuzzConn{r: bytes.NewReader(data)}, cfg)
		if err := c.Handshake(); err == nil {
			t.Fatalf("handshake succeeded against a byte stream")
		}
	})
}

// FuzzClientHandshake feeds a server's byte stream to a tls13 client:
// ServerHello and HelloRetryRequest handling and the start of the
// encrypted flight.
func FuzzClientHandshake(f *testing.F) {
	p := verGetPKI(f, verECDSA)
	f.Fuzz(func(t *testing.T, data []byte) {
		// X25519 first: an ML-KEM key generation per input would cut the
		// fuzzer's speed tenfold; P-256 keeps HelloRetryRequest reachable.
		cfg := &Config{RootCAs: p.roots, ServerName: verServerName, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
		c := Client(&verFuzzConn{r: bytes.NewReader(data)}, cfg)
		if err := c.Handshake(); err == nil {
			t.Fatalf("handshake succeeded against a byte stream")
		}
	})
}

// FuzzTicket opens arbitrary tickets with a fixed key set and decodes
// arbitrary sealed ticket states: tickets arrive from the network.
func FuzzTicket(f *testing.F) {
	keys := NewTicketKeys([32]byte{1}, [32]byte{2})
	st := ticketState{suite: TLS_AES_128_GCM_SHA256, createdAt: time.UnixMilli(1700000000000),
		lifetime: time.Hour, ageAdd: 5, psk: bytes.Repeat([]byte{3}, 32), alpn: "h2", serverName: "node.test", appData: []byte("app")}
	plain, err := st.marshal()
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := keys.seal(plain)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(plain)
	f.Fuzz(func(t *testing.T, data []byte) {
		if pt := keys.open(data); pt != nil {
			var s ticketState
			if !s.unmarshal(pt) {
				t.Fatalf("a ticket sealed under our key does not decode")
			}
		}
		var s ticketState
		if s.unmarshal(data) {
			out, err := s.marshal()
			if err != nil {
				return
			}
			var s2 ticketState
			if !s2.unmarshal(out) || s2.suite != s.suite || !bytes.Equal(s2.psk, s.psk) || s2.alpn != s.alpn ||
				s2.serverName != s.serverName || !bytes.Equal(s2.appData, s.appData) || s2.ageAdd != s.ageAdd {
				t.Fatalf("ticket state changed in a round trip")
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Seed corpus from real handshakes.

// verCorpus collects seeds per fuzz target.
type verCorpus map[string][][]byte

func (c verCorpus) add(target string, b []byte) {
	if len(c[target]) >= 12 { // enough variety; keeps testdata small
		return
	}
	for _, have := range c[target] {
		if bytes.Equal(have, b) {
			return
		}
	}
	c[target] = append(c[target], append([]byte(nil), b...))
}

var verMsgTargets = map[uint8]string{
	typeClientHello: "FuzzClientHello", typeServerHello: "FuzzServerHello",
	typeEncryptedExtensions: "FuzzEncryptedExtensions", typeCertificate: "FuzzCertificate",
	typeCertificateRequest: "FuzzCertificateRequest", typeCertificateVerify: "FuzzCertificateVerify",
	typeFinished: "FuzzFinished", typeNewSessionTicket: "FuzzNewSessionTicket", typeKeyUpdate: "FuzzKeyUpdate",
}

// harvest adds a recorded connection (client side) to the corpus.
func (c verCorpus) harvest(t *testing.T, w *verWireConn, kl *oracle.KeyLog) {
	t.Helper()
	c.add("FuzzServerHandshake", w.wroteBytes())
	c.add("FuzzClientHandshake", w.readBytes())
	_, s2c, cm, sm, err := verDecryptConn(w, kl)
	if err != nil {
		t.Fatalf("decrypting a recorded handshake: %v", err)
	}
	for _, m := range append(cm, sm...) {
		if target, ok := verMsgTargets[m[0]]; ok {
			c.add(target, m)
		}
		var nst newSessionTicketMsg
		if m[0] == typeNewSessionTicket && nst.unmarshal(m) {
			c.add("FuzzTicket", nst.label)
		}
	}
	// The server's protected records after its Finished, in FuzzRecord's
	// input format: {type, pad, len16, payload}.
	var stream []byte
	afterFinished := false
	for _, r := range s2c {
		if !r.Encrypted {
			continue
		}
		if afterFinished {
			stream = append(stream, r.Type, 0, byte(len(r.Payload)>>8), byte(len(r.Payload)))
			stream = append(stream, r.Payload...)
		}
		for m := r.Payload; r.Type == verRecordHandshake && len(m) >= 4; {
			if m[0] == typeFinished {
				afterFinished = true
			}
			m = m[min(len(m), 4+(int(m[1])<<16|int(m[2])<<8|int(m[3]))):]
		}
	}
	if len(stream) > 0 {
		c.add("FuzzRecord", stream)
	}
}

// TestVerWriteFuzzCorpus regenerates testdata/fuzz/ from real handshakes
// between tls13, crypto/tls and OpenSSL, decrypted with their key logs.
// It only runs when TLS13_WRITE_CORPUS is set: the corpus is committed.
func TestVerWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("TLS13_WRITE_CORPUS") == "" {
		t.Skip("set TLS13_WRITE_CORPUS=1 to regenerate testdata/fuzz from real handshakes")
	}
	corpus := verCorpus{}
	// OpenSSL's ClientHello, as a server sees it.
	if _, err := exec.LookPath("openssl"); err == nil {
		ln := verListen(t)
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(verWait))
			var buf []byte
			tmp := make([]byte, 4096)
			for {
				n, err := c.Read(tmp)
				buf = append(buf, tmp[:n]...)
				if recs, _ := verSplitRecords(buf); len(recs) > 0 || err != nil {
					got <- buf
					return
				}
			}
		}()
		verStartOpenSSLClient(t, ln.Addr().String(), "-tls1_3", "-servername", verServerName)
		if b := <-got; b != nil {
			corpus.add("FuzzServerHandshake", b)
			if recs, _ := verSplitRecords(b); len(recs) > 0 {
				corpus.add("FuzzClientHello", recs[0][5:])
			}
		}
	}
	for _, kind := range verCertKinds {
		p := verGetPKI(t, kind)
		// tls13 client → crypto/tls server: full, HRR, resumed, KeyUpdate,
		// CertificateRequest.
		for i, mod := range []func(cc *Config, sc *tls.Config){
			func(cc *Config, sc *tls.Config) {},
			func(cc *Config, sc *tls.Config) {
				cc.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
				sc.CurvePreferences = []tls.CurveID{tls.CurveP256}
			},
			func(cc *Config, sc *tls.Config) { sc.ClientAuth = tls.RequestClientCert },
			func(cc *Config, sc *tls.Config) { cc.CipherSuites = []uint16{TLS_CHACHA20_POLY1305_SHA256} },
		} {
			kl := &oracle.KeyLog{}
			ccfg := verTLS13ClientConfig(p)
			ccfg.KeyLogWriter = kl
			scfg := verStdlibServerConfig(p)
			mod(ccfg, scfg)
			r, w := verRecordTLS13ToStdlib(t, ccfg, scfg, i == 0)
			corpus.harvest(t, w, kl)
			if i == 0 {
				kl2 := &oracle.KeyLog{}
				ccfg.KeyLogWriter = kl2
				ccfg.Session = r
				_, w2 := verRecordTLS13ToStdlib(t, ccfg, scfg, false)
				corpus.harvest(t, w2, kl2)
			}
		}
		// crypto/tls client → tls13 server: full, resumed, HRR.
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketExtensions = func(*Conn, *ServerTicket) []Extension {
			return []Extension{{Type: 0xFE4E}}
		}
		ccfg := verStdlibClientConfig(p)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		for i := 0; i < 2; i++ {
			kl := &oracle.KeyLog{}
			ccfg.KeyLogWriter = kl
			corpus.harvest(t, verRecordStdlibToTLS13(t, ccfg, scfg), kl)
		}
		hrr := verTLS13ServerConfig(t, p)
		hrr.CurvePreferences = []tls.CurveID{tls.CurveP256}
		kl := &oracle.KeyLog{}
		c2 := verStdlibClientConfig(p)
		c2.KeyLogWriter = kl
		corpus.harvest(t, verRecordStdlibToTLS13(t, c2, hrr), kl)
	}
	for target, seeds := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			sum := sha256.Sum256(s)
			name := filepath.Join(dir, "real-"+hex.EncodeToString(sum[:8]))
			if err := os.WriteFile(name, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d seeds", target, len(seeds))
	}
}

// verRecordTLS13ToStdlib runs one tls13 client → crypto/tls server
// connection with a KeyUpdate and an echo, recorded on the client side,
// and returns the last ticket.
func verRecordTLS13ToStdlib(t *testing.T, ccfg *Config, scfg *tls.Config, keyUpdate bool) (*ClientSession, *verWireConn) {
	t.Helper()
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := tls.Server(c, scfg)
		if err := verEchoLine(s); err != nil {
			return err
		}
		return verEchoLine(s)
	})
	w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
	sessions := &verSessionCatcher{}
	cfg := *ccfg
	cfg.OnNewSessionTicket = sessions.hook
	c := Client(w, &cfg)
	if err := verPingPong(c, "one"); err != nil {
		t.Fatal(err)
	}
	if keyUpdate {
		if err := c.SendKeyUpdate(true); err != nil {
			t.Fatal(err)
		}
	}
	if err := verPingPong(c, "two"); err != nil {
		t.Fatal(err)
	}
	if err := verWaitErr(t, done, "server"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return sessions.last(), w
}

// verRecordStdlibToTLS13 runs one crypto/tls client → tls13 server
// connection recorded on the client side.
func verRecordStdlibToTLS13(t *testing.T, ccfg *tls.Config, scfg *Config) *verWireConn {
	t.Helper()
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error { return verEchoLine(Server(c, scfg)) })
	w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
	c := tls.Client(w, ccfg)
	if err := verPingPong(c, "one"); err != nil {
		t.Fatal(err)
	}
	if err := verWaitErr(t, done, "server"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return w
}
