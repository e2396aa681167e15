package tls13

// Shared helpers of the verification tests (interop, OpenSSL, negative, fuzz,
// benchmark and example files). Every identifier here starts with "ver" so it
// cannot collide with the engine's own names or its unit-test helpers, which
// live in the same package.

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// verServerName is the name every test certificate is issued for.
const verServerName = "node.test"

// verWait bounds every poll for readiness and every blocking read in these
// tests; it is a failure deadline, never an expected duration.
const verWait = 20 * time.Second

// verCertKind names the key type of a test PKI.
type verCertKind string

const (
	verECDSA   verCertKind = "ecdsa-p256"
	verEd25519 verCertKind = "ed25519"
	verRSAPSS  verCertKind = "rsa-pss"
)

// verCertKinds is the certificate axis of the interop matrix.
var verCertKinds = []verCertKind{verECDSA, verEd25519, verRSAPSS}

// verPKI is an in-memory CA and one leaf for verServerName and 127.0.0.1.
type verPKI struct {
	kind    verCertKind
	caCert  *x509.Certificate
	roots   *x509.CertPool
	leaf    tls.Certificate
	caPEM   []byte
	certPEM []byte // leaf then CA
	keyPEM  []byte // PKCS#8
}

var (
	verPKIMu    sync.Mutex
	verPKICache = map[verCertKind]*verPKI{}
)

// verGetPKI returns the PKI of the given kind, made once per test binary
// (RSA key generation is slow under -race).
func verGetPKI(t testing.TB, kind verCertKind) *verPKI {
	t.Helper()
	verPKIMu.Lock()
	defer verPKIMu.Unlock()
	if p, ok := verPKICache[kind]; ok {
		return p
	}
	p, err := verNewPKI(kind)
	if err != nil {
		t.Fatalf("make %s PKI: %v", kind, err)
	}
	verPKICache[kind] = p
	return p
}

func verNewKey(kind verCertKind) (crypto.Signer, error) {
	switch kind {
	case verECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case verEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case verRSAPSS:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, errors.New("unknown certificate kind " + string(kind))
}

func verNewPKI(kind verCertKind) (*verPKI, error) {
	caKey, err := verNewKey(kind)
	if err != nil {
		return nil, err
	}
	leafKey, err := verNewKey(kind)
	if err != nil {
		return nil, err
	}
	// RSA certificates are signed with RSASSA-PSS too, so the chain and the
	// CertificateVerify both exercise PSS.
	var sigAlg x509.SignatureAlgorithm
	if kind == verRSAPSS {
		sigAlg = x509.SHA256WithRSAPSS
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "anysched test CA " + string(kind)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    sigAlg,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(2),
		Subject:            pkix.Name{CommonName: verServerName},
		DNSNames:           []string{verServerName},
		IPAddresses:        []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.Add(24 * time.Hour),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm: sigAlg,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, leafKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	leafCert, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	p := &verPKI{
		kind:   kind,
		caCert: caCert,
		roots:  x509.NewCertPool(),
		leaf: tls.Certificate{
			Certificate: [][]byte{leafDER, caDER},
			PrivateKey:  leafKey,
			Leaf:        leafCert,
		},
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	p.roots.AddCert(caCert)
	p.certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), p.caPEM...)
	return p, nil
}

// writePEM writes ca.pem, cert.pem (leaf + CA) and key.pem into a fresh
// temporary directory for OpenSSL.
func (p *verPKI) writePEM(t testing.TB) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for name, data := range map[string][]byte{caFile: p.caPEM, certFile: p.certPEM, keyFile: p.keyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// verStdlibServerConfig is a crypto/tls server that speaks TLS 1.3 only.
func verStdlibServerConfig(p *verPKI) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.leaf},
	}
}

// verStdlibClientConfig is a crypto/tls client that speaks TLS 1.3 only and
// trusts p's CA for verServerName.
func verStdlibClientConfig(p *verPKI) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    p.roots,
		ServerName: verServerName,
	}
}

// verListen listens on an ephemeral loopback port, closed at cleanup.
func verListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// verAcceptOne accepts one connection on ln in the background and hands it to
// serve; the result of serve arrives on the returned channel.
func verAcceptOne(ln net.Listener, serve func(net.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(verWait))
		done <- serve(c)
	}()
	return done
}

// verDial connects to addr with a deadline covering the whole test exchange.
func verDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, verWait)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(verWait))
	t.Cleanup(func() { c.Close() })
	return c
}

// verWaitErr waits for a background result with the failure deadline.
func verWaitErr(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(verWait):
		t.Fatalf("%s: no result within %v", what, verWait)
		return nil
	}
}

// verEcho copies one line from c back to c, so a client can check that
// application data flows both ways.
func verEchoLine(c io.ReadWriter) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	_, err = io.WriteString(c, line)
	return err
}

// verPingPong writes msg+"\n" to c and expects the same line back.
func verPingPong(c io.ReadWriter, msg string) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return errors.New("echo mismatch: got " + got)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Records on the wire.

// Record content types and alert descriptions as RFC 8446 numbers them; kept
// here so the raw-socket tests state the wire values independently of the
// engine's constants.
const (
	verRecordCCS       = 20
	verRecordAlert     = 21
	verRecordHandshake = 22
	verRecordAppData   = 23

	verAlertCloseNotify           = 0
	verAlertUnexpectedMessage     = 10
	verAlertBadRecordMAC          = 20
	verAlertRecordOverflow        = 22
	verAlertHandshakeFailure      = 40
	verAlertBadCertificate        = 42
	verAlertIllegalParameter      = 47
	verAlertUnknownCA             = 48
	verAlertDecodeError           = 50
	verAlertDecryptError          = 51
	verAlertProtocolVersion       = 70
	verAlertMissingExtension      = 109
	verAlertUnsupportedExtension  = 110
	verAlertUnrecognizedName      = 112
	verAlertNoApplicationProtocol = 120
)

// verHRRRandom is the ServerHello.random that marks a HelloRetryRequest
// (RFC 8446 §4.1.3: SHA-256 of "HelloRetryRequest").
var verHRRRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// verSplitRecords cuts whole TLS records off b; the incomplete tail is
// returned as rest.
func verSplitRecords(b []byte) (recs [][]byte, rest []byte) {
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if len(b) < n {
			break
		}
		recs = append(recs, b[:n:n])
		b = b[n:]
	}
	return recs, b
}

// verSawHRR reports whether the server's first handshake message in the
// plaintext bytes s2c is a HelloRetryRequest.
func verSawHRR(s2c []byte) bool {
	recs, _ := verSplitRecords(s2c)
	for _, r := range recs {
		if r[0] != verRecordHandshake {
			continue
		}
		body := r[5:]
		// type(1) len(3) legacy_version(2) random(32)
		return len(body) >= 38 && body[0] == 2 && bytes.Equal(body[6:38], verHRRRandom)
	}
	return false
}

// verWireConn wraps a net.Conn: it records every byte read from the peer and
// can rewrite outgoing records one whole record at a time.
type verWireConn struct {
	net.Conn

	mu      sync.Mutex
	read    bytes.Buffer
	wrote   bytes.Buffer // what reached the peer, after mutate
	pending []byte
	written int // whole records written so far
	// mutate, when set, may change an outgoing record in place (header
	// included) or return a replacement; index counts records from 0.
	mutate func(index int, rec []byte) []byte
}

func (c *verWireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *verWireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.mutate == nil {
		c.wrote.Write(p)
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	c.pending = append(c.pending, p...)
	recs, rest := verSplitRecords(c.pending)
	var out []byte
	for _, r := range recs {
		r = append([]byte(nil), r...)
		r = c.mutate(c.written, r)
		c.written++
		out = append(out, r...)
	}
	c.pending = append([]byte(nil), rest...)
	c.wrote.Write(out)
	c.mu.Unlock()
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// readBytes returns a copy of everything read so far.
func (c *verWireConn) readBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.read.Bytes()...)
}

// wroteBytes returns a copy of everything written to the peer so far.
func (c *verWireConn) wroteBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.wrote.Bytes()...)
}

// verReadAlert reads plaintext records from c until it finds an alert and
// returns its description. It fails when c closes or the deadline passes
// first, or when an encrypted record arrives (the peer went on with the
// handshake instead of refusing).
func verReadAlert(c net.Conn) (level, desc uint8, err error) {
	c.SetReadDeadline(time.Now().Add(verWait))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		recs, _ := verSplitRecords(buf)
		for _, r := range recs {
			switch r[0] {
			case verRecordAlert:
				if len(r) != 7 {
					return 0, 0, errors.New("malformed alert record")
				}
				return r[5], r[6], nil
			case verRecordAppData:
				return 0, 0, errors.New("peer sent an encrypted record instead of a plaintext alert")
			}
		}
		n, rerr := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if rerr != nil {
			return 0, 0, errors.New("no alert before " + rerr.Error())
		}
	}
}

// verRecord frames a payload as one plaintext record.
func verRecord(typ uint8, payload []byte) []byte {
	r := []byte{typ, 0x03, 0x03, byte(len(payload) >> 8), byte(len(payload))}
	return append(r, payload...)
}

// verRecordV frames a payload with an explicit legacy record version.
func verRecordV(typ uint8, version uint16, payload []byte) []byte {
	r := []byte{typ, byte(version >> 8), byte(version), byte(len(payload) >> 8), byte(len(payload))}
	return append(r, payload...)
}

// ---------------------------------------------------------------------------
// OpenSSL.

// verOpenSSL returns the openssl binary; without one the test fails (a
// missing dependency is not a pass).
func verOpenSSL(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not installed: the OpenSSL interop tests need the openssl command (apt-get install openssl)")
	}
	return path
}

// verLockedBuffer collects a child process's output while tests read it.
type verLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *verLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *verLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// verWaitFor polls cond until it holds or the failure deadline passes.
func verWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(verWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a readiness guess
	}
}

// verOpenSSLServer is a running `openssl s_server`.
type verOpenSSLServer struct {
	addr  string
	out   *verLockedBuffer
	stdin io.WriteCloser // s_server sends what arrives here to the client
}

// verStartOpenSSLServer runs `openssl s_server -accept 127.0.0.1:0 args...`;
// OpenSSL binds an ephemeral port and prints "ACCEPT host:port", which is the
// readiness signal. The process is killed at cleanup.
func verStartOpenSSLServer(t testing.TB, args ...string) *verOpenSSLServer {
	t.Helper()
	bin := verOpenSSL(t)
	full := append([]string{"s_server", "-accept", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, full...)
	out := &verLockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe() // an open stdin keeps s_server from quitting
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("openssl s_server output:\n%s", out.String())
		}
	})
	s := &verOpenSSLServer{out: out, stdin: stdin}
	verWaitFor(t, "openssl s_server ACCEPT line", func() bool {
		select {
		case <-exited:
			t.Fatalf("openssl s_server exited early:\n%s", out.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ACCEPT "); ok {
				s.addr = rest
				return true
			}
		}
		return false
	})
	return s
}

// verOpenSSLClient is a running `openssl s_client`.
type verOpenSSLClient struct {
	stdin  io.WriteCloser
	out    *verLockedBuffer
	exited chan struct{}
}

// verStartOpenSSLClient runs `openssl s_client -connect addr args...`,
// killed at cleanup.
func verStartOpenSSLClient(t testing.TB, addr string, args ...string) *verOpenSSLClient {
	t.Helper()
	bin := verOpenSSL(t)
	full := append([]string{"s_client", "-connect", addr}, args...)
	cmd := exec.Command(bin, full...)
	out := &verLockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &verOpenSSLClient{stdin: stdin, out: out, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("openssl s_client output:\n%s", out.String())
		}
	})
	return c
}

// waitOutput polls until the client's output contains s.
func (c *verOpenSSLClient) waitOutput(t testing.TB, s string) {
	t.Helper()
	verWaitFor(t, "openssl s_client output "+s, func() bool {
		return strings.Contains(c.out.String(), s)
	})
}

// finish closes stdin (s_client then sends close_notify and exits) and
// waits for the process.
func (c *verOpenSSLClient) finish(t testing.TB) string {
	t.Helper()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(verWait):
		t.Fatalf("openssl s_client did not exit:\n%s", c.out.String())
	}
	return c.out.String()
}

// ---------------------------------------------------------------------------
// Handcrafted ClientHellos for the raw-socket conformance tests.

// Extension code points and wire values used by the handcrafted hellos.
const (
	verExtServerName          = 0
	verExtSupportedGroups     = 10
	verExtSignatureAlgorithms = 13
	verExtALPN                = 16
	verExtPreSharedKey        = 41
	verExtSupportedVersions   = 43
	verExtCookie              = 44
	verExtPSKModes            = 45
	verExtKeyShare            = 51

	verGroupX25519    = 0x001d
	verGroupP256      = 0x0017
	verGroupX25519ML  = 0x11ec
	verSuiteAES128GCM = 0x1301
	verSuiteAES256GCM = 0x1302
	verSuiteChaCha    = 0x1303
)

// verExt is one extension of a handcrafted hello, in wire order.
type verExt struct {
	typ  uint16
	data []byte
}

// verHello is a ClientHello built field by field, so a test can break
// exactly one rule and leave the rest valid.
type verHello struct {
	legacyVersion uint16
	random        [32]byte
	sessionID     []byte
	suites        []uint16
	compression   []byte
	exts          []verExt
}

// verU16List encodes a uint16 list with a length prefix of prefixLen bytes.
func verU16List(prefixLen int, vals ...uint16) []byte {
	var b cryptobyte.Builder
	body := func(b *cryptobyte.Builder) {
		for _, v := range vals {
			b.AddUint16(v)
		}
	}
	if prefixLen == 1 {
		b.AddUint8LengthPrefixed(body)
	} else {
		b.AddUint16LengthPrefixed(body)
	}
	return b.BytesOrPanic()
}

// verKeyShareExt encodes a ClientHello key_share extension body.
func verKeyShareExt(shares ...verExt) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, s := range shares {
			b.AddUint16(s.typ)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.data) })
		}
	})
	return b.BytesOrPanic()
}

// verSNIExt encodes a server_name extension body for one host name.
func verSNIExt(name string) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(0) // host_name
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
	})
	return b.BytesOrPanic()
}

// verPSKExt encodes a pre_shared_key extension with one identity and one
// binder of binderLen bytes.
func verPSKExt(identity []byte, binderLen int) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(identity) })
		b.AddUint32(0x01020304) // obfuscated_ticket_age
	})
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, binderLen)) })
	})
	return b.BytesOrPanic()
}

// verNewX25519Share returns a fresh X25519 public key.
func verNewX25519Share(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// verP256Point returns a valid uncompressed P-256 public key.
func verP256Point(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// verDefaultHello is a valid TLS 1.3 ClientHello: one suite, X25519 with a
// share, signature algorithms for every test certificate, psk_dhe_ke, a
// 32-byte legacy session id (middlebox compatibility).
func verDefaultHello(t testing.TB) *verHello {
	t.Helper()
	h := &verHello{
		legacyVersion: 0x0303,
		sessionID:     bytes.Repeat([]byte{0x5a}, 32),
		suites:        []uint16{verSuiteAES128GCM},
		compression:   []byte{0},
	}
	rand.Read(h.random[:])
	h.exts = []verExt{
		{verExtServerName, verSNIExt(verServerName)},
		{verExtSupportedVersions, verU16List(1, 0x0304)},
		{verExtSupportedGroups, verU16List(2, verGroupX25519)},
		{verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, verNewX25519Share(t)})},
		{verExtSignatureAlgorithms, verU16List(2, 0x0403, 0x0807, 0x0804, 0x0805, 0x0806, 0x0503)},
		{verExtPSKModes, []byte{1, 1}},
	}
	return h
}

// set replaces the first extension of type typ, or appends it.
func (h *verHello) set(typ uint16, data []byte) *verHello {
	for i := range h.exts {
		if h.exts[i].typ == typ {
			h.exts[i].data = data
			return h
		}
	}
	h.exts = append(h.exts, verExt{typ, data})
	return h
}

// remove drops every extension of type typ.
func (h *verHello) remove(typ uint16) *verHello {
	out := h.exts[:0]
	for _, e := range h.exts {
		if e.typ != typ {
			out = append(out, e)
		}
	}
	h.exts = out
	return h
}

// marshal returns the handshake message: type, uint24 length, body.
func (h *verHello) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(1) // client_hello
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(h.legacyVersion)
		b.AddBytes(h.random[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range h.suites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.compression) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range h.exts {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
			}
		})
	})
	return b.BytesOrPanic()
}

// record returns the hello as one plaintext handshake record.
func (h *verHello) record() []byte { return verRecord(verRecordHandshake, h.marshal()) }

// verReadServerHello reads plaintext records until the first handshake
// record and reports whether it starts with a ServerHello that is not a
// HelloRetryRequest, and the echoed legacy_session_id.
func verReadServerHello(c net.Conn) (isServerHello, isHRR bool, sessionEcho []byte, err error) {
	c.SetReadDeadline(time.Now().Add(verWait))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		recs, _ := verSplitRecords(buf)
		for _, r := range recs {
			switch r[0] {
			case verRecordAlert:
				return false, false, nil, fmt.Errorf("alert %v", r[5:])
			case verRecordHandshake:
				s := cryptobyte.String(r[5:])
				var typ uint8
				var body, random, sid cryptobyte.String
				var vers uint16
				if !s.ReadUint8(&typ) || !s.ReadUint24LengthPrefixed(&body) || typ != 2 ||
					!body.ReadUint16(&vers) || !body.ReadBytes((*[]byte)(&random), 32) ||
					!body.ReadUint8LengthPrefixed(&sid) {
					return false, false, nil, fmt.Errorf("first handshake record is not a ServerHello: % x", r[5:min(len(r), 16)])
				}
				return true, bytes.Equal(random, verHRRRandom), []byte(sid), nil
			}
		}
		n, rerr := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if rerr != nil {
			return false, false, nil, errors.New("no ServerHello before " + rerr.Error())
		}
	}
}

// ---------------------------------------------------------------------------
// Decrypting a recorded connection with its NSS key log, written from
// RFC 8446 §7 independently of the engine's key schedule, so tests and the
// corpus generator can look inside encrypted records.

// verKeyLog collects NSS key log lines ("LABEL client_random secret").
type verKeyLog struct {
	mu      sync.Mutex
	secrets map[string][]byte
	randoms map[string]bool // client_random fields seen, hex
}

func (k *verKeyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.secrets == nil {
		k.secrets = map[string][]byte{}
	}
	for _, line := range strings.Split(string(p), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		sec, err := hex.DecodeString(f[2])
		if err != nil {
			continue
		}
		k.secrets[f[0]] = sec
		if k.randoms == nil {
			k.randoms = map[string]bool{}
		}
		k.randoms[f[1]] = true
	}
	return len(p), nil
}

func (k *verKeyLog) get(label string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.secrets[label]
}

// verSuiteParams gives the hash and AEAD of a TLS 1.3 suite.
func verSuiteParams(suite uint16) (h func() hash.Hash, keyLen int, aead func(key []byte) (cipher.AEAD, error)) {
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	switch suite {
	case verSuiteAES128GCM:
		return sha256.New, 16, gcm
	case verSuiteAES256GCM:
		return sha512.New384, 32, gcm
	case verSuiteChaCha:
		return sha256.New, 32, chacha20poly1305.New
	}
	return nil, 0, nil
}

// verExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with an empty
// context.
func verExpandLabel(h func() hash.Hash, secret []byte, label string, length int) []byte {
	return verExpandLabelCtx(h, secret, label, nil, length)
}

// verExpandLabelCtx is HKDF-Expand-Label (RFC 8446 §7.1).
func verExpandLabelCtx(h func() hash.Hash, secret []byte, label string, context []byte, length int) []byte {
	var b cryptobyte.Builder
	b.AddUint16(uint16(length))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("tls13 " + label)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(context) })
	out, err := hkdf.Expand(h, secret, string(b.BytesOrPanic()), length)
	if err != nil {
		panic(err)
	}
	return out
}

// verInnerRecord is one decrypted (or plaintext) record.
type verInnerRecord struct {
	typ       uint8
	payload   []byte
	encrypted bool
}

// verDecryptDirection decrypts one direction of a recorded connection:
// plaintext records first, then records under hsSecret until that side's
// Finished, then under appSecret, following KeyUpdates. It returns the
// records and the handshake messages they carry.
func verDecryptDirection(suite uint16, wire, hsSecret, appSecret []byte) (recs []verInnerRecord, msgs [][]byte, err error) {
	h, keyLen, newAEAD := verSuiteParams(suite)
	if h == nil {
		return nil, nil, fmt.Errorf("unknown suite %#04x", suite)
	}
	var aead cipher.AEAD
	var iv []byte
	var seq uint64
	secret := []byte(nil)
	setKey := func(s []byte) error {
		secret = s
		var err error
		aead, err = newAEAD(verExpandLabel(h, s, "key", keyLen))
		iv = verExpandLabel(h, s, "iv", 12)
		seq = 0
		return err
	}
	epoch := 0 // 0 plaintext, 1 handshake keys, 2 application keys
	var hsBuf []byte
	raw, _ := verSplitRecords(wire)
	for _, r := range raw {
		typ, body := r[0], r[5:]
		if typ == verRecordCCS {
			continue
		}
		if typ != verRecordAppData {
			recs = append(recs, verInnerRecord{typ: typ, payload: body})
			if typ == verRecordHandshake {
				hsBuf = append(hsBuf, body...)
			}
		} else {
			if epoch == 0 {
				if hsSecret == nil {
					return recs, msgs, errors.New("encrypted record but no handshake secret")
				}
				if err := setKey(hsSecret); err != nil {
					return recs, msgs, err
				}
				epoch = 1
			}
			nonce := append([]byte(nil), iv...)
			for i := 0; i < 8; i++ {
				nonce[len(nonce)-1-i] ^= byte(seq >> (8 * i))
			}
			seq++
			plain, err := aead.Open(nil, nonce, body, r[:5])
			if err != nil {
				return recs, msgs, fmt.Errorf("record %d: %v", len(recs), err)
			}
			i := len(plain) - 1
			for i >= 0 && plain[i] == 0 {
				i--
			}
			if i < 0 {
				return recs, msgs, errors.New("all-zero inner plaintext")
			}
			typ = plain[i]
			recs = append(recs, verInnerRecord{typ: typ, payload: plain[:i], encrypted: true})
			if typ == verRecordHandshake {
				hsBuf = append(hsBuf, plain[:i]...)
			}
		}
		// Cut complete handshake messages and follow key changes, which
		// fall on record boundaries.
		switchTo := []byte(nil)
		for len(hsBuf) >= 4 {
			n := 4 + (int(hsBuf[1])<<16 | int(hsBuf[2])<<8 | int(hsBuf[3]))
			if len(hsBuf) < n {
				break
			}
			m := append([]byte(nil), hsBuf[:n]...)
			msgs = append(msgs, m)
			hsBuf = hsBuf[n:]
			switch {
			case m[0] == 20 && epoch == 1:
				switchTo = appSecret
			case m[0] == 24 && epoch == 2:
				switchTo = verExpandLabel(h, secret, "traffic upd", h().Size())
			}
		}
		if switchTo != nil {
			if err := setKey(switchTo); err != nil {
				return recs, msgs, err
			}
			epoch = 2
		}
	}
	return recs, msgs, nil
}

// verServerHelloSuite finds the cipher suite of the (non-HRR) ServerHello
// among handshake messages.
func verServerHelloSuite(msgs [][]byte) uint16 {
	for _, m := range msgs {
		if len(m) >= 4+2+32+1 && m[0] == 2 && !bytes.Equal(m[6:38], verHRRRandom) {
			off := 38
			off += 1 + int(m[off])
			if len(m) >= off+2 {
				return uint16(m[off])<<8 | uint16(m[off+1])
			}
		}
	}
	return 0
}

// verDecryptConn decrypts both directions of a connection recorded on the
// client side (w) with the client's key log.
func verDecryptConn(w *verWireConn, kl *verKeyLog) (c2s, s2c []verInnerRecord, c2sMsgs, s2cMsgs [][]byte, err error) {
	// The suite comes from the plaintext ServerHello.
	rawS2C := w.readBytes()
	var plainMsgs [][]byte
	recs, _ := verSplitRecords(rawS2C)
	var hs []byte
	for _, r := range recs {
		if r[0] == verRecordHandshake {
			hs = append(hs, r[5:]...)
		}
	}
	for len(hs) >= 4 {
		n := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
		if len(hs) < n {
			break
		}
		plainMsgs = append(plainMsgs, hs[:n])
		hs = hs[n:]
	}
	suite := verServerHelloSuite(plainMsgs)
	if suite == 0 {
		return nil, nil, nil, nil, errors.New("no ServerHello recorded")
	}
	s2c, s2cMsgs, err = verDecryptDirection(suite, rawS2C, kl.get("SERVER_HANDSHAKE_TRAFFIC_SECRET"), kl.get("SERVER_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("server to client: %w", err)
	}
	c2s, c2sMsgs, err = verDecryptDirection(suite, w.wroteBytes(), kl.get("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), kl.get("CLIENT_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("client to server: %w", err)
	}
	return c2s, s2c, c2sMsgs, s2cMsgs, nil
}

// ---------------------------------------------------------------------------
// tls13 configurations.

// verTLS13ServerConfig is a tls13 server for p with fresh ticket keys.
func verTLS13ServerConfig(t testing.TB, p *verPKI) *Config {
	t.Helper()
	keys, err := NewRandomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Certificates: []tls.Certificate{p.leaf}, TicketKeys: keys}
}

// verTLS13ClientConfig is a tls13 client that trusts p for verServerName.
func verTLS13ClientConfig(p *verPKI) *Config {
	return &Config{RootCAs: p.roots, ServerName: verServerName}
}

// verSessionCatcher keeps the tickets a tls13 client receives.
type verSessionCatcher struct {
	mu       sync.Mutex
	sessions []*ClientSession
}

func (s *verSessionCatcher) hook(_ *Conn, cs *ClientSession) {
	s.mu.Lock()
	s.sessions = append(s.sessions, cs)
	s.mu.Unlock()
}

func (s *verSessionCatcher) last() *ClientSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) == 0 {
		return nil
	}
	return s.sessions[len(s.sessions)-1]
}

// verAlertOf returns the alert carried by err and whether it was received
// from the peer.
func verAlertOf(err error) (a Alert, received, ok bool) {
	var ae *AlertError
	if errors.As(err, &ae) {
		return ae.Alert, ae.Received, true
	}
	return 0, false, false
}
